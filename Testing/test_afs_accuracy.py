"""AFS accuracy against the phantom's known truth, the LPS / RAS invariance, and the ablation
of the paper's boundary rules (Table 5)."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from THAAnnotatorLib.afs.boundary import candidate_mask, enhance, sample_normals
from THAAnnotatorLib.afs.frame import SideFrame
from THAAnnotatorLib.afs.sphere import Sphere
from THAAnnotatorLib.io import read_scan
from THAAnnotatorLib.labels import truth_side_labels
from THAAnnotatorLib.metrics import dice, segment_dice
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk
from THAAnnotatorLib.pipeline import TOP_SLICE_MARGIN_MM, _top_slice_warning, annotate
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, SIDES, segment_code

FINE = (2.0, 0.8, 0.8)  # slice spacing, then in-plane, mm


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(spacing_mm=FINE, seed=1)


@pytest.fixture(scope="module")
def annotated_from_files(phantom, tmp_path_factory):
    """The phantom written as NIfTI in LPS and in RAS storage, each read back and annotated."""
    results = {}
    for storage in ("LPS", "RAS"):
        path = tmp_path_factory.mktemp(storage) / "scan.nii.gz"
        sitk.WriteImage(phantom_to_sitk(phantom, storage=storage), str(path))
        scan = read_scan(path)
        results[storage] = (scan.volume, annotate(scan.volume))
    return results


def test_head_and_acetabulum_match_the_truth(phantom, annotated_from_files):
    volume, annotation = annotated_from_files["LPS"]
    truth = truth_side_labels(phantom)
    for side in SIDES:
        result = annotation.sides[side]
        assert result.status == "segmented", result.message
        head = segment_code(side, FEMORAL_HEAD)
        acetabulum = segment_code(side, ACETABULUM)
        assert dice(annotation.side_labels == head, truth == head) >= 0.92, side
        assert dice(annotation.side_labels == acetabulum, truth == acetabulum) >= 0.88, side
        assert abs(result.head_diameter_mm - 2 * phantom.heads[side].radius_mm) <= 1.5, side
        center_error = np.subtract(result.sphere_center_ras_mm, phantom.heads[side].center_ras_mm)
        assert np.linalg.norm(center_error) <= 2.0, side


def test_lps_and_ras_storage_give_the_same_result(annotated_from_files):
    (lps_volume, lps), (ras_volume, ras) = annotated_from_files["LPS"], annotated_from_files["RAS"]
    np.testing.assert_array_equal(lps.side_labels, ras.side_labels)
    for side in SIDES:
        assert lps.sides[side].head_diameter_mm == ras.sides[side].head_diameter_mm
        np.testing.assert_allclose(lps.sides[side].sphere_center_ras_mm,
                                   ras.sides[side].sphere_center_ras_mm, atol=1e-6)
    # the right hip is on the patient's right (+x in RAS) whatever the storage
    assert lps.sides["right"].sphere_center_ras_mm[0] > lps.sides["left"].sphere_center_ras_mm[0]


def test_head_circles_do_not_take_in_the_acetabular_wall(tmp_path):
    """Seed 2 saved as a 16-bit scan: its right head's circles once mixed the head's boundary
    with the acetabular wall a joint space away (diameter +2 to +3.5 mm) when AHS chose by
    radius alone among weak and strong Hough peaks."""
    phantom = generate_phantom(spacing_mm=FINE, seed=2)
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(phantom_to_sitk(phantom), str(path))
    annotation = annotate(read_scan(path).volume)
    truth = truth_side_labels(phantom)
    result, head = annotation.sides["right"], segment_code("right", FEMORAL_HEAD)
    assert abs(result.head_diameter_mm - 2 * phantom.heads["right"].radius_mm) <= 1.5
    assert dice(annotation.side_labels == head, truth == head) >= 0.92


def test_loose_trabecular_bone_is_not_taken_for_the_greater_trochanter():
    """Seed 0 with 1 mm voxels, HU whole numbers as in a saved scan: bone extraction cut a speck
    of cancellous bone loose inside the left femur 37 mm below the head, which once passed for
    the greater trochanter; the search then stopped there and found a "head" 44 mm too low."""
    phantom = generate_phantom(spacing_mm=(1.0, 1.0, 1.0), seed=0)
    volume = dataclasses.replace(phantom.volume, hu=np.round(phantom.volume.hu).astype(np.float32))
    annotation = annotate(volume, sides=("left",))
    truth = phantom.heads["left"]
    found = annotation.sides["left"]
    assert np.linalg.norm(np.subtract(found.sphere_center_ras_mm, truth.center_ras_mm)) <= 1.5
    assert abs(found.head_diameter_mm - 2 * truth.radius_mm) <= 1.5


def test_acetabulum_touching_the_femur_is_not_taken_for_femur():
    """Seed 1 with 2 mm voxels, coarser than the method is made for: the sphere is right
    (diameter +0.7 mm), but the bone mask joins the femur to the pelvis below the joint, and
    with pelvis markers only above the head the split gave the acetabulum's lower half to the
    femur (acetabulum Dice 0.65, head 0.78)."""
    phantom = generate_phantom(spacing_mm=(2.0, 2.0, 2.0), seed=1)
    volume = dataclasses.replace(phantom.volume, hu=np.round(phantom.volume.hu).astype(np.float32))
    annotation = annotate(volume, sides=("right",))
    truth = truth_side_labels(phantom)
    assert segment_dice(annotation.side_labels, truth, "right", FEMORAL_HEAD) >= 0.9
    assert segment_dice(annotation.side_labels, truth, "right", ACETABULUM) >= 0.84


def test_narrow_joint_space_as_in_osteoarthritis():
    """THA patients' joint spaces are often narrowed; the phantoms' own is 2.5-3 mm. With 1 mm
    (0.8 mm / 2 mm voxels, measured on seeds 0-3 at 0.5, 1.0 and 1.5 mm: all 24 hips at all
    targets) both hips still meet the targets and their surface check passes."""
    phantom = generate_phantom(spacing_mm=FINE, seed=0, joint_gap_mm=1.0)
    volume = dataclasses.replace(phantom.volume, hu=np.round(phantom.volume.hu).astype(np.float32))
    annotation = annotate(volume)
    truth = truth_side_labels(phantom)
    for side in SIDES:
        result = annotation.sides[side]
        assert segment_dice(annotation.side_labels, truth, side, FEMORAL_HEAD) >= 0.92, side
        assert segment_dice(annotation.side_labels, truth, side, ACETABULUM) >= 0.88, side
        assert abs(result.head_diameter_mm - 2 * phantom.heads[side].radius_mm) <= 1.5, side
        assert not any("fitted sphere" in w for w in result.warnings), result.warnings


@pytest.fixture(scope="module")
def thick_slices():
    """Seed 1 with 5 mm slices, annotated, and its truth."""
    phantom = generate_phantom(spacing_mm=(5.0, 1.0, 1.0), seed=1)
    return phantom, annotate(phantom.volume), truth_side_labels(phantom)


def test_head_with_thick_slices(thick_slices):
    phantom, annotation, truth = thick_slices
    for side in SIDES:
        head = segment_code(side, FEMORAL_HEAD)
        assert dice(annotation.side_labels == head, truth == head) >= 0.92
        assert abs(annotation.sides[side].head_diameter_mm - 2 * phantom.heads[side].radius_mm) <= 1.5


def test_thick_slab_circles_are_the_head_not_the_acetabular_wall():
    """Seed 5 with 5 mm slices: both heads came out 3.5 and 4.9 mm too wide when a slab's Hough
    peaks on the head, about half a cortex inside its surface, failed the polarity check (its
    rings straddled the bright cortex) or lay more than 1 mm from a center that the slabs below
    the equator had pulled off, and the acetabular wall's circle passed instead."""
    phantom = generate_phantom(spacing_mm=(5.0, 1.0, 1.0), seed=5)
    annotation = annotate(phantom.volume)
    truth = truth_side_labels(phantom)
    for side in SIDES:
        assert abs(annotation.sides[side].head_diameter_mm - 2 * phantom.heads[side].radius_mm) <= 1.5, side
        assert segment_dice(annotation.side_labels, truth, side, FEMORAL_HEAD) >= 0.92, side


