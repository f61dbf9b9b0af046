"""Where two trainings from equal weights part: PyTorch's loss per step against SequenceLab's, in Float64.

    python scripts/interop/trajectory.py RUN_DIR --init INIT.safetensors --steps N --seqlab BIN --refsrc DIR \
        [--compare SEQLAB_RUN/metrics.jsonl] [--out LOSSES.safetensors] [--every 10]

Replays the first N steps of RUN_DIR's run (its config.json, in float64, on its batches: `seqlab batches`) with the
PyTorch model of torch_model.py started from INIT (a state dict: `reference_init.py`, `perturb_weights.py`, or any
`seqlab train --init-from` file) under SequenceLab's optimiser (`replay.py`), and prints the loss and gradient
norm per step. With --compare, the training log of SequenceLab's run from the same weights (`seqlab train --config
RUN_DIR/config.json --init-from INIT --precision float64 --log-every 1 --out DIR`, stopped after N steps or not), it
prints the relative difference of the two losses per step and the first step at which it exceeds 1e-12, 1e-8 and
1e-4: a difference that grows smoothly from rounding (1e-16) is the dynamics amplifying rounding (compare two PyTorch
runs from `perturb_weights.py` twins); one that jumps at a step is a difference of the implementations.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from replay import replay, seqlab_batches  # noqa: E402
from tool_arguments import add_tool_arguments  # noqa: E402


def seqlab_losses(path):
    """Step -> training loss of a metrics.jsonl logged every step (a window of one step is that step's loss)."""
    losses = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row["split"] == "train":
                losses[row["step"]] = row["loss"]
    return losses


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a SequenceLab run directory (its config.json)")
    parser.add_argument("--init", required=True, help="the initial weights (safetensors state dict)")
    parser.add_argument("--steps", type=int, required=True, help="steps to replay")
    parser.add_argument("--compare", help="metrics.jsonl of SequenceLab's run from the same weights, logged every step")
    parser.add_argument("--out", help="write the losses and gradient norms (safetensors)")
    parser.add_argument("--every", type=int, default=10, help="print every this many steps")
    add_tool_arguments(parser)
    args = parser.parse_args()
    if args.steps < 1:
        raise SystemExit(f"--steps must be at least 1, got {args.steps}")
    os.environ["SEQLAB_REFSRC"] = os.path.abspath(args.refsrc)
    import torch
    from safetensors.torch import load_file, save_file
    from torch_model import SequenceLabModel
    torch.set_num_threads(1)
    with open(os.path.join(args.run, "config.json")) as f:
        config = {k: v for k, v in json.load(f).items() if k not in ("git_commit", "init_from")}
    config["precision"] = "float64"
    record, meta = seqlab_batches(args.seqlab, config, args.steps)
    model = SequenceLabModel(config, int(meta["vocabulary"]), int(meta["classes"]), dtype=torch.float64, fast=True, seed=config.get("seed", 0))
    model.load_state_dict({k: v.to(torch.float64) for k, v in load_file(args.init).items()}, strict=True)
    theirs = seqlab_losses(args.compare) if args.compare else {}
    firsts, norms = {}, []

    def on_step(step, loss, norm):
        norms.append(norm)
        n, line = step + 1, f"step {step + 1:5d}  loss {loss:.15f}  grad norm {norm:.6g}"
        if n in theirs:
            rel = abs(loss - theirs[n]) / abs(loss)
            line += f"  seqlab {theirs[n]:.15f}  relative {rel:.2e}"
            for bound in (1e-12, 1e-8, 1e-4):
                if rel > bound and bound not in firsts:
                    firsts[bound] = n
        if n % args.every == 0 or n == 1 or n == args.steps:
            print(line, flush=True)

    losses = replay(model, record, meta, config, args.steps, on_step)
    if args.out:
        save_file({"losses": torch.tensor(losses, dtype=torch.float64), "grad_norms": torch.tensor(norms, dtype=torch.float64)}, args.out)
    if args.compare:
        compared = sum(1 for n in range(1, args.steps + 1) if n in theirs)
        parts = ", ".join(f"> {b:g} first at step {firsts[b]}" if b in firsts else f"never > {b:g}" for b in (1e-12, 1e-8, 1e-4))
        print(f"{compared} steps compared: relative loss difference {parts}")


if __name__ == "__main__":
    main()
