"""Per-slice circle fitting and its propagation from the initial slice to the other slices."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage
from skimage.segmentation import active_contour

from ..errors import Cancelled
from ..params import Params
from .boundary import boundary_candidates, sample_normals
from .geometry import fit_circle_least_squares
from .hough import Circle, hough_fit

# Bone window used to normalise a slice for the snake's edge energy, in HU.
_SNAKE_WINDOW_HU = (-100.0, 900.0)
_SNAKE_ITERATIONS = 60
# A propagated circle must stay on bone: this share of its disk is (hole-filled) bone.
_MIN_BONE_SHARE = 0.5
# Between neighbouring slices the center moves less than this share of the radius (plus one
# pixel, the resolution of the fit).
_MAX_CENTER_SHIFT = 0.5
# Where to look for the head's outer bone edge, relative to the Hough circle, in mm.
_EDGE_SEARCH_MM = (-1.0, 3.0)
# Share of the normals that must find that edge for the refit to be trusted.
_MIN_EDGE_SHARE = 0.5
# Circles smaller than this (pixels) are too small to fit reliably.
_MIN_RADIUS_PX = 3.0


@dataclass
class SliceFit:
    """A circle found in slice ``index`` of the side frame."""

    index: int
    circle: Circle


def fit_slice(hu2d: np.ndarray, bone2d: np.ndarray, center_px: np.ndarray,
              search_px: tuple[float, float], prior_radius_px: float,
              radius_range_px: tuple[float, float], pixel_mm: float,
              params: Params) -> Circle | None:
    """Refine candidates along normals between ``search_px`` radii, fit a Hough circle, then
    move it onto the outer edge of the head's bone.

    Works on a crop around ``center_px`` so the enhancement percentile is local to the joint.
    """
    half = int(np.ceil(max(search_px[1], radius_range_px[1]))) + 6
    y0, x0 = (int(round(c)) - half for c in center_px)
    y0c, x0c = max(y0, 0), max(x0, 0)
    crop = hu2d[y0c:y0 + 2 * half + 1, x0c:x0 + 2 * half + 1]
    if min(crop.shape) < 8:
        return None
    offset = np.array([y0c, x0c], dtype=float)
    points = boundary_candidates(crop, center_px - offset, search_px[0], search_px[1], pixel_mm,
                                 params)
    circle = hough_fit(points, crop.shape, radius_range_px, prior_radius_px, params.hough_peaks,
                       params.use_ahs)
    if circle is None:
        return None
    circle.center_px = circle.center_px + offset
    circle.points_px = circle.points_px + offset
    return snap_to_bone_edge(circle, bone2d, pixel_mm, params.n_rays)


def snap_to_bone_edge(circle: Circle, bone2d: np.ndarray, pixel_mm: float, n_rays: int) -> Circle:
    """Refit ``circle`` to the outer edge of the bone mask next to it.

    The candidates of eqs. 3-5 sit where the intensity rises into the cortex, about half a
    cortex inside the head's surface; the surface itself is where the bone mask ends. Along
    each normal the first bone-to-background step within ``_EDGE_SEARCH_MM`` of the circle is
    taken. Where the joint space is not resolved (no step on most normals) the circle is kept.
    """
    lo_px, hi_px = (d / pixel_mm for d in _EDGE_SEARCH_MM)
    start = max(circle.radius_px + lo_px, 1.0)
    solid = ndimage.binary_fill_holes(bone2d).astype(np.float32)  # spongy gaps are not the edge
    profiles, positions = sample_normals(solid, circle.center_px, start,
                                         circle.radius_px + hi_px, n_rays, step_px=0.25)
    inside = profiles >= 0.5
    leaving = inside[:, :-1] & ~inside[:, 1:]
    has_edge = leaving.any(axis=1) & inside[:, 0]
    if has_edge.sum() < _MIN_EDGE_SHARE * n_rays:
        return circle
    first = np.argmax(leaving, axis=1)
    edges = positions[np.flatnonzero(has_edge), first[has_edge]]
    fitted = fit_circle_least_squares(edges)
    if fitted is None or abs(fitted[1] - circle.radius_px) > hi_px:
        return circle
    return Circle(fitted[0], fitted[1], circle.points_px, circle.votes)


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


def propagate(hu: np.ndarray, bone: np.ndarray, start: SliceFit, step: int, max_slices: int,
              pixel_mm: float, params: Params,
              cancel: Callable[[], bool] | None = None) -> list[SliceFit]:
    """Follow the head from ``start`` slice by slice in direction ``step`` (+1 up, -1 down),
    at most ``max_slices`` slices.

    Each next slice: a snake initialised from the previous circle gives the new center, then
    candidates along its normals get a Hough fit with the radius held within
    ``params.propagation_radius_window`` of the previous radius (AHS prior: that radius).
    Stops at the first slice without a credible circle.
    """
    fits: list[SliceFit] = []
    previous = start.circle
    lo, hi = params.propagation_radius_window
    k = start.index + step
    while (0 <= k < hu.shape[0] and len(fits) < max_slices
           and previous.radius_px * lo >= _MIN_RADIUS_PX):
        if cancel is not None and cancel():
            raise Cancelled("Femoral head propagation was cancelled.")
        center = _snake_center(hu[k], previous, params.n_rays)
        r = previous.radius_px
        circle = fit_slice(hu[k], bone[k], center, (r / params.rough_shrink, r * params.search_extent),
                           r, (r * lo, r * hi), pixel_mm, params)
        if circle is None:
            break
        shift = np.linalg.norm(circle.center_px - previous.center_px)
        filled = ndimage.binary_fill_holes(bone[k])
        if shift > _MAX_CENTER_SHIFT * r + 1.0 or _bone_share(filled, circle) < _MIN_BONE_SHARE:
            break
        fits.append(SliceFit(k, circle))
        previous = circle
        k += step
    return fits
