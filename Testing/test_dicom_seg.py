"""`annotate --dicom-seg`: the labels as a DICOM SEG that references the source series, read back
with highdicom and pydicom and compared with the label maps voxel for voxel by patient position."""
from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from test_io import ct_like_array, make_image, write_dicom_series
from THAAnnotatorLib import dicom_seg, io, outputs
from THAAnnotatorLib.cli import main
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk

SERIES_UID = "1.2.826.0.1.3680043.2.1125.22"


@pytest.fixture(scope="module")
def dicom_ct(tmp_path_factory) -> Path:
    """The small phantom (both hips) as a DICOM series, its rows and columns stored running
    right-to-left and anterior-to-posterior reversed (RAS storage), so a SEG written in the
    wrong orientation cannot match."""
    folder = tmp_path_factory.mktemp("dicom") / "ct"
    image = phantom_to_sitk(generate_phantom(spacing_mm=(3.0, 1.5, 1.5),
                                             fov_mm=(120.0, 240.0, 360.0), seed=0), storage="RAS")
    write_dicom_series(image, folder, SERIES_UID)
    return folder


def write_seg(command: str, scan: Path, out: Path, *options: str) -> Path:
    """Run ``command`` (annotate or predict) with --dicom-seg; the SEG's path."""
    assert main([command, str(scan), "--out", str(out), "--quiet", "--dicom-seg",
                 *options]) == 0
    return out / dicom_seg.DICOM_SEG_FILE


def source_slices(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(folder.iterdir())]


def seg_side_labels_by_instance(seg: hd.seg.Segmentation,
                                slices: list[pydicom.Dataset]) -> dict[str, np.ndarray]:
    """Source SOPInstanceUID -> the SEG's (rows, columns) map of segment numbers (0 none)."""
    uids = [str(s.SOPInstanceUID) for s in slices]
    pixels = seg.get_pixels_by_source_instance(uids, combine_segments=True,
                                               skip_overlap_checks=False)
    return dict(zip(uids, pixels))


def label_slices_by_position(image: sitk.Image) -> dict[tuple, np.ndarray]:
    """(x, y, z) LPS mm of each k slice's first voxel, rounded to 0.01 mm -> its (j, i) array."""
    array = sitk.GetArrayFromImage(image)
    return {tuple(np.round(image.TransformIndexToPhysicalPoint((0, 0, k)), 2)): array[k]
            for k in range(array.shape[0])}


@pytest.mark.parametrize("command, side, algorithm", [
    ("annotate", "both", dicom_seg.PIPELINE), ("annotate", "right", dicom_seg.PIPELINE),
    ("predict", "both", dicom_seg.NETWORK)])
