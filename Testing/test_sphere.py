"""The femoral head's sphere from per-slice circles, with the errors thick slices bring."""
from __future__ import annotations

import numpy as np

from THAAnnotatorLib.afs.sphere import fit_sphere, section_radii_mm

RADIUS_MM, CENTER_Z_MM, SLAB_MM = 24.0, 101.3, 5.0
CENTER_YX_MM = [50.0, 60.0]
# slab centers of a 5 mm scan through the head, the nearest 1.3 mm below its center
Z_MM = CENTER_Z_MM - 1.3 + SLAB_MM * np.arange(-4, 5)


def _sections(z_mm: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(RADIUS_MM**2 - (z_mm - CENTER_Z_MM) ** 2, 0.0))


def _fit(radii_mm: np.ndarray, slab_mm: float = SLAB_MM, z_mm: np.ndarray = Z_MM):
    return fit_sphere(z_mm, np.tile(CENTER_YX_MM, (len(z_mm), 1)), radii_mm, slab_mm=slab_mm)


def _assert_near_truth(sphere, tolerance_mm: float) -> None:
    assert abs(sphere.center_mm[0] - CENTER_Z_MM) <= tolerance_mm, sphere
    assert abs(sphere.radius_mm - RADIUS_MM) <= tolerance_mm, sphere
    np.testing.assert_allclose(sphere.center_mm[1:], CENTER_YX_MM)


def test_circles_that_took_in_the_neck_do_not_steer_the_sphere():
    radii = _sections(Z_MM)
    radii[[1, 2]] += 4.0  # two slices below the equator, circles around head and neck
    _assert_near_truth(_fit(radii), 0.3)


def test_exact_sections_give_the_sphere_back():
    z = CENTER_Z_MM + 2.0 * np.arange(-10, 11)
    sphere = _fit(_sections(z), slab_mm=2.0, z_mm=z)
    _assert_near_truth(sphere, 1e-6)
    np.testing.assert_allclose(section_radii_mm(sphere, z), _sections(z), atol=1e-6)


def test_a_neck_below_the_head_is_not_taken_for_its_lower_half():
    """3 mm slices: the head's circles from 9 mm below its center up, and below them five
    circles around the neck, narrowing downward as in the real CT of ../shared/data."""
    z = CENTER_Z_MM + 3.0 * np.arange(-8, 8)
    radii = _sections(z)
    radii[:5] = [9.6, 13.5, 14.7, 15.3, 15.4]
    _assert_near_truth(_fit(radii, slab_mm=3.0, z_mm=z), 0.3)
