"""The initial weights a reference control draws for a run, as a state dict that `seqlab train --init-from` reads.

    python scripts/interop/reference_init.py RUN_DIR --out FILE.safetensors --seqlab BIN --refsrc DIR

Builds the PyTorch model of scripts/interop/torch_model.py exactly as scripts/interop/reference_control.py does for
RUN_DIR's config.json (torch.manual_seed(seed), block i's mixer from seed 1000 (seed + 1) + i, float64) and saves its
state_dict (keys = SequenceLab's parameter paths, PyTorch layouts). Training SequenceLab from it
(`seqlab train --config RUN_DIR/config.json --init-from FILE --out DIR`) separates what the initial draws do from what
the implementation does when a control and a run disagree (Results/recall/README.md).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from replay import seqlab_batches  # noqa: E402
from tool_arguments import add_tool_arguments  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a SequenceLab run directory (its config.json)")
    parser.add_argument("--out", required=True, help="the state dict to write (safetensors)")
    add_tool_arguments(parser)
    args = parser.parse_args()
    os.environ["SEQLAB_REFSRC"] = os.path.abspath(args.refsrc)
    import torch
    from safetensors.torch import save_file
    from torch_model import SequenceLabModel
    with open(os.path.join(args.run, "config.json")) as f:
        config = json.load(f)
    _, meta = seqlab_batches(args.seqlab, config, 1)  # the task's vocabulary and classes, as the control reads them
    seed = config.get("seed", 0)
    torch.manual_seed(seed)
    model = SequenceLabModel(config, int(meta["vocabulary"]), int(meta["classes"]), dtype=torch.float64, fast=True, seed=seed)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out)
    print(f"{args.out}: {len(model.state_dict())} tensors, the reference control's initial weights for {args.run}")


if __name__ == "__main__":
    main()
