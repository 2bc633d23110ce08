"""The femoral head's articular sphere (afs/articular_sphere.py): on a head that is not a sphere,
the sphere fitted to its bearing surface, as a template measures it, not its middle's."""
from __future__ import annotations

import numpy as np
import pytest

from THAAnnotatorLib.afs.articular_sphere import (ARTICULAR_FROM_NECK_DEG, articular_sphere,
                                                  neck_axis)
from THAAnnotatorLib.afs.geometry import fit_sphere_least_squares, sphere_directions
from THAAnnotatorLib.afs.sphere import Sphere

SPACING = np.array([1.0, 0.8, 0.8])
SEMI_AXES_MM = np.array([17.0, 21.0, 20.0])  # (z, y, x): a head flattened from above
NECK = np.array([-0.7, 0.0, -0.7]) / np.sqrt(0.98)  # down and lateral (low x) in a side frame


@pytest.fixture(scope="module")
def flattened_head():
    """A flattened head of cortical density with a neck, in soft tissue: HU, head label, bone
    mask, its center (mm) and the sphere least-squares fitted to its surface away from the
    neck (the truth)."""
    shape = (70, 90, 90)
    center = np.array([40.0, 36.0, 40.0])
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, SPACING)],
                                indexing="ij"), axis=-1) - center
    head = ((grid / SEMI_AXES_MM) ** 2).sum(axis=-1) <= 1.0
    along = grid @ NECK
    neck = (along > 0) & (along < 40.0) & (np.linalg.norm(grid - along[..., None] * NECK,
                                                          axis=-1) < 9.0)
    hu = np.where(head | neck, 900.0, 40.0)
    directions = sphere_directions(4000, -1.0)
    directions = directions[directions @ NECK < np.cos(np.radians(ARTICULAR_FROM_NECK_DEG))]
    surface = directions / np.sqrt(((directions / SEMI_AXES_MM) ** 2).sum(axis=1))[:, None]
    truth_center, truth_radius = fit_sphere_least_squares(surface + center)
    return hu, head, head | neck, center, Sphere(truth_center, truth_radius)


def test_the_neck_axis_points_down_the_neck(flattened_head):
    hu, head, bone, center, _ = flattened_head
    axis = neck_axis(bone, Sphere(center, 20.0), SPACING)
    assert np.degrees(np.arccos(axis @ NECK)) < 10.0


def test_a_flattened_head_gets_the_size_of_its_bearing_surface(flattened_head):
    """Started from the sphere of the head's middle (radius 20.5 mm, what the slices' circles
    give, 1.9 mm too large across), the articular sphere lands within 0.4 mm of the truth."""
    hu, head, bone, center, truth = flattened_head
    start = Sphere(center, 20.5)
    assert abs(2 * (start.radius_mm - truth.radius_mm)) > 1.5
    fitted = articular_sphere(hu, head, bone, start, SPACING)
    assert fitted is not None
    assert 2 * fitted.radius_mm == pytest.approx(2 * truth.radius_mm, abs=0.4)
    assert np.linalg.norm(fitted.center_mm - truth.center_mm) < 0.5


def test_no_neck_no_articular_sphere(flattened_head):
    hu, head, _, center, _ = flattened_head
    assert articular_sphere(hu, head, head, Sphere(center, 20.5), SPACING) is None