def test_the_seg_matches_the_label_maps_voxel_for_voxel_and_references_the_series(
        dicom_ct, tmp_path, command, side, algorithm):
    seg_path = write_seg(command, dicom_ct, tmp_path / "out", "--side", side)
    seg = hd.seg.segread(seg_path)
    slices = source_slices(dicom_ct)
    nrrd = sitk.ReadImage(str(tmp_path / "out" / outputs.SEGMENTATION_FILE))
    labels = sitk.ReadImage(str(tmp_path / "out" / outputs.LABELS_FILE))

    # every source slice is referenced, by its series and SOPInstanceUID
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == SERIES_UID
    assert ({item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence}
            == {s.SOPInstanceUID for s in slices})
    assert seg.FrameOfReferenceUID == slices[0].FrameOfReferenceUID
    # each frame lies where the slice it was derived from lies, in that slice's orientation
    by_uid = {s.SOPInstanceUID: s for s in slices}
    assert seg.NumberOfFrames > 0
    shared = seg.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(shared.PlaneOrientationSequence[0].ImageOrientationPatient,
                               slices[0].ImageOrientationPatient)
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        np.testing.assert_allclose(
            frame.PlanePositionSequence[0].ImagePositionPatient,
            by_uid[source.ReferencedSOPInstanceUID].ImagePositionPatient)

    # voxel for voxel: the slice of each label map at the source slice's position
    nrrd_slices = label_slices_by_position(nrrd)
    label_slices = label_slices_by_position(labels)
    seg_maps = seg_side_labels_by_instance(seg, slices)
    assert len(seg_maps) == len(nrrd_slices) == len(slices)
    for instance in slices:
        position = tuple(np.round(np.asarray(instance.ImagePositionPatient, float), 2))
        seg_map = seg_maps[instance.SOPInstanceUID]
        np.testing.assert_array_equal(seg_map, nrrd_slices[position])
        np.testing.assert_array_equal(np.where(seg_map > 0, (seg_map - 1) % 2 + 1, 0),
                                      label_slices[position])
    present = set(np.unique(sitk.GetArrayViewFromImage(nrrd))) - {0}
    assert present == ({1, 2, 3, 4} if side == "both" else {1, 2})

    # the four segments, named and coded as in labels.seg.nrrd, numbered by label value
    assert [s.SegmentNumber for s in seg.SegmentSequence] == [1, 2, 3, 4]
    for index, segment in enumerate(seg.SegmentSequence):
        assert int(nrrd.GetMetaData(f"Segment{index}_LabelValue")) == segment.SegmentNumber
        assert segment.SegmentLabel == nrrd.GetMetaData(f"Segment{index}_Name")
        entry = nrrd.GetMetaData(f"Segment{index}_Tags").split("TerminologyEntry:")[1]
        _, category, kind, modifier = entry.rstrip("|").split("~")[:4]
        type_item = segment.SegmentedPropertyTypeCodeSequence[0]
        for code, serialized in (
                (segment.SegmentedPropertyCategoryCodeSequence[0], category),
                (type_item, kind),
                (type_item.SegmentedPropertyTypeModifierCodeSequence[0], modifier)):
            assert f"{code.CodingSchemeDesignator}^{code.CodeValue}^{code.CodeMeaning}" == serialized
        assert segment.SegmentAlgorithmType == "AUTOMATIC"
        assert segment.SegmentAlgorithmName == algorithm.name


def test_a_seg_without_any_label_describes_the_segments_on_empty_frames(tmp_path):
    """An all-metal scan's empty label map: a SEG holds at least one frame, so every frame is
    kept, all empty, and the four segments are still described."""
    image = make_image(ct_like_array(shape=(4, 10, 11)))
    write_dicom_series(image, tmp_path / "ct", SERIES_UID)
    scan = io.read_scan(tmp_path / "ct")
    source = dicom_seg.read_seg_source(scan.dicom_files, scan.reference, dicom_seg.PIPELINE)
    dicom_seg.write_dicom_seg(tmp_path / "seg.dcm", np.zeros((4, 10, 11), np.uint8), source)

    seg = hd.seg.segread(tmp_path / "seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == [
        "Right acetabulum", "Right femoral head", "Left acetabulum", "Left femoral head"]
    uids = [str(h.SOPInstanceUID) for h in source.headers]
    assert not seg.get_pixels_by_source_instance(uids, combine_segments=True).any()


@pytest.mark.parametrize("command", ["annotate", "predict"])
def test_a_non_dicom_scan_is_refused_before_any_work(small_ct, tmp_path, capsys, monkeypatch,
                                                     command):
    def no_reading(*args, **kwargs):
        raise AssertionError("the scan was read")

    monkeypatch.setattr(io, "read_scan", no_reading)
    out = tmp_path / "out"
    code = main([command, str(small_ct), "--out", str(out), "--dicom-seg"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(error) == 1 and error[0].startswith("error: argument --dicom-seg: ")
    assert "DICOM series folder" in error[0] and not out.exists()


def test_a_failing_seg_write_leaves_nothing_behind(dicom_ct, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "write_dicom_seg", broken)
    out = tmp_path / "out"
    assert main(["annotate", str(dicom_ct), "--out", str(out), "--quiet", "--dicom-seg"]) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []

