"""One axial slice's femoral head circle: candidates along normals, Hough fit with AHS, and
the refit onto the head's surface; plus the per-slice record shared by the AFS steps."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..params import Params
from .boundary import boundary_candidates, sample_normals
from .geometry import fit_sphere_least_squares, parabola_vertex_offset
from .hough import Circle, hough_fit

# Where to look for the head's surface: within _SURFACE_SEARCH_MM (and _MIN_SEARCH_PX) of the
# Hough circle; the cortex's brightest point up to _CORTEX_SEARCH_MM (and half a pixel) outside.
_SURFACE_SEARCH_MM = 2.0
# Where none is found so, up to _THICK_CORTEX_SEARCH_MM: the Hough circle lies on the rise into
# the cortex, up to a cortex's thickness inside the surface, which is up to 3 mm where the
# subchondral bone is thick (sclerosis; the sweep draws 0.6-3 mm). With 2 mm only, such heads'
# sections stayed on the cortex's inner edge, 2 mm small, and only the 3-D refit mended them
# (on the sweep's 256 hips 23 refits, each marking its hip for review). Searching 3 mm out at
# once took the acetabulum's cortex beyond a closed or narrowed joint instead.
_THICK_CORTEX_SEARCH_MM = 3.0
_MIN_SEARCH_PX = 1.5
_CORTEX_SEARCH_MM = 0.5
# Drop from cortex to joint space (HU) that makes a surface point; surface points farther
# than _SURFACE_INLIER_MM from the first fit are left out of the second.
MIN_SURFACE_CONTRAST_HU = 150.0
_SURFACE_INLIER_MM = 1.5
# How far (mm, plus a pixel) a section's center may lie from the head's center so far. That
# center carries the error of the sections found so far: with 5 mm slices, those below the
# equator (the neck in the same slab) put it 3-4 mm off on some phantoms, where 1 mm refused
# the head's own circles and let the acetabular wall's pass.
_CENTER_TOLERANCE_MM = 2.0
# Rings compared by _bone_inside, in mm, and the normals sampled for them.
_POLARITY_GAP_MM, _POLARITY_BAND_MM = 1.0, 2.0
_POLARITY_RAYS = 36
# What _second_cortex_share reads: the slice smoothed over _RIDGE_SMOOTH_MM (a Gaussian's sigma;
# noise of 40-60 HU otherwise makes rises of 100 HU in spongy bone), along _RIDGE_RAYS normals
# from the surface inward up to _RIDGE_REACH_MM (at most half the radius, not across the
# center), the surface's own cortex the brightest point within _OWN_CORTEX_MM of it; a second
# cortex rises at least _SECOND_CORTEX_RISE_HU over the darkest point after the first. A
# surface with a second cortex on more than _MAX_SECOND_CORTEX_SHARE of its normals is not the
# head's. Judged against the drawn heads on the sweep (seeds 0-2 of the native classes, 22
# hips, 4174 Hough peaks): the rings took 2274 of the 2561 peaks on the head's surface (926 of
# 1181 on low_density) and 1396 of 1613 wrong ones. The heads' surfaces have a share of 0.10
# at most on low_density (where the rings fail), and at most 0.11 at the 90th percentile of every
# class. This test alone refused the surfaces of heads that are not round (head_shape seeds 6,
# 8 and 11 right went wrong), so it only adds to the rings: together they take 2555 and 1536.
# With a share of 0.3 allowed, it took a 5 mm slab's wrong surfaces (phantom seed 11 right at
# 1 mm / 5 mm, +2.9 mm); with 0.15, not. It sees 5 mm inside a surface, so it tells nothing of a
# surface farther out than that: one larger than any head's (params.max_head_radius_mm) is not
# taken by it (sweep typical seed 13 left, whose first section read 29.8 mm in radius against
# 23.1: surfaces of 36-37 mm radius passed above it, and the head read 3.8 mm small).
_RIDGE_SMOOTH_MM = 0.6
_RIDGE_RAYS = 72
_RIDGE_REACH_MM = 5.0
_OWN_CORTEX_MM = 1.5
_SECOND_CORTEX_RISE_HU = 100.0
_MAX_SECOND_CORTEX_SHARE = 0.15
# Share of the normals that must find the surface for the refit to be trusted.
_MIN_EDGE_SHARE = 0.5


@dataclass
class SliceFit:
    """A circle found in slice ``index`` of the side frame."""

    index: int
    circle: Circle


def fit_slice(hu2d: np.ndarray, center_px: np.ndarray, search_px: tuple[float, float],
              prior_radius_px: float, radius_range_px: tuple[float, float], pixel_mm: float,
              params: Params, head_center_px: np.ndarray | None = None) -> Circle | None:
    """Refine candidates along normals between ``search_px`` radii, fit a Hough circle, then
    move it onto the head's outer surface (:func:`snap_to_surface`).

    Works on a crop around ``center_px`` so the enhancement percentile is local to the joint.
    Hough peaks must lead to a surface that looks like the head's boundary, brighter inside
    than outside (:func:`_bone_inside`) or with no second cortex inside its own
    (:func:`_second_cortex_share`), and, when the head's center is known from the slices before
    (``head_center_px``), is centered near it: the sections of a sphere share one center.
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
    tolerance_px = _CENTER_TOLERANCE_MM / pixel_mm + 1.0
    smoothed = ndimage.gaussian_filter(crop.astype(np.float32), _RIDGE_SMOOTH_MM / pixel_mm)

    def plausible(center: np.ndarray, radius: float) -> bool:
        # judged on the surface the peak leads to: a Hough circle on the head lies about half a
        # cortex inside it, where the rings of _bone_inside would straddle the bright cortex
        surface = snap_to_surface(Circle(center, radius, np.empty((0, 2)), 0.0), crop, pixel_mm,
                                  params.n_rays)
        near = (head_center_px is None
                or np.linalg.norm(surface.center_px + offset - head_center_px) <= tolerance_px)
        return near and (_bone_inside(crop, surface.center_px, surface.radius_px, pixel_mm)
                         or (surface.radius_px * pixel_mm <= params.max_head_radius_mm
                             and _second_cortex_share(smoothed, surface.center_px,
                                                      surface.radius_px, pixel_mm)
                             <= _MAX_SECOND_CORTEX_SHARE))

    circle = hough_fit(points, crop.shape, radius_range_px, prior_radius_px, params.hough_peaks,
                       params.use_ahs, plausible)
    if circle is None:
        return None
    circle.center_px = circle.center_px + offset
    circle.points_px = circle.points_px + offset
    return snap_to_surface(circle, hu2d, pixel_mm, params.n_rays)


