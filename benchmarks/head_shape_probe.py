"""The sweep's head_shape scans with the most extreme head shapes forced, for the review flag's
recall where the sweep's own draws are rare.

The sweep draws each head axis between 0.8 and 1.0 of the radius on its own, so a head short
by a fifth along one axis, in a narrow joint, at fine pixels, comes up seldom. Here each scan of
head_shape seeds [first, first + seeds) is rendered once per shape below (both hips changed, the
rest of the scan as drawn) on each voxel grid asked for, and scored as benchmarks/sweep.py
scores the sweep. Printed: each hip, then per shape the share meeting all targets, the share
flagged, and the flag's recall on the failing hips (the column to watch).
Run: .venv/bin/python benchmarks/head_shape_probe.py [--seeds N] [--first-seed S]
     [--spacing-mm Z Y X [Z Y X ...]] [--workers W] [--json FILE]
"""
from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

from THAAnnotatorLib.sweep import draw_scan, render_scan
from sweep import describe, report, score_case

# head_axis_factors (lateral, anterior, superior semi-axes as shares of the radius) and
# head_top_factor (the head cut flat at that share of its superior semi-axis): the shapes the
# sweep draws least often at their extreme
SHAPES = {
    "flattened_top": ((1.0, 1.0, 0.8), 1.0),
    "short_side_to_side": ((0.8, 1.0, 1.0), 1.0),
    "short_front_to_back": ((1.0, 0.8, 1.0), 1.0),
    "flattened_weight_bearing_top": ((1.0, 1.0, 1.0), 0.8),
}


def score_shape(job: tuple[str, int, tuple[float, float, float]]) -> list[dict]:
    shape, seed, spacing_mm = job
    axes, top = SHAPES[shape]
    scan = replace(draw_scan("head_shape", seed), spacing_mm=spacing_mm)
    scan = scan.with_hips(head_axis_factors=axes, head_top_factor=top)
    records = score_case(render_scan(scan), shape, seed)
    for record in records:
        record["spacing_mm"] = list(spacing_mm)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="head_shape scans (two hips each)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--spacing-mm", type=float, nargs="+", default=[2.0, 0.9, 0.9],
                        help="one or more voxel grids, 3 numbers each: slice, row, column (mm)")
    parser.add_argument("--workers", type=int, default=2, help="scans scored in parallel")
    parser.add_argument("--json", help="also write every hip's record to this file")
    args = parser.parse_args()
    if len(args.spacing_mm) % 3:
        parser.error("--spacing-mm takes 3 numbers per grid")
    grids = [tuple(args.spacing_mm[i:i + 3]) for i in range(0, len(args.spacing_mm), 3)]
    jobs = [(shape, seed, grid) for shape in SHAPES for grid in grids
            for seed in range(args.first_seed, args.first_seed + args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        records = [r for scan in pool.map(score_shape, jobs) for r in scan]
    for record in records:
        print(f"{describe(record)}  at {record['spacing_mm']} mm")
    report(records, list(SHAPES), "shape", args.json)


if __name__ == "__main__":
    main()
