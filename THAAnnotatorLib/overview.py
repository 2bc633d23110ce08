"""A quick-look picture of a result, and the one-line summary of each hip.

:func:`render_overview_png` draws one axial panel per hip through the femoral head's sphere
center (for a hip the model segmented, which has no sphere, its head label's centroid): the CT
in a bone window, the bone mask as a faint tint, the acetabulum and femoral head as coloured
contours, that slice's Hough circle and its boundary points; beside it, for a hip
with THA planning measurements (:mod:`.measure`), a coronal panel through the head's center
with the acetabular opening plane's trace and the center-edge angle's lines. Panels are
resampled to square millimetre pixels and shown in the radiological convention (patient right
on the image left, anterior or superior at the top).
"""
from __future__ import annotations

import cv2
import numpy as np

from .measure.landmarks import center_edge_points_ras_mm, line_length_mm
from .result import ACETABULUM, FEMORAL_HEAD, SIDES, Annotation, SideResult, segment_code
from .statistics import MM3_PER_ML, voxel_volume_ml
from .volume import Volume

OVERVIEW_FILE = "overview.png"
"""The picture's file name in a result folder (``annotate``, ``predict``, a build's cases)."""
PANEL_PX = 400
"""Side of a panel's square image, in pixels."""
PANEL_HALF_WIDTH_RADII = 2.6
"""Half the width of a panel in head radii (labels reach 2 radii from the head center)."""
CAPTION_PX = 52
"""Height of the caption above each panel, in pixels."""
LEGEND_PX = 30
"""Height of one row of the colour legend under the panels, in pixels."""
BONE_WINDOW_HU = (-450.0, 1350.0)
"""CT grey-level window (level 450 HU, width 1800 HU)."""
BONE_TINT_ALPHA = 0.25
"""Opacity of the bone mask tint."""
CT_AIR_HU = -1024.0
"""Value shown outside the scan, in HU."""

FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_SCALE = 0.5
# BGR colours
BACKGROUND = (32, 32, 32)
TEXT = (235, 235, 235)
BONE_TINT = (0, 165, 255)
CLASS_COLOURS = {ACETABULUM: (60, 200, 60), FEMORAL_HEAD: (70, 70, 255)}
CIRCLE_COLOUR = (255, 220, 0)
POINT_COLOUR = (0, 255, 255)
OPENING_COLOUR = (255, 0, 255)
CENTER_EDGE_COLOUR = (255, 255, 255)
LEGEND = (
    ("bone", BONE_TINT),
    ("acetabulum", CLASS_COLOURS[ACETABULUM]),
    ("femoral head", CLASS_COLOURS[FEMORAL_HEAD]),
    ("Hough circle", CIRCLE_COLOUR),
    ("boundary points", POINT_COLOUR),
)
MEASUREMENT_LEGEND = (
    ("acetabular opening plane", OPENING_COLOUR),
    ("center-edge angle", CENTER_EDGE_COLOUR),
)
# subpixel precision of cv2 drawing calls: coordinates are given in 1/16 pixel
_SHIFT = 4


def side_summary(result: SideResult) -> str:
    """One line about one hip, e.g. ``right hip: femoral head diameter 47.3 mm, center RAS
    (-91.2, 20.5, -140.0) mm`` or ``left hip: metal implant, not segmented``."""
    if result.status == "segmented" and result.sphere_center_ras_mm is None:
        return f"{result.side} hip: {result.message or 'segmented'}"  # by the model: no sphere
    if result.status == "segmented":
        r, a, s = result.sphere_center_ras_mm
        return (f"{result.side} hip: femoral head diameter {result.head_diameter_mm:.1f} mm, "
                f"center RAS ({r:.1f}, {a:.1f}, {s:.1f}) mm")
    if result.status == "metal":
        return f"{result.side} hip: metal implant, not segmented"
    text = f"{result.side} hip: not found"
    return f"{text} ({result.message})" if result.message else text


