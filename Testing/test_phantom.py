"""Tests of the synthetic hip CT phantom (THAAnnotatorLib.phantom)."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from THAAnnotatorLib.phantom import (
    LEFT_FEMUR,
    PELVIS,
    RIGHT_FEMUR,
    generate_phantom,
    phantom_to_sitk,
)
from THAAnnotatorLib.volume import canonicalize

FEMUR = {"right": RIGHT_FEMUR, "left": LEFT_FEMUR}
COARSE = dict(spacing_mm=(3.0, 1.6, 1.6))


@pytest.fixture(scope="module")
def fine():
    """Default in-plane resolution, shorter z field of view (head center ~36 mm above the bottom)."""
    return generate_phantom(spacing_mm=(2.0, 0.8, 0.8), fov_mm=(80.0, 280.0, 400.0), seed=1)


@pytest.fixture(scope="module")
def coarse():
    return generate_phantom(seed=3, **COARSE)


def head_index(ph, side):
    return np.round(ph.volume.ras_mm_to_index(np.array(ph.heads[side].center_ras_mm))).astype(int)


def test_deterministic_for_a_seed():
    a = generate_phantom(seed=5, **COARSE)
    b = generate_phantom(seed=5, **COARSE)
    c = generate_phantom(seed=6, **COARSE)
    np.testing.assert_array_equal(a.volume.hu, b.volume.hu)
    np.testing.assert_array_equal(a.part_map, b.part_map)
    assert a.heads == b.heads
    assert not np.array_equal(a.volume.hu, c.volume.hu)
    assert a.heads["right"].center_ras_mm != c.heads["right"].center_ras_mm


def test_shape_spacing_and_types(coarse):
    vol = coarse.volume
    assert vol.shape == (53, 175, 250)  # round(fov / spacing) with the default fov (160, 280, 400)
    np.testing.assert_allclose(vol.spacing_mm, (3.0, 1.6, 1.6))
    assert vol.hu.dtype == np.float32
    assert coarse.part_map.shape == vol.shape and coarse.part_map.dtype == np.uint8
    assert set(np.unique(coarse.part_map)) == {0, PELVIS, RIGHT_FEMUR, LEFT_FEMUR}
    assert vol.hu.min() >= -1024 and vol.hu.max() <= 3071
    # canonical axes: z -> S, y -> P, x -> L (positive spacing on the diagonal)
    m = vol.index_to_lps
    assert m[0, 2] > 0 and m[1, 1] > 0 and m[2, 0] > 0
    # air around the body, soft tissue inside, bone bright
    assert np.median(vol.hu[:, 0, :]) < -900
    assert np.median(vol.hu[coarse.part_map == 0][::50]) < 100
    assert np.median(vol.hu[coarse.part_map > 0]) > 150


def test_heads_inside_their_femur(coarse, fine):
    for ph in (coarse, fine):
        assert set(ph.heads) == {"right", "left"}
        for side, head in ph.heads.items():
            k, j, i = head_index(ph, side)
            assert ph.part_map[k, j, i] == FEMUR[side]
        assert ph.heads["right"].radius_mm == 24.0 and ph.heads["left"].radius_mm == 23.0


def test_left_right_orientation(coarse):
    # RAS: +x is patient Right, so the right hip has positive RAS x and the left hip negative.
    assert coarse.heads["right"].center_ras_mm[0] > 40
    assert coarse.heads["left"].center_ras_mm[0] < -40
    # canonical x points to patient Left: the right hip is at low x index
    assert head_index(coarse, "right")[2] < coarse.volume.shape[2] // 2 < head_index(coarse, "left")[2]
    # and the right femur label sits on the low-x half
    xs = np.nonzero(coarse.part_map == RIGHT_FEMUR)[2]
    assert xs.max() < coarse.volume.shape[2] // 2


def test_femur_and_pelvis_never_touch(fine, coarse):
    for ph in (fine, coarse):
        femur = (ph.part_map == RIGHT_FEMUR) | (ph.part_map == LEFT_FEMUR)
        dist = ndimage.distance_transform_edt(~femur, sampling=ph.volume.spacing_mm)
        assert dist[ph.part_map == PELVIS].min() >= 2.0


def test_joint_space_is_soft_tissue(fine):
    """Just outside the head (R + 1.3 mm) above the center: soft tissue, not bone."""
    vol = fine.volume
    for side, head in fine.heads.items():
        c = np.array(head.center_ras_mm)
        k, j, i = np.round(vol.ras_mm_to_index(c + [0, 0, head.radius_mm + 1.3])).astype(int)
        assert fine.part_map[k, j, i] == 0
        assert vol.hu[k, j, i] < 300
        k, j, i = np.round(vol.ras_mm_to_index(c + [0, 0, head.radius_mm + 8.0])).astype(int)
        assert fine.part_map[k, j, i] == PELVIS  # acetabular roof


def test_head_and_trochanter_separate_above_neck(fine):
    """15 mm below the head center the femur slice is two blobs (head, greater trochanter);
    25 mm below it is one (the neck joins them)."""
    vol = fine.volume
    sz = vol.spacing_mm[0]
    for side in ("right", "left"):
        kc = vol.ras_mm_to_index(np.array(fine.heads[side].center_ras_mm))[0]
        counts = []
        for dz in (15.0, 25.0):
            femur = fine.part_map[int(round(kc - dz / sz))] == FEMUR[side]
            counts.append(ndimage.label(femur, structure=np.ones((3, 3)))[1])
        assert counts == [2, 1], (side, counts)


def test_greater_trochanter_top_below_head_center(fine):
    for side in ("right", "left"):
        top = fine.anatomy["sides"][side]["greater_trochanter_top_z_rel_mm"]
        assert -11.0 < top < -5.0


def test_trabecular_texture(fine):
    flat = generate_phantom(spacing_mm=(2.0, 0.8, 0.8), fov_mm=(80.0, 280.0, 400.0), seed=1,
                            spongy=False)
    for side in ("right", "left"):
        k, j, i = head_index(fine, side)
        r = int(0.5 * fine.heads[side].radius_mm / 0.8)
        core = (k, slice(j - r, j + r), slice(i - r, i + r))
        assert fine.volume.hu[core].std() > 80.0
        assert flat.volume.hu[core].std() < 30.0
        assert 150.0 < np.median(fine.volume.hu[core]) < 450.0
        # the cortex (both ends of a row through the center) is brighter than the cancellous bone
        n = int((fine.heads[side].radius_mm + 1.5) / 0.8)
        row = fine.volume.hu[k, j, i - n:i + n + 1]
        assert row[: n // 3].max() > 650 and row[-(n // 3):].max() > 650
        assert np.percentile(fine.volume.hu[core], 99) < 650


@pytest.mark.parametrize("storage", ["LPS", "RAS"])
def test_sitk_round_trip(coarse, storage, tmp_path):
    img = phantom_to_sitk(coarse, storage=storage)
    assert img.GetPixelID() == sitk.sitkInt16
    expected_dir = np.eye(3) if storage == "LPS" else np.diag([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(np.array(img.GetDirection()).reshape(3, 3), expected_dir)
    path = str(tmp_path / "phantom.nii.gz")
    sitk.WriteImage(img, path)
    back = sitk.ReadImage(path)
    vol = coarse.volume
    for side in ("right", "left"):
        k, j, i = head_index(coarse, side)
        nz, ny, nx = vol.shape
        sitk_index = (int(i), int(j), int(k)) if storage == "LPS" else (nx - 1 - int(i), ny - 1 - int(j), int(k))
        expected = (vol.index_to_lps @ np.array([k, j, i, 1.0]))[:3]
        np.testing.assert_allclose(back.TransformIndexToPhysicalPoint(sitk_index), expected, atol=1e-3)
        assert back.GetPixel(sitk_index) == int(np.clip(np.rint(vol.hu[k, j, i]), -1024, 3071))
        # the truth center (RAS) maps back to the same voxel
        lps = np.array(coarse.heads[side].center_ras_mm) * [-1, -1, 1]
        assert back.TransformPhysicalPointToIndex(tuple(lps)) == sitk_index
    # the project's own reader logic gives back the canonical array and geometry
    arr = sitk.GetArrayFromImage(back)
    d = np.array(back.GetDirection()).reshape(3, 3) * np.array(back.GetSpacing())
    m = np.eye(4)
    m[:3, :3] = d[:, ::-1]  # numpy axes (k, j, i)
    m[:3, 3] = back.GetOrigin()
    canon = canonicalize(arr, m)
    np.testing.assert_array_equal(canon.hu, np.clip(np.rint(vol.hu), -1024, 3071))
    np.testing.assert_allclose(canon.index_to_lps, vol.index_to_lps, atol=1e-3)


@pytest.mark.parametrize("side", ["left", "right"])
def test_metal_implant_only_on_its_side(side):
    ph = generate_phantom(seed=2, metal_side=side, **COARSE)
    other = "right" if side == "left" else "left"
    assert ph.metal_side == side
    assert set(ph.heads) == {other}
    vol = ph.volume
    metal = np.argwhere(vol.hu > 2500)
    assert len(metal) * np.prod(vol.spacing_mm) > 2000.0  # > 2 ml of metal
    lps_x = (np.c_[metal, np.ones(len(metal))] @ vol.index_to_lps.T)[:, 0]
    midline = ph.anatomy["world_offset_lps_mm"][0]
    assert np.all(lps_x > midline + 30) if side == "left" else np.all(lps_x < midline - 30)
    assert not np.any(ph.part_map[vol.hu > 2900])  # metal is not bone
    assert np.any(ph.part_map == FEMUR[side])  # the remaining femur keeps its label
    # streak artifacts: strong HU swings in soft tissue of the metal slices
    kz = np.unique(metal[:, 0])
    soft = (ph.part_map[kz] == 0) & (vol.hu[kz] > -500) & (vol.hu[kz] < 1000)
    assert np.percentile(vol.hu[kz][soft], 99) - np.percentile(vol.hu[kz][soft], 1) > 250
    # the same seed without metal has no metal at all
    assert generate_phantom(seed=2, **COARSE).volume.hu.max() < 2500


def test_no_hips():
    ph = generate_phantom(seed=0, hips=False, **COARSE)
    assert ph.heads == {}
    assert not np.any((ph.part_map == RIGHT_FEMUR) | (ph.part_map == LEFT_FEMUR))
    assert np.any(ph.part_map == PELVIS)  # vertebrae
    assert ph.volume.hu.max() < 2500


def test_heads_outside_the_field_of_view_are_not_reported():
    ph = generate_phantom(seed=0, spacing_mm=(3.0, 1.6, 1.6), fov_mm=(60.0, 200.0, 120.0))
    assert ph.heads == {}


def test_bad_arguments():
    with pytest.raises(ValueError):
        generate_phantom(metal_side="both")
    with pytest.raises(ValueError):
        generate_phantom(hips=False, metal_side="left")
    with pytest.raises(ValueError):
        generate_phantom(spacing_mm=(0.0, 1.0, 1.0))
    with pytest.raises(ValueError):
        phantom_to_sitk(generate_phantom(**COARSE), storage="XYZ")


def test_narrow_joint_space_changes_only_the_gap():
    """joint_gap_mm narrows both joint spaces (the femur-pelvis distance follows it) and leaves
    the rest of the drawn anatomy as it was."""
    normal = generate_phantom(seed=3, **COARSE)
    narrow = generate_phantom(seed=3, joint_gap_mm=1.0, **COARSE)
    assert narrow.heads == normal.heads
    femur = (narrow.part_map == RIGHT_FEMUR) | (narrow.part_map == LEFT_FEMUR)
    gap_mm = ndimage.distance_transform_edt(~femur, sampling=narrow.volume.spacing_mm)[
        narrow.part_map == PELVIS].min()
    assert 0.5 <= gap_mm < 2.0
    for side in ("right", "left"):
        assert narrow.anatomy["sides"][side]["joint_gap_mm"] == 1.0
        assert normal.anatomy["sides"][side]["joint_gap_mm"] >= 2.5
    with pytest.raises(ValueError, match="joint_gap_mm"):
        generate_phantom(seed=3, joint_gap_mm=0.0, **COARSE)