def _second_cortex_share(smoothed_hu2d: np.ndarray, center_px: np.ndarray, radius_px: float,
                         pixel_mm: float) -> float:
    """Share of the normals along which, inward of a surface and past its own cortex, a second
    cortex rises: the head's surface has its cortex just inside and the head's spongy bone
    beyond; the acetabulum's cortex falling into its spongy bone, the surface a circle a joint
    space too large finds, has the head's cortex a joint space farther in. Unlike comparing the
    HU inside with the HU outside, this holds where the spongy bone is about as dark as the
    joint space (osteoporotic bone) and where the acetabulum's cortex lies within a few mm
    outside the head (a narrow joint). ``smoothed_hu2d`` is the slice smoothed over
    ``_RIDGE_SMOOTH_MM``."""
    reach_px = min(_RIDGE_REACH_MM / pixel_mm, 0.5 * radius_px)
    step = 0.25
    profiles, _ = sample_normals(smoothed_hu2d, center_px, radius_px - reach_px, radius_px,
                                 _RIDGE_RAYS, step_px=step)
    inward = profiles[:, ::-1]
    n_own = min(int(round(_OWN_CORTEX_MM / pixel_mm / step)) + 1, inward.shape[1])
    own_at = np.argmax(inward[:, :n_own], axis=1)
    past = np.arange(inward.shape[1])[None, :] >= own_at[:, None]
    darkest_so_far = np.minimum.accumulate(np.where(past, inward, np.inf), axis=1)
    rise = np.where(past, inward - darkest_so_far, 0.0)
    return float(np.mean(rise.max(axis=1) >= _SECOND_CORTEX_RISE_HU))


def _bone_inside(hu2d: np.ndarray, center_px: np.ndarray, radius_px: float, pixel_mm: float) -> bool:
    """Whether a circle is brighter just inside than just outside, as the femoral head's
    boundary is (bone in, joint space out); the acetabulum's inner surface, a joint space
    farther out, is the other way round. Compares the mean HU of two rings of
    ``_POLARITY_BAND_MM`` on either side, ``_POLARITY_GAP_MM`` from the circle."""
    inner_mm = (-_POLARITY_GAP_MM - _POLARITY_BAND_MM, -_POLARITY_GAP_MM)
    outer_mm = (_POLARITY_GAP_MM, _POLARITY_GAP_MM + _POLARITY_BAND_MM)
    means = []
    for lo, hi in (inner_mm, outer_mm):
        profiles, _ = sample_normals(hu2d, center_px, radius_px + lo / pixel_mm,
                                     radius_px + hi / pixel_mm, _POLARITY_RAYS)
        means.append(float(profiles.mean()))
    return means[0] > means[1]


