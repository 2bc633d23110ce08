"""The sweep (randomized hip CT family): its truth, and the pipeline on a few hips per class."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from THAAnnotatorLib.metrics import segment_dice
from THAAnnotatorLib.pipeline import annotate
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, segment_code
from THAAnnotatorLib.sweep import CLASSES, DistantMetal, draw_scan, render_scan
from THAAnnotatorLib.sweep.render import FEMUR_PART, PELVIS
from THAAnnotatorLib.sweep.truth import sweep_truth_labels

# coarse enough to be quick, fine enough for the method (mm: slice, row, column)
FAST_SPACING = (2.0, 0.9, 0.9)


def fast_case(hip_class: str, seed: int, spacing_mm=FAST_SPACING, **hip_changes):
    """A sweep scan at ``spacing_mm``, both hips changed by ``hip_changes``."""
    scan = replace(draw_scan(hip_class, seed), spacing_mm=spacing_mm)
    if hip_changes:
        scan = scan.with_hips(**hip_changes)
    return render_scan(scan)


def test_every_class_draws_differently_and_reproducibly():
    draws = [draw_scan(c, 3) for c in CLASSES]
    assert len({d.hips["right"].head_radius_mm for d in draws}) == len(CLASSES)
    assert draw_scan("noise", 3) == draw_scan("noise", 3)
    with pytest.raises(ValueError, match="hip_class"):
        draw_scan("nonsense", 0)


def test_class_ranges_are_drawn():
    narrow = [draw_scan("narrow_joint", s).hips["left"] for s in range(20)]
    assert all(0.0 <= h.joint_space_mm <= 1.0 for h in narrow)
    assert any(h.bridge_directions for h in narrow) and any(h.contact_directions for h in narrow)
    low = [draw_scan("low_density", s) for s in range(10)]
    assert all(80.0 <= d.cancellous_hu <= 150.0 and d.cortex_mm <= 1.2 for d in low)
    heads = [draw_scan("head_shape", s).hips["right"] for s in range(20)]
    assert min(min(h.head_axis_factors) for h in heads) < 0.85
    assert any(h.head_top_factor < 1.0 for h in heads)
    metal = [draw_scan("metal", s) for s in range(12)]
    assert any(any(h.implant for h in d.hips.values()) for d in metal)
    assert any(d.distant_metal for d in metal)


def test_truth_of_a_round_head_is_its_drawn_sphere():
    case = fast_case("typical", 1)
    for side, hip in case.hips.items():
        drawn = case.draw.hips[side]
        assert hip.radius_mm == pytest.approx(drawn.head_radius_mm * np.mean(drawn.head_axis_factors),
                                              rel=0.03)
        center = case.volume.ras_mm_to_index(np.asarray(hip.center_ras_mm)).round().astype(int)
        assert case.part_map[tuple(center)] == FEMUR_PART[side]
        assert hip.span_s_mm[1] - hip.span_s_mm[0] == pytest.approx(2 * hip.radius_mm, rel=0.05)


def test_a_flattened_head_spans_less_than_its_sphere():
    case = fast_case("head_shape", 0, head_axis_factors=(1.0, 1.0, 0.8), head_top_factor=0.9)
    hip = case.hips["right"]
    top_mm = hip.span_s_mm[1] - hip.center_ras_mm[2]  # above the equivalent sphere's center
    assert top_mm < hip.radius_mm - 2.0


def test_storage_order_changes_the_file_not_the_patient():
    scan = replace(draw_scan("typical", 2), spacing_mm=(3.0, 1.2, 1.2))
    lps = render_scan(replace(scan, storage="LPS"))
    ras = render_scan(replace(scan, storage="RAS"))
    assert lps.volume.source_flipped != ras.volume.source_flipped
    np.testing.assert_array_equal(lps.volume.hu, ras.volume.hu)
    np.testing.assert_allclose(lps.volume.index_to_lps, ras.volume.index_to_lps)


def test_a_bridge_joins_femur_and_pelvis_across_a_closed_joint():
    case = fast_case("narrow_joint", 0, joint_space_mm=0.0,
                     bridge_directions=((0.6, 0.0, 0.8),), bridge_radius_mm=2.5)
    bone = case.part_map > 0
    pieces, _ = ndimage.label(bone)
    femur = pieces[case.part_map == FEMUR_PART["right"]]
    pelvis = pieces[case.part_map == PELVIS]
    assert np.intersect1d(np.unique(femur), np.unique(pelvis)).size > 0


def test_truth_labels_cover_both_classes_of_both_hips():
    case = fast_case("typical", 4)
    truth = sweep_truth_labels(case)
    for side in case.hips:
        for cls in (ACETABULUM, FEMORAL_HEAD):
            assert segment_dice(truth, truth, side, cls) == 1.0
            assert (truth == (1 if side == "right" else 3) + cls - 1).sum() > 1000


def _scores(case, side: str):
    annotation = annotate(case.volume)
    result = annotation.sides[side]
    assert result.status == "segmented", result.message
    # a warning that asks the user to check the hip marks it for review; the others are notes
    asks = [w for w in result.warnings if w.endswith(("check this hip", "check it"))]
    assert result.needs_review or not asks, asks
    truth = sweep_truth_labels(case)
    return (segment_dice(annotation.side_labels, truth, side, ACETABULUM),
            segment_dice(annotation.side_labels, truth, side, FEMORAL_HEAD),
            result.head_diameter_mm - 2 * case.hips[side].radius_mm, result)


def test_pipeline_meets_the_targets_on_a_typical_hip():
    """Its lower acetabulum touches the neck in the bone mask; with the femur seed taken in the
    head's slices it was labelled femoral head (acetabulum Dice 0.76; measured 0.94 now)."""
    acetabulum, head, error, result = _scores(fast_case("typical", 1), "right")
    assert acetabulum >= 0.88 and head >= 0.92 and abs(error) <= 1.5
    assert not [w for w in result.warnings if "not a sphere" in w]  # a round head is a sphere
    assert not [w for w in result.warnings if w.startswith("no joint space shows")]  # 1.6 mm


