"""Does the pipeline's surface check (THAAnnotatorLib/afs/surface_check.py) flag the hips whose
head sphere is wrong, and only those; and does the 3-D refit it triggers (afs/surface_refit.py)
mend them? Measured against the phantoms' truth.

For each phantom hip: the final sphere's diameter and center errors, the check's
cortex-to-joint-space drop (HU) and edge offset (mm), and whether the hip was marked for
review (the check failed unmended, or the head's size is unusual) or its sphere refitted in 3-D. A sphere is "wrong" when its diameter is more
than 2 mm or its center more than 3 mm off. HU are rounded to whole numbers first, as in
benchmarks/accuracy.py. The summary counts false alarms (right spheres flagged), misses (wrong
spheres not flagged) and refits.

Run: .venv/bin/python benchmarks/surface_check.py [--config SLICE_MM IN_PLANE_MM FIRST_SEED N ...]
(default: the six voxel sizes below, 100 hips, about 2.5 min on 2 cores)
"""
from __future__ import annotations

import argparse

import numpy as np

from THAAnnotatorLib.phantom import generate_phantom
from THAAnnotatorLib.pipeline import annotate
from THAAnnotatorLib.result import SIDES
from phantom_sweep import as_saved

# (slice mm, in-plane mm, first seed, phantoms): the design resolutions and coarser ones, where
# the pipeline fails on some hips (2 mm) or all of them (3 mm).
DEFAULT_CONFIGS = [(2.0, 0.8, 0, 6), (5.0, 1.0, 0, 8), (1.25, 1.25, 0, 6), (3.0, 1.5, 0, 8),
                   (2.0, 2.0, 0, 16), (3.0, 3.0, 1000, 6)]
_GROSS_DIAMETER_MM, _GROSS_CENTER_MM = 2.0, 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=float, nargs=4, action="append",
                        metavar=("SLICE_MM", "IN_PLANE_MM", "FIRST_SEED", "N"),
                        help="phantoms to run (may be repeated; default: six voxel sizes)")
    args = parser.parse_args()
    configs = args.config or DEFAULT_CONFIGS
    rows = []  # (wrong, flagged, refitted, drop, offset, diameter error, center error)
    for slice_mm, in_plane_mm, first, count in configs:
        for seed in range(int(first), int(first) + int(count)):
            phantom = generate_phantom(spacing_mm=(slice_mm, in_plane_mm, in_plane_mm), seed=seed)
            annotation = annotate(as_saved(phantom.volume))
            for side in SIDES:
                result, truth = annotation.sides[side], phantom.heads[side]
                if result.status != "segmented":
                    print(f"{slice_mm:g}/{in_plane_mm:g} mm seed {seed} {side}: {result.status}")
                    continue
                diameter_error = result.head_diameter_mm - 2.0 * truth.radius_mm
                center_error = float(np.linalg.norm(np.subtract(result.sphere_center_ras_mm,
                                                                truth.center_ras_mm)))
                wrong = abs(diameter_error) > _GROSS_DIAMETER_MM or center_error > _GROSS_CENTER_MM
                flagged = result.needs_review
                refitted = any("refitted" in w for w in result.warnings)
                rows.append((wrong, flagged, refitted, result.surface_drop_hu,
                             result.surface_edge_offset_mm, abs(diameter_error), center_error))
                print(f"{slice_mm:g}/{in_plane_mm:g} mm seed {seed} {side:5s}: diameter "
                      f"{diameter_error:+5.1f} mm, center {center_error:4.1f} mm "
                      f"{'WRONG' if wrong else 'right'} | drop {result.surface_drop_hu:5.0f} HU, "
                      f"edge {result.surface_edge_offset_mm:+5.2f} mm "
                      f"{'flagged' if flagged else ''}{'refitted in 3-D' if refitted else ''}",
                      flush=True)
    table = np.array(rows, dtype=float)
    for name, group in (("right", table[table[:, 0] == 0]), ("wrong", table[table[:, 0] == 1])):
        if len(group) == 0:
            continue
        print(f"{name} spheres: {len(group)}, flagged {int(group[:, 1].sum())}, refitted "
              f"{int(group[:, 2].sum())}; drop {group[:, 3].min():.0f}-{group[:, 3].max():.0f} HU, "
              f"|edge| {np.abs(group[:, 4]).min():.2f}-{np.abs(group[:, 4]).max():.2f} mm; "
              f"diameter error {group[:, 5].min():.1f}-{group[:, 5].max():.1f} mm, center error "
              f"{group[:, 6].min():.1f}-{group[:, 6].max():.1f} mm")

if __name__ == "__main__":
    main()
