"""Hough circle fit to candidate boundary points, with anatomy-prior selection (AHS)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from skimage.transform import hough_circle, hough_circle_peaks

from .geometry import fit_sphere_least_squares

# Candidates farther than this (pixels, at least) from the circle are dropped before the
# least-squares refinement, so a concentric acetabular edge a joint space away cannot pull it.
_INLIER_PX = 1.5
# Fewest inliers for a circle to be trusted.
_MIN_INLIERS = 12
# AHS chooses by radius among the peaks with at least this share of the strongest one's votes.
# The head's own boundary is a whole ring of candidates; a circle that mixes half of it with the
# acetabular wall a joint space away gets fewer votes, yet may lie closer to a prior that is
# itself a little too large (a head merged with its neck in the initial slice).
_AHS_MIN_VOTE_SHARE = 0.85


@dataclass
class Circle:
    """A circle in slice pixel coordinates (y, x) with the boundary points that support it."""

    center_px: np.ndarray
    radius_px: float
    points_px: np.ndarray  # (n, 2) inlier boundary points
    votes: float


def hough_fit(points_px: np.ndarray, shape: tuple[int, int], radius_range_px: tuple[float, float],
              prior_radius_px: float, n_peaks: int, use_ahs: bool,
              plausible: Callable[[np.ndarray, float], bool] | None = None) -> Circle | None:
    """Fit a circle to candidate points with the Hough transform.

    ``plausible(center, radius)``, when given, screens the peaks first (all are kept when
    none passes).

    AHS (``use_ahs``) picks, among the ``n_peaks`` strongest peaks, the circle whose radius is
    closest to the anatomy radius ``prior_radius_px``, leaving out peaks with less than
    ``_AHS_MIN_VOTE_SHARE`` of the strongest one's votes; without AHS the strongest peak wins.
    Candidates far from the chosen circle are then dropped (statistical distance filter) and
    the circle is refined by least squares on the rest.
    """
    r_lo, r_hi = max(2, int(np.floor(radius_range_px[0]))), int(np.ceil(radius_range_px[1]))
    if len(points_px) < _MIN_INLIERS or r_hi < r_lo:
        return None
    image = np.zeros(shape, dtype=bool)
    idx = np.round(points_px).astype(int)
    inside = (idx >= 0).all(axis=1) & (idx[:, 0] < shape[0]) & (idx[:, 1] < shape[1])
    image[idx[inside, 0], idx[inside, 1]] = True
    radii = np.arange(r_lo, r_hi + 1)
    accumulator = hough_circle(image, radii)
    votes, cx, cy, found = hough_circle_peaks(accumulator, radii, total_num_peaks=n_peaks)
    if len(votes) == 0:
        return None
    if plausible is not None:
        ok = np.array([plausible(np.array([y, x], float), float(r)) for y, x, r in zip(cy, cx, found)])
        if ok.any():
            votes, cx, cy, found = votes[ok], cx[ok], cy[ok], found[ok]
    if use_ahs:
        strong = votes >= _AHS_MIN_VOTE_SHARE * votes.max()
        best = int(np.flatnonzero(strong)[np.argmin(np.abs(found[strong] - prior_radius_px))])
    else:
        best = int(np.argmax(votes))
    center = np.array([cy[best], cx[best]], dtype=float)
    radius = float(found[best])

    distance = np.abs(np.linalg.norm(points_px - center, axis=1) - radius)
    inliers = points_px[distance <= _INLIER_PX]
    if len(inliers) < _MIN_INLIERS:
        return None
    refined = fit_sphere_least_squares(inliers)
    if refined is not None and r_lo <= refined[1] <= r_hi:
        center, radius = refined
    return Circle(center, radius, inliers, float(votes[best]))
