"""Femoral head sphericity: how far the head's bone surface departs from its fitted sphere.

Measured over the head's upper part, the directions from its center more than
:data:`MIN_ELEVATION_DEG` above the axial plane (scanner axes): the neck leaves the head
30-50 degrees below that plane, so no neck is included, and this is the weight-bearing
surface where flattening (necrosis, arthritis) shows. A ray from the center leaves the head's
bone (label) once; its distance from the sphere is the departure there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rays import Probe, crossings, fibonacci_directions

MIN_ELEVATION_DEG = 15.0
REGION = (f"head surface more than {MIN_ELEVATION_DEG:g} deg above the axial plane through "
          "its center")
_DIRECTIONS = 4000
_START_SHARE, _REACH_SHARE = 0.5, 1.3


@dataclass(frozen=True)
class Sphericity:
    """Root-mean-square and largest distance (mm) of the head's surface from its sphere."""

    rms_mm: float
    max_mm: float


def head_sphericity(head: Probe, radius_mm: float) -> Sphericity | None:
    """Sphericity of the head ``head`` (probe in the hip frame, whose origin is the sphere's
    center) against its sphere of ``radius_mm``; None when no ray finds the surface."""
    directions = fibonacci_directions(_DIRECTIONS)
    directions = directions[directions[:, 2] > np.sin(np.radians(MIN_ELEVATION_DEG))]
    distance = crossings(head, directions, _START_SHARE * radius_mm, _REACH_SHARE * radius_mm,
                         entering=False)
    departure = distance[np.isfinite(distance)] - radius_mm
    if departure.size == 0:
        return None
    return Sphericity(float(np.sqrt(np.mean(departure ** 2))), float(np.max(np.abs(departure))))
