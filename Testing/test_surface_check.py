"""The check of a fitted head sphere against the surface it should sit on (afs/surface_check.py)
and the 3-D refit it triggers (afs/surface_refit.py), on phantoms whose true head sphere is
known, and as the pipeline reports them."""
from __future__ import annotations

import numpy as np
import pytest

from THAAnnotatorLib.afs.frame import SideFrame
from THAAnnotatorLib.afs.sphere import Sphere
from THAAnnotatorLib.afs.surface_check import MAX_EDGE_OFFSET_MM, MIN_DROP_HU, check_surface
from THAAnnotatorLib.afs.surface_refit import refit_to_surface
from THAAnnotatorLib.model.build import PHANTOM_FOV_MM
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.phantom import generate_phantom
from THAAnnotatorLib.pipeline import annotate


@pytest.fixture(scope="module")
def right_hip():
    """A 0.8 mm / 2 mm phantom's right side frame and its true head sphere (side-frame mm)."""
    phantom = generate_phantom(spacing_mm=(2.0, 0.8, 0.8), seed=2)
    volume = phantom.volume
    frame = SideFrame.for_side(volume, "right")
    truth = phantom.heads["right"]
    center = volume.ras_mm_to_index(np.asarray(truth.center_ras_mm))
    center[2] = frame.to_frame_x(center[2])
    sphere = Sphere(center * volume.spacing_mm, truth.radius_mm)
    return frame.view(volume.hu), volume.spacing_mm, sphere


def _flagged(check) -> bool:
    return bool(check.warnings())


def test_the_true_sphere_sits_on_a_clear_surface(right_hip):
    hu, spacing, sphere = right_hip
    check = check_surface(hu, sphere, spacing)
    assert check.drop_hu > 2 * MIN_DROP_HU
    assert abs(check.edge_offset_mm) < 0.5
    assert not _flagged(check) and check.passed


def test_a_sphere_on_the_acetabulum_is_flagged_and_the_edge_found_inside_it(right_hip):
    hu, spacing, sphere = right_hip
    too_large = Sphere(sphere.center_mm.copy(), sphere.radius_mm + 5.0)
    check = check_surface(hu, too_large, spacing)
    assert _flagged(check)
    # the head's surface, where the profile falls fastest, is 5 mm inside the wrong sphere
    assert check.edge_offset_mm == pytest.approx(-5.0, abs=MAX_EDGE_OFFSET_MM)


def test_a_sphere_off_center_is_flagged(right_hip):
    hu, spacing, sphere = right_hip
    shifted = Sphere(sphere.center_mm + np.array([0.0, 6.0, 0.0]), sphere.radius_mm)
    assert _flagged(check_surface(hu, shifted, spacing))


def test_a_sphere_off_center_and_too_large_is_refitted_onto_the_head(right_hip):
    hu, spacing, sphere = right_hip
    wrong = Sphere(sphere.center_mm + np.array([2.0, 5.0, -4.0]), sphere.radius_mm + 5.0)
    refit, points = refit_to_surface(hu, wrong, spacing)
    assert refit.radius_mm == pytest.approx(sphere.radius_mm, abs=0.5)
    assert np.linalg.norm(refit.center_mm - sphere.center_mm) <= 0.7
    assert len(points) >= 100


def _pipeline_errors(phantom, annotation, side):
    result, truth = annotation.sides[side], phantom.heads[side]
    return (abs(result.head_diameter_mm - 2 * truth.radius_mm),
            float(np.linalg.norm(np.subtract(result.sphere_center_ras_mm, truth.center_ras_mm))))


def test_the_pipeline_refits_the_sphere_its_slices_got_wrong_and_says_so():
    """At 2 mm voxels the per-slice circles of seed 3's left head follow the acetabulum. How far
    depends on the CPU's floating-point paths (measured: 11.6 mm too large without AVX-512,
    failing the surface check; 4.2 mm too large with it, on an edge of 198 HU that passes the
    check). Either way the 3-D refit lands on the head: sent there by the failed check, or
    taken because it disagrees with the slices' sphere and sits on a sharper edge; and the hip
    is marked for review. The right head was right from the start and is left alone."""
    phantom = generate_phantom(spacing_mm=(2.0, 2.0, 2.0), seed=3)
    annotation = annotate(phantom.volume)
    for side, refitted in (("left", True), ("right", False)):
        result = annotation.sides[side]
        diameter_error, center_error = _pipeline_errors(phantom, annotation, side)
        assert diameter_error <= 1.5 and center_error <= 1.5, (side, diameter_error, center_error)
        assert result.surface_drop_hu >= MIN_DROP_HU
        assert abs(result.surface_edge_offset_mm) <= MAX_EDGE_OFFSET_MM
        assert any("refitted" in w for w in result.warnings) == refitted, (side, result.warnings)
        assert not any("no clear" in w or "sharpest edge" in w for w in result.warnings)
        # a refitted sphere stands on the fallback's evidence: marked for review
        assert result.needs_review == refitted


