"""How far the femoral head's center height lies from the truth, with and without the slab height
fit (afs/slab_height.py), on generated phantoms.

Per hip: the fitted center's height minus the true one (mm, + superior) from the circles' sphere
alone (--no-slab-height) and after the fit; then the mean, standard deviation and largest miss
of each. The phantom's HU are rounded to whole numbers, as in a saved scan.
Run: .venv/bin/python benchmarks/slab_height.py [--seeds N] [--first-seed S] [--spacing-mm Z Y X]
"""
from __future__ import annotations

import argparse

import numpy as np

from THAAnnotatorLib.params import Params
from THAAnnotatorLib.phantom import generate_phantom
from THAAnnotatorLib.pipeline import annotate
from THAAnnotatorLib.result import SIDES
from phantom_sweep import add_sweep_arguments, as_saved, swept_seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sweep_arguments(parser, seeds=12, spacing_mm=(5.0, 1.0, 1.0))
    args = parser.parse_args()
    errors = {False: [], True: []}
    for seed in swept_seeds(args):
        phantom = generate_phantom(spacing_mm=tuple(args.spacing_mm), seed=seed)
        volume = as_saved(phantom.volume)
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