def test_a_joint_space_the_bone_mask_bridges_is_labelled_neither_bone():
    """typical seed 1: joint spaces of 1.6 mm at 0.9 mm pixels, which bone extraction keeps as
    bone (the voxels between the two cortices read 200-400 HU). Both hips' labels leave the
    joint space out: measured acetabulum 0.984 / 0.983 and 2.1 % of the labelled voxels in the
    truth's background; 0.941 / 0.942 and 5.3 % while the split gave the joint space (and the
    head's outer voxel) to the acetabulum."""
    case = fast_case("typical", 1)
    annotation = annotate(case.volume)
    truth = sweep_truth_labels(case)
    for side in ("right", "left"):
        assert annotation.sides[side].status == "segmented"
        assert segment_dice(annotation.side_labels, truth, side, ACETABULUM) >= 0.97
        codes = [segment_code(side, cls) for cls in (ACETABULUM, FEMORAL_HEAD)]
        labelled = np.isin(annotation.side_labels, codes)
        outside = labelled & (truth == 0)
        assert outside.sum() <= 0.03 * labelled.sum(), (side, outside.sum(), labelled.sum())


def test_a_closed_joint_with_a_bony_bridge_meets_the_targets():
    """Joint space 0 mm and a 2.5 mm bony bridge from the rim: the bone mask joins femur and
    pelvis, and the split still cuts along the joint (measured: acetabulum 0.92, head 0.96,
    diameter +1.47 mm, +0.8 mm before circles searched 3 mm out for a thick cortex's surface;
    0.883 / 0.944 before the graph cut along the joint)."""
    case = fast_case("narrow_joint", 0, joint_space_mm=0.0,
                     bridge_directions=((0.6, 0.0, 0.8),), bridge_radius_mm=2.5)
    acetabulum, head, error, result = _scores(case, "right")
    assert acetabulum >= 0.88 and head >= 0.92 and abs(error) <= 1.5
    # the user is told that no joint space shows (the diameter reads +1.47 mm here)
    assert [w for w in result.warnings if w.startswith("no joint space shows")]


@pytest.mark.parametrize("side", ["right", "left"])
def test_a_joint_narrowed_to_half_a_millimetre_keeps_the_head_s_size(side):
    """Joint spaces of 0.47 mm (the right hip with a contact area and a bony bridge): between
    the head's cortex and the acetabulum's the joint is only a faint valley, and the sharpest
    edge is the acetabulum's cortex falling into its spongy bone 2-3 mm out. Both spheres were
    refitted onto that edge before: diameters +4.3 / +2.6 mm, acetabulum 0.81 / 0.86 (measured
    now: -0.4 / -0.6 mm, acetabulum 0.93 / 0.91, head 0.97 / 0.97). A refit that large is no
    doubt about the head either, so no warning says the two disagree."""
    acetabulum, head, error, result = _scores(fast_case("narrow_joint", 13), side)
    assert acetabulum >= 0.88 and head >= 0.92 and abs(error) <= 1.5
    assert not result.needs_review
    assert not [w for w in result.warnings if "disagree" in w]


