"""The initial slice (afs.initial_slice) and the rough circle (afs.rough_circle) on a drawn
femur, with and without a greater trochanter that rises apart from the head; and the head's
upper coverage (afs.coverage), which a head found without that split must show."""
from __future__ import annotations

import numpy as np
import pytest

from THAAnnotatorLib.afs.coverage import upper_coverage
from THAAnnotatorLib.afs.initial_slice import find_initial_slice
from THAAnnotatorLib.afs.rough_circle import rough_circle
from THAAnnotatorLib.afs.sphere import Sphere

SPACING_MM = np.array([1.0, 1.0, 1.0])
HEAD_CENTER = np.array([50.0, 40.0, 50.0])  # (z, y, x), z up, x lateral to medial
RADIUS_MM = 12.0


def _femur(trochanter_top_z: int) -> np.ndarray:
    """Shaft (x = 25, up to z = 38), a neck from its top to the head, the head, and a greater
    trochanter block lateral of the shaft from z = 30 up to ``trochanter_top_z``."""
    z, y, x = np.indices((70, 80, 80)).astype(float)
    head = (z - 50) ** 2 + (y - 40) ** 2 + (x - 50) ** 2 <= RADIUS_MM ** 2
    shaft = ((y - 40) ** 2 + (x - 25) ** 2 <= 9 ** 2) & (z <= 38)
    # the neck: points within 5 mm of the segment from (z 35, x 25) to the head's center
    a, b = np.array([35.0, 25.0]), np.array([50.0, 50.0])
    t = np.clip(((z - a[0]) * (b[0] - a[0]) + (x - a[1]) * (b[1] - a[1])) / np.sum((b - a) ** 2),
                0, 1)
    neck = (z - a[0] - t * (b[0] - a[0])) ** 2 + (y - 40) ** 2 + (x - a[1] - t * (b[1] - a[1])) ** 2 <= 25
    trochanter = (x >= 12) & (x <= 20) & (np.abs(y - 40) <= 7) & (z >= 30) & (z <= trochanter_top_z)
    return head | shaft | neck | trochanter


def test_a_trochanter_apart_from_the_head_gives_the_initial_slice_near_the_equator():
    found = find_initial_slice(_femur(trochanter_top_z=58), SPACING_MM, min_head_radius_mm=12.0)
    assert found is not None and found.trochanter is not None
    assert abs(found.index - HEAD_CENTER[0]) <= 2


def test_without_a_separate_trochanter_the_femur_s_thickest_slice_is_taken():
    """The trochanter ends below the neck's top, so no slice shows it apart from the head: the
    initial slice is the femur's thickest, and the rough circle is its largest inscribed disk,
    which is the head's section there."""
    found = find_initial_slice(_femur(trochanter_top_z=36), SPACING_MM, min_head_radius_mm=12.0)
    assert found is not None and found.trochanter is None
    assert abs(found.index - HEAD_CENTER[0]) <= 2
    rough = rough_circle(found.head, found.trochanter, SPACING_MM[1:], rough_shrink=1.2)
    assert rough is not None
    assert np.linalg.norm(rough.center_mm - HEAD_CENTER[1:]) <= 1.5
    assert rough.anatomy_radius_mm == pytest.approx(RADIUS_MM, abs=1.5)


def test_no_femur_in_view_gives_no_initial_slice():
    assert find_initial_slice(np.zeros((20, 40, 40), bool), SPACING_MM, 12.0) is None


def test_the_upper_coverage_of_a_head_is_the_share_of_its_upper_half_under_bone():
    """A head alone, under a cup over its top 60 deg, and under a full upper hemisphere."""
    z, y, x = np.indices((70, 80, 80)).astype(float)
    distance = np.sqrt((z - 35) ** 2 + (y - 40) ** 2 + (x - 40) ** 2)
    head = distance <= RADIUS_MM
    shell = (distance >= RADIUS_MM + 3) & (distance <= RADIUS_MM + 7)
    # the rays' z components are spread evenly over [0.2, 1] (equal areas on a sphere), so
    # the cup, bone where z >= 0.5, meets (1 - 0.5) / (1 - 0.2) of them
    sphere = Sphere(np.array([35.0, 40.0, 40.0]), RADIUS_MM)
    cup = shell & (z - 35 >= 0.5 * distance)
    assert upper_coverage(head, sphere, SPACING_MM) == 0.0
    assert upper_coverage(head | cup, sphere, SPACING_MM) == pytest.approx(0.5 / 0.8, abs=0.05)
    assert upper_coverage(head | (shell & (z >= 35)), sphere, SPACING_MM) == 1.0


