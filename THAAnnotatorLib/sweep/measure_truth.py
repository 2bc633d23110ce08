"""The sweep's truth of the THA planning measurements (:mod:`THAAnnotatorLib.measure`).

The measurements' definitions applied to the drawn shapes instead of labels: the acetabulum is
the drawn pelvis (all of it, the roof above the head's slices and the rim below them too), the
head the drawn femur, the head's sphere the one fitted to its articular surface
(:class:`~.generate.HipTruth`). Axes are the scanner's, as for the pipeline's values, so the
patient's drawn tilt, obliquity and rotation are part of the truth. Nothing here changes what
the sweep draws or renders.
"""
from __future__ import annotations

import numpy as np

from ..measure import HipMeasurements, Incomplete, measure_geometry
from ..measure.hip import to_patient
from ..measure.rays import Probe, side_axes
from .generate import SweepCase
from .render import acetabulum_sdf, femur_sdf, hip_frames, make_grid

_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


def sweep_truth_measurements(case: SweepCase) -> dict[str, HipMeasurements]:
    """The truth of each native hip's measurements (an implanted hip has none)."""
    frames = hip_frames(case.draw)
    # the body's world position: the canonical volume's first voxel is the grid's first one
    offset = case.volume.index_to_lps[:3, 3] - make_grid(case.draw, frames).origin_mm
    out = {}
    for side, truth in case.hips.items():
        hip, frame = case.draw.hips[side], frames[side]
        center = np.asarray(truth.center_ras_mm)
        axes = side_axes(side)

        def shape_probe(sdf) -> Probe:
            def probe(q: np.ndarray) -> np.ndarray:
                body = (center + q @ axes) * _RAS_TO_LPS - offset
                return -sdf(frame.local(body), hip)
            return probe

        try:
            geometry = measure_geometry(shape_probe(acetabulum_sdf), shape_probe(femur_sdf),
                                        truth.radius_mm)
        except Incomplete as why:
            out[side] = HipMeasurements(not_computed=str(why))
            continue
        out[side] = to_patient(geometry, center, side, None)
    return out
