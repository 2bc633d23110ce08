"""The check of a fitted head sphere against the surface it should sit on (afs/surface_check.py),
on phantoms whose true head sphere is known, and as the pipeline reports it."""
from __future__ import annotations

import numpy as np
import pytest

from THAAnnotatorLib.afs.frame import SideFrame
from THAAnnotatorLib.afs.sphere import Sphere
from THAAnnotatorLib.afs.surface_check import MAX_EDGE_OFFSET_MM, MIN_DROP_HU, check_surface
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
    return frame.view(volume.hu), volume.spacing_mm, Sphere(center * volume.spacing_mm, truth.radius_mm)


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


def test_the_pipeline_warns_about_its_wrong_sphere_and_not_about_its_right_one():
    """At 2 mm voxels the pipeline's left head of seed 3 follows the acetabulum (diameter 9 mm
    too large, measured); its right head is right. Only the left one is flagged."""
    phantom = generate_phantom(spacing_mm=(2.0, 2.0, 2.0), seed=3)
    annotation = annotate(phantom.volume)
    for side, wrong in (("left", True), ("right", False)):
        result, truth = annotation.sides[side], phantom.heads[side]
        diameter_error = abs(result.head_diameter_mm - 2 * truth.radius_mm)
        assert (diameter_error > 3.0) == wrong, (side, diameter_error)
        surface_warnings = [w for w in result.warnings if "fitted sphere" in w]
        assert bool(surface_warnings) == wrong, (side, result.warnings)
        assert (result.surface_drop_hu < MIN_DROP_HU
                or abs(result.surface_edge_offset_mm) > MAX_EDGE_OFFSET_MM) == wrong