def test_the_pipeline_flags_a_wrong_sphere_it_cannot_mend():
    """At 3 mm voxels the joint space hardly shows: seed 1000's right head comes out about 11-12
    mm too large (measured) and no 3-D refit passes, so the hip is flagged for review. Which
    check says so moves with the CPU's floating-point paths (measured: the surface check's edge
    3.0 mm outside the sphere on one, a clear edge at 0.5 mm on another): the surface check or
    the usual size range, never neither."""
    phantom = generate_phantom(spacing_mm=(3.0, 3.0, 3.0), seed=1000)
    annotation = annotate(phantom.volume, sides=("right",))
    result = annotation.sides["right"]
    diameter_error, center_error = _pipeline_errors(phantom, annotation, "right")
    assert diameter_error > 2.0 or center_error > 3.0
    assert any("no clear femoral head surface" in w or "sharpest edge" in w
               or "outside the usual adult range" in w for w in result.warnings), result.warnings
    assert not any("refitted" in w for w in result.warnings)
    assert result.needs_review


def test_a_head_of_unusual_size_is_marked_for_review():
    """At 3 mm voxels seed 1002's right head (dataset field of view) comes out 58.8 mm
    across, 10.8 mm too large (measured): outside the usual adult range (38-58 mm), so it is
    marked for review with that reason, whatever the surface check says of it."""
    phantom = generate_phantom(spacing_mm=(3.0, 3.0, 3.0), fov_mm=PHANTOM_FOV_MM, seed=1002)
    result = annotate(phantom.volume, sides=("right",)).sides["right"]
    assert result.head_diameter_mm > Params().usual_head_diameter_mm[1]
    assert result.needs_review
    assert any("outside the usual adult range" in w for w in result.warnings), result.warnings


def test_the_usual_size_range_alone_marks_a_clear_head_for_review():
    """A right head (0.8 mm / 2 mm, 48 mm across) on a clear surface, with a usual range that
    leaves it out: the range alone marks it for review; with the default range it is not."""
    phantom = generate_phantom(spacing_mm=(2.0, 0.8, 0.8), seed=2)
    narrow = annotate(phantom.volume, Params(usual_head_diameter_mm=(38.0, 44.0)),
                      sides=("right",)).sides["right"]
    default = annotate(phantom.volume, sides=("right",)).sides["right"]
    for result in (narrow, default):
        assert result.surface_drop_hu >= MIN_DROP_HU
        assert abs(result.surface_edge_offset_mm) <= MAX_EDGE_OFFSET_MM
    assert narrow.needs_review and not default.needs_review
    assert any("outside the usual adult range of 38-44 mm" in w for w in narrow.warnings)


def _layered_joint(shift_mm: float) -> tuple[np.ndarray, np.ndarray, Sphere]:
    """A head of radius 22 mm in a joint narrowed to 0.5 mm (0.7 mm / 1 mm voxels): spongy
    bone, cortex, the joint, the acetabulum's cortex and its spongy bone, in concentric layers
    averaged over each voxel; and a sphere ``shift_mm`` larger than the head's."""
    spacing = np.array([1.0, 0.7, 0.7])
    radius, sub = 22.0, 3  # sub-samples per voxel and axis, for partial volume
    shape = (60, 90, 90)
    center = np.array([30.0, 45.0, 45.0]) * spacing
    axes = [(np.arange(n * sub) + 0.5) / sub * s - c for n, s, c in zip(shape, spacing, center)]
    r = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2
                + axes[2][None, None, :] ** 2)
    layers_mm = [radius - 1.5, radius, radius + 0.5, radius + 2.5, radius + 9.0]
    values_hu = np.array([250.0, 1200.0, 40.0, 1200.0, 250.0, 40.0])
    fine = values_hu[np.searchsorted(layers_mm, r)]
    hu = fine.reshape(shape[0], sub, shape[1], sub, shape[2], sub).mean(axis=(1, 3, 5))
    return hu, spacing, Sphere(center, radius + shift_mm)


def test_a_joint_narrowed_to_a_valley_is_the_head_s_surface():
    """Half a millimetre of joint between two cortices falls by less than the acetabulum's
    cortex does into its spongy bone, 2.5 mm out: the head's surface is the fall into the
    valley between them, not that steeper fall (which the check took before, flagging right
    spheres of narrowed joints and refitting them onto the acetabulum's cortex)."""
    hu, spacing, sphere = _layered_joint(0.0)
    check = check_surface(hu, sphere, spacing)
    assert check.valley and check.passed
    assert abs(check.edge_offset_mm) < 0.75  # the steeper fall lies +2.3 mm out


def test_a_sphere_inside_a_narrowed_joint_s_head_is_still_flagged():
    hu, spacing, sphere = _layered_joint(-2.0)
    check = check_surface(hu, sphere, spacing)
    assert not check.passed
    assert check.edge_offset_mm == pytest.approx(2.0, abs=0.75)
