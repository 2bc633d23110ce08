"""Writing results: source geometry, Slicer segmentation header, JSON report, atomicity."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from THAAnnotatorLib import __version__, outputs
from THAAnnotatorLib.errors import InputError, OutputNotWritable
from THAAnnotatorLib.io import LoadedScan, read_scan, sitk_reference_from_volume, volume_from_sitk
from THAAnnotatorLib.outputs import check_output_dir, write_outputs
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.result import Annotation, SideResult, SliceCircle, segment_code
from THAAnnotatorLib.volume import Volume

# ITK direction columns: i -> Posterior, j -> Right (-L), k -> Inferior (-S); determinant +1.
# Every canonical axis is permuted and two are flipped relative to the source layout.
ODD_DIRECTION = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]).T
SEGMENT_NAMES = ["Right acetabulum", "Right femoral head", "Left acetabulum", "Left femoral head"]


@pytest.fixture
def scan(tmp_path) -> LoadedScan:
    """A CT-like scan stored with an unusual orientation and anisotropic spacing."""
    rng = np.random.default_rng(0)
    array = rng.integers(-60, 80, size=(12, 10, 8)).astype(np.int16)
    array[0] = -1000
    array[-1, :2] = 1200
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 1.1, 2.0))
    image.SetOrigin((15.0, -7.5, 120.0))
    image.SetDirection(ODD_DIRECTION.ravel().tolist())
    path = tmp_path / "input" / "ct.nii.gz"
    path.parent.mkdir()
    sitk.WriteImage(image, str(path))
    return read_scan(path)


def make_annotation(volume: Volume) -> Annotation:
    """Right hip segmented (acetabulum above femoral head), left hip empty (metal)."""
    side_labels = np.zeros(volume.shape, np.uint8)
    side_labels[5:8, 2:5, 1:4] = segment_code("right", 1)
    side_labels[2:5, 2:5, 1:4] = segment_code("right", 2)
    bone = (side_labels > 0).astype(np.uint8)
    bone[0, 0, :] = 1
    right = SideResult(
        side="right",
        status="segmented",
        initial_slice=3,
        circles=[
            SliceCircle(3, (10.0, -5.0, 100.0), 12.5, [(22.5, -5.0, 100.0), (10.0, 7.5, 100.0)]),
            SliceCircle(4, (10.0, -5.0, 102.0), float("nan")),
        ],
        sphere_center_ras_mm=(10.0, -5.0, 101.0),
        head_diameter_mm=25.0,
        warnings=["coarse scan"],
    )
    left = SideResult(side="left", status="metal", message="A metal implant fills the left hip.")
    return Annotation(bone=bone, side_labels=side_labels, sides={"right": right, "left": left})


def write(scan: LoadedScan, out_dir: Path, **kwargs) -> tuple[Annotation, dict[str, Path]]:
    annotation = make_annotation(scan.volume)
    written = write_outputs(out_dir, scan.reference, scan.volume, annotation, Params(),
                            input_path=scan.path, **kwargs)
    return annotation, written


def assert_same_geometry(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)


def test_label_maps_read_back_in_the_source_geometry(scan, tmp_path):
    annotation, written = write(scan, tmp_path / "out")
    source = sitk.ReadImage(str(scan.path))

    for name, expected in (("bone.nii.gz", annotation.bone), ("labels.nii.gz", annotation.labels)):
        image = sitk.ReadImage(str(written[name]))
        assert image.GetPixelID() == sitk.sitkUInt8
        assert_same_geometry(image, source)
        np.testing.assert_array_equal(volume_from_sitk(image).hu, expected)
    labels = sitk.ReadImage(str(written["labels.nii.gz"]))
    assert set(np.unique(sitk.GetArrayViewFromImage(labels))) == {0, 1, 2}
    # a femoral-head voxel, found through its physical position
    ras = scan.volume.index_to_ras_mm(np.array([3.0, 3.0, 2.0]))
    index = labels.TransformPhysicalPointToIndex((-ras[0], -ras[1], ras[2]))
    assert labels[index] == 2


def test_segmentation_file_is_a_slicer_segmentation(scan, tmp_path):
    annotation, written = write(scan, tmp_path / "out")
    seg = sitk.ReadImage(str(written["labels.seg.nrrd"]))
    assert_same_geometry(seg, sitk.ReadImage(str(scan.path)))
    codes = sitk.GetArrayFromImage(seg)
    np.testing.assert_array_equal(codes, scan.volume.to_source_layout(annotation.side_labels))

    meta = {key: seg.GetMetaData(key) for key in seg.GetMetaDataKeys()}
    assert [meta[f"Segment{n}_Name"] for n in range(4)] == SEGMENT_NAMES
    assert [meta[f"Segment{n}_LabelValue"] for n in range(4)] == ["1", "2", "3", "4"]
    assert meta["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert meta["Segmentation_ReferenceImageExtentOffset"] == "0 0 0"
    for n in range(4):
        assert meta[f"Segment{n}_Layer"] == "0"
        assert len(meta[f"Segment{n}_Color"].split()) == 3
        k, j, i = np.nonzero(codes == n + 1)
        expected = (f"{i.min()} {i.max()} {j.min()} {j.max()} {k.min()} {k.max()}"
                    if i.size else "0 -1 0 -1 0 -1")
        assert meta[f"Segment{n}_Extent"] == expected
    assert meta["Segment2_Extent"] == meta["Segment3_Extent"] == "0 -1 0 -1 0 -1"
    tags = [meta[f"Segment{n}_Tags"] for n in range(4)]
    assert all(t.startswith("TerminologyEntry:") and t.endswith("|") for t in tags)
    assert ("~SCT^123037004^Anatomical Structure~SCT^37783008^Acetabulum~SCT^24028007^Right~"
            in tags[0])
    assert "~SCT^2812003^Femoral head~SCT^24028007^Right~" in tags[1]
    assert "~SCT^37783008^Acetabulum~SCT^7771000^Left~" in tags[2]
    assert "~SCT^2812003^Femoral head~SCT^7771000^Left~" in tags[3]

    raw = written["labels.seg.nrrd"].read_bytes()
    header = raw[: raw.index(b"\n\n")].decode("ascii")
    assert "space: left-posterior-superior" in header
    assert "Segment1_Name:=Right femoral head" in header.splitlines()


def test_json_report_is_valid_and_complete(scan, tmp_path):
    annotation, written = write(scan, tmp_path / "out")

    def refuse(constant):
        raise AssertionError(f"invalid JSON constant {constant}")

    report = json.loads(written["annotation.json"].read_text(), parse_constant=refuse)
    assert report["software"]["version"] == __version__
    assert report["input_path"] == str(scan.path)
    assert report["params"] == json.loads(json.dumps(Params().to_dict()))
    assert report["volume"]["canonical_shape_zyx"] == list(scan.volume.shape)
    np.testing.assert_allclose(report["volume"]["spacing_mm_zyx"], scan.volume.spacing_mm)

    right = report["sides"]["right"]
    assert right["status"] == "segmented" and right["initial_slice"] == 3
    assert right["head_diameter_mm"] == 25.0 and right["warnings"] == ["coarse scan"]
    assert right["circles"][0]["boundary_points_ras_mm"][1] == [10.0, 7.5, 100.0]
    assert right["circles"][1]["radius_mm"] is None  # NaN is written as null
    assert report["sides"]["left"]["status"] == "metal"
    assert report["sides"]["left"]["initial_slice_source"] is None

    # the source slice named in the report holds exactly the canonical slice's labels
    source_slice = right["initial_slice_source"]
    source_codes = sitk.GetArrayFromImage(sitk.ReadImage(str(written["labels.seg.nrrd"])))
    plane = np.take(source_codes, source_slice["index"], axis="kji".index(source_slice["axis"]))
    canonical_plane = annotation.side_labels[3]
    assert np.bincount(plane.ravel(), minlength=5).tolist() == \
        np.bincount(canonical_plane.ravel(), minlength=5).tolist()


def test_extra_files_and_an_output_folder_that_holds_files(scan, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="already holds 1 file"):  # never mixed with them
        write(scan, out, extra_files={"overview.png": b"\x89PNG fake"})
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    with pytest.raises(InputError, match="no annotation.json"):  # not an earlier result
        write(scan, out, overwrite=True)

    (out / "annotation.json").write_text("{}\n")  # an earlier result: replaced whole
    _, written = write(scan, out, extra_files={"overview.png": b"\x89PNG fake"}, overwrite=True)
    assert written["overview.png"].read_bytes() == b"\x89PNG fake"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["overview.png", "bone.nii.gz", "labels.nii.gz", "labels.seg.nrrd", "annotation.json"])
    assert json.loads((out / "annotation.json").read_text())["input_path"] == str(scan.path)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_volume_without_a_file_uses_its_own_source_geometry(tmp_path):
    index_to_lps = np.array([[0, 0, 1.0, 0], [0, 1.5, 0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1]])
    phantom = Volume(hu=np.zeros((6, 7, 8), np.float32), index_to_lps=index_to_lps)
    reference = sitk_reference_from_volume(phantom)
    annotation = make_annotation(phantom)
    written = write_outputs(tmp_path / "out", reference, phantom, annotation, Params())
    labels = sitk.ReadImage(str(written["labels.nii.gz"]))
    np.testing.assert_array_equal(volume_from_sitk(labels).hu, annotation.labels)
    assert json.loads(written["annotation.json"].read_text())["input_path"] is None


def _fail_on_second_image_write(monkeypatch):
    real_write = sitk.WriteImage
    calls = []

    def flaky(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        real_write(*args, **kwargs)

    monkeypatch.setattr(outputs.sitk, "WriteImage", flaky)


def _fail_on_report(monkeypatch):
    def broken(path, report):
        path.write_text("{ half")
        raise OSError("disk full")

    monkeypatch.setattr(outputs, "_write_report", broken)


@pytest.mark.parametrize("earlier", [{"annotation.json": "{}", "previous.txt": "old"}, {}, None],
                         ids=["earlier-result-overwritten", "empty-dir", "new-dir"])
@pytest.mark.parametrize("sabotage", [_fail_on_second_image_write, _fail_on_report],
                         ids=["image-writer", "report-writer"])
def test_failure_mid_write_leaves_nothing_behind(scan, tmp_path, monkeypatch, earlier, sabotage):
    out = tmp_path / "results" / "case1"
    if earlier is not None:
        out.mkdir(parents=True)
        for name, text in earlier.items():
            (out / name).write_text(text)
    sabotage(monkeypatch)

    # the error names the output folder (SimpleITK's own message, which names the hidden
    # staging folder, is left out)
    with pytest.raises(OutputNotWritable, match=rf"cannot write to {re.escape(str(out))}: "
                       r"(disk full|the image writer failed)"):
        write(scan, out, extra_files={"overview.png": b"png"}, overwrite=True)

    if earlier is not None:
        assert {p.name: p.read_text() for p in out.iterdir()} == earlier
        assert list(out.parent.iterdir()) == [out]
    else:
        assert not out.exists()
        assert list(out.parent.iterdir()) == []


def test_write_outputs_rejects_mismatched_inputs(scan, tmp_path):
    annotation = make_annotation(scan.volume)
    wrong = Annotation(bone=annotation.bone[:-1], side_labels=annotation.side_labels,
                       sides=annotation.sides)
    with pytest.raises(InputError, match="bone array has shape"):
        write_outputs(tmp_path / "a", scan.reference, scan.volume, wrong, Params())
    small_reference = sitk.Image([4, 4, 4], sitk.sitkUInt8)
    with pytest.raises(InputError, match="reference image has size"):
        write_outputs(tmp_path / "b", small_reference, scan.volume, annotation, Params())
    for name in ("labels.nii.gz", "../escape.png", "sub/file.png"):
        with pytest.raises(InputError, match="not a plain file name"):
            write_outputs(tmp_path / "c", scan.reference, scan.volume, annotation, Params(),
                          extra_files={name: b""})
    assert not any((tmp_path / d).exists() for d in "abc")


def test_check_output_dir_refuses_the_input_folder(tmp_path):
    scan_file = tmp_path / "scans" / "ct.nii.gz"
    scan_file.parent.mkdir()
    scan_file.write_bytes(b"placeholder")
    dicom = tmp_path / "dicom"
    (dicom / "series").mkdir(parents=True)

    with pytest.raises(InputError, match="folder of the input scan"):
        check_output_dir(tmp_path / "scans", scan_file)
    with pytest.raises(InputError, match="folder of the input scan"):
        check_output_dir(tmp_path / "scans" / ".." / "scans", scan_file)
    for inside in (dicom, dicom / "series", dicom / "new" / "deeper"):
        with pytest.raises(InputError, match="inside the DICOM input folder"):
            check_output_dir(inside, dicom)
    with pytest.raises(InputError, match="existing file"):
        check_output_dir(scan_file, tmp_path / "other.nii.gz")

    sibling = tmp_path / "scans" / "out"
    assert check_output_dir(sibling, scan_file) == sibling.resolve()
    assert check_output_dir(tmp_path / "results", dicom) == (tmp_path / "results").resolve()
