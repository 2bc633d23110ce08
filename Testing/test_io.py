"""Reading scans: formats, DICOM series, orientation handling and clear errors for bad input."""
from __future__ import annotations

import gzip
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from THAAnnotatorLib import nifti_raw
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.io import read_scan, sitk_reference_from_volume, validate_ct, volume_from_sitk
from THAAnnotatorLib.volume import Volume, canonicalize

# ITK direction (columns = where index axes i, j, k point in LPS): i -> Left, j -> Inferior,
# k -> Posterior, i.e. a coronal acquisition stored upside down; determinant +1.
CORONAL_DIRECTION = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def ct_like_array(shape=(9, 10, 11), seed=0) -> np.ndarray:
    """int16 (k, j, i) array with air, soft tissue, bone and a unique value per voxel pattern."""
    rng = np.random.default_rng(seed)
    array = rng.integers(-50, 80, size=shape).astype(np.int16)
    array[0] = -1000  # air
    array[-1, :, :3] = 900  # bone
    return array


def non_finite_ct(nan_voxels: int, inf_voxels: int) -> np.ndarray:
    """float32 :func:`ct_like_array` with NaN and then alternately +inf / -inf soft-tissue voxels."""
    array = ct_like_array().astype(np.float32)
    array[4, 0, :nan_voxels] = np.nan
    array[4, 1, :inf_voxels] = np.resize([np.inf, -np.inf], inf_voxels)
    return array


