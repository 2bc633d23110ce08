"""Femoral head sphericity: how far the head's bone surface departs from a sphere.

Measured over the head's upper part, the directions from its center more than
:data:`MIN_ELEVATION_DEG` above the axial plane (scanner axes): the neck leaves the head
30-50 degrees below that plane, so no neck is included, and this is the weight-bearing
surface where flattening (necrosis, arthritis) shows. A ray from the center leaves the head's
bone (label) once; the departure there is its distance from the least-squares sphere of that
same part of the surface, averaged over the directions within :data:`SMOOTHING_DEG` (about
4 mm on an adult head) so that voxel steps of a label do not count as asphericity while a
flattening tens of degrees wide does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..afs.geometry import fit_sphere_least_squares
from .articular import HEAD_START_SHARE
from .rays import Probe, crossings, fibonacci_directions

MIN_ELEVATION_DEG = 15.0
SMOOTHING_DEG = 10.0
REGION = (f"head surface more than {MIN_ELEVATION_DEG:g} deg above the axial plane through "
          f"its center, against its own least-squares sphere, averaged over {SMOOTHING_DEG:g} "
          "deg")
_DIRECTIONS = 4000
_REACH_SHARE = 1.3
_MIN_POINTS = 50


@dataclass(frozen=True)
class Sphericity:
    """Root-mean-square and largest departure (mm) of the head's surface from its sphere."""

    rms_mm: float
    max_mm: float


def head_sphericity(head: Probe, radius_mm: float) -> Sphericity | None:
    """Sphericity of the head ``head`` (probe in the hip frame, whose origin is near its
    center; ``radius_mm`` its radius, which sets where rays look); None when fewer than
    :data:`_MIN_POINTS` rays find its surface."""
    directions = fibonacci_directions(_DIRECTIONS)
    directions = directions[directions[:, 2] > np.sin(np.radians(MIN_ELEVATION_DEG))]
    distance = crossings(head, directions, HEAD_START_SHARE * radius_mm,
                         _REACH_SHARE * radius_mm, entering=False)
    found = np.isfinite(distance)
    if found.sum() < _MIN_POINTS:
        return None
    directions = directions[found]
    points = directions * distance[found, None]
    center, radius = fit_sphere_least_squares(points)
    departure = np.linalg.norm(points - center, axis=1) - radius
    if SMOOTHING_DEG > 0:
        chord = 2.0 * np.sin(np.radians(SMOOTHING_DEG) / 2.0)
        caps = cKDTree(directions).query_ball_point(directions, chord)
        departure = np.array([departure[cap].mean() for cap in caps])
    return Sphericity(float(np.sqrt(np.mean(departure ** 2))), float(np.max(np.abs(departure))))
