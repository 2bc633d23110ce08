"""A model's labels on the same anatomy across slice thickness and noise (issue 19).

Each sweep scan (``--classes``, seeds ``--first-seed`` ..) is drawn once and rendered again with
only its imaging changed: slices of 0.5, 1, 3 and 5 mm (0.8 mm pixels, the drawn noise), then
noise of 10, 35 and 60 HU standard deviation (1 mm slices, 0.8 mm pixels). ``predict_scan``
labels every rendering; each hip is scored against the sweep's truth on that rendering's grid
(Dice per class). Printed per hip and rendering, then per class the mean Dice of every rendering
and the drop from the best rendering to the worst: the issue asks for at most 0.05. A hip the
model does not segment counts Dice 0.

Run: .venv/bin/python benchmarks/model_resolution.py [--model DIR] [--classes typical]
     [--seeds 2] [--first-seed 8] [--threads 1]
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch
from model_flag import score_case  # benchmarks/model_flag.py: the same scoring

from THAAnnotatorLib.model.network import load_model
from THAAnnotatorLib.result import SIDES
from THAAnnotatorLib.sweep import CLASSES
from THAAnnotatorLib.sweep.draw import draw_scan
from THAAnnotatorLib.sweep.generate import render_scan
from THAAnnotatorLib.sweep.truth import sweep_truth_labels

PIXEL_MM = 0.8
SLICES_MM = (0.5, 1.0, 3.0, 5.0)
NOISE_HU = (10.0, 35.0, 60.0)
NOISE_SLICE_MM = 1.0


def renderings(scan):
    """(name, drawn scan) of every rendering of one anatomy: the slice series, then noise."""
    for slice_mm in SLICES_MM:
        yield f"{slice_mm:g} mm", replace(scan, spacing_mm=(slice_mm, PIXEL_MM, PIXEL_MM))
    for noise in NOISE_HU:
        yield f"{noise:g} HU", replace(scan, spacing_mm=(NOISE_SLICE_MM, PIXEL_MM, PIXEL_MM),
                                       noise_hu=noise)


def score(model, scan) -> dict[str, tuple[float, float]]:
    """Acetabulum and femoral head Dice per native hip of one rendering (0 where not
    segmented)."""
    case = render_scan(scan)
    implants = {side: scan.hips[side].implant for side in SIDES}
    records = score_case(model, scan.hip_class, scan.seed, case.volume,
                         sweep_truth_labels(case), implants)
    return {r["side"]: (r.get("acetabulum_dice", 0.0), r.get("head_dice", 0.0))
            for r in records if not r["implant"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the bundled one)")
    parser.add_argument("--classes", nargs="+", default=["typical"], choices=CLASSES)
    parser.add_argument("--seeds", type=int, default=2, help="scans per class (two hips each)")
    parser.add_argument("--first-seed", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    print(f"model {args.model or 'bundled'}; pixels {PIXEL_MM} mm; noise series at "
          f"{NOISE_SLICE_MM:g} mm slices; Dice acetabulum / femoral head\n")
    for hip_class in args.classes:
        table: dict[str, list[tuple[float, float]]] = {}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            scan = draw_scan(hip_class, seed)
            for name, rendered in renderings(scan):
                for side, dice in score(model, rendered).items():
                    table.setdefault(name, []).append(dice)
                    print(f"{hip_class} {seed} {side:5s} {name:>7s}: "
                          f"{dice[0]:.3f} / {dice[1]:.3f}", flush=True)
        means = {name: np.mean(values, axis=0) for name, values in table.items()}
        print(f"\n| {hip_class}: rendering | hips | acetabulum | femoral head |")
        print("| --- | --- | --- | --- |")
        for name, mean in means.items():
            print(f"| {name} | {len(table[name])} | {mean[0]:.3f} | {mean[1]:.3f} |")
        for series, names in (("slices", [f"{s:g} mm" for s in SLICES_MM]),
                              ("noise", [f"{n:g} HU" for n in NOISE_HU])):
            drop = [max(means[n][k] for n in names) - min(means[n][k] for n in names)
                    for k in (0, 1)]
            print(f"{hip_class}, {series}: drop from best to worst rendering "
                  f"{drop[0]:.3f} (acetabulum), {drop[1]:.3f} (femoral head)")
        print()


if __name__ == "__main__":
    main()
