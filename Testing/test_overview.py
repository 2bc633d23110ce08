"""The overview picture and the per-hip summary lines, on a hand-made annotation."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from THAAnnotatorLib import overview
from THAAnnotatorLib.result import (
    ACETABULUM, FEMORAL_HEAD, Annotation, SideResult, SliceCircle, segment_code)
from THAAnnotatorLib.volume import Volume

SPACING_ZYX_MM = np.array([2.0, 0.6, 1.0])  # anisotropic in-plane pixels on purpose
SHAPE = (20, 200, 120)
CENTER_ZYX = np.array([10, 100, 60])
HEAD_RADIUS_MM = 20.0


def synthetic_case() -> tuple[Volume, Annotation]:
    """Right hip segmented (head disk, acetabular ring, a bright right-anterior marker blob);
    left hip with a metal implant."""
    index_to_lps = np.zeros((4, 4))
    index_to_lps[0, 2], index_to_lps[1, 1], index_to_lps[2, 0] = SPACING_ZYX_MM[::-1]
    index_to_lps[3, 3] = 1.0
    volume = Volume(hu=np.full(SHAPE, -1000.0, np.float32), index_to_lps=index_to_lps)

    y, x = np.mgrid[:SHAPE[1], :SHAPE[2]]
    dy_mm = (y - CENTER_ZYX[1]) * SPACING_ZYX_MM[1]
    dx_mm = (x - CENTER_ZYX[2]) * SPACING_ZYX_MM[2]
    r_mm = np.hypot(dy_mm, dx_mm)
    side_labels = np.zeros(SHAPE, np.uint8)
    side_labels[CENTER_ZYX[0]][r_mm <= HEAD_RADIUS_MM] = segment_code("right", FEMORAL_HEAD)
    side_labels[CENTER_ZYX[0]][(r_mm > 22) & (r_mm < 26)] = segment_code("right", ACETABULUM)
    bone = (side_labels > 0).astype(np.uint8)
    volume.hu[bone > 0] = 800.0
    # patient right (canonical x decreasing) and anterior (canonical y decreasing) of the head
    volume.hu[CENTER_ZYX[0]][np.hypot(dy_mm + 35, dx_mm + 35) < 5] = 800.0

    center_ras = tuple(volume.index_to_ras_mm(CENTER_ZYX))
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    points = [tuple(volume.index_to_ras_mm(CENTER_ZYX + np.array(
        [0, HEAD_RADIUS_MM * np.sin(a) / SPACING_ZYX_MM[1], HEAD_RADIUS_MM * np.cos(a) / SPACING_ZYX_MM[2]])))
        for a in angles]
    right = SideResult("right", "segmented", initial_slice=8,
                       circles=[SliceCircle(int(CENTER_ZYX[0]), center_ras, HEAD_RADIUS_MM, points)],
                       sphere_center_ras_mm=center_ras, head_diameter_mm=2 * HEAD_RADIUS_MM)
    left = SideResult("left", "metal", message="The left hip holds 12.0 ml of metal.")
    return volume, Annotation(bone=bone, side_labels=side_labels, sides={"left": left, "right": right})


def decode(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def near(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    return np.abs(image.astype(int) - np.array(colour)).sum(axis=-1) < tolerance


def test_one_panel_per_hip_right_first():
    volume, annotation = synthetic_case()
    image = decode(overview.render_overview_png(volume, annotation))
    assert image.shape[1] == 2 * overview.PANEL_PX + 4
    assert image.shape[0] > overview.CAPTION_PX + overview.PANEL_PX
    panels = image[overview.CAPTION_PX:overview.CAPTION_PX + overview.PANEL_PX]
    right_panel, left_panel = panels[:, :overview.PANEL_PX], panels[:, -overview.PANEL_PX:]
    head = overview.CLASS_COLOURS[FEMORAL_HEAD]
    assert near(right_panel, head).sum() > 100
    assert near(right_panel, overview.CLASS_COLOURS[ACETABULUM]).sum() > 100
    assert near(right_panel, overview.CIRCLE_COLOUR).sum() > 50
    assert near(right_panel, overview.POINT_COLOUR).sum() > 16
    # the metal hip's panel is text only
    assert near(left_panel, head).sum() == 0
    assert (left_panel != overview.BACKGROUND).any()


def test_panel_has_square_mm_pixels_and_radiological_orientation():
    volume, annotation = synthetic_case()
    image = decode(overview.render_overview_png(volume, annotation))
    panel = image[overview.CAPTION_PX:overview.CAPTION_PX + overview.PANEL_PX, :overview.PANEL_PX]
    px_per_mm = overview.PANEL_PX / (2 * overview.PANEL_HALF_WIDTH_RADII * HEAD_RADIUS_MM)
    rows, cols = np.nonzero(near(panel, overview.CLASS_COLOURS[FEMORAL_HEAD]))
    expected_px = 2 * HEAD_RADIUS_MM * px_per_mm
    assert np.ptp(cols) == pytest.approx(expected_px, rel=0.05)
    assert np.ptp(rows) == pytest.approx(expected_px, rel=0.05)
    # the right-anterior marker is drawn up and to the left of the head
    mid = (overview.PANEL_PX - 1) / 2
    offset_px = 35 * px_per_mm
    up_left = panel[int(mid - offset_px), int(mid - offset_px)]
    up_right = panel[int(mid - offset_px), int(mid + offset_px)]
    assert up_left.mean() > 150 and up_right.mean() < 50


def test_side_summaries():
    volume, annotation = synthetic_case()
    right = annotation.sides["right"]
    r, a, s = right.sphere_center_ras_mm
    assert overview.side_summary(right) == (
        f"right hip: femoral head diameter 40.0 mm, center RAS ({r:.1f}, {a:.1f}, {s:.1f}) mm")
    assert overview.side_summary(annotation.sides["left"]) == "left hip: metal implant, not segmented"
    missing = SideResult("left", "not_found", message="No femoral head was found.")
    assert overview.side_summary(missing) == "left hip: not found (No femoral head was found.)"
