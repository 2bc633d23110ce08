"""Rough femoral head circle in the initial slice from three convex-hull feature points."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from .geometry import circle_through, ray_polygon_hit

# side frame: rows point posterior, columns point medial
_ANTERIOR = np.array([-1.0, 0.0])
_MEDIAL = np.array([0.0, 1.0])
_CORE_FACTOR = 1.2
# Bone bridges thinner than about twice this (mm) between the head and its neighbours are cut.
_BRIDGE_MM = 1.5


@dataclass
class RoughCircle:
    """Feature points and circles in side-frame slice mm (y, x)."""

    feature_points_mm: np.ndarray  # (3, 2): anterior hull point, medial hull point, farthest point
    center_mm: np.ndarray
    anatomy_radius_mm: float  # r of the paper
    rough_radius_mm: float  # r / rough_shrink


def _head_core(head: np.ndarray, spacing_yx_mm: np.ndarray) -> np.ndarray:
    """The head's part of its bone component: thin bridges to touching bone are opened, and
    what is left within 1.2 x the largest inscribed disk's radius of that disk's center."""
    opened = ndimage.binary_opening(head, structure=_disk(_BRIDGE_MM, spacing_yx_mm))
    depth = ndimage.distance_transform_edt(ndimage.binary_fill_holes(opened), sampling=spacing_yx_mm)
    if depth.max() == 0:
        return head
    center = np.unravel_index(np.argmax(depth), depth.shape)
    pieces, _ = ndimage.label(opened)
    yy, xx = np.ogrid[:head.shape[0], :head.shape[1]]
    dist2 = ((yy - center[0]) * spacing_yx_mm[0]) ** 2 + ((xx - center[1]) * spacing_yx_mm[1]) ** 2
    return (pieces == pieces[center]) & (dist2 <= (_CORE_FACTOR * depth.max()) ** 2)


def _disk(radius_mm: float, spacing_yx_mm: np.ndarray) -> np.ndarray:
    ry, rx = (max(int(radius_mm / s), 1) for s in spacing_yx_mm)
    yy, xx = np.ogrid[-ry:ry + 1, -rx:rx + 1]
    return (yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0


def rough_circle(head: np.ndarray, trochanter: np.ndarray, spacing_yx_mm: np.ndarray,
                 rough_shrink: float) -> RoughCircle | None:
    """Paper 3.2: hull of the head's bone, its centroid p_c, the hull points p_u and p_r hit by
    rays from p_c (anterior and medial here), and p_m, the hull point farthest from the greater
    trochanter. For a round head all three lie on its boundary, so their circumcircle is the
    head's cross-section; its radius is the anatomy radius r.

    Where the head's bone touches the acetabulum or the neck in this slice, the component is
    first trimmed to the head's core (see ``_head_core``), which leaves a lone head unchanged.
    """
    pts = np.argwhere(_head_core(head, spacing_yx_mm)) * spacing_yx_mm
    if len(pts) < 3:
        return None
    hull = pts[ConvexHull(pts).vertices]
    p_c = pts.mean(axis=0)
    p_u = ray_polygon_hit(p_c, _ANTERIOR, hull)
    p_r = ray_polygon_hit(p_c, _MEDIAL, hull)
    trochanter_center = np.argwhere(trochanter).mean(axis=0) * spacing_yx_mm
    p_m = hull[np.argmax(np.linalg.norm(hull - trochanter_center, axis=1))]
    if p_u is None or p_r is None:
        return None
    circle = circle_through(p_u, p_r, p_m)
    if circle is None:
        return None
    center, r = circle
    return RoughCircle(np.array([p_u, p_r, p_m]), center, r, r / rough_shrink)
