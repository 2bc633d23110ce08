"""The sweep's truth labels: the project's label definition applied to the drawn bones."""
from __future__ import annotations

import numpy as np

from ..labels import joint_labels
from ..params import Params
from ..result import ACETABULUM, FEMORAL_HEAD, segment_code
from .generate import SweepCase
from .render import FEMUR_PART, PELVIS


def sweep_truth_labels(case: SweepCase, params: Params = Params()) -> np.ndarray:
    """Truth segment codes (as :attr:`Annotation.side_labels`) of a sweep scan: in the slices
    the drawn head spans, its femur's bone within ``params.joint_region_factor`` x its
    equivalent radius of its center is femoral head, pelvic bone there acetabulum."""
    volume = case.volume
    out = np.zeros(volume.shape, dtype=np.uint8)
    for side, hip in case.hips.items():
        center = volume.ras_mm_to_index(np.asarray(hip.center_ras_mm))
        span = (hip.span_s_mm[0] - hip.center_ras_mm[2], hip.span_s_mm[1] - hip.center_ras_mm[2])
        labels = joint_labels(case.part_map == FEMUR_PART[side], case.part_map == PELVIS, center,
                              hip.radius_mm, volume.spacing_mm, params, span_mm=span)
        for cls in (ACETABULUM, FEMORAL_HEAD):
            out[labels == cls] = segment_code(side, cls)
    return out
