"""Whether what the network labelled at a hip is a hip: the hip-presence decision of ``predict``.

:func:`~.localize.locate_head` finds the thickest bone of each side, and in a scan without hips
(a chest, an abdomen above the pelvis, a head) that is some other bone, or contrast-filled
vessels or heart that bone extraction keeps; the network, which has only ever seen hips, may
label part of it. A hip is therefore accepted only when its predicted femoral head looks like
one (:func:`not_a_head_reason`): of a femoral head's size, ball-shaped, as bright as bone
somewhere (a head has a cortex), and with acetabulum beside it on the medial side. None of
these is tuned to one scan; each criterion's source and the margin measured on hips the model
did find are given where it is defined. Measured figures ("measured: ...") come from the
bundled model on the demo phantoms (seeds 0 and 3), the real 3 mm CT (both hips, the implant
hidden) and sweep scans of the classes typical, low_density and resolution (seeds 0 and 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import Params
from ..result import ACETABULUM, FEMORAL_HEAD

SMALLEST_HEAD_SHARE = 0.5
"""A head label holds at least this share of the ball of the smallest usual adult head diameter
(``Params.usual_head_diameter_mm``, 38 mm: 28.7 ml, so 14.4 ml). Measured: 46-50 ml on the
real CT, 63-139 ml on phantoms and sweep scans; the network's labels take in some femoral neck,
and half the ball leaves room for a head the network labels only in part."""
MIN_ROUNDNESS = 0.5
"""At least this share of a head label lies within the ball of its own volume around its
centroid (1 for a ball; computed: about 0.3 for a flat slab of 80 x 80 x 10 mm, 0.4 for a rod
5 times as long as it is wide). Measured on found heads: 0.66-0.85."""
MIN_CORTEX_HU = 450.0
"""The brightest 1 % of a head label's voxels reach at least this (HU): a femoral head has a
cortex (adult cortical bone is well above 1000 HU; partial volume of a thin cortex in 3 mm
voxels brings it down). Measured on found heads: 602-2904 HU (the sweep's low-density hips,
cortex 500-900 HU, at 600-640 HU). Blood with contrast, which bone extraction can keep, lies
at about 150-350 HU: a contrast-filled ball of 300 HU the network labelled as a head (178 ml,
roundness 0.74) reached 335 HU."""
MIN_ACETABULUM_SHARE = 0.25
"""The acetabulum label holds at least this share of the head label's volume, and its centroid
lies medial of the head's: a femoral head sits in a socket on its medial side. Measured on
found hips: 0.6-1.8 times the head's volume, always medial."""


@dataclass(frozen=True)
class HeadShape:
    """What :func:`not_a_head_reason` judges of one hip's network labels.

    Attributes
    ----------
    head_ml : volume of the femoral head label, ml.
    roundness : share of the head label within the ball of the same volume around its
        centroid, 0-1.
    cortex_hu : 99th percentile of the CT values under the head label, HU.
    acetabulum_share : acetabulum label volume over head label volume.
    acetabulum_medial_mm : how far the acetabulum's centroid lies medial of the head's, mm
        (negative: lateral); nan without acetabulum.
    """

    head_ml: float
    roundness: float
    cortex_hu: float
    acetabulum_share: float
    acetabulum_medial_mm: float

    @classmethod
    def measure(cls, labels: np.ndarray, hu: np.ndarray, spacing_mm) -> HeadShape:
        """The shape of one hip's labels.

        Parameters
        ----------
        labels : (z, y, x) class labels of one hip, 0 / 1 acetabulum / 2 femoral head, in the
            hip's side frame (x runs lateral -> medial, :class:`~THAAnnotatorLib.afs.frame.SideFrame`);
            must hold some femoral head.
        hu : CT values of the same voxels, HU.
        spacing_mm : voxel size along (z, y, x), mm.
        """
        spacing = np.asarray(spacing_mm, float)
        head = labels == FEMORAL_HEAD
        voxel_ml = float(np.prod(spacing)) / 1000.0
        head_points = np.argwhere(head) * spacing
        head_center = head_points.mean(axis=0)
        head_ml = len(head_points) * voxel_ml
        ball_radius_mm = (3.0 * head_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
        roundness = float(np.mean(np.linalg.norm(head_points - head_center, axis=1) <= ball_radius_mm))
        acetabulum_points = np.argwhere(labels == ACETABULUM) * spacing
        medial_mm = (float(acetabulum_points[:, 2].mean() - head_center[2])
                     if len(acetabulum_points) else float("nan"))
        return cls(head_ml=head_ml, roundness=roundness,
                   cortex_hu=float(np.percentile(hu[head], 99)),
                   acetabulum_share=len(acetabulum_points) / len(head_points),
                   acetabulum_medial_mm=medial_mm)


def ball_ml(diameter_mm: float) -> float:
    """Volume of a ball of ``diameter_mm``, ml."""
    return float(np.pi * diameter_mm ** 3 / 6.0 / 1000.0)


def head_volume_range_ml(params: Params) -> tuple[float, float]:
    """The volumes (ml) a femoral head label may have: :data:`SMALLEST_HEAD_SHARE` of the ball
    of the smallest usual adult head diameter, up to the ball of the largest head radius the
    pipeline considers anatomical (``params.max_head_radius_mm``, 35 mm: 180 ml; measured
    largest found head: 139 ml)."""
    return (SMALLEST_HEAD_SHARE * ball_ml(min(params.usual_head_diameter_mm)),
            ball_ml(2.0 * params.max_head_radius_mm))


def not_a_head_reason(shape: HeadShape, params: Params) -> str | None:
    """Why the network's labels of a hip are not a femoral head in its socket, or None when
    they pass every criterion of this module."""
    low_ml, high_ml = head_volume_range_ml(params)
    if not low_ml <= shape.head_ml <= high_ml:
        return (f"the model's femoral head is {shape.head_ml:.1f} ml, outside the "
                f"{low_ml:.0f}-{high_ml:.0f} ml of a femoral head")
    if shape.roundness < MIN_ROUNDNESS:
        return (f"the model's femoral head is not ball-shaped ({shape.roundness:.2f} of it lies "
                f"within the ball of its volume, under {MIN_ROUNDNESS:g})")
    if shape.cortex_hu < MIN_CORTEX_HU:
        return (f"the model's femoral head holds no bone cortex (its brightest 1 % reaches "
                f"{shape.cortex_hu:.0f} HU, under {MIN_CORTEX_HU:g} HU)")
    if shape.acetabulum_share < MIN_ACETABULUM_SHARE:
        return (f"too little acetabulum beside the model's femoral head "
                f"({shape.acetabulum_share:.2f} times the head's volume, under "
                f"{MIN_ACETABULUM_SHARE:g})")
    if shape.acetabulum_medial_mm <= 0.0:
        return (f"the model's acetabulum lies {-shape.acetabulum_medial_mm:.0f} mm lateral of its "
                f"femoral head, not medial")
    return None
