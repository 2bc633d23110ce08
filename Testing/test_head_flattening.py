"""A head flattened from top to bottom, found in its upper layers' voxels (afs.head_flattening)."""
import numpy as np
import pytest

from THAAnnotatorLib.afs.head_ellipsoid import Ellipsoid
from THAAnnotatorLib.afs.head_flattening import MAX_POLAR_SHARE, CappedSphere, flattened_head
from THAAnnotatorLib.afs.sphere import Sphere

RADIUS_MM = 22.0
CENTER_MM = np.array([45.3, 30.0, 30.0])  # (z, y, x)
SPACING_MM = np.array([2.0, 0.9, 0.9])


def _head_in_its_joint(polar_share: float, joint_mm: float = 1.5, noise_hu: float = 15.0,
                       seed: int = 0, cut_share: float | None = None) -> np.ndarray:
    """A head as nested spheroids of one shape (spongy bone, 2 mm cortex, the joint space,
    then acetabular bone), its vertical semi-axis ``polar_share`` x the radius, its layers cut
    flat ``cut_share`` x the radius above the center where given; each voxel the mean over its
    2 mm slab (40 points), with noise."""
    shape = (int(80 / SPACING_MM[0]), int(60 / SPACING_MM[1]), int(60 / SPACING_MM[2]))
    z = (np.arange(shape[0])[:, None] + (np.arange(40) + 0.5) / 40 - 0.5) * SPACING_MM[0]
    y = np.arange(shape[1]) * SPACING_MM[1] - CENTER_MM[1]
    x = np.arange(shape[2]) * SPACING_MM[2] - CENTER_MM[2]
    level = np.sqrt(((z[:, None, None, :] - CENTER_MM[0]) / polar_share) ** 2
                    + y[None, :, None, None] ** 2 + x[None, None, :, None] ** 2)
    if cut_share is not None:  # below the plane as far inside as below the sphere, at most
        level = np.maximum(level, RADIUS_MM + z[:, None, None, :] - CENTER_MM[0]
                           - cut_share * RADIUS_MM)
    layers = np.select([level < RADIUS_MM - 2.0, level < RADIUS_MM,
                        level < RADIUS_MM + joint_mm], [250.0, 900.0, 40.0], 700.0)
    hu = layers.mean(axis=-1)
    return hu + np.random.default_rng(seed).normal(0.0, noise_hu, hu.shape)


def _sphere() -> Sphere:
    return Sphere(CENTER_MM.copy(), RADIUS_MM)


@pytest.mark.parametrize("polar_share", [0.8, 0.87])
def test_a_flattened_head_in_a_narrow_joint_gets_its_polar_axis(polar_share):
    """A 1.5 mm joint in 2 mm slices, where rays from the center do not see the top's joint."""
    spheroid = flattened_head(_head_in_its_joint(polar_share), _sphere(), SPACING_MM)
    assert isinstance(spheroid, Ellipsoid)
    low_mm, high_mm = spheroid.z_span_mm()
    assert high_mm - CENTER_MM[0] == pytest.approx(polar_share * RADIUS_MM, abs=0.6)
    assert CENTER_MM[0] - low_mm == pytest.approx(polar_share * RADIUS_MM, abs=0.6)
    np.testing.assert_allclose(sorted(spheroid.semi_axes_mm)[1:], RADIUS_MM)  # the equator's


@pytest.mark.parametrize("noise_hu", [15.0, 60.0])
def test_a_round_head_stays_a_sphere(noise_hu):
    assert flattened_head(_head_in_its_joint(1.0, noise_hu=noise_hu), _sphere(), SPACING_MM) is None


def test_a_round_head_whose_sphere_sits_too_high_is_not_called_flattened():
    """The circles' sphere 2.5 mm above the head's center reaches 2.5 mm past its top, as a
    flattened head's would; a sphere lower down explains the voxels as well, so it is no
    flattening."""
    hu = _head_in_its_joint(1.0)
    high = Sphere(CENTER_MM + [2.5, 0.0, 0.0], RADIUS_MM)
    assert flattened_head(hu, high, SPACING_MM) is None


def test_a_slight_flattening_is_left_to_the_sphere():
    """A top 1 mm low (share 0.95) is within what round heads show; it keeps its sphere."""
    assert 0.95 > MAX_POLAR_SHARE
    assert flattened_head(_head_in_its_joint(0.95), _sphere(), SPACING_MM) is None


def test_noise_alone_is_no_head_shape():
    hu = np.random.default_rng(3).normal(40.0, 200.0, (40, 66, 66))
    assert flattened_head(hu, _sphere(), SPACING_MM) is None


def test_a_head_cut_flat_on_top_keeps_its_sphere_below_the_cut():
    """The weight-bearing top cut flat at 0.82 of the radius: the labels' top is the cut's, 4 mm
    below the sphere's, and their bottom stays the sphere's."""
    head = flattened_head(_head_in_its_joint(1.0, cut_share=0.82), _sphere(), SPACING_MM)
    assert isinstance(head, CappedSphere)
    low_mm, high_mm = head.z_span_mm()
    assert high_mm - CENTER_MM[0] == pytest.approx(0.82 * RADIUS_MM, abs=0.6)
    assert CENTER_MM[0] - low_mm == pytest.approx(RADIUS_MM)
    # inside by the nearer surface: 1 mm under the cut on the axis, 1 mm inside the equator
    assert head.depth_mm(CENTER_MM + [head.top_mm - 1.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert head.depth_mm(CENTER_MM + [0.0, RADIUS_MM - 1.0, 0.0]) == pytest.approx(1.0)
    assert "cut flat" in head.describe()
