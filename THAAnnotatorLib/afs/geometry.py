"""Small geometry helpers shared by the AFS steps; points are (y, x) or (z, y, x)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy import ndimage


def disk_footprint(radius_mm: float, spacing_yx_mm: np.ndarray) -> np.ndarray:
    """In-slice disk of ``radius_mm`` as a boolean footprint (an ellipse in pixels that are not
    square), at least one pixel out from its center each way."""
    ry, rx = (max(int(radius_mm / s), 1) for s in spacing_yx_mm)
    yy, xx = np.ogrid[-ry:ry + 1, -rx:rx + 1]
    return (yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0


def voxels_within(lo_mm: np.ndarray, hi_mm: np.ndarray, spacing_mm: np.ndarray,
                  shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Index box of the voxels whose centers (index x spacing, mm) lie within ``lo_mm`` to
    ``hi_mm`` on every axis, clipped to ``shape`` (a slice may come out empty)."""
    return tuple(slice(max(int(np.ceil(a / s)), 0), min(int(np.floor(b / s)) + 1, n))
                 for a, b, s, n in zip(lo_mm, hi_mm, spacing_mm, shape))


def along_rays(array: np.ndarray, center_mm: np.ndarray, directions: np.ndarray,
               radii_mm: np.ndarray, spacing_mm: np.ndarray, order: int,
               mode: str) -> np.ndarray:
    """``array`` (z, y, x) sampled along rays from ``center_mm`` (index x spacing) in each of
    ``directions`` at each of ``radii_mm``: (directions, radii), by scipy's map_coordinates
    with ``order`` and ``mode`` (outside the array 0 with "constant")."""
    points = center_mm + radii_mm[None, :, None] * directions[:, None, :]
    values = ndimage.map_coordinates(array, (points / spacing_mm).reshape(-1, 3).T, order=order,
                                     mode=mode, cval=0)
    return values.reshape(len(directions), len(radii_mm))


def circle_through(p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Circumcircle (center, radius) of three points, or None when they are (nearly) collinear."""
    (ay, ax), (by, bx), (cy, cx) = p1, p2, p3
    d = 2.0 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    if abs(d) < 1e-9:
        return None
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
    center = np.array([uy, ux])
    return center, float(np.linalg.norm(center - np.asarray(p1, dtype=float)))


def fit_sphere_least_squares(points: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Algebraic (Kasa) fit of a circle to (n, 2) points or a sphere to (n, 3) points:
    (center, radius), or None for too few points or no real fit."""
    points = np.asarray(points, dtype=float)
    if len(points) < points.shape[1] + 1:
        return None
    a = np.column_stack([points, np.ones(len(points))])
    sol, *_ = np.linalg.lstsq(a, (points * points).sum(axis=1), rcond=None)
    center = sol[:-1] / 2.0
    r2 = sol[-1] + center @ center
    if r2 <= 0:
        return None
    return center, float(np.sqrt(r2))


def trimmed_fit(points: np.ndarray, fit: Callable[[np.ndarray], Any],
                miss: Callable[[np.ndarray, Any], np.ndarray], min_points: int,
                passes: int = 4, inlier_mm: float = 1.5,
                inlier_medians: float = 2.5) -> tuple[Any, np.ndarray] | None:
    """``fit`` (points -> a model, or None) refitted ``passes`` times, each time without the
    points whose ``miss`` (points, model -> signed distance, mm) exceeds both ``inlier_mm`` and
    ``inlier_medians`` x the median miss of the points kept: (model, points kept), or None where
    a fit fails or fewer than ``min_points`` are kept."""
    keep = np.ones(len(points), dtype=bool)
    model = None
    for _ in range(passes):
        if keep.sum() < min_points:
            return None
        model = fit(points[keep])
        if model is None:
            return None
        distance = np.abs(miss(points, model))
        keep = distance <= max(inlier_mm, inlier_medians * float(np.median(distance[keep])))
    if keep.sum() < min_points:
        return None
    return model, keep


def parabola_vertex_offset(before: np.ndarray, at: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Where the parabola through three equally spaced samples peaks or dips, relative to the
    middle one, in sample steps: within [-0.5, 0.5], 0 where the samples lie on a line."""
    before, at, after = (np.asarray(v) for v in (before, at, after))
    curvature = before - 2.0 * at + after
    curved = np.abs(curvature) > 1e-6
    offset = np.where(curved, 0.5 * (before - after) / np.where(curved, curvature, 1.0), 0.0)
    return np.clip(offset, -0.5, 0.5)


def ray_polygon_hit(origin: np.ndarray, direction: np.ndarray, polygon: np.ndarray) -> np.ndarray | None:
    """Farthest intersection of a ray with a closed polygon's edges ((n, 2) vertices)."""
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    e = b - a
    # solve origin + t * direction = a + s * e for every edge at once
    denom = direction[0] * e[:, 1] - direction[1] * e[:, 0]
    ok = np.abs(denom) > 1e-12
    w = a - origin
    t = np.where(ok, (w[:, 0] * e[:, 1] - w[:, 1] * e[:, 0]) / np.where(ok, denom, 1), -1)
    s = np.where(ok, (w[:, 0] * direction[1] - w[:, 1] * direction[0]) / np.where(ok, denom, 1), -1)
    hits = ok & (t >= 0) & (s >= 0) & (s <= 1)
    if not hits.any():
        return None
    return origin + t[hits].max() * direction


def sphere_directions(count: int, min_z: float) -> np.ndarray:
    """Unit vectors (z, y, x) spread evenly over the sphere (a Fibonacci lattice of ``count``),
    those with a z component below ``min_z`` left out."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    azimuth = np.pi * (1.0 + np.sqrt(5.0)) * i
    across = np.sqrt(1.0 - z * z)
    directions = np.column_stack([z, across * np.sin(azimuth), across * np.cos(azimuth)])
    return directions[directions[:, 0] >= min_z]
