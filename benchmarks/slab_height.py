"""How far the femoral head's center height lies from the truth, with and without the slab height
fit (afs/slab_height.py), on generated phantoms.

Per hip: the fitted center's height minus the true one (mm, + superior) from the circles' sphere
alone (--no-slab-height) and after the fit; then the mean, standard deviation and largest miss
of each. The phantom's HU are rounded to whole numbers, as in a saved scan.
Run: .venv/bin/python benchmarks/slab_height.py [--seeds N] [--first-seed S] [--spacing-mm Z Y X]
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from THAAnnotatorLib.params import Params
from THAAnnotatorLib.phantom import generate_phantom
from THAAnnotatorLib.pipeline import annotate
from THAAnnotatorLib.result import SIDES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12, help="phantoms FIRST .. FIRST+N-1")
    parser.add_argument("--first-seed", type=int, default=0, help="the first phantom's seed")
    parser.add_argument("--spacing-mm", type=float, nargs=3, default=(5.0, 1.0, 1.0),
                        metavar=("Z", "Y", "X"), help="voxel size in mm (slice, row, column)")
    args = parser.parse_args()
    errors = {False: [], True: []}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        phantom = generate_phantom(spacing_mm=tuple(args.spacing_mm), seed=seed)
        volume = dataclasses.replace(phantom.volume, hu=np.round(phantom.volume.hu).astype(np.float32))
        annotations = {use: annotate(volume, Params(use_slab_height=use)) for use in errors}
        for side in SIDES:
            results = {use: a.sides[side] for use, a in annotations.items()}
            if any(r.status != "segmented" for r in results.values()):
                print(f"seed {seed} {side:5s}: not segmented")
                continue
            truth_mm = phantom.heads[side].center_ras_mm[2]
            for use, result in results.items():
                errors[use].append(result.sphere_center_ras_mm[2] - truth_mm)
            print(f"seed {seed} {side:5s}: circles' sphere {errors[False][-1]:+.2f} mm, "
                  f"after the slab height fit {errors[True][-1]:+.2f} mm")
    for use, label in ((False, "circles' sphere"), (True, "slab height fit")):
        e = np.array(errors[use])
        print(f"{label}: center height error {e.mean():+.2f} +/- {e.std():.2f} mm, "
              f"largest {np.abs(e).max():.2f} mm ({e.size} hips at {tuple(args.spacing_mm)} mm)")


if __name__ == "__main__":
    main()
