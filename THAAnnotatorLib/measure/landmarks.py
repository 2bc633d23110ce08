"""Where a hip's measurements lie, for drawing them (the overview picture, the Slicer module's
markups): the center-edge angle's three points, in RAS mm. The opening plane's point and normal
are in :class:`~.hip.HipMeasurements` itself."""
from __future__ import annotations

import numpy as np

from ..result import SideResult
from .rays import side_axes

LINE_BEYOND_SPHERE_MM = 8.0
"""Drawn lines end this far outside the acetabular sphere, so that they cross the roof."""


def line_length_mm(result: SideResult) -> float:
    """Length (mm, from the head's center) of a measured hip's drawn lines."""
    return result.measurements.acetabular_diameter_mm / 2.0 + LINE_BEYOND_SPHERE_MM


def center_edge_points_ras_mm(result: SideResult) -> np.ndarray | None:
    """The lateral center-edge angle as three RAS points (mm, rows): on the superior axis, the
    head's center (the angle's vertex), and toward the acetabular roof's lateral edge (medial
    for a negative angle); both ends :func:`line_length_mm` from the center. The directions
    are measured, the ends are for drawing. None where the angle was not measured."""
    m = result.measurements
    if m is None or m.center_edge_deg is None:
        return None
    lateral, _, superior = side_axes(result.side)
    angle = np.radians(m.center_edge_deg)
    center = np.asarray(result.sphere_center_ras_mm, float)
    length = line_length_mm(result)
    return np.array([center + length * superior, center,
                     center + length * (np.sin(angle) * lateral + np.cos(angle) * superior)])
