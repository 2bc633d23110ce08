"""THA planning measurements (THAAnnotatorLib.measure) on shapes with known answers: a cup
with a known opening, its center-edge and sector angles and coverage worked out by hand; the
same cup as labels in a volume, mirrored, and stored in another axis order."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from THAAnnotatorLib.measure import (HipMeasurements, Incomplete, measure_geometry, measure_hips,
                                     sphericity)
from THAAnnotatorLib.measure import hip as hip_module
from THAAnnotatorLib.measure.articular import articular_surface
from THAAnnotatorLib.measure.edge_angles import SlicePlanes, sector_angles
from THAAnnotatorLib.measure.geometry import EDGE_VALUES
from THAAnnotatorLib.measure.sphere import suggested_cup_mm
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, SideResult, segment_code
from THAAnnotatorLib.volume import Volume, canonicalize

HEAD_MM, INNER_MM, OUTER_MM = 22.0, 24.5, 30.0


def cup_pole(inclination_deg: float, anteversion_deg: float) -> np.ndarray:
    """The cup's pole (hip frame: lateral, anterior, superior): opposite its opening's normal,
    written from Murray's radiographic definitions."""
    i, a = np.radians([inclination_deg, anteversion_deg])
    return -np.array([np.sin(i) * np.cos(a), np.sin(a), -np.cos(i) * np.cos(a)])


def cup_probe(pole: np.ndarray, coverage_deg: float, inner_mm: float = INNER_MM):
    """A spherical shell between ``inner_mm`` and OUTER_MM within ``coverage_deg`` of
    ``pole``, positive inside."""
    def probe(q):
        r = np.linalg.norm(q, axis=-1)
        angle = np.arccos(np.clip(q @ pole / np.maximum(r, 1e-9), -1, 1))
        return np.minimum(np.minimum(r - inner_mm, OUTER_MM - r),
                          (np.radians(coverage_deg) - angle) * r)
    return probe


def ball_probe(q):
    return HEAD_MM - np.linalg.norm(q, axis=-1)


@pytest.mark.parametrize("inclination, anteversion, coverage", [(40.0, 0.0, 95.0),
                                                                (55.0, 25.0, 80.0),
                                                                (35.0, 10.0, 105.0)])
def test_a_cup_of_known_shape_gives_its_known_values(inclination, anteversion, coverage):
    pole = cup_pole(inclination, anteversion)
    geometry = measure_geometry(cup_probe(pole, coverage), ball_probe, HEAD_MM)
    assert geometry.sphere.diameter_mm == pytest.approx(2 * INNER_MM, abs=0.1)
    assert np.linalg.norm(geometry.sphere.center_mm) < 0.1
    assert geometry.opening.inclination_deg == pytest.approx(inclination, abs=0.5)
    assert geometry.opening.anteversion_deg == pytest.approx(anteversion, abs=0.5)

    # center-edge: in the coronal plane the pole is seen at cos(version) of its full angle
    cos_cover, cos_version = np.cos(np.radians([coverage, anteversion]))
    center_edge = np.degrees(np.arccos(cos_cover / cos_version)) - inclination
    assert geometry.center_edge_deg == pytest.approx(center_edge, abs=0.5)
    # sector angles: the first axial direction from the medial one, forward and backward,
    # that leaves the cup (brute force on a fine fan)
    psi = np.radians(np.arange(0.0, 180.0, 0.01))
    for sign, measured in ((1, geometry.anterior_sector_deg), (-1, geometry.posterior_sector_deg)):
        directions = np.column_stack([-np.cos(psi), sign * np.sin(psi), np.zeros_like(psi)])
        inside = directions @ pole >= cos_cover
        assert measured == pytest.approx(np.degrees(psi[np.argmin(inside)]), abs=0.5)
    # coverage: the share of random upper-hemisphere directions within the cup's cone
    rng = np.random.default_rng(0)
    d = rng.standard_normal((400_000, 3))
    d = d[d[:, 2] > 0] / np.linalg.norm(d[d[:, 2] > 0], axis=1, keepdims=True)
    assert geometry.head_coverage_percent == pytest.approx(100 * np.mean(d @ pole >= cos_cover),
                                                           abs=1.0)
    assert geometry.sphericity.rms_mm < 0.05 and geometry.sphericity.max_mm < 0.1


