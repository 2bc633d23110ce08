"""The bundled model and the pipeline against known truth on coarse scans, like the real CT.

The only real CT here (`../shared/data/pelvis_ct_3mm.nii.gz`) has 3 mm voxels in every
direction, and the model's check on it compares the model's right femoral head with the
pipeline's. This shows what that comparison measures: on held-out phantoms with the same voxel
size, per hip, each one's acetabulum and femoral head Dice against the truth, the pipeline's
head diameter error (mm) and whether it marked the hip for review, and the
model-vs-pipeline femoral head Dice.

Run: .venv/bin/python benchmarks/coarse_scans.py [--seeds 1000 1001 ...] [--voxel-mm 3]
     [--spacing-mm Z Y X] [--joint-gap-mm MM] [--model DIR]

``--spacing-mm`` and ``--joint-gap-mm`` score other phantoms the same way (e.g. 2 0.8 0.8 with
a 0.5 mm joint space, for the model card's table by joint space).
"""
from __future__ import annotations

import argparse

import numpy as np

from THAAnnotatorLib.labels import truth_side_labels
from THAAnnotatorLib.metrics import segment_dice
from THAAnnotatorLib.model.build import PHANTOM_FOV_MM
from THAAnnotatorLib.model.inference import predict_scan
from THAAnnotatorLib.model.network import load_model
from THAAnnotatorLib.phantom import generate_phantom
from THAAnnotatorLib.pipeline import annotate
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, SIDES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003],
                        help="phantom seeds (1000 on are never used for training)")
    parser.add_argument("--voxel-mm", type=float, default=3.0, help="voxel size in every direction, mm")
    parser.add_argument("--spacing-mm", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="voxel size (z, y, x), mm, instead of --voxel-mm cubes")
    parser.add_argument("--joint-gap-mm", type=float, default=None,
                        help="joint space width, mm (default: the phantoms' own, 2.5-3 mm)")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    args = parser.parse_args()
    spacing_mm = tuple(args.spacing_mm or (args.voxel_mm,) * 3)
    model = load_model(args.model, device="cpu")
    head_scores = {"model": [], "pipeline": [], "model vs pipeline": []}
    acetabulum_scores = {"model": [], "pipeline": []}
    for seed in args.seeds:
        phantom = generate_phantom(spacing_mm=spacing_mm, fov_mm=PHANTOM_FOV_MM, seed=seed,
                                   joint_gap_mm=args.joint_gap_mm)
        truth = truth_side_labels(phantom)
        predicted = predict_scan(phantom.volume, model).side_labels
        annotation = annotate(phantom.volume)
        pipeline = annotation.side_labels
        for side in SIDES:
            result = annotation.sides[side]
            error = (float("nan") if result.head_diameter_mm is None
                     else result.head_diameter_mm - 2 * phantom.heads[side].radius_mm)
            scores = (segment_dice(predicted, truth, side, FEMORAL_HEAD),
                      segment_dice(pipeline, truth, side, FEMORAL_HEAD),
                      segment_dice(predicted, pipeline, side, FEMORAL_HEAD))
            for name, value in zip(head_scores, scores):
                head_scores[name].append(value)
            for name, labels in (("model", predicted), ("pipeline", pipeline)):
                acetabulum_scores[name].append(segment_dice(labels, truth, side, ACETABULUM))
            print(f"seed {seed} {side:5s}: model acetabulum "
                  f"{acetabulum_scores['model'][-1]:.3f} head {scores[0]:.3f} | "
                  f"pipeline acetabulum {acetabulum_scores['pipeline'][-1]:.3f} "
                  f"head {scores[1]:.3f} "
                  f"diameter error {error:+.1f} mm"
                  f"{' (marked for review)' if result.needs_review else ''} | "
                  f"model vs pipeline head {scores[2]:.3f}")
    voxels = " x ".join(f"{s:g}" for s in spacing_mm)
    for part, table in (("femoral head", head_scores), ("acetabulum", acetabulum_scores)):
        for name, values in table.items():
            print(f"{part} Dice, {name}: {np.min(values):.2f}-{np.max(values):.2f} "
                  f"(mean {np.mean(values):.3f}) at {voxels} mm voxels")


if __name__ == "__main__":
    main()
