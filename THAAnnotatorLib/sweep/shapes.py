"""Signed distance functions (mm, negative inside) of the sweep's anatomical shapes.

Every function takes points as an array ``p`` of shape (..., 3) in a hip's local frame or in
body coordinates (mm) and returns the signed distance, exact or a close bound near the surface
(what the partial-volume ramp of :mod:`.render` needs). Written for the sweep alone: the demo
phantom (:mod:`THAAnnotatorLib.phantom`) draws its anatomy its own way.
"""
from __future__ import annotations

import numpy as np


def ellipsoid(p: np.ndarray, semi_axes_mm: np.ndarray) -> np.ndarray:
    """Ellipsoid centred at the origin with semi-axes along the frame's axes (a bound that is
    exact on the surface and within a few percent near it)."""
    semi_axes_mm = np.asarray(semi_axes_mm, p.dtype)
    q = p / semi_axes_mm
    k0 = np.sqrt((q * q).sum(-1))
    k1 = np.sqrt(((q / semi_axes_mm) ** 2).sum(-1))
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def capsule(p: np.ndarray, a_mm: np.ndarray, b_mm: np.ndarray, radius_a_mm: float,
            radius_b_mm: float) -> np.ndarray:
    """Round cone from ``a_mm`` to ``b_mm`` whose radius runs from ``radius_a_mm`` to
    ``radius_b_mm`` (a bound: exact for equal radii)."""
    a_mm, b_mm = np.asarray(a_mm, p.dtype), np.asarray(b_mm, p.dtype)
    ab = b_mm - a_mm
    t = np.clip(((p - a_mm) @ ab) / float(ab @ ab), 0.0, 1.0)
    nearest = a_mm + t[..., None] * ab
    return np.sqrt(((p - nearest) ** 2).sum(-1)) - (radius_a_mm + t * (radius_b_mm - radius_a_mm))


def cone_cap(p: np.ndarray, axis: np.ndarray, half_angle_rad: float) -> np.ndarray:
    """Negative inside the infinite cone of directions within ``half_angle_rad`` of ``axis``
    (unit) from the origin; its magnitude is the distance to the cone's surface."""
    r = np.sqrt((p * p).sum(-1))
    along = p @ np.asarray(axis, p.dtype)
    across = np.sqrt(np.maximum(r * r - along * along, 0.0))
    # rotate (along, across) so the cone's surface is the new across = 0 line
    return across * np.cos(half_angle_rad) - along * np.sin(half_angle_rad)


def smooth_union(a: np.ndarray, b: np.ndarray, blend_mm: float) -> np.ndarray:
    """Union of two shapes with a fillet about ``blend_mm`` wide where they meet (the way
    bones join: a column flaring into a wall, not a crease)."""
    h = np.clip(0.5 + 0.5 * (b - a) / blend_mm, 0.0, 1.0)
    return b * (1.0 - h) + a * h - blend_mm * h * (1.0 - h)


def to_local(p: np.ndarray, origin_mm: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Points in a frame whose origin is ``origin_mm`` and whose rows of ``axes`` are its unit
    axes, all in the points' own coordinates."""
    return (p - np.asarray(origin_mm, p.dtype)) @ np.asarray(axes, p.dtype).T


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)