def test_half_maximum_edges_bring_the_labels_nearer_the_truth(thick_slices):
    """With 5 mm slices the graph cut keeps voxels a fraction of which is bone all around both
    segments (seeds 0-5, HU rounded: acetabulum Dice 0.77-0.90 without the half-maximum
    edges, 0.80-0.93 with them); the sphere, and so the diameter, does not change."""
    phantom, annotation, truth = thick_slices
    plain = annotate(phantom.volume, Params(use_half_maximum_edges=False))
    for side in SIDES:
        assert plain.sides[side].head_diameter_mm == annotation.sides[side].head_diameter_mm
        for cls in (ACETABULUM, FEMORAL_HEAD):
            gain = (segment_dice(annotation.side_labels, truth, side, cls)
                    - segment_dice(plain.side_labels, truth, side, cls))
            assert gain >= 0.01, (side, cls, gain)


def test_acetabulum_with_thick_slices(thick_slices):
    """The right hip's top slab has its middle 0.13 mm above the head's pole: the truth leaves it
    out, with its whole plate of acetabular roof. The circles put the pole 0.6 mm high (Dice
    0.81); with the height refitted to the slabs it comes out right."""
    _, annotation, truth = thick_slices
    for side in SIDES:
        acetabulum = segment_code(side, ACETABULUM)
        assert dice(annotation.side_labels == acetabulum, truth == acetabulum) >= 0.88