@pytest.fixture(scope="module")
def ellipsoidal_head():
    """A head 0.8 x 1.0 x 1.0 of its radius (short from side to side), at 2 mm / 0.9 mm voxels."""
    case = fast_case("head_shape", 0, head_axis_factors=(0.8, 1.0, 1.0), head_top_factor=1.0)
    return _scores(case, "right")


def test_an_ellipsoidal_head_keeps_its_size_and_its_label(ellipsoidal_head):
    """Measured: head 0.93-0.95, diameter -0.7 to +0.3 mm against the sphere fitted to its
    articular surface, on this grid and on 0.88 mm pixels or 2.1 mm slices."""
    _, head, error, _ = ellipsoidal_head
    assert head >= 0.92 and abs(error) <= 1.5


def test_an_ellipsoidal_head_whose_acetabulum_misses_is_marked_for_review(ellipsoidal_head):
    """Whether its ellipsoid is kept turns on a few tenths of a millimetre here: rays cast near
    the head's pole at 2 mm slices do not see its 1.7 mm joint space, and the fitted
    ellipsoid's long axis is then drawn out 2-4 mm beyond the range a head is allowed. Measured
    on this machine: acetabulum 0.876 (no ellipsoid; the sphere's sharpest edge 1.3 mm off,
    marked), 0.906 on 0.88 mm pixels, 0.955 with the ellipsoid on 2.1 mm slices (as on CI's
    machine until 2026-12-04). A miss is allowed; an unmarked one is not."""
    acetabulum, _, _, result = ellipsoidal_head
    assert acetabulum >= 0.88 or result.needs_review


@pytest.fixture(scope="module")
def flattened_heads():
    """Both heads 0.8 of their radius from top to bottom (the weight-bearing flattening of
    osteoarthritis), joint spaces 2.6 and 2.0 mm, at 2 mm / 0.9 mm voxels."""
    case = fast_case("head_shape", 1, head_axis_factors=(1.0, 1.0, 0.8), head_top_factor=1.0)
    annotation = annotate(case.volume)
    return case, annotation, sweep_truth_labels(case)


@pytest.mark.parametrize("side", ["right", "left"])
def test_a_flattened_head_s_labels_follow_its_ellipsoid(flattened_heads, side):
    """With the sphere's span and sections the labels take a slab of roof above the head and
    leave its sides: measured acetabulum 0.879 / 0.828, head 0.909 / 0.880 (right / left).
    The ellipsoid fitted to the head's surface gives the labels' span and sections (measured
    0.967 / 0.929 and 0.962 / 0.934; 0.95-0.99 on 0.88 mm pixels and on 2.1 mm slices), and
    the user is told the head is not a sphere."""
    case, annotation, truth = flattened_heads
    result = annotation.sides[side]
    assert segment_dice(annotation.side_labels, truth, side, ACETABULUM) >= 0.88
    assert segment_dice(annotation.side_labels, truth, side, FEMORAL_HEAD) >= 0.92
    assert [w for w in result.warnings if "not a sphere" in w]


@pytest.mark.parametrize("seed, spacing_mm", [(0, FAST_SPACING), (2, (2.5, 0.9, 0.9))])
def test_a_flattened_head_in_a_narrow_joint_is_labelled_to_its_top(seed, spacing_mm):
    """Heads 0.8 of their radius from top to bottom in 1.5-1.7 mm joints, in slices thicker
    than the joint: rays from the center meet the roof beyond the joint, so no ellipsoid is
    fitted to their surface. Labelled with the sphere they took one or two slabs of roof and
    their diameters came out 2.1 / 2.6 mm large (acetabulum 0.845 / 0.858, head 0.897 / 0.872),
    with nothing to mark them. The head's layers in the voxels show its flattened top
    (afs/head_flattening.py); measured now: acetabulum 0.987 / 0.958, head 0.982 / 0.972,
    diameters +0.5 / +0.9 mm."""
    acetabulum, head, error, result = _scores(
        fast_case("head_shape", seed, spacing_mm,
                  head_axis_factors=(1.0, 1.0, 0.8), head_top_factor=1.0), "right")
    assert acetabulum >= 0.88 and head >= 0.92 and abs(error) <= 1.5
    assert [w for w in result.warnings if "not a sphere" in w]


