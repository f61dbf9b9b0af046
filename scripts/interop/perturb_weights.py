"""A state dict with every weight multiplied by (1 + eps z), z ~ N(0, 1): the rounding-level twin of a run's start.

    python scripts/interop/perturb_weights.py IN.safetensors --out OUT.safetensors --eps 1e-15 [--seed 1]

Training from IN and from OUT (`seqlab train --init-from`, or a reference control of a run whose config.json names
the file in `init_from`) measures how far a run's outcome is set by differences at the level of float64 rounding,
the only differences between SequenceLab and PyTorch from equal weights in float64 (TrainingParityTests): when two
twins end as far apart as SequenceLab and its control, the control's difference is that sensitivity, not the
implementation (Results/recall-t256/README.md, GLA).
"""
import argparse


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the state dict to perturb (safetensors)")
    parser.add_argument("--out", required=True, help="the perturbed state dict to write (safetensors)")
    parser.add_argument("--eps", type=float, required=True, help="relative size of the perturbation (e.g. 1e-15)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the perturbation's draw")
    args = parser.parse_args()
    if not args.eps > 0:
        raise SystemExit(f"--eps must be positive, got {args.eps}")
    import torch
    from safetensors.torch import load_file, save_file
    generator = torch.Generator().manual_seed(args.seed)
    state = load_file(args.source)
    perturbed = {name: (w.double() * (1 + args.eps * torch.randn(w.shape, generator=generator, dtype=torch.float64))).to(w.dtype)
                 for name, w in sorted(state.items())}
    save_file({k: v.contiguous() for k, v in perturbed.items()}, args.out)
    print(f"{args.out}: {len(perturbed)} tensors of {args.source}, each weight times (1 + {args.eps:g} z), seed {args.seed}")


if __name__ == "__main__":
    main()
