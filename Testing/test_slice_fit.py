"""One slice's head circle (afs/slice_fit.py) where the joint is narrow and the spongy bone
about as dark as the joint space, as in osteoporotic bone."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from THAAnnotatorLib.afs.slice_fit import fit_slice
from THAAnnotatorLib.params import Params

PIXEL_MM = 0.6
HEAD_RADIUS_MM = 20.0


def joint_slice(spongy_hu: float, joint_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """An axial slice through a head (1 mm cortex of 700 HU around spongy bone) and, a joint
    space of ``joint_mm`` (40 HU) farther out, the acetabulum's cortex and spongy bone over
    220 deg; blurred as a scanner does (0.5 mm) with 15 HU of noise. Returns the slice and
    the head's center (pixels)."""
    n = 140
    yy, xx = (np.mgrid[:n, :n] - n / 2) * PIXEL_MM
    distance = np.hypot(yy, xx)
    hu = np.full((n, n), 40.0)
    hu[distance <= HEAD_RADIUS_MM] = spongy_hu
    hu[(distance > HEAD_RADIUS_MM - 1.0) & (distance <= HEAD_RADIUS_MM)] = 700.0
    cup = np.abs(np.degrees(np.arctan2(yy, xx))) > 70.0
    inner = HEAD_RADIUS_MM + joint_mm
    hu[cup & (distance > inner) & (distance <= inner + 1.0)] = 700.0
    hu[cup & (distance > inner + 1.0) & (distance <= inner + 10.0)] = spongy_hu
    hu = ndimage.gaussian_filter(hu, 0.5 / PIXEL_MM)
    hu += np.random.default_rng(0).normal(0.0, 15.0, hu.shape)
    return hu, np.array([n / 2, n / 2])


@pytest.mark.parametrize("spongy_hu", [100.0, 250.0])
@pytest.mark.parametrize("prior_mm", [HEAD_RADIUS_MM, 1.1 * HEAD_RADIUS_MM])
def test_the_circle_is_the_head_s_where_the_acetabulum_s_cortex_is_near(spongy_hu, prior_mm):
    """A 1.5 mm joint: the acetabulum's cortex lies inside the ring of HU that compared the
    head's inside with its outside (1-3 mm either side), so with spongy bone of 100 HU that
    comparison refused the head's surface and a circle mixing the head with the acetabulum
    won (20.8-20.9 mm, its center 1.2-1.3 mm off); with spongy bone of 250 HU it held. The
    head's surface has no second cortex inside its own."""
    hu, center = joint_slice(spongy_hu, joint_mm=1.5)
    params = Params()
    prior = prior_mm / PIXEL_MM
    circle = fit_slice(hu, center + 1.5, (prior / params.rough_shrink,
                                          prior * params.search_extent), prior,
                       (0.8 * prior, 1.2 * prior), PIXEL_MM, params)
    assert circle is not None
    assert abs(circle.radius_px * PIXEL_MM - HEAD_RADIUS_MM) <= 0.3
    assert np.linalg.norm(circle.center_px - center) * PIXEL_MM <= 0.3
