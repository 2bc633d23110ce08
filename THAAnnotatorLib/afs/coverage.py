"""How much of a femoral head's upper half the pelvis covers: the evidence that a round bone is
a femoral head sitting in its acetabulum, and not another round bone (a vertebral body).
"""
from __future__ import annotations

import numpy as np

from .geometry import along_rays, sphere_directions
from .sphere import Sphere

# Directions: a Fibonacci lattice over the sphere, those pointing up by at least _MIN_UP kept
# (the acetabulum covers the head from above; a z component of 0.2 is 11.5 deg above the
# equator, where the neck cannot be).
_RAYS, _MIN_UP = 400, 0.2
# Along each ray: pelvic bone looked for from _FROM_MM to _TO_MM beyond the sphere's surface,
# every _STEP_MM. From 1.5 mm: the head's own cortex is passed; up to 12 mm: the joint space and
# an acetabular wall a few mm thick.
_FROM_MM, _TO_MM, _STEP_MM = 1.5, 12.0, 0.5


def upper_coverage(bone: np.ndarray, sphere: Sphere, spacing_mm: np.ndarray) -> float:
    """Share (0-1) of the directions above the head's center whose ray meets bone between 1.5
    and 12 mm beyond the sphere's surface. ``bone`` is a (z, y, x) mask with z running upward,
    ``sphere`` in its mm coordinates (index x spacing); bone outside the array counts as none."""
    spacing_mm = np.asarray(spacing_mm, float)
    directions = sphere_directions(_RAYS, _MIN_UP)
    beyond = np.arange(_FROM_MM, _TO_MM + _STEP_MM / 2, _STEP_MM) + sphere.radius_mm
    hits = along_rays(bone.astype(np.uint8), sphere.center_mm, directions, beyond, spacing_mm,
                      order=0, mode="constant")
    return float(hits.any(axis=1).mean())
