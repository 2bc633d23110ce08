"""Angles from the femoral head's center to the acetabulum's edge, in one plane through it.

Lateral center-edge angle (Wiberg, Acta Chir Scand 1939;83 Suppl 58, here on CT): in the
coronal plane through the head's center, between the superior axis and the line from the
center to the lateral edge of the acetabular roof; negative when that edge lies medial of the
vertical. Anterior and posterior acetabular sector angles (Anda et al., J Pediatr Orthop
1986;6:438-43 and Acta Radiol 1991;32:68-72): in the axial plane through the head's center,
between the medial (left-right) axis and the lines to the anterior and posterior acetabular
edges. Anda takes the line through both heads' centers as the reference; here the scanner's
left-right axis is, so a hip beside a replaced or missing one is measured alike (a rotated
pelvis shifts the two angles).

Each edge is found by walking a fan of rays, every :data:`FAN_STEP_DEG`, from a start
direction inside the acetabulum outward until the rays stop meeting it for more than
:data:`GAP_DEG`. A ray that meets no acetabulum but looks through a hole that acetabulum
surrounds (:mod:`.articular`: a thin fossa floor, a gap in a label) counts as meeting it, as
it does for the coverage.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .articular import REACH_SHARE, START_SHARE, ArticularSurface
from .rays import Probe, crossings, plane_fan

FAN_STEP_DEG = 0.25
GAP_DEG = 2.0

_LATERAL, _ANTERIOR, _SUPERIOR = np.eye(3)


def edge_angle(acetabulum: Probe, head_radius_mm: float, surface: ArticularSurface,
               reference: np.ndarray, toward: np.ndarray, start_deg: float, stop_deg: float,
               back_deg: float = 0.0) -> float | None:
    """The angle (degrees, from ``reference`` toward ``toward``) of the acetabulum's edge met
    walking from ``start_deg`` toward ``stop_deg`` (larger). The walk starts at the last ray
    that meets the acetabulum at most ``back_deg`` before ``start_deg``, else at the first one
    after; None if no ray meets it."""
    angles = np.arange(start_deg - back_deg, stop_deg + FAN_STEP_DEG / 2, FAN_STEP_DEG)
    fan = plane_fan(reference, toward, angles)
    met = np.isfinite(crossings(acetabulum, fan, START_SHARE * head_radius_mm,
                                REACH_SHARE * head_radius_mm))
    met |= surface.holes[cKDTree(surface.directions).query(fan)[1]]
    if not met.any():
        return None
    before = np.flatnonzero(met & (angles <= start_deg + 1e-9))
    start = int(before[-1]) if before.size else int(np.argmax(met))
    misses = np.flatnonzero(~met[start:]) + start
    runs = np.split(misses, np.flatnonzero(np.diff(misses) > 1) + 1) if misses.size else []
    gap = int(round(GAP_DEG / FAN_STEP_DEG))
    # the first gap wider than GAP_DEG, or one reaching the end of the fan, ends the walk
    end = next((run[0] for run in runs if len(run) > gap or run[-1] == len(met) - 1), len(met))
    return float(angles[end - 1])


def center_edge_angle(acetabulum: Probe, head_radius_mm: float,
                      surface: ArticularSurface) -> float | None:
    """Lateral center-edge angle (degrees): the walk goes laterally from the vertical, or from
    the nearest roof medial of it (a dysplastic hip: a negative angle)."""
    return edge_angle(acetabulum, head_radius_mm, surface, _SUPERIOR, _LATERAL, 0.0, 150.0,
                      back_deg=90.0)


def sector_angles(acetabulum: Probe, head_radius_mm: float,
                  surface: ArticularSurface) -> tuple[float | None, float | None]:
    """Anterior and posterior acetabular sector angles (degrees), walking from the medial
    direction forward and backward."""
    medial = -_LATERAL
    return (edge_angle(acetabulum, head_radius_mm, surface, medial, _ANTERIOR, 0.0, 180.0),
            edge_angle(acetabulum, head_radius_mm, surface, medial, -_ANTERIOR, 0.0, 180.0))