def test_a_head_cut_flat_on_top_is_labelled_to_its_cut():
    """A round head cut flat at 0.8 of its height: no ellipsoid fits it, and labelled with
    the sphere it took one slab of roof (acetabulum 0.874), with nothing to mark it. Its
    layers in the voxels show the cut (afs/head_flattening.py); measured now: acetabulum 0.974,
    head 0.992, diameter +0.6 mm."""
    acetabulum, head, error, result = _scores(
        fast_case("head_shape", 2, head_axis_factors=(1.0, 1.0, 1.0), head_top_factor=0.8),
        "left")
    assert acetabulum >= 0.88 and head >= 0.92 and abs(error) <= 1.5
    assert [w for w in result.warnings if "cut flat" in w]


def test_a_sphere_that_followed_a_head_s_short_axis_is_marked_for_review():
    """A head 0.8 of its radius from front to back, at 2.5 mm slices: the slices' sphere
    followed the short axis (diameter 5.6 mm small, acetabulum 0.78) and passed the surface
    check. The ellipsoid fitted to the surface's rays is wider than that sphere along two axes
    and fits far better (RMS 0.41 of the sphere's), which marks the hip."""
    _, _, error, result = _scores(
        fast_case("head_shape", 0, (2.5, 0.9, 0.9), head_axis_factors=(1.0, 0.8, 1.0),
                  head_top_factor=1.0), "left")
    assert abs(error) <= 1.5 or (result.needs_review
                                 and [w for w in result.warnings if "short axis" in w])


@pytest.fixture(scope="module")
def bone_at_100_hu():
    case = replace(draw_scan("low_density", 0), spacing_mm=FAST_SPACING, cancellous_hu=100.0)
    return _scores(render_scan(case), "right")


def test_bone_at_100_hu_is_found_with_its_head_s_size(bone_at_100_hu):
    """Spongy bone at 100 HU, 40 HU above muscle: bone extraction keeps little but a broken
    cortex. The head is found all the same (its initial slice's ring is filled before the
    rough circle) and its diameter is right (measured +0.66 mm)."""
    _, _, error, result = bone_at_100_hu
    assert result.status == "segmented" and abs(error) <= 1.5


def test_bone_at_100_hu_is_labelled(bone_at_100_hu):
    """Measured: acetabulum 0.90, head 0.99 (0.83 and 0.91 while the head's cortex, with no
    bone path to its interior, went to the nearest bone, the acetabulum's, and the
    acetabulum's interior was filled across the joint space)."""
    acetabulum, head, _, _ = bone_at_100_hu
    assert acetabulum >= 0.88 and head >= 0.92


def test_a_metal_bead_far_from_the_hip_leaves_it_segmented():
    # 1.15 ml of metal in the lower abdomen, about 95 mm from the right hip's center
    bead = DistantMetal("bead", center_mm=(-40.0, -80.0, -5.0), size_mm=6.5, hu=3500.0)
    scan = replace(draw_scan("typical", 5), spacing_mm=FAST_SPACING, distant_metal=(bead,))
    _, _, error, result = _scores(render_scan(scan), "right")
    assert abs(error) <= 1.5
    assert any("1.1 ml of metal outside this hip's region" in w for w in result.warnings)


def test_a_head_lost_to_a_thin_cortex_is_found_with_bone_from_100_hu():
    """Low-density seed 13 (spongy bone 80-150 HU, a 0.65 mm cortex at 2 mm / 0.9 mm voxels):
    at bone extraction's usual 150 HU floor its heads are a broken ring and the scan was
    refused (fitted radii 1.8 and 11.9 mm). Tried again from 100 HU, both are found (measured:
    acetabulum 0.93, head 0.95-0.97, diameters +0.9 mm), saying so; the bone mask of that side
    is the second one's."""
    from THAAnnotatorLib.sweep import generate_sweep_case

    from THAAnnotatorLib.bone import extract_bone

    case = generate_sweep_case("low_density", 13)
    annotation = annotate(case.volume)
    truth = sweep_truth_labels(case)
    assert annotation.bone.sum() > extract_bone(case.volume).sum()  # spongy bone from 100 HU
    for side in ("right", "left"):
        result = annotation.sides[side]
        assert result.status == "segmented", result.message
        assert "threshold lowered from 150 to 100 HU" in result.warnings[0]
        assert segment_dice(annotation.side_labels, truth, side, ACETABULUM) >= 0.88
        assert segment_dice(annotation.side_labels, truth, side, FEMORAL_HEAD) >= 0.92
        assert abs(result.head_diameter_mm - 2 * case.hips[side].radius_mm) <= 1.5
    # two workers give the same result, the second try included (as annotate promises)
    shared = annotate(case.volume, workers=2)
    np.testing.assert_array_equal(shared.side_labels, annotation.side_labels)
    np.testing.assert_array_equal(shared.bone, annotation.bone)