def measurement_lines(result: SideResult) -> list[str]:
    """The hip's THA planning measurements (:mod:`.measure`) as indented lines for the
    terminal; none where they were not computed (the hip's warnings say why)."""
    m = result.measurements
    if m is None or m.not_computed:
        return []

    def show(value: float | None, unit: str) -> str:
        return "-" if value is None else f"{value:.1f} {unit}"

    voxels = " x ".join(f"{v:g}" for v in m.voxel_mm_zyx)
    return [
        f"  acetabulum: diameter {m.acetabular_diameter_mm:.1f} mm (suggests a "
        f"{m.suggested_cup_mm} mm cup), {m.concentricity_mm:.1f} mm from the head's center; "
        f"opening inclination {show(m.inclination_deg, 'deg')}, anteversion "
        f"{show(m.anteversion_deg, 'deg')} (scanner axes)",
        f"  center-edge angle {show(m.center_edge_deg, 'deg')}, sector angles anterior "
        f"{show(m.anterior_sector_deg, 'deg')}, posterior {show(m.posterior_sector_deg, 'deg')}; "
        f"head coverage {show(m.head_coverage_percent, '%')}, sphericity "
        f"{show(m.head_sphericity_rms_mm, 'mm')} RMS; measured on {voxels} mm voxels",
    ]


def render_overview_png(volume: Volume, annotation: Annotation) -> bytes:
    """PNG image with one panel per annotated hip, patient right first (radiological order).

    Hips that were not segmented get a panel with :func:`side_summary` and the pipeline's message.
    """
    results = [annotation.sides[side] for side in SIDES if side in annotation.sides]
    panels = []
    for result in results:
        check = " - check" if result.needs_review else ""  # the hip's warnings say why
        head = _head_center_and_radius(volume, annotation, result)
        if head is not None:
            panel = _segmented_panel(volume, annotation, result, *head)
            title = (f"{result.side} hip: head diameter {result.head_diameter_mm:.1f} mm{check}"
                     if result.head_diameter_mm is not None
                     else f"{result.side} hip: segmented by the model{check}")
        else:
            panel = _message_panel(result)
            title = f"{result.side} hip"
        panels.append(np.vstack([_caption(title, panel.shape[1]), panel]))
        if _measured(result):
            m = result.measurements
            title = f"{result.side} hip: acetabulum {m.acetabular_diameter_mm:.1f} mm{check}"
            panels.append(np.vstack([_caption(title, PANEL_PX),
                                     _coronal_panel(volume, annotation, result)]))
    gap = np.full((panels[0].shape[0], 4, 3), BACKGROUND, np.uint8)
    row = np.hstack([part for panel in panels for part in (panel, gap)][:-1])
    # the Hough circle's entries only where one is drawn (the model fits none)
    legend = (tuple(e for e in LEGEND if e[1] not in (CIRCLE_COLOUR, POINT_COLOUR)
                    or any(r.circles for r in results))
              + (MEASUREMENT_LEGEND if any(map(_measured, results)) else ()))
    image = np.vstack([row, _legend(row.shape[1], legend)])
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV could not encode the overview image as PNG.")
    return png.tobytes()


def _head_center_and_radius(volume: Volume, annotation: Annotation,
                            result: SideResult) -> tuple[np.ndarray, float] | None:
    """Where a segmented hip's panel is centered (canonical z, y, x index) and the head radius
    (mm) it is scaled to: the fitted sphere's; for a hip the model segmented (no sphere), the
    femoral head label's centroid and the radius of a ball of its volume. None for a hip not
    segmented or without a head label."""
    if result.status != "segmented":
        return None
    if result.sphere_center_ras_mm is not None and result.head_diameter_mm is not None:
        return (volume.ras_mm_to_index(np.asarray(result.sphere_center_ras_mm)),
                result.head_diameter_mm / 2.0)
    head = np.argwhere(annotation.side_labels == segment_code(result.side, FEMORAL_HEAD))
    if head.size == 0:
        return None
    volume_mm3 = len(head) * voxel_volume_ml(volume) * MM3_PER_ML
    return head.mean(axis=0), float((3.0 * volume_mm3 / (4.0 * np.pi)) ** (1.0 / 3.0))


