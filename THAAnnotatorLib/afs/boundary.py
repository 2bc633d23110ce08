"""Boundary refinement along the normals of a circle (paper 3.2, eqs. 3-5).

The slice is enhanced with a Hessian ridge filter (the thin bright cortex stands out, the
method of Liu et al. that the paper builds on) and everything below the ``enhance_percentile``
of the region is set to zero. Along each normal, sampled outward, a point p+1 is a candidate
when the second-order difference is positive (baseline, eq. 3); FSG also asks the first-order
difference to be positive (eq. 4); L-NMS keeps only the outermost point of each run (eq. 5).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import sato

from ..params import Params

# Hessian scales, in mm, matched to the thickness of the femoral head's cortex.
_RIDGE_SIGMAS_MM = (0.8, 1.4)


def enhance(hu_slice: np.ndarray, pixel_mm: float, percentile: float) -> np.ndarray:
    """Hessian ridge response of a slice region, zero below its ``percentile``-th percentile."""
    sigmas = [s / pixel_mm for s in _RIDGE_SIGMAS_MM]
    response = sato(hu_slice.astype(np.float32), sigmas=sigmas, black_ridges=False)
    cut = np.percentile(response, percentile)
    return np.where(response >= cut, response, 0.0).astype(np.float32)


def sample_normals(image: np.ndarray, center_px: np.ndarray, r_from_px: float, r_to_px: float,
                   n_rays: int, step_px: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``image`` along ``n_rays`` normals of a circle, outward from r_from to r_to.

    Returns (profiles (n_rays, n_samples), positions (n_rays, n_samples, 2) in (y, x) pixels).
    """
    angles = np.linspace(0.0, 2.0 * np.pi, n_rays, endpoint=False)
    radii = np.arange(r_from_px, r_to_px + step_px, step_px)
    dirs = np.stack([np.sin(angles), np.cos(angles)], axis=1)
    positions = center_px[None, None, :] + radii[None, :, None] * dirs[:, None, :]
    profiles = ndimage.map_coordinates(image, positions.reshape(-1, 2).T, order=1, mode="constant")
    return profiles.reshape(n_rays, radii.size), positions


def candidate_mask(profiles: np.ndarray, use_fsg: bool, use_lnms: bool) -> np.ndarray:
    """Candidate boundary points along each profile (sampled outward) by eqs. 3-5."""
    d1 = np.diff(profiles, axis=1)  # d1[:, p] = S(p+1) - S(p): the first-order change at p+1
    rising_faster = np.zeros(profiles.shape, dtype=bool)
    rising_faster[:, 2:] = np.diff(d1, axis=1) > 0  # eq. 3 at p+1
    if use_fsg:
        rising_faster[:, 2:] &= d1[:, 1:] > 0  # eq. 4 adds dS(p+1) > 0
    if use_lnms:
        next_too = np.zeros_like(rising_faster)
        next_too[:, :-1] = rising_faster[:, 1:]
        rising_faster &= ~next_too  # eq. 5: drop p when p+1 is also a candidate
    return rising_faster


def boundary_candidates(hu_slice: np.ndarray, center_px: np.ndarray, r_from_px: float,
                        r_to_px: float, pixel_mm: float, params: Params) -> np.ndarray:
    """Candidate boundary points (n, 2) in (y, x) pixels around a circle in a slice."""
    enhanced = enhance(hu_slice, pixel_mm, params.enhance_percentile)
    profiles, positions = sample_normals(enhanced, center_px, r_from_px, r_to_px, params.n_rays)
    return positions[candidate_mask(profiles, params.use_fsg, params.use_lnms)]
