#!/usr/bin/env python3
"""Pathfinder's marker-distance baseline: how far the distance between the two circle markers alone predicts the label.

In the Pathfinder generator (Linsley et al. 2018, and this repository's port) a positive image has its markers on the
two ends of one contour, a negative one on the start of one target contour and the end of the other; the two target
contours start `seed distance` apart. So the markers' distance carries label information that does not need the
contour to be followed, the more so the shorter the contours. A model that does no better than this baseline has not
shown that it integrates contours.

For each run config given, the script has `seqlab batches --evaluation` write the exact validation and test images the
trainer evaluates on, finds the two markers in every image (the two highest 3 x 3 intensity sums at least 4 pixels
apart in city-block distance: a marker is a filled disc of radius 1.5, brighter over 3 x 3 pixels than any 0.5-wide
paddle), fits the best threshold rule "label 1 iff distance <= t" on the validation split and reports its accuracy on
the test split.

Usage: scripts/analysis/pathfinder_marker_baseline.py --seqlab BIN CONFIG.json...
Needs the Python environment of docs/fixtures.md (numpy, torch, safetensors).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from replay import seqlab_batches  # noqa: E402


def markers(tokens, side):
    """The two marker centres of one image (row, column): the two largest 3 x 3 box sums, 4+ pixels apart."""
    image = tokens.reshape(side, side).astype(np.float64)
    padded = np.pad(image, 1)
    box = sum(padded[1 + dy:side + 1 + dy, 1 + dx:side + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    found = []
    for flat in np.argsort(box, axis=None, kind="stable")[::-1]:
        row, column = divmod(int(flat), side)
        if all(abs(row - r) + abs(column - c) > 3 for r, c in found):
            found.append((row, column))
            if len(found) == 2:
                return found
    raise ValueError("fewer than two marker candidates")


def distances(tokens, side):
    out = np.empty(len(tokens))
    for i, t in enumerate(tokens):
        (r0, c0), (r1, c1) = markers(t, side)
        out[i] = np.hypot(r0 - r1, c0 - c1)
    return out


def baseline(splits):
    """(validation accuracy, threshold, test accuracy, mean distance of positives, of negatives) on the test split."""
    side = int(round(splits["eval.validation.tokens"].shape[1] ** 0.5))
    dv, lv = distances(splits["eval.validation.tokens"], side), splits["eval.validation.labels"]
    dt, lt = distances(splits["eval.test.tokens"], side), splits["eval.test.labels"]
    val_acc, threshold = max(((float(np.mean((dv <= t) == lv)), float(t)) for t in np.unique(dv)), key=lambda r: r[0])
    test_acc = float(np.mean((dt <= threshold) == lt))
    return val_acc, threshold, test_acc, float(dt[lt == 1].mean()), float(dt[lt == 0].mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seqlab", required=True, help="the seqlab binary")
    parser.add_argument("configs", nargs="+", help="run config.json files of the pathfinder task")
    args = parser.parse_args()
    print("| config | contour length | threshold (px) | val acc | test acc | mean distance, label 1 / 0 (px) |")
    print("|---|---|---|---|---|---|")
    for config in args.configs:
        with open(config) as f:
            run = json.load(f)
        record, _ = seqlab_batches(args.seqlab, run, steps=1, evaluation=True)
        splits = {name: tensor.numpy() for name, tensor in record.items() if name.startswith("eval.")}
        contour = run.get("task_options", {}).get("contour_length", "?")
        val_acc, threshold, test_acc, positive, negative = baseline(splits)
        print(f"| {os.path.basename(os.path.dirname(config)) or config} | {contour} | {threshold:.2f} | {val_acc:.3f} "
              f"| {test_acc:.3f} | {positive:.1f} / {negative:.1f} |")


if __name__ == "__main__":
    main()