def test_head_height_from_thick_slabs(thick_slices):
    """At 5 mm slices the head's center height is refitted to the slabs' partial volume: within
    0.25 mm of the truth on both sides (measured 0.13 / 0.09 mm, right / left; the circles'
    sphere alone 0.49 / 0.26), and never more than 0.05 mm farther than the circles' sphere
    alone. (With NumPy's AVX-512 paths turned off the circles alone came to 0.13 mm on the
    right and the refit to 0.16: which of two near-right heights wins is the CPU's call.)"""
    phantom, annotation, _ = thick_slices
    circles_only = annotate(phantom.volume, Params(use_slab_height=False))
    for side in SIDES:
        truth_height = phantom.heads[side].center_ras_mm[2]
        error = abs(annotation.sides[side].sphere_center_ras_mm[2] - truth_height)
        before = abs(circles_only.sides[side].sphere_center_ras_mm[2] - truth_height)
        assert error <= 0.25 and error <= before + 0.05, (side, error, before)
        assert circles_only.sides[side].head_diameter_mm == annotation.sides[side].head_diameter_mm


def test_a_head_top_near_a_slice_middle_is_reported(thick_slices):
    """At 5 mm slices, when the head's top lies within TOP_SLICE_MARGIN_MM of a slice's middle,
    whether that slice is a head slice is left to chance, and the hip says which slice to check,
    by its height in patient coordinates; otherwise it says nothing. (On this phantom the right
    head's top comes out 0.18-0.30 mm below a slice's middle, with the CPU's floating-point
    paths, the left's 1.9 mm: which branch each side takes is not fixed, so both are tested on
    made-up spheres below.)"""
    phantom, annotation, _ = thick_slices
    volume = phantom.volume
    slice_s_mm = np.array([volume.index_to_ras_mm(np.array([k, 0.0, 0.0]))[2]
                           for k in range(volume.shape[0])])
    for side in SIDES:
        result = annotation.sides[side]
        top_s_mm = result.sphere_center_ras_mm[2] + result.head_diameter_mm / 2
        nearest = slice_s_mm[np.argmin(np.abs(slice_s_mm - top_s_mm))]
        reported = [w for w in result.warnings if w.startswith("the head's top lies")]
        if abs(top_s_mm - nearest) <= TOP_SLICE_MARGIN_MM - 0.01:  # 0.01: the rounding to 0.01 mm
            assert len(reported) == 1 and f"slice at S = {nearest:.1f} mm" in reported[0], reported
        elif abs(top_s_mm - nearest) > TOP_SLICE_MARGIN_MM + 0.01:
            assert not reported, reported