def _segmented_panel(volume: Volume, annotation: Annotation, result: SideResult,
                     center: np.ndarray, radius_mm: float) -> np.ndarray:
    """Axial panel through the head's ``center`` (canonical index), at the nearest slice that
    has a Hough circle, ``radius_mm`` setting the scale."""
    circle = min(result.circles, key=lambda c: abs(c.slice_index - center[0]), default=None)
    z = circle.slice_index if circle else int(np.clip(round(center[0]), 0, volume.shape[0] - 1))
    px_per_mm = PANEL_PX / (2.0 * PANEL_HALF_WIDTH_RADII * radius_mm)
    spacing_yx = volume.spacing_mm[1:]
    # panel pixel (u, v) -> slice index (x, y): square pixels of 1 / px_per_mm mm each, centered
    # on the sphere center
    step = 1.0 / (px_per_mm * spacing_yx[::-1])
    mid = (PANEL_PX - 1) / 2.0
    panel_to_slice = np.array([[step[0], 0.0, center[2] - mid * step[0]],
                               [0.0, step[1], center[1] - mid * step[1]]])

    def to_panel(ras_mm) -> tuple[int, int]:
        """RAS point in mm -> panel pixel (u, v) in 1/16 pixel, for drawing with _SHIFT."""
        _, y, x = volume.ras_mm_to_index(np.asarray(ras_mm, dtype=float))
        u = mid + (x - center[2]) / step[0]
        v = mid + (y - center[1]) / step[1]
        return int(round(u * 2**_SHIFT)), int(round(v * 2**_SHIFT))

    panel = _slice_panel(volume.hu[z], annotation.bone[z], annotation.side_labels[z],
                         result.side, panel_to_slice)
    if circle is not None:
        radius = int(round(circle.radius_mm * px_per_mm * 2**_SHIFT))
        cv2.circle(panel, to_panel(circle.center_ras_mm), radius, CIRCLE_COLOUR, 1, cv2.LINE_AA,
                   _SHIFT)
        for point in circle.boundary_points_ras_mm:
            cv2.circle(panel, to_panel(point), 2 * 2**_SHIFT, POINT_COLOUR, -1, cv2.LINE_AA, _SHIFT)

    slice_s_mm = volume.index_to_ras_mm(np.array([z, center[1], center[2]]))[2]
    _put_text(panel, f"axial, S = {slice_s_mm:.1f} mm", (8, PANEL_PX - 10))
    # radiological orientation markers: patient right on the image left, anterior at the top
    for letter, (u, v) in (("R", (6, PANEL_PX // 2)), ("L", (PANEL_PX - 16, PANEL_PX // 2)),
                           ("A", (PANEL_PX // 2 - 5, 18))):
        _put_text(panel, letter, (u, v))
    return panel


def _slice_panel(ct: np.ndarray, bone: np.ndarray, side_labels: np.ndarray, side: str,
                 panel_to_slice: np.ndarray) -> np.ndarray:
    """A CT slice (bone window) with the bone tint and the hip's label contours, resampled by
    the affine map ``panel_to_slice`` from panel pixels (u, v) to slice (column, row)."""
    def resample(image: np.ndarray, interpolation: int, outside: float) -> np.ndarray:
        return cv2.warpAffine(image, panel_to_slice, (PANEL_PX, PANEL_PX),
                              flags=interpolation | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=outside)

    low, high = BONE_WINDOW_HU
    grey = resample(ct.astype(np.float32), cv2.INTER_LINEAR, CT_AIR_HU)
    grey = np.clip((grey - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)
    panel = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    tint = resample(bone.astype(np.uint8), cv2.INTER_NEAREST, 0) > 0
    panel[tint] = ((1 - BONE_TINT_ALPHA) * panel[tint]
                   + BONE_TINT_ALPHA * np.array(BONE_TINT)).astype(np.uint8)
    for class_label, colour in CLASS_COLOURS.items():
        code = segment_code(side, class_label)
        mask = resample((side_labels == code).astype(np.uint8), cv2.INTER_NEAREST, 0)
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(panel, contours, -1, colour, 2, cv2.LINE_AA)
    return panel


def _coronal_panel(volume: Volume, annotation: Annotation, result: SideResult) -> np.ndarray:
    """Coronal panel through the head's center: the labels, the acetabular opening plane's
    trace and the center-edge angle's two lines (vertical, and to the roof's lateral edge)."""
    m = result.measurements
    center_ras = np.asarray(result.sphere_center_ras_mm, float)
    center = volume.ras_mm_to_index(center_ras)
    y = int(np.clip(round(center[1]), 0, volume.shape[1] - 1))
    px_per_mm = PANEL_PX / (2.0 * PANEL_HALF_WIDTH_RADII * result.head_diameter_mm / 2.0)
    step_z, step_x = 1.0 / (px_per_mm * volume.spacing_mm[[0, 2]])
    mid = (PANEL_PX - 1) / 2.0
    # panel (u, v) -> slice (x, z): x grows with u (patient left to the image right), z
    # (superior) falls with v
    panel_to_slice = np.array([[step_x, 0.0, center[2] - mid * step_x],
                               [0.0, -step_z, center[0] + mid * step_z]])
    panel = _slice_panel(volume.hu[:, y, :], annotation.bone[:, y, :],
                         annotation.side_labels[:, y, :], result.side, panel_to_slice)

    def to_panel(ras_mm) -> tuple[int, int]:
        z, _, x = volume.ras_mm_to_index(np.asarray(ras_mm, dtype=float))
        u, v = mid + (x - center[2]) / step_x, mid - (z - center[0]) / step_z
        return int(round(u * 2**_SHIFT)), int(round(v * 2**_SHIFT))

    def line(a_ras, b_ras, colour) -> None:
        cv2.line(panel, to_panel(a_ras), to_panel(b_ras), colour, 2, cv2.LINE_AA, _SHIFT)

    length = line_length_mm(result)
    center_edge = center_edge_points_ras_mm(result)
    if center_edge is not None:
        line(center_edge[1], center_edge[0], CENTER_EDGE_COLOUR)
        line(center_edge[1], center_edge[2], CENTER_EDGE_COLOUR)
    # the opening plane's trace: the line through the point of this coronal plane nearest the
    # head's center, across the normal's coronal part
    coronal = np.asarray(m.opening_normal_ras, float) * [1.0, 0.0, 1.0]
    if coronal @ coronal > 1e-9:
        offset = np.asarray(m.opening_normal_ras) @ (np.asarray(m.opening_center_ras_mm)
                                                     - center_ras)
        point = center_ras + coronal * offset / (coronal @ coronal)
        along = np.array([-coronal[2], 0.0, coronal[0]]) / np.linalg.norm(coronal)
        line(point - length * along, point + length * along, OPENING_COLOUR)
    slice_a_mm = volume.index_to_ras_mm(np.array([center[0], y, center[2]]))[1]
    _put_text(panel, f"coronal, A = {slice_a_mm:.1f} mm", (8, PANEL_PX - 10))
    angles = [f"CE {m.center_edge_deg:.0f} deg"] if m.center_edge_deg is not None else []
    angles.append(f"inclination {m.inclination_deg:.0f} deg")
    _put_text(panel, ", ".join(angles), (8, PANEL_PX - 32))
    for letter, (u, v) in (("R", (6, PANEL_PX // 2)), ("L", (PANEL_PX - 16, PANEL_PX // 2)),
                           ("S", (PANEL_PX // 2 - 5, 18))):
        _put_text(panel, letter, (u, v))
    return panel


def _message_panel(result: SideResult) -> np.ndarray:
    """Plain panel for a hip that was not segmented: its summary, message and warnings, wrapped."""
    panel = np.full((PANEL_PX, PANEL_PX, 3), BACKGROUND, np.uint8)
    summary = side_summary(result)
    lines = _wrap(summary, PANEL_PX - 24)
    for note in [result.message, *result.warnings]:
        if note and note not in summary:
            lines += [""] + _wrap(note, PANEL_PX - 24)
    line_px = 22
    top = (PANEL_PX - line_px * len(lines)) // 2
    for i, line in enumerate(lines):
        _put_text(panel, line, (12, top + line_px * (i + 1)))
    return panel


def _caption(text: str, width: int) -> np.ndarray:
    bar = np.full((CAPTION_PX, width, 3), BACKGROUND, np.uint8)
    _put_text(bar, text, (8, CAPTION_PX // 2 + 6), scale=0.65)
    return bar


def _measured(result: SideResult) -> bool:
    return result.measurements is not None and not result.measurements.not_computed


def _legend(width: int, entries: tuple[tuple[str, tuple[int, int, int]], ...]) -> np.ndarray:
    """Colour key of ``entries`` (name, colour), wrapped onto as many rows of LEGEND_PX pixels
    as ``width`` needs."""
    items = []  # (name, colour, row, u)
    row, u = 0, 8
    for name, colour in entries:
        item_px = 18 + cv2.getTextSize(name, FONT, TEXT_SCALE, 1)[0][0]
        if u > 8 and u + item_px > width:
            row, u = row + 1, 8
        items.append((name, colour, row, u))
        u += item_px + 16
    bar = np.full((LEGEND_PX * (row + 1), width, 3), BACKGROUND, np.uint8)
    for name, colour, row, u in items:
        top = row * LEGEND_PX
        cv2.rectangle(bar, (u, top + 9), (u + 12, top + 21), colour, -1)
        _put_text(bar, name, (u + 18, top + 20))
    return bar


def _put_text(image: np.ndarray, text: str, origin: tuple[int, int],
              scale: float = TEXT_SCALE) -> None:
    cv2.putText(image, text, origin, FONT, scale, TEXT, 1, cv2.LINE_AA)


def _wrap(text: str, width_px: int) -> list[str]:
    """Greedy word wrap so that each line fits ``width_px`` pixels at the panel text size."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(candidate, FONT, TEXT_SCALE, 1)[0][0] <= width_px:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines
