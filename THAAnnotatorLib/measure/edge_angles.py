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
it does for the coverage. The sector angles' axial fan is walked in the two slices around the
head's center and interpolated to it (:class:`SlicePlanes`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .articular import REACH_SHARE, START_SHARE, ArticularSurface
from .rays import Probe, crossings, plane_fan

FAN_STEP_DEG = 0.25
GAP_DEG = 2.0

_LATERAL, _ANTERIOR, _SUPERIOR = np.eye(3)


def edge_angle(acetabulum: Probe, head_radius_mm: float, surface: ArticularSurface,
               reference: np.ndarray, toward: np.ndarray, start_deg: float, stop_deg: float,
               back_deg: float = 0.0, slice_planes: SlicePlanes | None = None) -> float | None:
    """The angle (degrees, from ``reference`` toward ``toward``) of the acetabulum's edge met
    walking from ``start_deg`` toward ``stop_deg`` (larger). The walk starts at the last ray
    that meets the acetabulum at most ``back_deg`` before ``start_deg``, else at the first one
    after; None if no ray meets it. With ``slice_planes`` (for a fan in the axial plane) the
    fan is cast in each of the two slices: a ray meets the acetabulum where it does in either
    (a gap in one slice does not end the walk), each slice's edge is its last ray met before
    the walk ends, and the angle is interpolated between the two."""
    angles = np.arange(start_deg - back_deg, stop_deg + FAN_STEP_DEG / 2, FAN_STEP_DEG)
    fan = plane_fan(reference, toward, angles)
    offsets = [np.zeros(3)] if slice_planes is None else slice_planes.offsets_mm
    hole = surface.holes[cKDTree(surface.directions).query(fan)[1]]
    met_in = [hole | np.isfinite(crossings(_shifted(acetabulum, offset), fan,
                                           START_SHARE * head_radius_mm,
                                           REACH_SHARE * head_radius_mm))
              for offset in offsets]
    met = np.logical_or.reduce(met_in)
    if not met.any():
        return None
    before = np.flatnonzero(met & (angles <= start_deg + 1e-9))
    start = int(before[-1]) if before.size else int(np.argmax(met))
    misses = np.flatnonzero(~met[start:]) + start
    runs = np.split(misses, np.flatnonzero(np.diff(misses) > 1) + 1) if misses.size else []
    gap = int(round(GAP_DEG / FAN_STEP_DEG))
    # the first gap wider than GAP_DEG, or one reaching the end of the fan, ends the walk
    end = next((run[0] for run in runs if len(run) > gap or run[-1] == len(met) - 1), len(met))
    if slice_planes is None:
        return float(angles[end - 1])
    walked = angles[start:end]
    return slice_planes.interpolate(tuple(float(walked[m[start:end]][-1])
                                          if m[start:end].any() else None for m in met_in))


def center_edge_angle(acetabulum: Probe, head_radius_mm: float,
                      surface: ArticularSurface) -> float | None:
    """Lateral center-edge angle (degrees): the walk goes laterally from the vertical, or from
    the nearest roof medial of it (a dysplastic hip: a negative angle)."""
    return edge_angle(acetabulum, head_radius_mm, surface, _SUPERIOR, _LATERAL, 0.0, 150.0,
                      back_deg=90.0)


def sector_angles(acetabulum: Probe, head_radius_mm: float, surface: ArticularSurface,
                  slice_planes: SlicePlanes | None = None) -> tuple[float | None, float | None]:
    """Anterior and posterior acetabular sector angles (degrees), walking from the medial
    direction forward and backward; with ``slice_planes``, in the two slices around the
    head's center (:func:`edge_angle`)."""
    medial = -_LATERAL
    return tuple(edge_angle(acetabulum, head_radius_mm, surface, medial, toward, 0.0, 180.0,
                            slice_planes=slice_planes) for toward in (_ANTERIOR, -_ANTERIOR))


@dataclass(frozen=True)
class SlicePlanes:
    """The two slices whose centers bracket the head's center: their offsets (hip frame, mm)
    from it along the slice axis, and the share of the way from the first to the second at
    which the center lies.

    Between slices a label's edge snaps to the nearer slice's: where the edge moves along the
    slice axis (a rim that rises), an angle read in the axial plane through the center can be
    off by up to half of its change over a slice (on the sweep, 5.8 deg between two 1.5 mm
    slices of a shallow cup's anterior rim). Each slice shows its own edge at the pixels'
    resolution; the angle at the center is interpolated between the two."""

    offsets_mm: tuple[np.ndarray, np.ndarray]
    share: float

    def interpolate(self, pair: tuple[float | None, float | None]) -> float | None:
        first, second = pair
        if first is None or second is None:
            return first if second is None else second
        return (1.0 - self.share) * first + self.share * second


def _shifted(probe: Probe, offset_mm: np.ndarray) -> Probe:
    return lambda q: probe(q + offset_mm)