def snap_to_surface(circle: Circle, hu2d: np.ndarray, pixel_mm: float, n_rays: int) -> Circle:
    """Refit ``circle`` to the head's outer surface: the steepest fall after the cortex.

    The candidates of eqs. 3-5 sit where the intensity rises into the cortex, half a cortex to a
    cortex inside the head's surface. Along each normal the cortex is the brightest point near
    the circle, the joint space the darkest point after it within ``_SURFACE_SEARCH_MM``, and the
    surface is where the intensity falls fastest between the two (sub-pixel, by a parabola
    through the slopes). Where too few normals find that surface (a cortex thicker than the
    reach), it is looked for up to ``_THICK_CORTEX_SEARCH_MM`` out, the joint space then being
    the first dip at least ``MIN_SURFACE_CONTRAST_HU`` below the cortex (the darkest point so
    far out can be the acetabulum's spongy bone behind its cortex).
    Measured on the phantoms (2 mm slices), the half-way level between cortex and joint space
    put the sections of the head's upper half, under the acetabulum, 0.2-0.9 mm inside the
    surface (the more, the nearer the pole), which moved the sphere down; the steepest fall
    puts them 0.0-0.4 mm inside.
    Normals without a clear drop (a joint space thinner than the resolution, the neck) are
    left out; with too few left the circle is kept.
    """
    return (_snap(circle, hu2d, pixel_mm, n_rays, _SURFACE_SEARCH_MM, first_dip=False)
            or _snap(circle, hu2d, pixel_mm, n_rays, _THICK_CORTEX_SEARCH_MM, first_dip=True)
            or circle)


def _snap(circle: Circle, hu2d: np.ndarray, pixel_mm: float, n_rays: int, reach_mm: float,
          first_dip: bool) -> Circle | None:
    """:func:`snap_to_surface` with a reach of ``reach_mm`` either side of the circle, the joint
    space the first dip (``first_dip``) or the darkest point after the cortex; None where too
    few normals find the surface or it lies beyond the reach."""
    reach_px = max(reach_mm / pixel_mm, _MIN_SEARCH_PX)
    peak_px = max(_CORTEX_SEARCH_MM / pixel_mm, 0.5)
    step = 0.25
    start = max(circle.radius_px - reach_px, 1.0)
    profiles, positions = sample_normals(hu2d, circle.center_px, start, circle.radius_px + reach_px,
                                         n_rays, step_px=step)
    n_peak = min(int(round((circle.radius_px + peak_px - start) / step)) + 1, profiles.shape[1])
    peak_at = np.argmax(profiles[:, :n_peak], axis=1)
    rows = np.arange(n_rays)
    samples = np.arange(profiles.shape[1])[None, :]
    low = (samples > peak_at[:, None]) & (
        profiles <= profiles[rows, peak_at][:, None] - MIN_SURFACE_CONTRAST_HU)
    if first_dip:
        turns = np.ones(profiles.shape, dtype=bool)
        turns[:, :-1] = profiles[:, 1:] >= profiles[:, :-1]
        low &= turns
    else:  # the darkest point after the cortex, where it lies low enough
        darkest = np.argmin(np.where(samples >= peak_at[:, None], profiles, np.inf), axis=1)
        low &= samples == darkest[:, None]
    ok = low.any(axis=1)
    valley_at = np.argmax(low, axis=1)
    if ok.sum() < _MIN_EDGE_SHARE * n_rays:
        return None
    edges = _steepest_fall(profiles[ok], positions[ok], peak_at[ok], valley_at[ok])
    fitted = fit_sphere_least_squares(edges)
    if fitted is None:
        return None
    distance = np.abs(np.linalg.norm(edges - fitted[0], axis=1) - fitted[1])
    fitted = fit_sphere_least_squares(edges[distance <= _SURFACE_INLIER_MM / pixel_mm])
    if fitted is None or abs(fitted[1] - circle.radius_px) > reach_px:
        return None
    return Circle(fitted[0], fitted[1], circle.points_px, circle.votes)


def _steepest_fall(profiles: np.ndarray, positions: np.ndarray, peak_at: np.ndarray,
                   valley_at: np.ndarray) -> np.ndarray:
    """Where each profile falls fastest between its peak and its valley, as (y, x) points.

    ``profiles`` (n, m) are sampled at ``positions`` (n, m, 2); the slope between samples i and
    i+1 is taken to lie at i + 1/2, and a parabola through the three slopes around the steepest
    one places the fall between samples.
    """
    slopes = np.diff(profiles, axis=1)
    index = np.arange(slopes.shape[1])[None, :]
    between = (index >= peak_at[:, None]) & (index < valley_at[:, None])
    steepest = np.argmin(np.where(between, slopes, np.inf), axis=1)
    rows = np.arange(len(profiles))
    before, after = np.maximum(steepest - 1, 0), np.minimum(steepest + 1, slopes.shape[1] - 1)
    s0, s1, s2 = slopes[rows, before], slopes[rows, steepest], slopes[rows, after]
    interior = (before < steepest) & (after > steepest)
    where = steepest + 0.5 + np.where(interior, parabola_vertex_offset(s0, s1, s2), 0.0)
    lower = np.minimum(np.floor(where).astype(int), positions.shape[1] - 2)
    fraction = (where - lower)[:, None]
    return positions[rows, lower] + fraction * (positions[rows, lower + 1] - positions[rows, lower])


def sections_mm(fits: list[SliceFit], spacing_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slice heights, in-plane centers (y, x) and radii of ``fits``, all in side-frame mm."""
    pixel_mm = float(np.mean(spacing_mm[1:]))
    return (np.array([f.index for f in fits]) * spacing_mm[0],
            np.array([f.circle.center_px for f in fits]) * spacing_mm[1:],
            np.array([f.circle.radius_px for f in fits]) * pixel_mm)
