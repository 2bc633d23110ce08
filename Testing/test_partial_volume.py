"""The acetabulum's fill from the CT's partial volume (THAAnnotatorLib.measure.partial_volume):
where a flat bone surface crosses a thick slice, the fill's half level lies within 0.09 of a
slice of it; a label's edge lies up to half a slice off."""
from __future__ import annotations

import numpy as np
import pytest

from THAAnnotatorLib.measure.partial_volume import bone_levels_hu, edge_fill

SLICE_MM = 5.0
SPACING_MM = (SLICE_MM, 0.8, 0.8)
BONE_HU, SOFT_HU = 1200.0, 30.0


def plate(surface_mm: float):
    """A column of slices (centers at 0, 5, 10, ... mm) with bone below ``surface_mm``, each
    slice's HU the share of it that bone fills; the label holds every slice bone reaches
    into, and a column of soft tissue beside it."""
    centers = np.arange(12) * SLICE_MM
    filled = np.clip((surface_mm - (centers - SLICE_MM / 2)) / SLICE_MM, 0.0, 1.0)
    hu = np.stack([SOFT_HU + filled * (BONE_HU - SOFT_HU), np.full(12, SOFT_HU)], axis=1)
    label = np.stack([filled > 0, np.zeros(12, bool)], axis=1)
    return centers, hu[:, :, None], label[:, :, None]


def fill_of(hu: np.ndarray, label: np.ndarray, spacing_mm) -> np.ndarray:
    """The fill of a label that is the whole bone mask too."""
    return edge_fill(hu, label, bone_levels_hu(hu, label, label), spacing_mm)


def half_level_mm(centers: np.ndarray, values: np.ndarray) -> float:
    """Where the values, linear between slice centers, fall through 0.5."""
    k = int(np.flatnonzero((values[:-1] >= 0.5) & (values[1:] < 0.5))[0])
    return centers[k] + (values[k] - 0.5) / (values[k] - values[k + 1]) * SLICE_MM


@pytest.mark.parametrize("surface_mm", np.linspace(20.1, 24.9, 13))
def test_the_fill_places_a_flat_surface_within_a_tenth_of_a_slice(surface_mm):
    centers, hu, label = plate(surface_mm)
    fill = fill_of(hu, label, SPACING_MM)
    assert abs(half_level_mm(centers, fill[:, 0, 0]) - surface_mm) <= 0.09 * SLICE_MM
    assert np.all(fill[:4, 0, 0] == 1.0)  # slices the bone fills stay whole


def test_a_label_alone_reads_up_to_half_a_slice_beyond_the_surface():
    centers, hu, label = plate(20.2)  # bone reaches 0.2 mm into the slice centered at 22.5
    assert half_level_mm(centers, label[:, 0, 0].astype(float)) - 20.2 > 0.45 * SLICE_MM


def test_spongy_bone_inside_the_label_stays_whole():
    """Only the label's edge slices take the CT's share: a slice of dark spongy bone between
    two of cortex is not read as partly empty."""
    centers, hu, label = plate(40.0)
    hu[3, 0, 0] = 250.0  # spongy, well inside
    assert fill_of(hu, label, SPACING_MM)[3, 0, 0] == 1.0


def test_without_contrast_the_label_is_left_as_it_is():
    centers, hu, label = plate(22.0)
    hu[:] = SOFT_HU  # no bone in the CT (a label drawn on another scan)
    assert np.array_equal(fill_of(hu, label, SPACING_MM), label.astype(np.float32))


def test_slices_about_as_fine_as_pixels_keep_the_label():
    """Where the slice axis is not the coarse one, a voxel's deficit is as much in-plane
    partial volume or spongy bone: the label is left as it is."""
    centers, hu, label = plate(22.0)
    assert np.array_equal(fill_of(hu, label, (SLICE_MM, SLICE_MM, SLICE_MM)),
                          label.astype(np.float32))
    assert not np.array_equal(fill_of(hu, label, (SLICE_MM, 3.0, 3.0)),
                              label.astype(np.float32))
