"""The acetabular opening: a plane fitted to the rim of the articular surface, and its
orientation as Murray's radiographic inclination and anteversion.

The rim is the edge of the articular surface next to the opening (:mod:`.articular`), without
its lowest part (:data:`RIM_FLOOR_SHARE`) and, where the labels end above that floor, without
the labels' own lower edge. Murray (J Bone Joint Surg Br 1993;75:228-32): the
acetabular axis is the opening plane's normal; radiographic inclination is the angle between
the longitudinal (superior) axis and that axis projected on the coronal plane, radiographic
anteversion the angle between the axis and the coronal plane. Both are taken against the
scanner's axes, not the pelvis's: a patient lying with pelvic tilt or rotation shifts them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .articular import ArticularSurface

RIM_FLOOR_SHARE = 0.8
"""Rim points lower than this share of the head's radius below its center are left out: the
acetabular notch lies there, bridged by the transverse ligament rather than bone, and the
labels end with the head's lowest slices."""
MIN_RIM_POINTS = 10
# How far past a rim point (mm) its open neighbour's ray must stay above the labels' floor to be
# the opening's: a ray that dips below the floor within the acetabulum's wall grazes the labels'
# lower edge and meets no label there.
_PAST_RIM_MM = 1.0


@dataclass(frozen=True)
class OpeningPlane:
    """A point on the plane (hip frame, mm: the rim's centroid), its unit normal pointing out
    of the acetabulum, the angles (degrees) and the rim points' RMS distance from the plane."""

    point_mm: np.ndarray
    normal: np.ndarray
    inclination_deg: float
    anteversion_deg: float
    rms_mm: float


def murray_angles(normal: np.ndarray) -> tuple[float, float]:
    """Radiographic inclination and anteversion (degrees) of an opening's outward normal in
    the hip frame (lateral, anterior, superior)."""
    lateral, anterior, superior = np.asarray(normal, float) / np.linalg.norm(normal)
    inclination = np.degrees(np.arctan2(lateral, -superior))
    anteversion = np.degrees(np.arcsin(np.clip(anterior, -1.0, 1.0)))
    return float(inclination), float(anteversion)


def opening_plane(surface: ArticularSurface, head_radius_mm: float,
                  labels_floor_mm: float | None = None) -> OpeningPlane | None:
    """The plane through the rim's points above :data:`RIM_FLOOR_SHARE` of the head's radius
    below its center; None with fewer than :data:`MIN_RIM_POINTS` of them.

    ``labels_floor_mm``: the height (hip frame, mm) below which the labels end, where they
    stop above the rim's floor. A ray below it leaves the labels, not the acetabulum, so the
    rim points that border only such rays are not the rim but the labels' lower edge (a
    horizontal arc that tilts the plane: on the sweep, -5.6 deg of inclination on a hip with
    1.5 mm slices)."""
    rim = np.flatnonzero(surface.rim)
    points = surface.directions[rim] * surface.distance_mm[rim, None]
    keep = points[:, 2] >= -RIM_FLOOR_SHARE * head_radius_mm
    if labels_floor_mm is not None:
        # an open neighbour is the opening where its ray is still above the floor a little
        # past the rim point's distance (a ray grazing the floor meets no label either)
        neighbours = surface.neighbours[rim]
        heights_mm = ((surface.distance_mm[rim, None] + _PAST_RIM_MM)
                      * surface.directions[neighbours, 2])
        keep &= (surface.opening[neighbours] & (heights_mm >= labels_floor_mm)).any(axis=1)
    points = points[keep]
    if len(points) < MIN_RIM_POINTS:
        return None
    centroid = points.mean(axis=0)
    normal = np.linalg.svd(points - centroid)[2][-1]
    if normal @ surface.directions[surface.opening].mean(axis=0) < 0:
        normal = -normal
    inclination, anteversion = murray_angles(normal)
    rms = float(np.sqrt(np.mean(((points - centroid) @ normal) ** 2)))
    return OpeningPlane(centroid, normal, inclination, anteversion, rms)