def test_a_head_kept_only_as_its_cortex_gives_the_rough_circle_of_its_section():
    """Low-density spongy bone left out of the bone mask: the head's section is a ring 1 mm
    thick (thinner than the opening that cuts bridges to neighbouring bone); the rough circle
    is still the section's."""
    y, x = np.indices((80, 80)).astype(float)
    r = np.sqrt((y - 40) ** 2 + (x - 50) ** 2)
    ring = (r <= RADIUS_MM) & (r > RADIUS_MM - 1.0)
    trochanter = (np.abs(y - 40) <= 5) & (x >= 12) & (x <= 20)
    rough = rough_circle(ring, trochanter, SPACING_MM[1:], rough_shrink=1.2)
    assert rough is not None
    assert np.linalg.norm(rough.center_mm - np.array([40.0, 50.0])) <= 1.0
    assert rough.anatomy_radius_mm == pytest.approx(RADIUS_MM, abs=1.0)


def test_spongy_holes_open_at_the_surface_still_give_the_rough_circle_of_the_section():
    """A head section 20 mm in radius with its neck, and four spongy holes each behind a wall
    1 mm thin at the surface, which the opening that cuts bridges takes: the holes open to
    the outside. The rough circle is still the section's, not a disk beside the holes."""
    y, x = np.indices((110, 110)).astype(float)
    center, radius = np.array([55.0, 60.0]), 20.0
    bone = (np.hypot(y - center[0], x - center[1]) <= radius) | (
        (np.abs(y - center[0]) <= 9) & (x >= 25) & (x <= center[1]))
    for angle in np.radians([0, 70, 140, 290]):  # 0: medial, away from the neck
        hole = center + 15.0 * np.array([np.sin(angle), np.cos(angle)])
        bone &= np.hypot(y - hole[0], x - hole[1]) > 4.0
    trochanter = (np.abs(y - center[0]) <= 5) & (x >= 5) & (x <= 12)
    rough = rough_circle(bone, trochanter, SPACING_MM[1:], rough_shrink=1.2)
    assert rough is not None
    assert np.linalg.norm(rough.center_mm - center) <= 1.0
    assert rough.anatomy_radius_mm == pytest.approx(radius, abs=1.0)


def test_a_joint_space_the_head_encloses_with_touching_bone_is_not_filled():
    """The head touches a thin acetabular wall (2 mm, which the opening takes) at both ends of
    a 2 mm joint space, 200 deg around its medial side: the enclosed joint space is outside the
    head's hull and stays open, so the rough circle is the head's section, not the head and its
    cup together."""
    y, x = np.indices((110, 110)).astype(float)
    center, radius = np.array([55.0, 50.0]), 18.0
    r = np.hypot(y - center[0], x - center[1])
    medial = np.degrees(np.arctan2(y - center[0], x - center[1]))
    cup = (r >= radius + 2.0) & (r <= radius + 4.0) & (np.abs(medial) <= 100)
    contacts = (r > radius) & (r < radius + 2.0) & (np.abs(np.abs(medial) - 100) <= 4)
    trochanter = (np.abs(y - center[0]) <= 5) & (x >= 5) & (x <= 12)
    rough = rough_circle((r <= radius) | cup | contacts, trochanter, SPACING_MM[1:],
                         rough_shrink=1.2)
    assert rough is not None
    assert np.linalg.norm(rough.center_mm - center) <= 1.0
    assert rough.anatomy_radius_mm == pytest.approx(radius, abs=1.0)
