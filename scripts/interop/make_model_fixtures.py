"""Model-level interop fixtures: a two-layer MQAR model per layer, moved both ways between SequenceLab and PyTorch.

    python scripts/interop/make_model_fixtures.py --seqlab BIN --refsrc DIR [--out Tests/Fixtures/models] [--layers a,b]

For each layer:
  1. SequenceLab -> PyTorch: `seqlab train --task mqar --layer L --d-model 16 --n-layers 2 --max-steps 30` (a few real
     optimiser steps), `seqlab convert RUN --out L-seqlab.safetensors` (kept as the fixture); PyTorch's
     `SequenceLabModel` (torch_model.py, reference mixers) loads it with load_state_dict(strict=True) and computes the
     logits of fixed random tokens -> L-seqlab.io.safetensors (tokens, logits).
  2. PyTorch -> SequenceLab: the same PyTorch model with the reference modules' own initialisation
     (torch.manual_seed(0)), its state_dict() saved as L-torch.safetensors (Float32, with the run's config in the
     metadata) and its logits of the same tokens (computed in Float64) -> L-torch.io.safetensors.
Tests/TrainingTests/ModelInteropTests.swift loads each state dict into SequenceLab's model and requires the same
logits (Float64: 1e-10 relative RMS; Float32: 1e-5).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tool_arguments import LAYERS, WIDTH_16_OPTIONS, add_tool_arguments  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_tool_arguments(parser)
    parser.add_argument("--out", default=os.path.join(HERE, "..", "..", "Tests", "Fixtures", "models"))
    parser.add_argument("--layers", default=",".join(LAYERS))
    args = parser.parse_args()
    os.environ["SEQLAB_REFSRC"] = os.path.abspath(args.refsrc)
    import torch
    from safetensors.torch import save_file
    from torch_model import SequenceLabModel, from_state_dict
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for layer in args.layers.split(","):
            run = os.path.join(tmp, layer)
            subprocess.run([args.seqlab, "train", "--task", "mqar", "--layer", layer, "--d-model", "16", "--n-layers", "2",
                            "--max-steps", "30", "--eval-every", "15", "--eval-examples", "64", "--seed", "0", "--out", run]
                           + [f for k, v in WIDTH_16_OPTIONS.get(layer, {}).items() for f in (f"--layer.{k}", v)],
                           check=True, stdout=subprocess.DEVNULL)
            exported = os.path.join(args.out, f"{layer}-seqlab.safetensors")
            subprocess.run([args.seqlab, "convert", run, "--out", exported], check=True)
            trained, config = from_state_dict(exported)
            vocabulary, classes = trained.embedding.num_embeddings, trained.head.output.out_features
            tokens = torch.randint(0, vocabulary, (2, 24), generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                save_file({"tokens": tokens, "logits": trained(tokens).contiguous()}, os.path.join(args.out, f"{layer}-seqlab.io.safetensors"))
                torch.manual_seed(0)
                fresh = SequenceLabModel(config, vocabulary, classes)
                # stored as Float32 (half the size); the Float64 logits are those of the rounded weights
                state = {k: v.float().contiguous() if v.is_floating_point() else v.contiguous() for k, v in fresh.state_dict().items()}
                fresh.load_state_dict(state, strict=True)
                save_file(state, os.path.join(args.out, f"{layer}-torch.safetensors"), metadata={"seqlab_config": json.dumps(config)})
                save_file({"tokens": tokens, "logits": fresh(tokens).contiguous()}, os.path.join(args.out, f"{layer}-torch.io.safetensors"))
            print(f"{layer:13s} {len(state)} tensors")


if __name__ == "__main__":
    main()
