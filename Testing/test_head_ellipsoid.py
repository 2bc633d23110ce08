"""The head's ellipsoid (afs/head_ellipsoid.py): the fit itself, and when a head keeps one."""
from __future__ import annotations

import numpy as np
import pytest

from THAAnnotatorLib.afs.geometry import sphere_directions
from THAAnnotatorLib.afs.head_ellipsoid import (Ellipsoid, fit_ellipsoid, head_ellipsoid,
                                                surface_ellipsoid)
from THAAnnotatorLib.afs.sphere import Sphere


def _rotation(angle_deg: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def test_the_fit_recovers_a_tilted_ellipsoid_from_noisy_points():
    rng = np.random.default_rng(0)
    axes_mm, center_mm = np.array([18.0, 21.0, 23.0]), np.array([40.0, 50.0, 60.0])
    turn = _rotation(30.0)
    unit = sphere_directions(600, -0.2)  # the upper part only, as the head's rays see it
    points = center_mm + (unit * axes_mm) @ turn.T + rng.normal(0.0, 0.2, (len(unit), 3))
    fitted = fit_ellipsoid(points)
    assert fitted is not None
    np.testing.assert_allclose(fitted.semi_axes_mm, axes_mm, atol=0.5)
    np.testing.assert_allclose(fitted.center_mm, center_mm, atol=0.5)
    # its surface: depth 0 on it, 1 mm inside a point moved 1 mm toward the center
    surface = center_mm + (unit[:5] * axes_mm) @ turn.T
    np.testing.assert_allclose(fitted.depth_mm(surface), 0.0, atol=0.3)
    inward = surface - (surface - center_mm) / np.linalg.norm(surface - center_mm, axis=1)[:, None]
    np.testing.assert_allclose(fitted.depth_mm(inward), 1.0, atol=0.3)


def test_z_span_of_a_tilted_ellipsoid():
    turn = _rotation(90.0)  # its 10 mm axis turned from z onto y: z spans the 20 mm one
    shape = turn @ np.diag(1.0 / np.array([10.0, 20.0, 30.0]) ** 2) @ turn.T
    assert Ellipsoid(np.array([5.0, 0.0, 0.0]), shape).z_span_mm() == pytest.approx((-15.0, 25.0))


def test_points_on_a_hyperboloid_are_no_ellipsoid():
    z, angle = np.meshgrid(np.linspace(-10, 10, 9), np.linspace(0, 2 * np.pi, 24, endpoint=False))
    ring_mm = np.sqrt(100.0 + z * z)  # y^2 + x^2 - z^2 = 100: a waisted tube, not a closed shape
    tube = np.column_stack([z.ravel(), (ring_mm * np.sin(angle)).ravel(),
                            (ring_mm * np.cos(angle)).ravel()])
    assert fit_ellipsoid(tube) is None
    assert fit_ellipsoid(tube[:8]) is None  # fewer points than unknowns


def _head_ct(axes_mm: tuple[float, float, float], spacing_mm=(1.0, 0.8, 0.8)) -> tuple:
    """A bright head shell (cortex 1.5 mm) with spongy bone inside, in soft tissue."""
    spacing = np.asarray(spacing_mm)
    shape = (np.array([70.0, 70.0, 70.0]) / spacing).astype(int)
    center = np.array([35.0, 35.0, 35.0])
    grid = np.stack(np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)),
                                indexing="ij"), axis=-1)
    level = np.sqrt((((grid - center) / np.asarray(axes_mm)) ** 2).sum(axis=-1))
    hu = np.where(level <= 1.0, 1200.0, 40.0)
    hu[level <= 1.0 - 1.5 / min(axes_mm)] = 250.0
    return hu, Sphere(center, float(np.mean(axes_mm))), spacing


def test_a_round_head_keeps_its_sphere():
    hu, sphere, spacing = _head_ct((21.0, 21.0, 21.0))
    assert head_ellipsoid(hu, sphere, spacing) is None


def test_a_head_flattened_along_the_body_axis_keeps_an_ellipsoid():
    hu, sphere, spacing = _head_ct((17.0, 21.0, 21.0))
    ellipsoid = head_ellipsoid(hu, sphere, spacing)
    assert ellipsoid is not None
    low, high = ellipsoid.z_span_mm()
    assert high - 35.0 == pytest.approx(17.0, abs=1.0)  # its top, not its sphere's (19.7 mm)


def test_no_ellipsoid_in_slices_farther_apart_than_the_rays_are_made_for():
    """The same flattened head in slices 3.5 mm apart keeps its sphere. (The module refuses
    such scans before any fit; on this drawn head the fit alone keeps no ellipsoid there
    either, so this checks the behaviour, not that line.)"""
    hu, sphere, spacing = _head_ct((17.0, 21.0, 21.0), spacing_mm=(3.5, 0.8, 0.8))
    assert head_ellipsoid(hu, sphere, spacing) is None


def test_a_sphere_that_followed_a_head_s_short_axis_is_outgrown():
    """A head 17 mm from front to back and 21 mm otherwise, its sphere as small as the short
    axis (as the slices' sphere came out on such a head at 2.5 mm slices): the surface's
    ellipsoid is refused for the labels (larger than the sphere all round) but says the sphere
    is too small along two axes. Around the head's mean radius it does not."""
    hu, sphere, spacing = _head_ct((21.0, 17.0, 21.0))
    small = Sphere(sphere.center_mm, 17.0)
    fit = surface_ellipsoid(hu, small, spacing)
    assert fit is not None and not fit.is_head_shape and fit.outgrows_sphere
    fit = surface_ellipsoid(hu, sphere, spacing)
    assert fit is not None and not fit.outgrows_sphere


def test_a_round_head_s_sphere_is_not_outgrown():
    hu, sphere, spacing = _head_ct((21.0, 21.0, 21.0))
    fit = surface_ellipsoid(hu, sphere, spacing)
    assert fit is None or not fit.outgrows_sphere
