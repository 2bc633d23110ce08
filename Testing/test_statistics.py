"""Per-segment statistics (issue 22): each labelled segment's volume (ml) and CT values (mean and
standard deviation, HU), as TotalSegmentator's ``--statistics`` gives them, in ``annotation.json``,
a build's ``manifest.csv`` and its ``report.html``.

The figures are checked against a recomputation from what was written: the label map file and
the CT file read back with SimpleITK, in the scan's own voxel layout, the voxel volume from the
file's spacing.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from THAAnnotatorLib import cli, outputs
from THAAnnotatorLib.batch.case import run_case
from THAAnnotatorLib.batch.discover import ScanSource, scan_checksum
from THAAnnotatorLib.batch.manifest import MANIFEST_CSV, write_manifest
from THAAnnotatorLib.batch.report import render_report
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, SIDES, segment_code
from THAAnnotatorLib.statistics import SEGMENT_KEYS, segment_statistics, voxel_volume_ml
from THAAnnotatorLib.volume import canonicalize

CLASSES = {"acetabulum": ACETABULUM, "femoral_head": FEMORAL_HEAD}


def expected_statistics(labels_file: Path, ct_file: Path) -> dict[str, dict[str, dict]]:
    """side -> segment -> volume_ml, mean_hu, std_hu recomputed from the files written."""
    labels_image = sitk.ReadImage(str(labels_file))
    labels = sitk.GetArrayFromImage(labels_image)
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(ct_file))).astype(np.float64)
    ml_per_voxel = float(np.prod(labels_image.GetSpacing())) / 1000.0
    expected = {}
    for side in SIDES:
        expected[side] = {}
        for key, label in CLASSES.items():
            values = hu[labels == segment_code(side, label)]
            expected[side][key] = {
                "volume_ml": values.size * ml_per_voxel,
                "mean_hu": float(values.mean()) if values.size else None,
                "std_hu": float(values.std()) if values.size else None}
    return expected


def assert_statistics_match(found: dict, expected: dict) -> None:
    assert set(found) == set(expected)
    for key, figures in expected.items():
        assert figures["volume_ml"] > 0, f"{key}: an empty segment tests nothing"
        assert found[key]["volume_ml"] == pytest.approx(figures["volume_ml"], rel=1e-9), key
        assert found[key]["mean_hu"] == pytest.approx(figures["mean_hu"], abs=1e-3), key
        assert found[key]["std_hu"] == pytest.approx(figures["std_hu"], abs=1e-3), key


def test_segment_statistics_of_labelled_blocks_with_known_values():
    """Blocks of known size and known CT values, on anisotropic voxels (0.5 x 0.8 x 2 mm)."""
    spacing_mm = np.array([2.0, 0.8, 0.5])  # z, y, x
    matrix = np.eye(4)
    matrix[:3, :3] = np.flipud(np.diag(spacing_mm))  # array axes (z, y, x) -> LPS (x, y, z)
    rng = np.random.default_rng(7)
    hu = rng.normal(40.0, 30.0, (10, 12, 14)).astype(np.float32)
    volume = canonicalize(hu, matrix)
    assert np.allclose(volume.spacing_mm, spacing_mm)
    labels = np.zeros(volume.shape, np.uint8)
    right_head = segment_code("right", FEMORAL_HEAD)
    labels[2:5, 3:7, 1:6] = right_head  # 3 * 4 * 5 = 60 voxels
    labels[6:8, 0:2, 8:11] = segment_code("left", ACETABULUM)  # 2 * 2 * 3 = 12 voxels
    statistics = segment_statistics(volume, labels)

    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    head = statistics["right"]["femoral_head"]
    values = volume.hu[labels == right_head].astype(np.float64)
    assert head.volume_ml == pytest.approx(60 * voxel_ml)
    assert head.mean_hu == pytest.approx(values.mean())
    assert head.std_hu == pytest.approx(values.std())
    assert statistics["left"]["acetabulum"].volume_ml == pytest.approx(12 * voxel_ml)
    for side, key in (("right", "acetabulum"), ("left", "femoral_head")):  # empty segments
        empty = statistics[side][key]
        assert (empty.volume_ml, empty.mean_hu, empty.std_hu) == (0.0, None, None)
    assert set(segment_statistics(volume, labels, ("left",))) == {"left"}


def test_voxel_volume_does_not_change_with_the_scan_orientation():
    spacing_mm = np.array([0.7, 0.9, 2.5])
    angle = np.radians(25.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0],
                         [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag(spacing_mm)
    volume = canonicalize(np.zeros((4, 5, 6), np.float32), matrix)
    assert voxel_volume_ml(volume) == pytest.approx(np.prod(spacing_mm) / 1000.0)


def test_annotate_writes_each_segments_volume_and_hu_into_annotation_json(small_ct, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["annotate", str(small_ct), "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / outputs.REPORT_FILE).read_text(encoding="utf-8"))
    expected = expected_statistics(out / outputs.SEGMENTATION_FILE, small_ct)
    for side in SIDES:
        assert report["sides"][side]["status"] == "segmented"
        assert_statistics_match(report["sides"][side]["statistics"], expected[side])


def test_a_build_cases_manifest_csv_and_report_carry_the_statistics(small_ct, tmp_path):
    """The case record (case.json, manifest.json), a manifest.csv column per side, segment and
    quantity, and the report's volume and mean HU cells."""
    cases = tmp_path / "cases"
    cases.mkdir()
    record = run_case(ScanSource("ct", small_ct), scan_checksum(small_ct), cases, Params(), SIDES)
    assert record["status"] == "done", record["reasons"]
    expected = expected_statistics(cases / "ct" / outputs.SEGMENTATION_FILE, small_ct)
    write_manifest(tmp_path, [record], small_ct.parent)
    with open(tmp_path / MANIFEST_CSV, newline="", encoding="utf-8") as stream:
        (row,) = list(csv.DictReader(stream))
    page = render_report([record])
    for side in SIDES:
        assert_statistics_match(record["results"][side]["statistics"], expected[side])
        for key in SEGMENT_KEYS.values():
            for quantity in ("volume_ml", "mean_hu", "std_hu"):
                assert float(row[f"{side}_{key}_{quantity}"]) == pytest.approx(
                    expected[side][key][quantity], rel=1e-6), (side, key, quantity)
            for quantity in ("volume_ml", "mean_hu"):
                assert f'<td class="num">{expected[side][key][quantity]:.1f}</td>' in page
    for heading in ("Right acetabulum (ml)", "Left femoral head mean (HU)"):
        assert f"<th>{heading}</th>" in page
