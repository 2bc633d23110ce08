"""The THA planning measurements everywhere the head diameter is shown: annotation.json, the
terminal summary, the overview picture, manifest.csv and the batch report."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from test_measurements import HEAD_MM, two_hip_scan

from THAAnnotatorLib.batch.case import side_records
from THAAnnotatorLib.batch.manifest import MANIFEST_CSV, write_manifest
from THAAnnotatorLib.batch.report import render_report
from THAAnnotatorLib.io import sitk_reference_from_volume
from THAAnnotatorLib.measure import measure_hips
from THAAnnotatorLib.measure.hip import REPORTED
from THAAnnotatorLib.outputs import write_outputs
from THAAnnotatorLib.overview import (CAPTION_PX, CENTER_EDGE_COLOUR, OPENING_COLOUR, PANEL_PX,
                                      measurement_lines, render_overview_png)
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.result import Annotation, SideResult


@pytest.fixture(scope="module")
def result():
    """The two-cup scan with its right hip measured and its left reported as metal."""
    volume, labels, centers = two_hip_scan()
    sides = {"right": SideResult("right", "segmented", sphere_center_ras_mm=centers["right"],
                                 head_diameter_mm=2 * HEAD_MM),
             "left": SideResult("left", "metal", message="metal implant, not segmented")}
    labels[labels > 2] = 0
    bone = (labels > 0).astype(np.uint8)
    measure_hips(volume, bone, labels, sides)
    return volume, Annotation(bone=bone, side_labels=labels, sides=sides)


def test_annotation_json_holds_each_hips_measurements_or_why_not(result, tmp_path):
    volume, annotation = result
    written = write_outputs(tmp_path / "out", sitk_reference_from_volume(volume), volume,
                            annotation, Params())
    sides = json.loads(written["annotation.json"].read_text())["sides"]
    right, left = sides["right"]["measurements"], sides["left"]["measurements"]
    assert right["not_computed"] == ""
    assert right["inclination_deg"] == pytest.approx(40.0, abs=1.5)
    assert right["suggested_cup_mm"] == 50 and right["voxel_mm_zyx"] == [1.0, 1.0, 1.0]
    assert "scanner" in right["axes"] and "above the axial plane" in right["sphericity_region"]
    assert left["not_computed"] == "not segmented (metal implant, not segmented)"
    assert left["inclination_deg"] is None


def test_terminal_summary_gives_the_values_with_units(result):
    _, annotation = result
    m = annotation.sides["right"].measurements
    first, second = measurement_lines(annotation.sides["right"])
    assert first.startswith(f"  acetabulum: diameter {m.acetabular_diameter_mm:.1f} mm")
    assert "suggests a 50 mm cup" in first
    assert f"inclination {m.inclination_deg:.1f} deg" in first and "(scanner axes)" in first
    assert "center-edge angle" in second and "head coverage" in second and "%" in second
    assert measurement_lines(annotation.sides["left"]) == []


def test_manifest_csv_and_report_have_a_column_per_value_and_side(result, tmp_path):
    volume, annotation = result
    record = {"case": "ct1", "source": "ct1.nii.gz", "checksum": "0", "status": "done",
              "reasons": [], "sides_found": ["right"],
              "results": side_records(annotation, volume)}
    write_manifest(tmp_path, [record], tmp_path)
    with open(tmp_path / MANIFEST_CSV, newline="") as f:
        row = next(csv.DictReader(f))
    m = annotation.sides["right"].measurements
    for name in REPORTED:
        assert float(row[f"right_{name}"]) == getattr(m, name), name
        assert row[f"left_{name}"] == ""
    page = render_report([record])
    for heading in REPORTED.values():
        assert f"<th>Right {heading}</th>" in page and f"<th>Left {heading}</th>" in page
    assert f'<td class="num">{m.inclination_deg:.1f}</td>' in page


def test_overview_adds_a_coronal_panel_with_the_opening_and_center_edge_lines(result):
    volume, annotation = result
    image = cv2.imdecode(np.frombuffer(render_overview_png(volume, annotation), np.uint8),
                         cv2.IMREAD_COLOR)
    assert image.shape[1] == 3 * PANEL_PX + 2 * 4  # right axial, right coronal, left (metal)
    coronal = image[CAPTION_PX:CAPTION_PX + PANEL_PX, PANEL_PX + 4:2 * PANEL_PX + 4]
    for colour in (OPENING_COLOUR, CENTER_EDGE_COLOUR):
        assert (np.abs(coronal.astype(int) - colour).max(axis=-1) < 40).sum() > 100, colour
    # the right hip's center-edge line leans to its lateral side: the image's left (patient
    # right), above the head's center
    white = np.argwhere(np.abs(coronal.astype(int) - CENTER_EDGE_COLOUR).max(axis=-1) < 40)
    upper = white[white[:, 0] < PANEL_PX // 2 - 20]
    assert (upper[:, 1] < PANEL_PX // 2 - 10).any()
