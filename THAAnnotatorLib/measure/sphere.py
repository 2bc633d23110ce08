"""The acetabular sphere: a sphere fitted to the acetabulum's articular surface, and the cup
size it suggests."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..afs.geometry import fit_sphere_least_squares
from .articular import ArticularSurface

# Points farther than this (mm) from a fitted sphere, or than 3 robust standard deviations of
# the distances when that is more, are left out of the next fit (an osteophyte, a bridge, a
# gap in the label); three refits settle.
_OUTLIER_MM = 1.0
_REFITS = 3


@dataclass(frozen=True)
class AcetabularSphere:
    """Center (hip frame, mm) and diameter (mm) of the articular surface's sphere, and the
    root-mean-square distance (mm) of the points kept from it."""

    center_mm: np.ndarray
    diameter_mm: float
    rms_mm: float


def acetabular_sphere(surface: ArticularSurface) -> AcetabularSphere:
    points = surface.points_mm
    keep = np.ones(len(points), bool)
    for _ in range(_REFITS):
        center, radius = fit_sphere_least_squares(points[keep])
        residual = np.linalg.norm(points - center, axis=1) - radius
        spread = 1.4826 * np.median(np.abs(residual[keep] - np.median(residual[keep])))
        keep = np.abs(residual) <= max(_OUTLIER_MM, 3.0 * spread)
    center, radius = fit_sphere_least_squares(points[keep])
    residual = np.linalg.norm(points[keep] - center, axis=1) - radius
    return AcetabularSphere(center, 2.0 * radius, float(np.sqrt(np.mean(residual ** 2))))


def suggested_cup_mm(diameter_mm: float) -> int:
    """The acetabular diameter rounded up to the next even millimetre: the size of cup the
    reamed acetabulum would take, a suggestion for planning, not a plan."""
    return int(2 * math.ceil(diameter_mm / 2.0 - 1e-9))
