"""The SequenceLab model in PyTorch, built from a run's config.json with the reference mixers (docs/interop.md).

Same module names as SequenceLab's parameter paths, so `model.load_state_dict(file)` takes the output of
`seqlab convert RUN --out FILE` as it is (strict), and `save_file(model.state_dict(), FILE)` gives the input of
`seqlab train --init-from FILE`:

    embedding            nn.Embedding(V, D), N(0, s^2)            embedding.weight [V, D]; s = model.embedding_init_std
                                                                  (1, nn.Embedding's own draw, when the config lacks it)
    blocks.i.norm1       nn.LayerNorm(D, eps 1e-5) (or RMSNorm)   before the mixer (pre-norm), absent for RAT and GAM
    blocks.i.mixer       the layer's reference module             (scripts/fixtures/references/*.py)
    blocks.i.norm2, .ff  LayerNorm + MLP (Linear, GELU, Linear)   only with feed_forward = mlp
    norm                 final LayerNorm
    head.output          nn.Linear(D, classes)                    per-token logits (the MQAR head)

Blocks: x + mixer(norm1(x)) (pre-norm; RAT and GAM are whole residual blocks: x <- mixer(x)), then
x + ff(norm2(x)). Dropout is 0 (evaluation). Only what the recall and state-tracking tasks use is built:
per-token heads, pre-norm, LayerNorm or RMSNorm, no bidirectional mixers.

    python scripts/interop/torch_model.py RUN_STATE.safetensors [--refsrc DIR]   # logits of a converted run
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
from make_layer_fixtures import load_reference_module  # noqa: E402

FAMILY = {"mamba": "mamba", "s4": "s4", "s4d": "s4", "gla": "fla", "deltanet": "fla", "deltaproduct": "fla", "gated_deltanet": "fla", "retnet": "fla", "hgrn2": "fla", "mamba2": "fla", "fox": "fla",
          "rat": "others", "gam": "others", "attention": "others", "mlstm": "xlstm"}
INCLUDES_RESIDUAL = {"rat", "gam"}


def runs_in_float32(config):
    """Whether SequenceLabModel(fast=True) of a run's config builds the reference classes as they ship, which run in
    float32: mamba (mambapy's MambaBlock) without negative_eigenvalues, whose patched reference is the float64 form,
    and mamba2 (fla's Mamba2 with its own torch_forward, fla.RUNS_AS_SHIPPED). The other references here are
    float64-exact forms (scripts/fixtures/references/) and run in float64 only."""
    m = config["model"]
    if m["layer"] == "mamba2":
        return True
    return m["layer"] == "mamba" and m.get("layer_options", {}).get("negative_eigenvalues", "false") in ("false", False)


class Block(nn.Module):
    def __init__(self, model_config, index, reference, dtype, fast=False, seed=None):
        super().__init__()
        d, layer = model_config["d_model"], model_config["layer"]
        # A reference's build() seeds torch with its case's seed: block i draws from seed i (fixtures), or, for a
        # model of a run's seed, from 1000 (seed + 1) + i, so that runs of different seeds draw different mixers.
        case = dict(name=f"block{index}", layer=layer, options=dict(model_config.get("layer_options", {})),
                    batch=1, length=1, d_model=d, seed=index if seed is None else 1000 * (seed + 1) + index, fast=fast,
                    depth=model_config.get("n_layers", 2))
        self.reference = reference
        self.mixer = reference.build(case).to(dtype)
        self.whole = layer in INCLUDES_RESIDUAL
        norm = nn.RMSNorm if model_config.get("norm", "layer_norm") == "rms_norm" else nn.LayerNorm
        if not self.whole:
            self.norm1 = norm(d, eps=1e-5, dtype=dtype)
        if model_config.get("feed_forward", "none") == "mlp":
            f = model_config.get("feed_forward_expand", 2) * d
            self.norm2 = norm(d, eps=1e-5, dtype=dtype)
            self.ff = nn.Module()
            self.ff.up, self.ff.down = nn.Linear(d, f, dtype=dtype), nn.Linear(f, d, dtype=dtype)
        elif model_config.get("feed_forward", "none") != "none":
            raise SystemExit(f"feed_forward {model_config['feed_forward']} is not built here")

    def forward(self, x):
        x = self.reference.forward(self.mixer, x) if self.whole else x + self.reference.forward(self.mixer, self.norm1(x))
        if hasattr(self, "ff"):
            x = x + self.ff.down(torch.nn.functional.gelu(self.ff.up(self.norm2(x))))
        return x


class SequenceLabModel(nn.Module):
    def __init__(self, config, vocabulary, classes, dtype=torch.float64, fast=False, seed=None):
        """`config`: a run's config.json; `vocabulary`, `classes`: the task's (the shapes of embedding.weight and
        head.output.weight in the run's state dict). `fast`: a reference's own fast CPU path where the fixtures use
        its step-by-step form (mamba: mambapy's pscan instead of selective_scan_seq; the same math re-associated).
        `seed`: the run's seed, for models whose every draw must depend on it (reference controls); None keeps the
        fixtures' per-block seeds 0, 1, ... (every reference's build() reseeds torch with its case's seed)."""
        super().__init__()
        m = config["model"]
        if not m.get("prenorm", True) or m.get("bidirectional", False):
            raise SystemExit("only pre-norm, causal models are built here")
        reference = load_reference_module(FAMILY[m["layer"]])
        self.embedding = nn.Embedding(vocabulary, m["d_model"], dtype=dtype)
        if m.get("embedding_init_std", 1.0) != 1.0:  # SequenceLab's embedding_init_std (1: nn.Embedding's own N(0, 1))
            nn.init.normal_(self.embedding.weight, std=m["embedding_init_std"])
        self.blocks = nn.ModuleList([Block(m, i, reference, dtype, fast, seed) for i in range(m["n_layers"])])
        norm = nn.RMSNorm if m.get("norm", "layer_norm") == "rms_norm" else nn.LayerNorm
        self.norm = norm(m["d_model"], eps=1e-5, dtype=dtype)
        self.head = nn.Module()
        self.head.output = nn.Linear(m["d_model"], classes, dtype=dtype)

    def forward(self, tokens):
        x = self.embedding(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head.output(self.norm(x))


def from_state_dict(path, dtype=torch.float64):
    """The model of a converted run (config from the file's metadata) with the file's weights loaded (strict)."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    with safe_open(path, "pt") as f:
        config = json.loads(f.metadata()["seqlab_config"])
    state = {k: v.to(dtype) for k, v in load_file(path).items()}
    model = SequenceLabModel(config, state["embedding.weight"].shape[0], state["head.output.weight"].shape[0], dtype)
    model.load_state_dict(state, strict=True)
    return model, config


def main():
    parser = argparse.ArgumentParser(description="Logits of a converted SequenceLab run in PyTorch.")
    parser.add_argument("state", help="the output of `seqlab convert RUN --out FILE`")
    parser.add_argument("--refsrc", default=os.environ.get("SEQLAB_REFSRC", ""), help="reference snapshots (s4/, RAT/, gam/, xlstm/)")
    args = parser.parse_args()
    os.environ["SEQLAB_REFSRC"] = os.path.abspath(args.refsrc)
    model, _ = from_state_dict(args.state)
    tokens = torch.randint(0, model.embedding.num_embeddings, (2, 16), generator=torch.Generator().manual_seed(0))
    print(model(tokens)[0, :3, :6])


if __name__ == "__main__":
    main()
