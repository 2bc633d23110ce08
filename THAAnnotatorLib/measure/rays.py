"""Rays from a femoral head's center: where they enter or leave a structure.

Every measurement works in the hip's own frame: origin at the head's center, axes lateral,
anterior and superior (mm). The frame follows the scanner's patient axes (RAS from the
volume's direction cosines), mirrored for the left hip, so both hips are measured by the
same code and an LPS or RAS file gives the same values. A structure is a *probe*: a function
of points q (..., 3) in that frame, positive inside and negative outside.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

from ..volume import Volume

Probe = Callable[[np.ndarray], np.ndarray]

# Rays are sampled this often (mm); a crossing is placed between samples by interpolation.
RAY_STEP_MM = 0.2


def side_axes(side: str) -> np.ndarray:
    """Rows: the hip's lateral, anterior and superior unit vectors in RAS."""
    return np.diag([1.0 if side == "right" else -1.0, 1.0, 1.0])


def fibonacci_directions(count: int) -> np.ndarray:
    """``count`` unit vectors spread evenly over the sphere (each stands for the same area)."""
    k = np.arange(count) + 0.5
    polar = np.arccos(1.0 - 2.0 * k / count)
    azimuth = np.pi * (1.0 + 5.0 ** 0.5) * k
    return np.column_stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth),
                            np.cos(polar)])


def plane_fan(first_axis: np.ndarray, second_axis: np.ndarray,
              angles_deg: np.ndarray) -> np.ndarray:
    """Unit vectors at ``angles_deg`` from ``first_axis`` toward ``second_axis``."""
    a = np.radians(np.asarray(angles_deg, float))[:, None]
    return np.cos(a) * np.asarray(first_axis, float) + np.sin(a) * np.asarray(second_axis, float)


def cube_corners(center_ras_mm, half_width_mm: float) -> np.ndarray:
    """The 8 corners (RAS mm) of the axis-aligned cube ``half_width_mm`` around a point."""
    signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], float)
    return np.asarray(center_ras_mm, float) + half_width_mm * signs


def probe_box(volume: Volume, center_ras_mm, reach_mm: float) -> tuple[slice, slice, slice]:
    """The canonical (z, y, x) index box holding the cube ``reach_mm`` around a point, with a
    voxel more each side for interpolation."""
    index = volume.ras_mm_to_index(cube_corners(np.asarray(center_ras_mm, float), reach_mm))
    low = np.clip(np.floor(index.min(axis=0)).astype(int) - 1, 0, None)
    high = np.minimum(np.ceil(index.max(axis=0)).astype(int) + 2, volume.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def volume_probe(volume: Volume, array: np.ndarray, center_ras_mm, side: str, reach_mm: float,
                 level: float = 0.0) -> Probe:
    """A probe of a canonical (z, y, x) array (a mask, or the CT in HU) around the head
    centered at ``center_ras_mm``: the array interpolated trilinearly, less ``level``. Only the
    box ``reach_mm`` around the center is kept."""
    box = probe_box(volume, center_ras_mm, reach_mm)
    return box_probe(volume, array[box], box, center_ras_mm, side, level)


def box_probe(volume: Volume, crop: np.ndarray, box: tuple[slice, slice, slice],
              center_ras_mm, side: str, level: float = 0.0) -> Probe:
    """:func:`volume_probe` of an array already cropped to ``box`` (:func:`probe_box`)."""
    center = np.asarray(center_ras_mm, float)
    axes = side_axes(side)
    low = np.array([b.start for b in box])
    crop = np.asarray(crop, np.float32)

    def probe(q: np.ndarray) -> np.ndarray:
        zyx = volume.ras_mm_to_index(center + q @ axes) - low
        flat = zyx.reshape(-1, 3).T
        values = ndimage.map_coordinates(crop, flat, order=1, mode="constant", cval=0.0)
        return values.reshape(q.shape[:-1]) - level

    return probe


def mask_probe(volume: Volume, mask: np.ndarray, center_ras_mm, side: str,
               reach_mm: float) -> Probe:
    """A probe of a mask (:func:`volume_probe`) whose edge lies halfway between a voxel in and
    one out."""
    return volume_probe(volume, mask, center_ras_mm, side, reach_mm, level=0.5)


def crossings(probe: Probe, directions: np.ndarray, start_mm: float, stop_mm: float,
              entering: bool = True) -> np.ndarray:
    """Distance (mm) along each unit direction from the origin, between ``start_mm`` and
    ``stop_mm``, where the ray first enters the probe's structure (``entering``) or first
    leaves it; NaN where it does not."""
    t = np.arange(start_mm, stop_mm + RAY_STEP_MM / 2, RAY_STEP_MM)
    values = probe(directions[:, None, :] * t[None, :, None])
    if not entering:
        values = -values
    inside = values > 0
    first = np.argmax(inside, axis=1)
    found = inside[np.arange(len(directions)), first]
    out = np.where(found, t[0], np.nan)  # a ray already inside at its start: there
    rows = np.flatnonzero(found & (first > 0))
    before, after = values[rows, first[rows] - 1], values[rows, first[rows]]
    share = before / (before - after)  # where the interpolated value crosses 0
    out[rows] = t[first[rows] - 1] + share * RAY_STEP_MM
    return out
