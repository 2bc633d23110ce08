"""The acetabular opening: a plane fitted to the rim of the articular surface, and its
orientation as Murray's radiographic inclination and anteversion.

The rim is the edge of the articular surface next to the opening (:mod:`.articular`), without
its lowest part (:data:`RIM_FLOOR_SHARE`). Murray (J Bone Joint Surg Br 1993;75:228-32): the
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


def opening_plane(surface: ArticularSurface, head_radius_mm: float) -> OpeningPlane | None:
    """The plane through the rim's points above :data:`RIM_FLOOR_SHARE` of the head's radius
    below its center; None with fewer than :data:`MIN_RIM_POINTS` of them."""
    points = surface.directions[surface.rim] * surface.distance_mm[surface.rim, None]
    points = points[points[:, 2] >= -RIM_FLOOR_SHARE * head_radius_mm]
    if len(points) < MIN_RIM_POINTS:
        return None
    centroid = points.mean(axis=0)
    normal = np.linalg.svd(points - centroid)[2][-1]
    if normal @ surface.directions[surface.opening].mean(axis=0) < 0:
        normal = -normal
    inclination, anteversion = murray_angles(normal)
    rms = float(np.sqrt(np.mean(((points - centroid) @ normal) ** 2)))
    return OpeningPlane(centroid, normal, inclination, anteversion, rms)
