"""THA planning measurements on the real clinical CT in ../shared (3 mm voxels; the left hip
holds a prosthesis, the right is native)."""
from __future__ import annotations

import pytest

from THAAnnotatorLib.io import read_scan
from THAAnnotatorLib.overview import measurement_lines
from THAAnnotatorLib.pipeline import annotate


@pytest.fixture(scope="module")
def sides(shared_ct_path):
    return annotate(read_scan(shared_ct_path).volume).sides


def test_right_hip_is_measured_and_marked_as_measured_at_3_mm_voxels(sides):
    m = sides["right"].measurements
    assert m.not_computed == ""
    assert m.voxel_mm_zyx == (3.0, 3.0, 3.0)
    assert 40.0 <= m.acetabular_diameter_mm <= 60.0
    assert m.suggested_cup_mm % 2 == 0 and m.suggested_cup_mm >= m.acetabular_diameter_mm
    for name in ("inclination_deg", "anteversion_deg", "center_edge_deg", "anterior_sector_deg",
                 "posterior_sector_deg", "head_coverage_percent", "head_sphericity_rms_mm"):
        assert getattr(m, name) is not None, name
    assert 0 < m.head_coverage_percent <= 100
    # the acetabulum's walls are measured whole: the posterior wall reaches Anda's usual 90 deg
    # or more (the slice-axis share of measure/partial_volume.py, read on these isotropic 3 mm
    # voxels, once cut the wall and read 26 deg)
    assert m.posterior_sector_deg >= 90.0 and m.anterior_sector_deg >= 50.0
    lines = measurement_lines(sides["right"])
    assert len(lines) == 2 and "measured on 3 x 3 x 3 mm voxels" in lines[1]


def test_at_3_mm_pixels_the_socket_is_not_read_past_the_head_s_sphere(sides):
    """3 mm voxels resolve no joint: the acetabulum's label meets the head, and the dips within
    1 mm past the head's sphere are its spongy bone's. Read from them, the socket was 46.3 mm
    with its center 4.3 mm from the head's (the head 42.6 mm); coarser than 1.5 mm pixels they
    are not looked for there."""
    right = sides["right"]
    assert right.measurements.acetabular_diameter_mm - right.head_diameter_mm < 1.0
    assert right.measurements.concentricity_mm <= 2.0


def test_left_metal_hip_has_no_measurements_and_says_why(sides):
    left = sides["left"]
    assert left.status == "metal"
    m = left.measurements
    assert "metal implant" in m.not_computed
    assert all(getattr(m, name) is None for name in (
        "acetabular_diameter_mm", "inclination_deg", "center_edge_deg", "head_coverage_percent"))
    assert measurement_lines(left) == []
