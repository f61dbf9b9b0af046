"""Reference control: the same run trained by PyTorch with the reference mixers, written as a run directory.

    python scripts/interop/reference_control.py RUN_DIR [RUN_DIR ...] --seqlab BIN --refsrc DIR [--threads 1]

For each SequenceLab run directory (its config.json; the run itself need not have finished) this trains the model of
scripts/interop/torch_model.py (the layer's reference module inside SequenceLab's model: embedding, pre-norm blocks,
final norm, per-token head) under the run's protocol and writes RUN_DIR_impl-pytorch/ beside it, with the files a
SequenceLab run leaves (config.json, metrics.jsonl, final.json; final.json's `implementation` is "pytorch"), so
that `seqlab table` / `seqlab plot` show it as its own row (column `implementation`) next to the runs it controls.

What is shared with SequenceLab, and what is not:
  - data: exactly the run's batches, step for step, and its validation and test examples
    (`seqlab batches --config C --steps N --evaluation`);
  - optimiser: torch.optim.AdamW (betas 0.9, 0.999, eps 1e-8) with the run's parameter groups (which parameters
    decay, which have their own learning rate), the schedule's learning-rate factor per step, clip_grad_norm_ at
    grad_clip; mean cross-entropy over the scored positions; evaluation every eval_every steps, model selection on
    validation accuracy (ties by loss), early stop at target_accuracy: as SequenceLab's trainer;
  - initial weights: NOT shared. The PyTorch model starts from the reference modules' own init
    (torch.manual_seed(seed), block i's mixer from seed 1000 (seed + 1) + i; nn.Embedding N(0, 1), nn.Linear /
    nn.LayerNorm defaults), so a control is a
    statistical comparison: compare it with SequenceLab's seeds, not run for run. (Step-for-step equality from
    shared weights is what scripts/interop/train_parity.py and TrainingParityTests establish.) A run that itself
    started from given weights (`init_from` in its config.json, `seqlab train --init-from`) is controlled from the
    same weights: then the two differ by the implementation alone, and in float64 by rounding alone.
Precision: the run's, where the reference runs in float32 as it ships (torch_model.runs_in_float32: mamba without
negative_eigenvalues, whose control also uses mambapy's own pscan; mamba2, fla's Mamba2 with its own torch_forward,
which in float64 took 40-90 min a run); otherwise float64, since those references are the float64-exact forms of
scripts/fixtures/references/ (the control's config.json says which precision ran). Only per-token tasks (MQAR and the other recall tasks, the word
problems; not parity, which is scored by one label) and causal pre-norm models are built (torch_model.py refuses the rest); max_time is refused (a budget in steps is what compares).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from replay import optimizer_for, seqlab_batches, set_learning_rates  # noqa: E402
from tool_arguments import add_tool_arguments  # noqa: E402
SUFFIX = "_impl-pytorch"


def write_json_atomically(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def evaluate(model, tokens, targets, batch_size, torch, F):
    """Mean cross-entropy over the scored positions and the fraction of them predicted right (SequenceLab's
    Evaluator: batches of batch_size, scored = target != -100)."""
    total, correct, scored = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, tokens.shape[0], batch_size):
            x, y = tokens[start:start + batch_size], targets[start:start + batch_size]
            logits = model(x)
            mask = y != -100
            n = int(mask.sum())
            if n == 0:
                continue
            total += F.cross_entropy(logits[mask], y[mask], reduction="sum").item()
            correct += int((logits[mask].argmax(-1) == y[mask]).sum())
            scored += n
    return total / max(1, scored), correct / max(1, scored)


def control(run_dir, args, torch, F, load_file, SequenceLabModel, runs_in_float32):
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    out = run_dir.rstrip("/") + SUFFIX
    if os.path.exists(os.path.join(out, "final.json")):
        print(f"{out}: finished, skipped")
        return
    if config.get("max_time") is not None:
        raise SystemExit(f"{run_dir}: max_time is set; a control compares runs with a budget in steps")
    init_from = config.get("init_from")
    if init_from and not os.path.isfile(init_from):
        raise SystemExit(f"{run_dir}: init_from {init_from} is not a file")
    steps, batch_size = config["max_steps"], config["batch_size"]
    record, meta = seqlab_batches(args.seqlab, config, steps, evaluation=True)
    if not bool((record["targets"] != -100).any()):
        raise SystemExit(f"{run_dir}: task {config['task']} is scored by one label per sequence, not per token; "
                         "controls are built for per-token tasks only (MQAR, the word problems)")
    float32 = config.get("precision", "float32") == "float32" and runs_in_float32(config)
    dtype = torch.float32 if float32 else torch.float64
    vocabulary, classes = int(meta["vocabulary"]), int(meta["classes"])
    torch.manual_seed(config.get("seed", 0))
    model = SequenceLabModel(config, vocabulary, classes, dtype=dtype, fast=True, seed=config.get("seed", 0))
    if init_from:  # the run's own initial weights (SequenceLab's parameter paths, PyTorch layouts), as it read them
        model.load_state_dict({k: v.to(dtype) for k, v in load_file(init_from).items()}, strict=True)
    optimizer = optimizer_for(model, meta, config)
    base_lr = config["lr"]
    splits = json.loads(meta["eval_splits"])
    evaluation = {s: (record[f"eval.{s}.tokens"], record[f"eval.{s}.targets"]) for s in splits}
    validation, tests = splits[0], splits[1:]
    train_size = int(meta["train_size"])

    os.makedirs(out, exist_ok=True)
    resolved = dict(config, precision="float32" if float32 else "float64")
    resolved["git_commit"] = subprocess.run(["git", "-C", HERE, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None
    write_json_atomically(os.path.join(out, "config.json"), resolved)
    metrics_path = os.path.join(out, "metrics.jsonl")
    metrics = open(metrics_path + ".tmp", "w")

    def log(step, split, loss, accuracy, lr, tokens_per_s, wall):
        epoch = step * batch_size / train_size if train_size else 0.0
        metrics.write(json.dumps({"accuracy": accuracy, "epoch": epoch, "loss": loss, "lr": lr, "split": split,
                                  "step": step, "tokens_per_s": tokens_per_s, "wall_s": wall}, sort_keys=True) + "\n")

    clip, eval_every, log_every = config.get("grad_clip"), config["eval_every"], config["log_every"]
    target = config.get("target_accuracy")
    best = {"acc": -1.0, "loss": float("inf"), "step": 0, "tests": {}}
    window = [0.0, 0, 0, 0]  # loss sum, correct, scored, steps
    started = window_start = time.time()
    window_tokens, step, stopped_by, last_eval = 0, 0, None, -1
    while step < steps and stopped_by is None:
        factor = float(record["lr_factor"][step])
        set_learning_rates(optimizer, factor)
        x, y = record["tokens"][step], record["targets"][step]
        logits = model(x)
        mask = y != -100
        loss = F.cross_entropy(logits[mask], y[mask])
        if not torch.isfinite(loss):
            raise SystemExit(f"{run_dir}: PyTorch loss is {loss.item()} at step {step + 1}")
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window[0] += loss.item()
        window[1] += int((logits.detach()[mask].argmax(-1) == y[mask]).sum())
        window[2] += int(mask.sum())
        window[3] += 1
        window_tokens += x.numel()
        if step % log_every == 0:
            now = time.time()
            log(step, "train", window[0] / window[3], window[1] / max(1, window[2]), base_lr * factor,
                window_tokens / max(1e-9, now - window_start), now - started)
            window, window_start, window_tokens = [0.0, 0, 0, 0], now, 0
        if step % eval_every == 0 or step == steps:
            model.eval()
            v_loss, v_acc = evaluate(model, *evaluation[validation], batch_size, torch, F)
            log(step, validation, v_loss, v_acc, base_lr * factor, 0, time.time() - started)
            if v_acc > best["acc"] or (v_acc == best["acc"] and v_loss < best["loss"]):
                best.update(acc=v_acc, loss=v_loss, step=step, tests={})
                for split in tests:
                    t_loss, t_acc = evaluate(model, *evaluation[split], batch_size, torch, F)
                    best["tests"][f"{split}_accuracy"], best["tests"][f"{split}_loss"] = t_acc, t_loss
                    log(step, split, t_loss, t_acc, base_lr * factor, 0, time.time() - started)
            model.train()
            last_eval = step
            if target is not None and v_acc >= target:
                stopped_by = "target_accuracy"
        metrics.flush()
    metrics.close()
    os.replace(metrics_path + ".tmp", metrics_path)
    assert last_eval == step
    final = {"best_val_accuracy": best["acc"], "best_val_step": best["step"],
             "test_accuracy": best["tests"].get("test_accuracy", float("nan")),
             "test_loss": best["tests"].get("test_loss", float("nan")), "tests": best["tests"], "steps": step,
             "params": sum(p.numel() for p in model.parameters()), "state_size": int(meta["state_size"]),
             "wall_s": time.time() - started, "stopped_by": stopped_by or "max_steps", "implementation": "pytorch"}
    write_json_atomically(os.path.join(out, "final.json"), final)
    print(f"{out}: best val acc {final['best_val_accuracy']:.4f} at step {final['best_val_step']}, "
          f"test acc {final['test_accuracy']:.4f} ({final['stopped_by']}, {final['wall_s']:.0f} s)")


def keep_freed_memory():
    """glibc's malloc as seqlab tunes it (Sources/CKernels/malloc_tuning.c): blocks up to 1 GiB from the heap, freed
    memory kept. With glibc's defaults every large temporary (fla's naive Mamba-2 forms broadcast 100+ MB tensors) is
    a fresh mmap whose pages fault in again: a Mamba-2 control ran 3x slower, mostly in the kernel."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    if name and "linux" in sys.platform:
        libc = ctypes.CDLL(name)
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)


def main():
    keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="SequenceLab run directories (their config.json)")
    add_tool_arguments(parser)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per control")
    args = parser.parse_args()
    os.environ["SEQLAB_REFSRC"] = os.path.abspath(args.refsrc)
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file
    from torch_model import SequenceLabModel, runs_in_float32
    torch.set_num_threads(args.threads)
    for run in args.runs:
        control(run, args, torch, F, load_file, SequenceLabModel, runs_in_float32)


if __name__ == "__main__":
    main()