def make_image(array: np.ndarray, direction=CORONAL_DIRECTION, spacing=(0.7, 0.9, 2.5),
               origin=(12.5, -40.0, 7.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(np.asarray(direction, dtype=float).ravel().tolist())
    return image


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_geometry(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)


def write_dicom_series(image: sitk.Image, folder: Path, series_uid: str) -> None:
    """Write a 3-D int16 image as one CT DICOM file per slice along k."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetSize()[2]):
        slab = image[:, :, k : k + 1]
        tags = {
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
            "0008|0018": f"{series_uid}.{k + 1}",
            "0008|0060": "CT",
            "0010|0010": "Phantom^Test",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid,
            "0020|0052": f"{series_uid}.0",  # Frame of Reference UID
            "0020|0013": str(k + 1),
        }
        for key, value in tags.items():
            slab.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"{series_uid}_{k:03d}.dcm"))
        writer.Execute(slab)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"])
def test_file_formats_round_trip(tmp_path, suffix):
    image = make_image(ct_like_array())
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(image, str(path))
    before = sha256(path)

    scan = read_scan(path)

    expected = volume_from_sitk(image)
    np.testing.assert_array_equal(scan.volume.hu, expected.hu)
    np.testing.assert_allclose(scan.volume.index_to_lps, expected.index_to_lps, atol=1e-4)
    assert_same_geometry(scan.reference, image)
    assert scan.path == path
    assert sha256(path) == before, "reading must not modify the input"


def test_dicom_folder_reads_the_largest_series_and_warns(tmp_path, caplog):
    image = make_image(ct_like_array(shape=(6, 10, 11)))
    write_dicom_series(image, tmp_path / "study", "1.2.826.0.1.3680043.2.1125.10")
    write_dicom_series(make_image(ct_like_array(shape=(3, 10, 11), seed=1)), tmp_path / "study",
                       "1.2.826.0.1.3680043.2.1125.20")

    with caplog.at_level(logging.WARNING, logger="THAAnnotatorLib.io"):
        scan = read_scan(tmp_path / "study")

    np.testing.assert_array_equal(scan.volume.hu, volume_from_sitk(image).hu)
    assert_same_geometry(scan.reference, image)
    assert "2 DICOM series" in caplog.text and "1.2.826.0.1.3680043.2.1125.10" in caplog.text


def test_lps_and_ras_stored_copies_give_the_same_canonical_volume(tmp_path):
    array = ct_like_array()
    spacing, origin = (0.8, 0.9, 2.0), (-30.0, 25.0, 100.0)
    lps = make_image(array, direction=np.eye(3), spacing=spacing, origin=origin)
    # the same voxels stored with i and j reversed: i -> Right, j -> Anterior
    ras_origin = lps.TransformIndexToPhysicalPoint((array.shape[2] - 1, array.shape[1] - 1, 0))
    ras = make_image(array[:, ::-1, ::-1], direction=np.diag([-1.0, -1.0, 1.0]),
                     spacing=spacing, origin=ras_origin)
    sitk.WriteImage(lps, str(tmp_path / "lps.nii.gz"))
    sitk.WriteImage(ras, str(tmp_path / "ras.nii.gz"))

    a = read_scan(tmp_path / "lps.nii.gz").volume
    b = read_scan(tmp_path / "ras.nii.gz").volume

    np.testing.assert_array_equal(a.hu, b.hu)
    indices = np.array([[0, 0, 0], [3, 4, 5], [8, 9, 10]])
    np.testing.assert_allclose(a.index_to_ras_mm(indices), b.index_to_ras_mm(indices), atol=1e-4)


def test_canonical_axes_point_superior_posterior_left():
    array = ct_like_array()
    image = make_image(array)
    volume = volume_from_sitk(image)
    ras = volume.index_to_ras_mm(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]))
    steps = ras[1:] - ras[0]
    assert steps[0][2] > 0  # z -> Superior (RAS +S)
    assert steps[1][1] < 0  # y -> Posterior (RAS -A)
    assert steps[2][0] < 0  # x -> Left (RAS -R)
    # every voxel keeps its value at its physical position
    k, j, i = 2, 3, 4
    lps = image.TransformIndexToPhysicalPoint((i, j, k))
    zyx = np.rint(volume.ras_mm_to_index(np.array([-lps[0], -lps[1], lps[2]]))).astype(int)
    assert volume.hu[tuple(zyx)] == array[k, j, i]


def test_real_ct_left_hip_metal_is_on_canonical_left(shared_ct_path):
    scan = read_scan(shared_ct_path)
    volume = scan.volume
    assert volume.shape == (112, 101, 122)
    np.testing.assert_allclose(volume.spacing_mm, 3.0)
    _, _, x = np.nonzero(volume.hu > 2500)
    assert x.mean() > volume.shape[2] / 2, "metal (left hip) must lie towards canonical +x = Left"
    assert_same_geometry(scan.reference, sitk.ReadImage(str(shared_ct_path)))


def test_source_index_to_lps_rebuilds_the_volume():
    volume = volume_from_sitk(make_image(ct_like_array()))
    rebuilt = canonicalize(volume.to_source_layout(volume.hu), volume.source_index_to_lps())
    np.testing.assert_array_equal(rebuilt.hu, volume.hu)
    np.testing.assert_allclose(rebuilt.index_to_lps, volume.index_to_lps, atol=1e-9)


def test_reference_from_volume_has_the_source_geometry():
    image = make_image(ct_like_array())
    reference = sitk_reference_from_volume(volume_from_sitk(image))
    assert_same_geometry(reference, image)
    # a phantom built directly in canonical layout (z -> S, y -> P, x -> L) is an LPS image
    index_to_lps = np.array([[0, 0, 0.5, 10], [0, 1.0, 0, 20], [2.0, 0, 0, 30], [0, 0, 0, 1]])
    phantom = Volume(hu=np.zeros((4, 5, 6), np.float32), index_to_lps=index_to_lps)
    ref = sitk_reference_from_volume(phantom)
    assert ref.GetSize() == (6, 5, 4)
    np.testing.assert_allclose(ref.GetSpacing(), (0.5, 1.0, 2.0))
    np.testing.assert_allclose(ref.GetOrigin(), (10, 20, 30))
    np.testing.assert_allclose(ref.GetDirection(), np.eye(3).ravel(), atol=1e-12)


def test_validate_ct_accepts_a_ct_with_air_and_bone():
    validate_ct(volume_from_sitk(make_image(ct_like_array())))


def _volume(array) -> Volume:
    return Volume(hu=np.asarray(array, dtype=np.float32), index_to_lps=np.eye(4))


@pytest.mark.parametrize(
    ("array", "phrase"),
    [
        (np.zeros((0, 5, 5)), "empty"),
        (ct_like_array(shape=(2, 10, 10)), "2 voxel(s) thick"),
        (np.where(ct_like_array() > 0, np.nan, ct_like_array()), "NaN and 0 infinite"),
        (np.full((5, 5, 5), 40.0), "same value"),
        (np.linspace(0, 1200, 125).reshape(5, 5, 5), "no values below -200 HU"),
        (np.linspace(-1000, 60, 125).reshape(5, 5, 5), "no values above 100 HU"),
    ],
    ids=["empty", "thin", "nan", "constant", "mr-like", "no-bone"],
)
def test_validate_ct_rejects_non_ct_volumes(array, phrase):
    with pytest.raises(InputError) as info:
        validate_ct(_volume(array))
    assert str(info.value).startswith("The volume ") and phrase in str(info.value)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _truncated_copy(tmp_path: Path, suffix: str, dtype=np.int16) -> Path:
    noise = np.random.default_rng(3).integers(-1000, 2000, size=(20, 20, 20)).astype(dtype)
    full = tmp_path / f"full{suffix}"
    sitk.WriteImage(make_image(noise), str(full), useCompression=True)
    data = full.read_bytes()
    return _write(tmp_path / f"half{suffix}", data[: len(data) // 2])


def _image_file(tmp_path: Path, name: str, image: sitk.Image) -> Path:
    path = tmp_path / name
    sitk.WriteImage(image, str(path))
    return path


BAD_INPUTS = {
    "missing": (lambda tmp: tmp / "nothing.nii.gz", "does not exist"),
    "text-file": (lambda tmp: _write(tmp / "notes.txt", b"hello"), "not a supported scan"),
    "text-as-nifti": (lambda tmp: _write(tmp / "fake.nii.gz", b"not an image\n"),
                      "not a readable image"),
    "gzip-text-as-nifti": (lambda tmp: _write(tmp / "fake2.nii.gz", gzip.compress(b"x" * 600)),
                           "not a readable image"),
    "truncated-nii-gz": (lambda tmp: _truncated_copy(tmp, ".nii.gz"), "damaged or truncated"),
    "truncated-nii": (lambda tmp: _truncated_copy(tmp, ".nii"), "damaged or truncated"),
    "truncated-float-nii-gz": (lambda tmp: _truncated_copy(tmp, ".nii.gz", np.float32),
                               "damaged or truncated"),
    "truncated-float-nii": (lambda tmp: _truncated_copy(tmp, ".nii", np.float32),
                            "damaged or truncated"),
    "truncated-nrrd": (lambda tmp: _truncated_copy(tmp, ".nrrd"), "damaged or truncated"),
    "empty-file": (lambda tmp: _write(tmp / "empty.nrrd", b""), "empty file"),
    "single-dicom-file": (lambda tmp: _write(tmp / "slice.dcm", b"DICM"), "single DICOM file"),
    "folder-without-dicom": (lambda tmp: tmp, "holds no DICOM series"),
    "2d-image": (lambda tmp: _image_file(tmp, "slice.nii.gz", sitk.GetImageFromArray(
        ct_like_array()[0].astype(np.int16))), "single 2-D slice"),
    "4d-image": (lambda tmp: _image_file(tmp, "series.nii.gz", sitk.JoinSeries(
        [make_image(ct_like_array())] * 2)), "4 dimensions"),
    "vector-image": (lambda tmp: _image_file(tmp, "rgb.nrrd", sitk.GetImageFromArray(
        np.zeros((4, 5, 6, 3), np.uint8), isVector=True)), "3 values per voxel"),
    "mr-like": (lambda tmp: _image_file(tmp, "mr.nii.gz", make_image(
        np.abs(ct_like_array()).astype(np.int16))), "no values below -200 HU"),
    "thin-slab": (lambda tmp: _image_file(tmp, "slab.mha", make_image(
        ct_like_array(shape=(9, 2, 11)))), "2 voxel(s) thick"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_inputs_raise_one_clear_sentence(tmp_path, case):
    make_path, phrase = BAD_INPUTS[case]
    path = make_path(tmp_path)
    with pytest.raises(InputError) as info:
        read_scan(path)
    message = str(info.value)
    assert phrase in message
    assert path.name in message
    assert message.endswith(".") and message.count(". ") == 0, "one sentence"


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize(("nan_voxels", "inf_voxels"), [(3, 0), (0, 2), (2, 1)])
def test_nan_and_infinite_voxels_are_counted_alike_in_every_format(tmp_path, suffix, nan_voxels,
                                                                    inf_voxels):
    # ITK's NIfTI reader returns these voxels as 0: the NIfTI files are checked raw
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(make_image(non_finite_ct(nan_voxels, inf_voxels)), str(path))
    with pytest.raises(InputError) as info:
        read_scan(path)
    assert str(info.value) == (
        f"The scan {path.name} contains {nan_voxels} NaN and {inf_voxels} infinite voxel(s); "
        "re-export the CT from the scanner or PACS without them.")


def test_finite_float_nifti_is_read(tmp_path):
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(make_image(non_finite_ct(0, 0)), str(path))
    np.testing.assert_array_equal(read_scan(path).volume.hu,
                                  volume_from_sitk(make_image(non_finite_ct(0, 0))).hu)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", ["f4", "f8", "c8", "i2"])
@pytest.mark.parametrize("byte_order", ["<", ">"])
@pytest.mark.parametrize("version", [1, 2])
def test_raw_nifti_check_reads_both_versions_and_byte_orders(tmp_path, monkeypatch, suffix, dtype,
                                                             byte_order, version):
    """Files written by nibabel (SimpleITK writes neither NIfTI-2 nor big-endian files)."""
    nibabel = pytest.importorskip("nibabel")
    monkeypatch.setattr(nifti_raw, "CHUNK_BYTES", 64)  # many chunks, so voxels cross their joins
    array = np.zeros((5, 6, 7), dtype)
    floating = np.dtype(dtype).kind in "fc"
    if floating:
        array.flat[[3, 100, 209]] = np.nan
        array.flat[150] = -np.inf
    header_type = nibabel.Nifti1Header if version == 1 else nibabel.Nifti2Header
    header = header_type(endianness=byte_order)
    header.set_data_dtype(dtype)
    # an extension moves the voxel data past the end of the header (vox_offset)
    header.extensions.append(nibabel.nifti1.Nifti1Extension("comment", b"x" * 30))
    image_type = nibabel.Nifti1Image if version == 1 else nibabel.Nifti2Image
    path = tmp_path / f"raw{suffix}"
    nibabel.save(image_type(array, np.eye(4), header=header), path)

    assert nifti_raw.check_voxels(path) == nifti_raw.VoxelCheck(
        complete=True, nan_count=3 if floating else 0, inf_count=1 if floating else 0)

    data = path.read_bytes() if suffix == ".nii" else gzip.decompress(path.read_bytes())
    block = nifti_raw.parse_header(data)
    header_bytes = 348 if version == 1 else 540
    assert block.offset_bytes > header_bytes + 4  # 4 bytes of extension flags, then the text
    assert block.offset_bytes + block.size_bytes == len(data)
    assert (block.floating_dtype is not None) == floating
    short = tmp_path / f"short{suffix}"
    short.write_bytes(data[:-1] if suffix == ".nii" else gzip.compress(data[:-1]))
    # the cut-off last voxel was a NaN; the rest are still counted
    assert nifti_raw.check_voxels(short) == nifti_raw.VoxelCheck(
        complete=False, nan_count=2 if floating else 0, inf_count=1 if floating else 0)
