"""Propagation of the femoral head circle from the initial slice to the slices above and below."""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage
from skimage.segmentation import active_contour

from ..params import Params
from .hough import Circle
from .slice_fit import SliceFit, fit_slice, sections_mm
from .sphere import least_squares_sphere, section_radius_mm

# Bone window used to normalise a slice for the snake's edge energy, in HU.
_SNAKE_WINDOW_HU = (-100.0, 900.0)
_SNAKE_ITERATIONS = 60
# A propagated circle must stay on bone: this share of its disk is (hole-filled) bone.
_MIN_BONE_SHARE = 0.5
# Between neighbouring slices the center moves less than this share of the radius (plus one
# pixel, the resolution of the fit).
_MAX_CENTER_SHIFT = 0.5
# The sphere through the circles found so far predicts the next one from this many on.
_MIN_SECTIONS = 6
# Circles smaller than this (pixels) are too small to fit reliably.
MIN_RADIUS_PX = 3.0


def _snake_center(hu2d: np.ndarray, circle: Circle, n_points: int) -> np.ndarray:
    """Center of an active contour started on ``circle`` and left to settle on the edges."""
    lo, hi = _SNAKE_WINDOW_HU
    image = ndimage.gaussian_filter(np.clip((hu2d - lo) / (hi - lo), 0.0, 1.0), 1.0)
    angles = np.linspace(0.0, 2.0 * np.pi, n_points, endpoint=False)
    init = circle.center_px + circle.radius_px * np.stack([np.sin(angles), np.cos(angles)], axis=1)
    snake = active_contour(image, init, alpha=0.01, beta=1.0, gamma=0.01,
                           max_num_iter=_SNAKE_ITERATIONS, boundary_condition="periodic")
    return snake.mean(axis=0)


def _bone_share(filled_bone: np.ndarray, circle: Circle) -> float:
    yy, xx = np.ogrid[:filled_bone.shape[0], :filled_bone.shape[1]]
    disk = (yy - circle.center_px[0]) ** 2 + (xx - circle.center_px[1]) ** 2 <= circle.radius_px**2
    return float(filled_bone[disk].mean()) if disk.any() else 0.0


def _expected_radius_px(fits: list[SliceFit], k: int, spacing_mm: np.ndarray) -> float | None:
    """Radius at slice ``k`` of the sphere through ``fits``, once there are enough of them."""
    if len(fits) < _MIN_SECTIONS:
        return None
    sphere = least_squares_sphere(*sections_mm(fits, spacing_mm))
    if sphere is None:
        return None
    return section_radius_mm(sphere, k * spacing_mm[0]) / float(np.mean(spacing_mm[1:]))


def propagate(hu: np.ndarray, bone: np.ndarray, history: list[SliceFit], step: int,
              max_slices: int, spacing_mm: np.ndarray, params: Params,
              before_slice: Callable[[int], None] | None = None) -> list[SliceFit]:
    """Follow the head slice by slice in direction ``step`` (+1 up, -1 down) from the last of
    the circles found so far (``history``), at most ``max_slices`` slices.

    Each next slice: a snake initialised from the previous circle gives the new center, then
    candidates along its normals get a Hough fit with the radius held within
    ``params.propagation_radius_window`` of the expected radius, which is also AHS's prior:
    the previous radius at first, then the section of the sphere through the circles so far
    (past the equator a sphere's sections shrink, and a prior that does not would lead the
    fit onto the acetabulum, a joint space farther out). Stops at the first slice without a
    credible circle and where the sphere has no section left. ``before_slice(n)`` is called
    before each slice with the number of circles this call has found so far (for progress; it
    may raise :class:`~THAAnnotatorLib.errors.Cancelled`).
    """
    fits: list[SliceFit] = []
    start = history[-1]
    previous = start.circle
    pixel_mm = float(np.mean(spacing_mm[1:]))
    lo, hi = params.propagation_radius_window
    k = start.index + step
    while 0 <= k < hu.shape[0] and len(fits) < max_slices:
        if before_slice is not None:
            before_slice(len(fits))
        center = _snake_center(hu[k], previous, params.n_rays)
        expected = _expected_radius_px(history + fits, k, spacing_mm)
        r = previous.radius_px if expected is None else expected
        if r * lo < MIN_RADIUS_PX:
            break
        head_center = np.median([f.circle.center_px for f in history + fits], axis=0)
        circle = fit_slice(hu[k], center, (r / params.rough_shrink, r * params.search_extent), r,
                           (r * lo, r * hi), pixel_mm, params, head_center)
        if circle is None:
            break
        shift = np.linalg.norm(circle.center_px - previous.center_px)
        filled = ndimage.binary_fill_holes(bone[k])
        if shift > _MAX_CENTER_SHIFT * previous.radius_px + 1.0 or _bone_share(filled, circle) < _MIN_BONE_SHARE:
            break
        fits.append(SliceFit(k, circle))
        previous = circle
        k += step
    return fits