def test_a_head_top_at_a_slice_middle_marks_the_hip_for_review():
    """Resolution seed 8, 3.7 mm slices: the right head's top lies 0.08 mm from a slice's
    middle, so whether that slab of acetabular roof is labelled is left to chance, and the hip
    is marked for review. (Resolution seed 12 left, whose top lies there too, once got that
    slab wrong, acetabulum 0.85, with only a warning; at 3.9 mm slices its circles take another
    course with each change to the rough circle, so this test does not rest on it.)"""
    from THAAnnotatorLib.sweep import generate_sweep_case

    result = annotate(generate_sweep_case("resolution", 8).volume, sides=("right",)).sides["right"]
    assert [w for w in result.warnings if w.startswith("the head's top lies")]
    assert result.needs_review


def test_a_surface_larger_than_any_head_is_not_taken_for_the_head_s():
    """Typical seed 13 left: its first section read 29.8 mm in radius (23.1 drawn), and above
    it the circles, led by that, reached surfaces of 36-37 mm radius that the test for a
    second cortex 5 mm inside let through (the head read 3.8 mm small, acetabulum Dice
    0.79). A surface larger than any head's is not taken by that test."""
    from THAAnnotatorLib.sweep import generate_sweep_case

    case = generate_sweep_case("typical", 13)
    result = annotate(case.volume, sides=("left",)).sides["left"]
    assert abs(result.head_diameter_mm - 2 * case.hips["left"].radius_mm) <= 0.5


def test_an_osteoporotic_head_in_a_narrow_joint_keeps_its_circles_and_its_socket():
    """Low density seed 10, right: spongy bone of about 100 HU, a 1.5 mm joint. The head's
    circles took the acetabulum's cortex in the middle slices (the head's own surface was
    refused: 1-3 mm inside it was darker than 1-3 mm outside, where the acetabulum's cortex
    lies), the head read 3.8 mm large and the acetabulum's sphere 10 mm; the hip was marked
    for review only by its head lying 2.9 mm off its socket's center. Then the acetabulum's
    label, reaching into the head past the faint joint, left the joint's dip beyond where the
    CT looked for it: the socket read 3.2 mm small, unmarked."""
    from THAAnnotatorLib.sweep import generate_sweep_case
    from THAAnnotatorLib.sweep.measure_truth import sweep_truth_measurements

    case = generate_sweep_case("low_density", 10)
    result = annotate(case.volume, sides=("right",)).sides["right"]
    truth = sweep_truth_measurements(case)["right"]
    assert abs(result.head_diameter_mm - 2 * case.hips["right"].radius_mm) <= 0.5
    assert abs(result.measurements.acetabular_diameter_mm
               - truth.acetabular_diameter_mm) <= 1.0
    assert abs(result.measurements.center_edge_deg - truth.center_edge_deg) <= 1.5


@pytest.mark.parametrize("hip_class, seed, side", [("head_shape", 0, "left"),
                                                    ("resolution", 15, "right"),
                                                    ("low_density", 9, "right")])
def test_a_head_whose_spongy_holes_open_at_its_surface_is_found(hip_class, seed, side):
    """In the initial slice, spongy holes behind a thin wall at the head's surface opened to
    the outside when the opening that cuts bridges to other bone took that wall; the inscribed
    disk then sat beside them, on the neck (head_shape seed 0 left: head 8.6 mm small,
    acetabulum Dice 0.14; resolution seed 15 right, held out: 14.0 mm small, 0.03), marked for
    review. The head's own holes are filled first, with the ring of bone touching them: those
    inside the hull of the part the opening kept, or all of them where the inscribed disk's
    center lies in a hole, as in spongy bone at 80-150 HU (low_density seed 9 right, held out:
    the disk sat in the neck, 12.0 mm small, 0.03)."""
    from THAAnnotatorLib.sweep import generate_sweep_case

    case = generate_sweep_case(hip_class, seed)
    annotation = annotate(case.volume, sides=(side,))
    result = annotation.sides[side]
    assert abs(result.head_diameter_mm - 2 * case.hips[side].radius_mm) <= 1.5
    truth = sweep_truth_labels(case)
    assert segment_dice(annotation.side_labels, truth, side, ACETABULUM) >= 0.88
    assert segment_dice(annotation.side_labels, truth, side, FEMORAL_HEAD) >= 0.92