@pytest.mark.parametrize("offset_mm, reported", [(-0.1, True), (0.2, True), (0.3, False),
                                                 (-1.0, False)])
def test_the_top_slice_warning_names_the_slice_by_its_height(offset_mm, reported):
    """A sphere whose top lies ``offset_mm`` from the middle of side-frame slice 10 (5 mm
    slices; the frame's slice k lies at S = 100 + 5 k mm in this made-up mapping)."""
    spacing_mm = np.array([5.0, 1.0, 1.0])
    radius_mm = 23.0
    sphere = Sphere(np.array([10 * 5.0 + offset_mm - radius_mm, 50.0, 50.0]), radius_mm)
    fit = SimpleNamespace(sphere=sphere)
    warning = _top_slice_warning(fit, spacing_mm, lambda zyx: np.array([0.0, 0.0, 100.0 + 5.0 * zyx[0]]))
    if reported:
        assert warning is not None and "slice at S = 150.0 mm" in warning, warning
        assert f"{abs(offset_mm):.2f} mm {'above' if offset_mm > 0 else 'below'}" in warning
    else:
        assert warning is None


def _cortex_precision(phantom, use_fsg: bool, use_lnms: bool) -> float:
    """Share of the candidate boundary points that lie on the head's cortex (from 2.5 mm inside
    the surface to 0.5 mm outside), over four slices near each head's equator, searching along
    normals of the true section as the rough circle would."""
    volume, params = phantom.volume, Params()
    pixel_mm = float(volume.spacing_mm[1])
    on_cortex, total = 0, 0
    for side in SIDES:
        frame = SideFrame.for_side(volume, side)
        hu = frame.view(volume.hu)
        truth = phantom.heads[side]
        zyx = volume.ras_mm_to_index(np.array(truth.center_ras_mm))
        x_frame = float(frame.to_frame_x(zyx[2]))
        for dz_mm in (-6.0, -2.0, 2.0, 6.0):
            k = int(round(zyx[0] + dz_mm / volume.spacing_mm[0]))
            dz = (k - zyx[0]) * volume.spacing_mm[0]
            r_px = np.sqrt(truth.radius_mm**2 - dz**2) / pixel_mm
            half = int(r_px * 1.6) + 6
            y0, x0 = int(zyx[1]) - half, int(x_frame) - half
            crop = hu[k, y0:y0 + 2 * half + 1, x0:x0 + 2 * half + 1]
            enhanced = enhance(crop, pixel_mm, params.enhance_percentile)
            origin = np.array([zyx[1] - y0, x_frame - x0])
            profiles, positions = sample_normals(enhanced, origin, r_px / params.rough_shrink,
                                                 r_px * params.search_extent, params.n_rays)
            points = positions[candidate_mask(profiles, use_fsg, use_lnms)]
            depth_mm = (np.linalg.norm(points - origin, axis=1) - r_px) * pixel_mm
            on_cortex += int(((depth_mm >= -2.5) & (depth_mm <= 0.5)).sum())
            total += len(points)
    return on_cortex / total


def test_fsg_and_lnms_make_boundary_points_more_accurate(phantom):
    """Paper Table 5 / Fig. 3: baseline < +FSG < +FSG+L-NMS on a phantom with spongy bone."""
    baseline = _cortex_precision(phantom, use_fsg=False, use_lnms=False)
    fsg = _cortex_precision(phantom, use_fsg=True, use_lnms=False)
    fsg_lnms = _cortex_precision(phantom, use_fsg=True, use_lnms=True)
    assert baseline < fsg < fsg_lnms, (baseline, fsg, fsg_lnms)
