"""The acetabulum's articular surface placed by the CT itself, beyond the joint space.

Where the joint space is narrow or blurred, bone extraction keeps it; before the split left the
joint space's own voxels out of both bones (:mod:`..joint_gap`), the acetabulum's label reached
across it to the head's label (on the sweep its edge lay a median 2 mm inside the drawn
surface), and where a joint is blurred beyond what that step sees it still may. Along each
ray from the head's center the CT shows the joint space as a dip after the head's cortex and
the acetabulum's cortex as the rise after it; the surface is where that rise crosses halfway
from the dip to its peak (the half-maximum rule of the pipeline's label edges). The first dip
past the head's label edge followed by a rise of at least :data:`MIN_CONTRAST_HU` (less in
bone of low contrast: :func:`min_rise_hu`) within :data:`RISE_MM` counts; where there is none
(a closed joint, thick slices blurring a ray's profile) the ray has no such surface point.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .partial_volume import MIN_CONTRAST_HU as MIN_BONE_CONTRAST_HU
from .rays import Probe

MIN_CONTRAST_HU = 150.0
"""The rise after the joint's dip asked for in bone of usual contrast (:func:`min_rise_hu`)."""
RISE_MM = 3.0
BEYOND_LABEL_MM = 1.0
"""The dip is looked for from just inside the head's label edge to this far past the acetabulum's
label edge, or past the head's sphere where the label reaches inside it (at pixels no coarser than
``params.SWEEP_MAX_PIXEL_MM``, where that was measured: on the real 3 mm CT beside the project,
dips up to 1 mm past the sphere are the acetabulum's spongy bone's, and the socket read 46.3 mm,
its center 4.3 mm from the head's; from the label, 43.0 and 0.2). The label now ends at the joint
space where the CT shows one, so the joint's dip lies before that edge; 3 mm past it (as before)
reached the dip behind the acetabulum's inner cortex where the joint is closed (on the 42 hips of
benchmarks/measurements.py, acetabular diameters +9.4 and +6.6 mm; +0.8 and +3.3 mm with 1 mm, no
hip further off). Where the joint is too faint for the split to see (osteoporotic bone), the
acetabulum's label takes the joint and the head's outer cortex, its edge inside the head's sphere,
and the joint's dip lies beyond it: on the sweep's `low_density` seed 10 right (a 1.5 mm joint),
the label's edge a median 0.7 mm inside the sphere, the CT placed the surface on 141 rays, 911 from
the sphere."""
_STEP_MM = 0.1
_SMOOTH_MM = 0.3  # against noise making dips of its own
_INSIDE_HEAD_MM = 0.5  # profiles start this far inside the head's label edge, in its cortex


def min_rise_hu(bone_contrast_hu: float | None) -> float:
    """The rise after the joint's dip asked for (HU): :data:`MIN_CONTRAST_HU`, or half the
    bone's contrast over the soft tissue (``bone_contrast_hu``) where that is less, as the
    half-maximum rule asks of an edge. In osteoporotic bone the acetabulum's cortex stands
    only about 190 HU over the soft tissue and a wide joint's dip lies 60-100 HU below it: on
    the sweep's `low_density` seed 13 right, with 150 HU the CT placed the surface on 171 rays
    (too few; 1205 with half the contrast), the label reaching across the 2.2 mm joint stood
    and the acetabular diameter was 2.9 mm small, with nothing to say so. Below
    :data:`.partial_volume.MIN_CONTRAST_HU` of contrast the CT tells nothing (a rise of a few
    tens of HU is noise's), and the usual rise is asked for."""
    if bone_contrast_hu is None or bone_contrast_hu < MIN_BONE_CONTRAST_HU:
        return MIN_CONTRAST_HU
    return min(MIN_CONTRAST_HU, 0.5 * bone_contrast_hu)


def acetabular_surface_distances(ct: Probe, directions: np.ndarray, head_edge_mm: np.ndarray,
                                 label_edge_mm: np.ndarray, rise_hu: float = MIN_CONTRAST_HU,
                                 head_radius_mm: float = 0.0) -> np.ndarray:
    """The distance along each unit direction to the CT's half maximum beyond the joint-space
    dip (a rise of at least ``rise_hu`` after it), from the rays' distances to the
    acetabulum's label (``label_edge_mm``) and where they leave the head's label
    (``head_edge_mm``), the dip looked for up to :data:`BEYOND_LABEL_MM` past the label's edge
    or the head's sphere (``head_radius_mm``; 0: the label's edge only), whichever is farther;
    NaN where either edge is NaN or there is no dip."""
    label_edge_mm = np.asarray(label_edge_mm, float)
    out = np.full(len(directions), np.nan)
    rows = np.flatnonzero(np.isfinite(label_edge_mm) & np.isfinite(head_edge_mm))
    if rows.size == 0:
        return out
    start = np.minimum(head_edge_mm[rows], label_edge_mm[rows]) - _INSIDE_HEAD_MM
    dip_until = np.maximum(label_edge_mm[rows], head_radius_mm) + BEYOND_LABEL_MM
    length = dip_until.max() - start.min() + RISE_MM
    offsets = np.arange(0.0, length, _STEP_MM)
    t = start[:, None] + offsets[None, :]
    hu = ndimage.gaussian_filter1d(ct(directions[rows, None, :] * t[..., None]),
                                   _SMOOTH_MM / _STEP_MM, axis=1)
    rise = int(round(RISE_MM / _STEP_MM))
    # the highest value within RISE_MM after each sample
    ahead = ndimage.maximum_filter1d(hu, rise + 1, axis=1, origin=-(rise // 2), mode="nearest")
    dip = ((hu[:, 1:-1] <= hu[:, :-2]) & (hu[:, 1:-1] < hu[:, 2:])
           & (ahead[:, 1:-1] - hu[:, 1:-1] >= rise_hu)
           & (t[:, 1:-1] <= dip_until[:, None]))
    found = dip.any(axis=1)
    first = np.argmax(dip, axis=1) + 1
    index = np.arange(len(rows))
    half = 0.5 * (hu[index, first] + ahead[index, first])
    # the first sample at or above half maximum after the dip, and the crossing before it
    above = (hu >= half[:, None]) & (np.arange(len(offsets))[None, :] > first[:, None])
    k = np.argmax(above, axis=1)
    a, b = hu[index, k - 1], hu[index, k]
    share = np.clip((half - a) / np.where(b > a, b - a, 1.0), 0.0, 1.0)
    edge = t[index, k - 1] + share * _STEP_MM
    keep = found & above.any(axis=1)
    out[rows[keep]] = edge[keep]
    return out
