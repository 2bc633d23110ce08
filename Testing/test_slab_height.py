"""The head's height refitted to thick slices' partial volume (afs.slab_height)."""
import numpy as np
import pytest

from THAAnnotatorLib.afs.slab_height import refine_height_on_slabs
from THAAnnotatorLib.afs.sphere import Sphere

RADIUS_MM = 22.0
CENTER_MM = np.array([51.3, 30.0, 30.0])  # (z, y, x); the pole 0.3 mm above a slab's middle


def _layered_head(spacing_mm, noise_hu=15.0, seed=0):
    """A head in its joint, as concentric layers (cancellous bone, 2 mm cortex, a 2.5 mm joint
    space, the acetabulum), each voxel the mean over its slab's thickness (200 points)."""
    shape = (int(90 / spacing_mm[0]), int(60 / spacing_mm[1]), int(60 / spacing_mm[2]))
    z = (np.arange(shape[0])[:, None] + (np.arange(200) + 0.5) / 200 - 0.5) * spacing_mm[0]
    y = np.arange(shape[1]) * spacing_mm[1] - CENTER_MM[1]
    x = np.arange(shape[2]) * spacing_mm[2] - CENTER_MM[2]
    distance = np.sqrt((z[:, None, None, :] - CENTER_MM[0]) ** 2
                       + y[None, :, None, None] ** 2 + x[None, None, :, None] ** 2)
    layers = np.select([distance < RADIUS_MM - 2.0, distance < RADIUS_MM,
                        distance < RADIUS_MM + 2.5], [300.0, 900.0, 40.0], 800.0)
    hu = layers.mean(axis=-1)
    return hu + np.random.default_rng(seed).normal(0.0, noise_hu, hu.shape)


@pytest.mark.parametrize("offset_mm", [-1.0, -0.4, 0.6, 1.2])
def test_height_is_recovered_from_5_mm_slabs(offset_mm):
    spacing = np.array([5.0, 1.0, 1.0])
    start = Sphere(CENTER_MM + [offset_mm, 0.0, 0.0], RADIUS_MM)
    refined, shift = refine_height_on_slabs(_layered_head(spacing), start, spacing)
    assert shift is not None
    assert abs(refined.center_mm[0] - CENTER_MM[0]) <= 0.1
    np.testing.assert_array_equal(refined.center_mm[1:], start.center_mm[1:])
    assert refined.radius_mm == start.radius_mm
    assert start.center_mm[0] == CENTER_MM[0] + offset_mm  # the input is not changed


def test_slices_as_fine_as_their_pixels_keep_the_circles_height():
    spacing = np.array([2.0, 2.0, 2.0])
    start = Sphere(CENTER_MM + [0.6, 0.0, 0.0], RADIUS_MM)
    refined, shift = refine_height_on_slabs(_layered_head(spacing), start, spacing)
    assert shift is None and refined is start


@pytest.mark.parametrize("seed", range(5))
def test_no_layers_no_height(seed):
    """Noise alone has no clear best height: the circles' one stays."""
    spacing = np.array([5.0, 1.0, 1.0])
    hu = np.random.default_rng(seed).normal(40.0, 200.0, (18, 60, 60))
    start = Sphere(CENTER_MM.copy(), RADIUS_MM)
    refined, shift = refine_height_on_slabs(hu, start, spacing)
    assert shift is None and refined is start