def test_a_flattened_head_departs_from_its_sphere_by_the_flattening(monkeypatch):
    cut_mm = 2.0  # the top cut flat 2 mm below the sphere
    flat = lambda q: np.minimum(ball_probe(q), HEAD_MM - cut_mm - q[..., 2])  # noqa: E731
    monkeypatch.setattr(sphericity, "SMOOTHING_DEG", 0.0)  # each point's own departure
    geometry = measure_geometry(cup_probe(cup_pole(45, 15), 95), flat, HEAD_MM)
    # the surface in the region (within 75 deg of the top), on random directions: at polar
    # angle b a ray meets the cut at (R - cut) / cos b when that is inside the sphere
    rng = np.random.default_rng(1)
    d = rng.standard_normal((300_000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d = d[d[:, 2] > np.sin(np.radians(15.0))]
    points = d * np.minimum(HEAD_MM, (HEAD_MM - cut_mm) / d[:, 2])[:, None]
    a = np.column_stack([2 * points, np.ones(len(points))])
    solution = np.linalg.lstsq(a, (points ** 2).sum(axis=1), rcond=None)[0]
    departure = (np.linalg.norm(points - solution[:3], axis=1)
                 - np.sqrt(solution[3] + solution[:3] @ solution[:3]))
    assert geometry.sphericity.rms_mm == pytest.approx(np.sqrt(np.mean(departure ** 2)), abs=0.03)
    assert geometry.sphericity.max_mm == pytest.approx(np.abs(departure).max(), abs=0.1)
    assert geometry.sphericity.rms_mm > 0.3


def test_a_hole_surrounded_by_acetabulum_counts_as_covered():
    """A 24 deg wide gap at the dome (a label gone astray, a thin floor) is crossed by the
    center-edge walk and counted as covered, as the coverage counts it."""
    pole = cup_pole(40.0, 0.0)
    cup = cup_probe(pole, 95.0)
    def holed(q):
        r = np.linalg.norm(q, axis=-1)
        angle = np.arccos(np.clip(q[..., 2] / np.maximum(r, 1e-9), -1, 1))  # from superior
        return np.minimum(cup(q), (angle - np.radians(12.0)) * r)
    whole = measure_geometry(cup, ball_probe, HEAD_MM)
    geometry = measure_geometry(holed, ball_probe, HEAD_MM)
    assert geometry.center_edge_deg == pytest.approx(whole.center_edge_deg, abs=0.3)
    assert geometry.head_coverage_percent == pytest.approx(whole.head_coverage_percent, abs=0.5)


def test_sector_angles_between_slices_follow_each_slice_s_edge_across_a_gap_in_one():
    """Walked in the two slices around the head's center, the sector angles are each slice's
    edge interpolated to the center; a 6 deg gap in the posterior wall of one slice (a label
    broken in one slice) does not end the walk, since the other slice covers it."""
    pole = cup_pole(50.0, 20.0)
    cup = cup_probe(pole, 95.0)
    planes = SlicePlanes((np.array([0.0, 0.0, -1.2]), np.array([0.0, 0.0, 1.8])), 0.4)

    def gapped(q):  # the slice above the center loses 100-106 deg back from medial
        azimuth = np.degrees(np.arctan2(-q[..., 1], -q[..., 0]))
        gap = (q[..., 2] > 1.0) & (azimuth > 100.0) & (azimuth < 106.0)
        return np.where(gap, -1.0, cup(q))

    surface = articular_surface(cup, HEAD_MM)
    each = [sector_angles(lambda q, o=o: cup(q + o), HEAD_MM, surface)
            for o in planes.offsets_mm]
    for angles in (sector_angles(cup, HEAD_MM, surface, planes),
                   sector_angles(gapped, HEAD_MM, surface, planes)):
        for k in range(2):
            assert angles[k] == pytest.approx(0.6 * each[0][k] + 0.4 * each[1][k], abs=0.01)
    assert min(each[0][1], each[1][1]) > 110.0  # the gap lies inside both slices' walls


@pytest.mark.parametrize("inclination, anteversion, coverage", [(55.0, 10.0, 100.0),
                                                                (60.0, 20.0, 105.0),
                                                                (40.0, 15.0, 95.0)])
@pytest.mark.parametrize("floor_mm", [-10.0, -14.0, -17.0])
def test_labels_that_stop_above_the_rim_s_floor_keep_the_opening_s_angles(
        inclination, anteversion, coverage, floor_mm):
    """Labels end with the head's lowest slices, which can lie above the rim's floor (0.8
    head radii down). Rays below them leave the labels, not the acetabulum: the rim points
    bordering only those rays are the labels' lower edge, a horizontal arc that tilted the
    opening by 0.5-24 deg here (the sweep's head_shape seed 10 right: -5.6 deg). Told where
    the labels stop, the plane is the uncut cup's."""
    pole = cup_pole(inclination, anteversion)
    cup = cup_probe(pole, coverage)
    cut = lambda q: np.minimum(cup(q), q[..., 2] - floor_mm)  # noqa: E731
    whole = measure_geometry(cup, ball_probe, HEAD_MM).opening
    opening = measure_geometry(cut, ball_probe, HEAD_MM, labels_floor_mm=floor_mm).opening
    assert opening.inclination_deg == pytest.approx(whole.inclination_deg, abs=0.6)
    assert opening.anteversion_deg == pytest.approx(whole.anteversion_deg, abs=0.6)
    # told nothing, the plane tilts with the labels' lower edge (all but the mildest cut)
    untold = measure_geometry(cut, ball_probe, HEAD_MM).opening
    assert abs(untold.inclination_deg - whole.inclination_deg) > (
        0.3 if (coverage, floor_mm) == (95.0, -17.0) else 3.0)


@pytest.mark.parametrize("pole, coverage, reason", [
    (cup_pole(45, 15), 30.0, "too few to measure"),  # a shallow saucer
    (np.array([0.0, 0.0, 1.0]), 180.0, "no opening"),  # a closed shell
    (np.array([0.0, 0.0, 1.0]), 160.0, "rim is too short"),  # open only below the notch
])
def test_an_acetabulum_too_incomplete_to_measure_says_why(pole, coverage, reason):
    with pytest.raises(Incomplete, match=reason):
        measure_geometry(cup_probe(pole, coverage), ball_probe, HEAD_MM)


def test_suggested_cup_is_the_diameter_rounded_up_to_an_even_millimetre():
    assert [suggested_cup_mm(d) for d in (49.0, 50.0, 50.1, 51.9)] == [50, 50, 52, 52]


def test_an_edge_the_share_moves_farther_than_half_a_slice_is_the_labels_or_withheld():
    """The CT's share (measure/partial_volume.py) only lowers the label's edge voxels, drawing
    its edges in by at most half a slice: edges it moves a little are read from it; where it
    draws them in farther, it broke the bone and the label's values stand; where it reads them
    farther out than the label by more than that, the label's edge stopped short, and the
    value is withheld with the two readings."""
    pole = cup_pole(40.0, 15.0)
    label = measure_geometry(cup_probe(pole, 95.0), ball_probe, HEAD_MM)
    moved = measure_geometry(cup_probe(pole, 95.0), ball_probe, HEAD_MM,
                             edge_fill=cup_probe(pole, 93.0), edge_shift_mm=2.0)
    cut = measure_geometry(cup_probe(pole, 95.0), ball_probe, HEAD_MM,
                           edge_fill=cup_probe(pole, 60.0), edge_shift_mm=2.0)
    short = measure_geometry(cup_probe(pole, 75.0), ball_probe, HEAD_MM,
                             edge_fill=cup_probe(pole, 95.0), edge_shift_mm=2.0)
    assert moved.withheld == {} and cut.withheld == {} and label.withheld == {}
    assert set(short.withheld) == set(EDGE_VALUES)
    for name in EDGE_VALUES:
        assert 0.5 < getattr(label, name) - getattr(moved, name) < 4.0, name
        assert getattr(cut, name) == getattr(label, name), name
        assert getattr(short, name) is None, name
        assert f"CT's edges {getattr(label, name):.1f}" in short.withheld[name], name
    # the sphere and the opening plane do not read the edges: they stay the label's
    short_label = measure_geometry(cup_probe(pole, 75.0), ball_probe, HEAD_MM)
    assert short.sphere.diameter_mm == short_label.sphere.diameter_mm
    assert short.opening.inclination_deg == short_label.opening.inclination_deg


def test_a_withheld_value_marks_the_hip_for_review_with_a_warning(monkeypatch):
    withheld = {"center_edge_deg": "the acetabulum's label gives -12.0 and the CT's edges 30.1"}
    monkeypatch.setattr(hip_module, "measure_hip", lambda *args: HipMeasurements(
        center_edge_deg=None, anterior_sector_deg=60.0, withheld=withheld))
    result = SideResult(side="right", status="segmented")
    hip_module.measure_hips(None, None, None, {"right": result})
    assert result.needs_review
    assert any(w.startswith("no center-edge angle: the acetabulum's label gives -12.0")
               for w in result.warnings), result.warnings


# ---- the same cups as labels in a volume ---------------------------------------------------
SPACING_MM = 1.0
SHAPE = (90, 80, 180)  # z, y, x: one hip each side of the middle
HIPS = {"right": (40.0, 15.0, 95.0), "left": (52.0, 22.0, 88.0)}  # inclination, version, cover


def two_hip_scan(joint_in_label: bool = False, joint_mm: float = INNER_MM - HEAD_MM,
                 split_mm: float = 0.0) -> tuple[Volume, np.ndarray, dict[str, tuple]]:
    """Canonical volume (1 mm, LPS axes; bone 1000 HU, the rest 40 HU, blurred as a scanner
    does) with a ball and a cup ``joint_mm`` beyond it (0: bone on bone) per hip, their segment
    codes, and each hip's head center in RAS mm. ``joint_in_label``: the acetabulum's label
    reaches across the joint space to the head, as it does where bone extraction keeps a
    narrow joint, the labels split ``split_mm`` inside the ball."""
    index_to_lps = np.zeros((4, 4))
    index_to_lps[0, 2] = index_to_lps[1, 1] = index_to_lps[2, 0] = SPACING_MM
    index_to_lps[:3, 3] = (-90.0, -40.0, 100.0)
    index_to_lps[3, 3] = 1.0
    volume = Volume(np.zeros(SHAPE, np.float32), index_to_lps)
    zyx = np.stack(np.meshgrid(*map(np.arange, SHAPE), indexing="ij"), axis=-1).astype(float)
    ras = volume.index_to_ras_mm(zyx)
    labels = np.zeros(SHAPE, np.uint8)
    centers = {}
    for side, (inclination, version, cover) in HIPS.items():
        center_index = np.array([45.0, 40.0, 45.0 if side == "right" else 134.0])
        center = volume.index_to_ras_mm(center_index)
        lateral = 1.0 if side == "right" else -1.0
        q = (ras - center) * np.array([lateral, 1.0, 1.0])  # hip frame
        pole = cup_pole(inclination, version)
        cup = cup_probe(pole, cover, HEAD_MM + joint_mm)(q) > 0
        volume.hu[cup | (ball_probe(q) > 0)] = 1000.0
        head = ball_probe(q) > split_mm
        labelled = cup_probe(pole, cover, HEAD_MM - split_mm)(q) > 0 if joint_in_label else cup
        labels[labelled & ~head] = segment_code(side, ACETABULUM)
        labels[head] = segment_code(side, FEMORAL_HEAD)
        centers[side] = tuple(center)
    volume.hu[volume.hu == 0] = 40.0
    volume.hu[:] = ndimage.gaussian_filter(volume.hu, 0.6)
    return volume, labels, centers


def measured_results(volume: Volume, labels: np.ndarray, centers: dict) -> dict:
    """Each hip's :class:`SideResult`, its head's sphere at ``centers`` (RAS mm), measured."""
    results = {side: SideResult(side, "segmented", sphere_center_ras_mm=center,
                                head_diameter_mm=2 * HEAD_MM) for side, center in centers.items()}
    measure_hips(volume, (labels > 0).astype(np.uint8), labels, results)
    return results


def measured(volume: Volume, labels: np.ndarray, centers: dict) -> dict:
    return {side: r.measurements
            for side, r in measured_results(volume, labels, centers).items()}


ANGLES = ("inclination_deg", "anteversion_deg", "center_edge_deg", "anterior_sector_deg",
          "posterior_sector_deg")


@pytest.fixture(scope="module")
def scan():
    volume, labels, centers = two_hip_scan()
    return volume, labels, centers, measured(volume, labels, centers)


def test_labels_of_a_known_cup_give_its_values_in_patient_coordinates(scan):
    volume, labels, centers, values = scan
    for side, (inclination, version, cover) in HIPS.items():
        m = values[side]
        assert m.not_computed == ""
        assert m.inclination_deg == pytest.approx(inclination, abs=1.5)
        assert m.anteversion_deg == pytest.approx(version, abs=1.5)
        assert m.acetabular_diameter_mm == pytest.approx(2 * INNER_MM, abs=0.6)
        assert m.concentricity_mm < 0.3 and m.suggested_cup_mm == 50
        assert np.allclose(m.acetabular_center_ras_mm, centers[side], atol=0.3)
        assert m.voxel_mm_zyx == (1.0, 1.0, 1.0)
        assert m.head_sphericity_rms_mm < 0.15  # a ball: the label's voxel steps do not count
        # the opening's normal points lateral (+x RAS for the right hip), forward and down
        lateral = 1.0 if side == "right" else -1.0
        assert m.opening_normal_ras[0] * lateral > 0.4
        assert m.opening_normal_ras[1] > 0 and m.opening_normal_ras[2] < 0


def test_labels_cut_above_the_rim_s_floor_keep_the_hips_inclination(scan):
    """The labels of both hips end 14 mm below the heads' centers (their lowest slices), above
    the rim's floor: the opening is fitted to the rim above that cut."""
    volume, labels, centers, _ = scan
    cut = labels.copy()
    cut[:int(volume.ras_mm_to_index(np.asarray(centers["right"]))[0]) - 14] = 0
    values = measured(volume, cut, centers)
    for side, (inclination, version, _) in HIPS.items():
        assert values[side].inclination_deg == pytest.approx(inclination, abs=1.5)
        assert values[side].anteversion_deg == pytest.approx(version, abs=1.5)


def test_a_mirrored_scan_swaps_the_hips_values(scan):
    volume, labels, centers, values = scan
    # left and right swapped: the CT and labels reversed along x, each hip's segments the
    # other's
    swap_sides = np.zeros(5, np.uint8)
    for side, other in (("right", "left"), ("left", "right")):
        for cls in (ACETABULUM, FEMORAL_HEAD):
            swap_sides[segment_code(side, cls)] = segment_code(other, cls)
    mirrored_labels = swap_sides[labels[..., ::-1]]
    mid_r = volume.index_to_ras_mm(np.array([0.0, 0.0, (SHAPE[2] - 1) / 2]))[0]
    mirrored_centers = {("left" if s == "right" else "right"): (2 * mid_r - c[0], c[1], c[2])
                        for s, c in centers.items()}
    mirrored_ct = Volume(np.ascontiguousarray(volume.hu[..., ::-1]), volume.index_to_lps)
    swapped = measured(mirrored_ct, mirrored_labels, mirrored_centers)
    for side, other in (("right", "left"), ("left", "right")):
        for name in ANGLES + ("acetabular_diameter_mm", "head_coverage_percent"):
            assert getattr(swapped[other], name) == pytest.approx(getattr(values[side], name),
                                                                  abs=0.1), name


@pytest.mark.parametrize("storage", ["RAS", "transposed"])
def test_storage_order_does_not_change_the_values(scan, storage):
    """The same scan stored RAS (rows and columns reversed) or with its axes in another order
    gives the same values: patient axes come from the direction cosines."""
    volume, labels, centers, values = scan
    source_to_canonical = np.eye(4)
    if storage == "RAS":
        store = lambda a: a[:, ::-1, ::-1]  # noqa: E731
        source_to_canonical[1, 1] = source_to_canonical[2, 2] = -1
        source_to_canonical[1, 3], source_to_canonical[2, 3] = SHAPE[1] - 1, SHAPE[2] - 1
    else:
        store = lambda a: np.transpose(a, (2, 0, 1))  # noqa: E731 (stored x, z, y)
        source_to_canonical = np.eye(4)[[1, 2, 0, 3]]
    index_to_lps = volume.index_to_lps @ source_to_canonical
    restored = canonicalize(store(volume.hu), index_to_lps)
    canonical_labels = canonicalize(store(labels), index_to_lps).hu.astype(np.uint8)
    again = measured(restored, canonical_labels, centers)
    for side in HIPS:
        for name in ANGLES + ("acetabular_diameter_mm",):
            assert getattr(again[side], name) == pytest.approx(getattr(values[side], name),
                                                               abs=0.1), name


def test_the_ct_places_the_articular_surface_where_the_label_crosses_the_joint_space():
    """The acetabulum's label reaching across the 2.5 mm joint space to the head: the sphere
    fitted to the label alone is as small as the head's; the CT's half maximum beyond the
    joint space gives the acetabulum's own."""
    volume, labels, centers = two_hip_scan(joint_in_label=True)
    with_ct = measured(volume, labels, centers)
    without = measured(Volume(np.zeros(SHAPE, np.float32), volume.index_to_lps), labels, centers)
    for side in HIPS:
        assert with_ct[side].acetabular_diameter_mm == pytest.approx(2 * INNER_MM, abs=0.5)
        assert without[side].acetabular_diameter_mm < 2 * INNER_MM - 3.0


def test_in_bone_of_low_contrast_the_ct_still_places_the_articular_surface():
    """Bone standing only 130 HU over the soft tissue (osteoporotic) and the acetabulum's label
    across the 2.5 mm joint: the joint's dip is under the 150 HU asked of usual bone, but
    over half the bone's own contrast, so the CT still places the surface beyond it."""
    volume, labels, centers = two_hip_scan(joint_in_label=True)
    faint = Volume((40.0 + (volume.hu - 40.0) * 130.0 / 960.0).astype(np.float32),
                   volume.index_to_lps)
    values = measured(faint, labels, centers)
    for side in HIPS:
        assert values[side].acetabular_diameter_mm == pytest.approx(2 * INNER_MM, abs=0.5)


def test_a_label_that_reaches_into_the_head_leaves_the_joint_s_dip_to_the_ct():
    """A 1.5 mm joint the split did not see (osteoporotic bone): the acetabulum's label takes
    the joint and the head's outer 0.8 mm. The joint's dip lies 0.8-2.3 mm past the label's
    edge, beyond the 1 mm the dip is looked for past it; it is looked for past the head's
    sphere too (before: 44.0 mm, the head's own sphere, against 47). A joint this narrow,
    blurred, leaves a shallow dip, and half way from it to the cortex lies a little beyond
    the surface (47.6 mm)."""
    volume, labels, centers = two_hip_scan(joint_in_label=True, joint_mm=1.5, split_mm=0.8)
    values = measured(volume, labels, centers)
    for side in HIPS:
        assert values[side].acetabular_diameter_mm == pytest.approx(2 * HEAD_MM + 3.0, abs=0.75)


def test_the_rise_asked_of_the_joint_s_dip_follows_the_bone_s_contrast_down_to_100_hu():
    from THAAnnotatorLib.measure.edges import min_rise_hu

    assert min_rise_hu(None) == min_rise_hu(900.0) == 150.0
    assert min_rise_hu(195.0) == pytest.approx(97.5)
    assert min_rise_hu(60.0) == 150.0  # the CT tells nothing: no surface placed on noise


def test_in_a_joint_the_ct_does_not_show_the_socket_is_no_smaller_than_the_head():
    """Bone on bone (no joint space for the CT to show) and the labels split 0.8 mm inside
    the head's sphere: the label's edge stands for the articular surface, but no nearer than
    the head's sphere (taken alone, 1.6 mm small)."""
    volume, labels, centers = two_hip_scan(joint_in_label=True, joint_mm=0.0, split_mm=0.8)
    values = measured(volume, labels, centers)
    for side in HIPS:
        assert values[side].acetabular_diameter_mm == pytest.approx(2 * HEAD_MM, abs=0.3)


@pytest.mark.parametrize("offset_mm, flagged", [(0.0, False), (2.5, True)])
def test_a_head_off_its_socket_s_center_marks_the_hip_for_review(scan, offset_mm, flagged):
    """The head's sphere put ``offset_mm`` above the cup's center (a fit that took the
    acetabulum's roof, or a subluxed hip): past 1.5 mm the hip is marked for review."""
    from THAAnnotatorLib.pipeline import _check_congruence

    volume, labels, centers, _ = scan
    moved = {side: tuple(np.add(center, (0, 0, offset_mm))) for side, center in centers.items()}
    for side, result in measured_results(volume, labels, moved).items():
        _check_congruence(result)
        assert result.measurements.concentricity_mm == pytest.approx(offset_mm, abs=0.3)
        assert result.needs_review is flagged, side
        assert any(w.startswith("the femoral head's center lies") for w in result.warnings) is flagged


def test_a_segmented_hip_without_labels_is_not_measured(scan):
    volume, labels, centers, _ = scan
    empty = np.zeros_like(labels)
    values = measured(volume, empty, centers)
    assert values["right"].not_computed == "the hip has no labels to measure"


def test_values_outside_their_usual_adult_ranges_give_one_warning_each():
    from THAAnnotatorLib.measure.ranges import range_warnings

    usual = {"acetabular_diameter_mm": 52.0, "inclination_deg": 45.0, "anteversion_deg": 20.0,
             "center_edge_deg": 30.0, "anterior_sector_deg": 64.0, "posterior_sector_deg": 102.0,
             "head_sphericity_rms_mm": 0.3, "head_coverage_percent": 10.0}
    assert range_warnings(usual) == []
    odd = dict(usual, center_edge_deg=14.0, posterior_sector_deg=80.0)
    warnings = range_warnings(odd)
    assert len(warnings) == 2
    assert warnings[0].startswith("the lateral center-edge angle of 14.0 deg is outside the "
                                  "usual adult range (20-40 deg)")
    assert "(at least 90 deg)" in warnings[1]
    # a head off its socket's center is a mark for review (pipeline), not a range warning
    assert range_warnings(dict(usual, concentricity_mm=3.0)) == []


# ---- a cup at thick slices: the CT's partial volume places its edges -----------------------
SLAB_MM, FINE_MM = 4.0, 0.25
THICK_HIP = (40.0, 15.0, 95.0)  # inclination, version, cover


def thick_slice_scan(center_offset_mm: float):
    """One right hip's ball and cup drawn on 0.25 mm slices and averaged into 4 mm slabs, as
    a scanner's thick slices are (bone 1000 HU, the rest 40 HU); labels as bone extraction
    gives them there: the acetabulum every slab the cup reaches into, the head every slab it
    fills at least half. ``center_offset_mm`` moves the head's center within a slab."""
    slabs, rows, columns = 20, 80, 80
    fine = int(SLAB_MM / FINE_MM)
    z = (np.arange(slabs * fine) + 0.5) * FINE_MM - SLAB_MM / 2
    center_zyx_mm = np.array([38.0 + center_offset_mm, 40.0, 40.0])
    zz, yy, xx = np.meshgrid(z, np.arange(rows, dtype=float), np.arange(columns, dtype=float),
                             indexing="ij")
    # index axes: z superior, y posterior, x left (LPS); the right hip's frame is lateral
    # (patient's right, -x), anterior (-y), superior
    q = np.stack([center_zyx_mm[2] - xx, center_zyx_mm[1] - yy, zz - center_zyx_mm[0]], -1)
    cup = cup_probe(cup_pole(*THICK_HIP[:2]), THICK_HIP[2])(q) > 0
    head = ball_probe(q) > 0

    def per_slab(values):
        return values.reshape(slabs, fine, rows, columns).mean(axis=1)

    hu = per_slab(np.where(cup | head, 1000.0, 40.0)).astype(np.float32)
    labels = np.zeros(hu.shape, np.uint8)
    labels[per_slab(cup) > 0] = segment_code("right", ACETABULUM)
    labels[per_slab(head) >= 0.5] = segment_code("right", FEMORAL_HEAD)
    index_to_lps = np.zeros((4, 4))
    index_to_lps[0, 2], index_to_lps[1, 1], index_to_lps[2, 0], index_to_lps[3, 3] = \
        1.0, 1.0, SLAB_MM, 1.0
    volume = Volume(hu, index_to_lps)
    center = volume.index_to_ras_mm(center_zyx_mm / np.array([SLAB_MM, 1.0, 1.0]))
    return volume, labels, {"right": tuple(center)}


@pytest.mark.parametrize("center_offset_mm", [0.0, 1.0, 2.0, 3.0])
def test_at_thick_slices_the_ct_places_the_acetabulums_edges_within_a_slab(center_offset_mm):
    """A label holding every slab the cup reaches into puts its edges up to a slab outside the
    bone (center-edge angle 4-7 deg too large at 4 mm slabs); the CT's partial volume puts
    them back: the angles and coverage within about a degree and a point of the drawn cup's.
    The sector angles, walked in the two slabs around the center and interpolated, lie within
    half a degree (the nearer slab's edge alone: up to 1.0 deg off)."""
    volume, labels, centers = thick_slice_scan(center_offset_mm)
    values = measured(volume, labels, centers)["right"]
    exact = measure_geometry(cup_probe(cup_pole(*THICK_HIP[:2]), THICK_HIP[2]), ball_probe,
                             HEAD_MM)
    assert values.center_edge_deg == pytest.approx(exact.center_edge_deg, abs=1.0)
    assert values.anterior_sector_deg == pytest.approx(exact.anterior_sector_deg, abs=0.5)
    assert values.posterior_sector_deg == pytest.approx(exact.posterior_sector_deg, abs=0.5)
    assert values.head_coverage_percent == pytest.approx(exact.head_coverage_percent, abs=1.0)
