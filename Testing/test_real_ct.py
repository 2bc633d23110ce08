"""The pipeline on the real clinical CT in ../shared (3 mm; left hip prosthesis, right hip native)."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial import Delaunay

from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.io import read_scan
from THAAnnotatorLib.pipeline import METAL_MESSAGE, annotate
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, segment_code
from THAAnnotatorLib.volume import Volume


@pytest.fixture(scope="module")
def real_result(shared_ct_path):
    scan = read_scan(shared_ct_path)
    return scan.volume, annotate(scan.volume)


def test_left_hip_is_reported_as_metal_and_left_alone(real_result):
    volume, annotation = real_result
    left = annotation.sides["left"]
    assert left.status == "metal"
    assert left.message == METAL_MESSAGE
    assert left.head_diameter_mm is None and not left.circles
    assert not np.isin(annotation.side_labels, [segment_code("left", ACETABULUM),
                                                segment_code("left", FEMORAL_HEAD)]).any()


def test_right_femoral_head_is_found_inside_the_right_acetabulum(real_result):
    volume, annotation = real_result
    right = annotation.sides["right"]
    assert right.status == "segmented", right.message
    assert 38.0 <= right.head_diameter_mm <= 58.0
    # RAS: the patient's right is +x, and the implant (left hip) sits at -x
    metal_x = volume.index_to_ras_mm(np.argwhere(volume.hu > 2500).mean(axis=0))[0]
    assert right.sphere_center_ras_mm[0] > 0 > metal_x

    center = volume.ras_mm_to_index(np.array(right.sphere_center_ras_mm))
    head = annotation.side_labels == segment_code("right", FEMORAL_HEAD)
    acetabulum = np.argwhere(annotation.side_labels == segment_code("right", ACETABULUM))
    assert head[tuple(np.round(center).astype(int))], "the sphere center is not in the femoral head"
    # the cup wraps the head: its center lies inside the acetabulum's 3-D convex hull (mm)
    spacing = volume.spacing_mm
    assert Delaunay(acetabulum * spacing).find_simplex(center * spacing) >= 0, \
        "the sphere center is outside the acetabulum"


def test_right_hip_is_flagged_for_review_because_its_joint_space_is_not_resolved(real_result):
    """At 3 mm voxels this scan's joint space does not show (measured: the mean HU falls by
    24-130 from the head's cortex outward, 420-810 on phantoms with a right sphere), so the
    head's size rests on little evidence (3-10 HU of added noise moved it 34-45 mm): the
    result must say so rather than pass for a measured one."""
    volume, annotation = real_result
    right = annotation.sides["right"]
    assert right.surface_drop_hu < 150 and right.needs_review
    assert any("no clear femoral head surface" in w for w in right.warnings), right.warnings



def _variant(image: sitk.Image, path) -> Volume:
    sitk.WriteImage(image, str(path))
    return read_scan(path).volume


def _right_hip(volume: Volume):
    """The right hip's result, or None where it was not found (the reason checked): the scan
    refused, or (the left hip being metal) the hip reported as not found."""
    try:
        right = annotate(volume).sides["right"]
    except InputError as error:
        assert "right hip: femoral head not found:" in str(error), str(error)
        return None
    if right.status == "not_found":
        assert right.message.startswith("femoral head not found:"), right.message
        return None
    return right


@pytest.fixture(scope="module")
def real_variants(shared_ct_path, tmp_path_factory):
    """The real CT re-stored in LPS and RAS order, resampled to 1 mm in-plane (linear), and with
    10 HU of Gaussian noise added; each annotated (right hip)."""
    folder = tmp_path_factory.mktemp("real_variants")
    image = sitk.ReadImage(str(shared_ct_path))
    spacing, size = image.GetSpacing(), image.GetSize()
    fine = (1.0, 1.0, spacing[2])
    resampled = sitk.Resample(image, [int(round(size[i] * spacing[i])) for i in range(2)] + [size[2]],
                              sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), fine,
                              image.GetDirection(), -1024.0, sitk.sitkFloat32)
    hu = sitk.GetArrayFromImage(image).astype(np.float32)
    noisy = sitk.GetImageFromArray(hu + np.random.default_rng(0).normal(0, 10, hu.shape).astype(np.float32))
    noisy.CopyInformation(image)
    images = {"LPS": sitk.DICOMOrient(image, "LPS"), "RAS": sitk.DICOMOrient(image, "RAS"),
              "1 mm in-plane": resampled, "10 HU noise": noisy}
    return {name: _right_hip(_variant(im, folder / f"{i}.nii.gz"))
            for i, (name, im) in enumerate(images.items())}


def test_the_same_scan_stored_in_another_order_gives_the_same_hip(real_result, real_variants):
    right = real_result[1].sides["right"]
    for name in ("LPS", "RAS"):
        other = real_variants[name]
        assert other.head_diameter_mm == pytest.approx(right.head_diameter_mm, abs=0.01), name
        assert np.allclose(other.sphere_center_ras_mm, right.sphere_center_ras_mm, atol=0.01), name


def test_a_resampled_or_noisier_copy_agrees_or_says_why_not(real_result, real_variants):
    """Resampled to 1 mm in-plane the right head comes out 27 mm across, 35 mm from the one on
    the original grid (measured), and with 10 HU of noise it is not found: neither passes for a
    measurement. Each copy either agrees with the original (diameter within 2 mm, center within
    3 mm) or is marked for review with the reason, or is refused with the reason."""
    right = real_result[1].sides["right"]
    for name in ("1 mm in-plane", "10 HU noise"):
        other = real_variants[name]
        if other is None:
            continue  # refused, with the reason checked in _right_hip
        agrees = (abs(other.head_diameter_mm - right.head_diameter_mm) <= 2.0
                  and np.linalg.norm(np.subtract(other.sphere_center_ras_mm,
                                                 right.sphere_center_ras_mm)) <= 3.0)
        assert agrees or (other.needs_review and any("check this hip" in w for w in other.warnings)), \
            (name, other.head_diameter_mm, other.warnings)
