"""SequenceLab's training step in PyTorch, shared by the interop scripts (train_parity.py, trajectory.py,
reference_control.py, reference_init.py): the run's batches as SequenceLab's trainer draws them, its optimiser with
its parameter groups, and the step loop (docs/interop.md, "Training parity")."""
import json
import os
import subprocess
import tempfile


def seqlab_batches(seqlab, config, steps, evaluation=False):
    """`seqlab batches` of a run's config (its `git_commit` dropped): the batches, learning-rate factors and parameter
    groups of steps 0..steps-1 (with `evaluation`, the validation and test examples too). Returns (tensors, metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    with tempfile.TemporaryDirectory() as tmp:
        config_path, record_path = os.path.join(tmp, "config.json"), os.path.join(tmp, "record.safetensors")
        with open(config_path, "w") as f:
            json.dump({k: v for k, v in config.items() if k != "git_commit"}, f)
        command = [seqlab, "batches", "--config", config_path, "--steps", str(steps), "--out", record_path]
        subprocess.run(command + (["--evaluation"] if evaluation else []), check=True)
        record = load_file(record_path)
        with safe_open(record_path, "pt") as f:
            return record, f.metadata()


def optimizer_for(model, meta, config):
    """torch.optim.AdamW as SequenceLab's trainer runs it (betas 0.9, 0.999, eps 1e-8): one group per (decays, own
    learning rate) of the record's `param_groups`, weight decay on the decayed groups only; each group keeps its
    `base_lr`, to be multiplied by the schedule's factor before every step."""
    import torch
    named = dict(model.named_parameters())
    groups = {}
    for g in json.loads(meta["param_groups"]):
        groups.setdefault((g["weight_decay"], g["lr"]), []).append(named[g["name"]])
    if sum(len(v) for v in groups.values()) != len(named):
        raise SystemExit("SequenceLab's parameter groups do not name every parameter of the PyTorch model")
    base_lr, wd = config["lr"], config["weight_decay"]
    return torch.optim.AdamW(
        [{"params": ps, "base_lr": lr if lr is not None else base_lr, "weight_decay": wd if decay else 0.0}
         for (decay, lr), ps in groups.items()], lr=base_lr, betas=(0.9, 0.999), eps=1e-8)


def set_learning_rates(optimizer, factor):
    """Each group's learning rate = its base rate x the schedule's factor for this step."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def replay(model, record, meta, config, steps, on_step=None):
    """Trains `model` on a `seqlab_batches` record for `steps` steps as SequenceLab's trainer does (`optimizer_for`,
    the schedule's factor per step, clip_grad_norm_ at grad_clip, mean cross-entropy over the scored positions).
    Returns the loss before each step; calls on_step(step, loss, grad_norm) after each."""
    import torch
    import torch.nn.functional as F
    optimizer = optimizer_for(model, meta, config)
    clip, losses, classes = config.get("grad_clip"), [], int(meta["classes"])
    for step in range(steps):
        set_learning_rates(optimizer, float(record["lr_factor"][step]))
        logits = model(record["tokens"][step])
        loss = F.cross_entropy(logits.reshape(-1, classes), record["targets"][step].reshape(-1), ignore_index=-100)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip else float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step:
            on_step(step, losses[-1], float(norm))
    return losses
