"""The annotation synthesis pipeline for one scan: BE, then AFS on each hip."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable

import numpy as np

from .afs.frame import SideFrame
from .afs.side import HeadNotFound, SideFit, segment_side
from .afs.surface_check import MIN_DROP_HU
from .bone import extract_bone
from .errors import InputError, stage_marker
from .measure import measure_hips
from .metal import METAL_MESSAGE  # noqa: F401 (part of this module's interface: results' message)
from .metal import Metal, head_not_found_result, implant_at_hip, metal_elsewhere_warnings
from .params import Params
from .result import (ACETABULUM, FEMORAL_HEAD, SIDES, Annotation, SideResult, SliceCircle,
                     refuse_without_a_hip, segment_code)
from .scan_workers import SharedScan, scan_runner
from .volume import Volume

# Voxel sizes AFS was made and checked for (the paper's scans: 0.7-1.0 mm in-plane, 1-5 mm
# slices). On phantoms, hips go wrong more often from 1.25 mm in-plane and nearly always at 3 mm
# in-plane; with 5 mm slices the head is found but the acetabulum misses its target in 4 of 48
# hips (a whole slab at the head's top, whose middle lies within 0.15 mm of the head's top). A
# hip segmented in a coarser scan carries a warning.
DESIGN_IN_PLANE_MM = 1.0
DESIGN_SLICE_MM = 3.0
# A slice is a head slice when its middle lies within the sphere. Where slices are farther apart
# than DESIGN_SLICE_MM, a head's top fitted this close (mm) to a slice's middle leaves to chance
# whether that slice, with its plate of acetabular roof, is labelled (1 mm / 5 mm phantoms: the
# fitted top within 0.22 mm of the truth), and the hip is marked for review: on the sweep (256
# hips) 1 of the 4 hips so marked had its slab of roof wrong (acetabulum 0.85), unflagged before.
TOP_SLICE_MARGIN_MM = 0.25
# Share of the progress bar taken by bone extraction; the hips share the rest (measured on the
# 512 x 512 x 200 phantom, one worker: bone extraction about 2 s, the two hips about 8.5 s).
_BE_SHARE = 0.2
# Share of a hip's progress taken by AFS; its measurements take the rest.
_AFS_SHARE = 0.9
LOW_DENSITY_FLOOR_HU = 100.0
"""A side where no femoral head is found is tried again with bone extraction's threshold floor
(``Params.min_bone_threshold_hu``, 150 HU) lowered to this: osteoporotic spongy bone (80-150 HU)
inside a cortex too thin to hold together in the bone mask leaves a head no circle can be found
in. The head found so is kept only where its surface check sees a joint space
(``surface_check.MIN_DROP_HU``) and its diameter is an adult's (``Params.usual_head_diameter_mm``):
on generated scans without hips, round vertebral bone was found so, with no joint space (128 HU)
or 31 mm across. On the sweep's two low-density scans that were refused (seeds 13 and 14, cortex
0.65 mm) 3 of their 4 hips are found so, each meeting the targets. Lowering the floor for
every scan is no answer: on the real 3 mm CT, whose slices' Otsu thresholds lie at 120-146 HU,
the joint space then fills and its right head is lost."""
MAX_CONCENTRICITY_MM = 1.5
"""A hip whose head sphere and acetabular articular sphere (:mod:`.measure`; two fits to two
surfaces, by different steps) have centers farther apart than this (mm) is marked for review.
In a congruent joint they coincide: on the sweep's 233 native hips meeting every target, 0.2 mm
median, 1.0 mm at the 99th percentile, beyond this on one hip only (1.6 mm); of its 15 failing
hips, 6 lay farther than this (when the rule was made, 2 of 16 failing hips
were flagged by it alone: a head's sphere or an acetabulum's label that had taken in the wrong
bone). A subluxed or migrated head lies off its socket's center too: a
finding an annotator should see, so it is marked all the same."""
MIN_JOINT_READ_MM = 0.5
"""Where the acetabulum's articular sphere is less than this (mm) wider than the femoral head's,
the scan shows no joint space between them (a quarter of a millimetre each side), and a note
says so. Bone on bone the head's surface cannot be told from the acetabulum's cortex: on drawn
joints closed to 0 mm (``benchmarks/sweep.py --classes narrow_joint typical --seeds 6
--joint-space-mm 0``) the heads not marked for review read up to 2.2 mm large, 1.5 mm at the
median. It is a note, not a mark for review: joints narrowed to 0.2-0.5 mm read the same, and
their heads are right (on the sweep, seeds 0-15, it is on 10 good `narrow_joint` hips, and on 3
failing hips of other classes that are marked already; good hips of the other classes have
articular spheres 2.3-6.5 mm wider than their heads, seeds 0-3). The real 3 mm CT's right hip
reads +0.2 mm."""
# Share of the progress bar left for that second try: the first pass ends here.
_RETRY_SHARE = 0.05
# Axial slices per bone extraction task: few enough that workers finish together and progress
# moves often, enough that a task's overhead (about 1 ms) is nothing beside its graph cuts (about
# 0.1 s a slice at 512 x 512).
SLICES_PER_TASK = 4


def _side_result(volume: Volume, frame: SideFrame, fit: SideFit, params: Params) -> SideResult:
    spacing = volume.spacing_mm

    def to_ras(zyx_frame: np.ndarray) -> np.ndarray:
        return volume.index_to_ras_mm(frame.to_canonical_zyx(zyx_frame))

    circles = []
    for f in fit.fits:
        center = to_ras(np.array([f.index, *f.circle.center_px]))
        points = f.circle.points_px
        pts = to_ras(np.column_stack([np.full(len(points), f.index), points]))
        circles.append(SliceCircle(f.index, tuple(np.round(center, 2).tolist()),
                                   round(f.circle.radius_px * float(np.mean(spacing[1:])), 2),
                                   [tuple(p) for p in np.round(pts, 2).tolist()]))
    head = fit.articular or fit.sphere
    sphere_center = to_ras(head.center_mm / spacing)
    diameter_mm = 2.0 * head.radius_mm
    low, high = params.usual_head_diameter_mm
    warnings = list(fit.warnings)
    top_slice = _top_slice_warning(fit, spacing, to_ras)
    if top_slice is not None:
        warnings.append(top_slice)
    usual = low <= diameter_mm <= high
    if not usual:
        warnings.append(f"a femoral head {diameter_mm:.1f} mm across is outside the usual adult "
                        f"range of {low:g}-{high:g} mm: check this hip")
    return SideResult(
        side=frame.side, status="segmented", initial_slice=fit.initial_slice, circles=circles,
        sphere_center_ras_mm=tuple(np.round(sphere_center, 2).tolist()),
        head_diameter_mm=round(diameter_mm, 2),
        surface_drop_hu=round(fit.surface.drop_hu, 1),
        surface_edge_offset_mm=round(fit.surface.edge_offset_mm, 2),
        needs_review=(not (fit.surface.passed and usual) or fit.refitted or fit.outgrown
                      or top_slice is not None),
        warnings=warnings)


def _top_slice_warning(fit: SideFit, spacing_mm: np.ndarray,
                       to_ras: Callable[[np.ndarray], np.ndarray]) -> str | None:
    """The warning for a head whose top lies within ``TOP_SLICE_MARGIN_MM`` of a slice's middle,
    in slices farther apart than ``DESIGN_SLICE_MM``, naming that slice by its height S (mm);
    None otherwise. ``to_ras`` maps side-frame indices to RAS mm."""
    top_mm = fit.sphere.center_mm[0] + fit.sphere.radius_mm  # side-frame z, mm
    top_slice = int(round(top_mm / spacing_mm[0]))
    offset_mm = top_mm - top_slice * spacing_mm[0]
    if spacing_mm[0] <= DESIGN_SLICE_MM + 1e-6 or abs(offset_mm) > TOP_SLICE_MARGIN_MM:
        return None
    slice_s_mm = to_ras(np.array([top_slice, *fit.sphere.center_mm[1:] / spacing_mm[1:]]))[2]
    return (f"the head's top lies {abs(offset_mm):.2f} mm {'above' if offset_mm >= 0 else 'below'} "
            f"the middle of the axial slice at S = {slice_s_mm:.1f} mm, so whether that slice "
            f"counts as a head slice (its acetabular roof labelled) is uncertain: check it")


def resolution_warnings(spacing_mm: np.ndarray) -> list[str]:
    """Warnings for a scan coarser than :data:`DESIGN_IN_PLANE_MM` in-plane or
    :data:`DESIGN_SLICE_MM` between slices (``spacing_mm``: z, y, x). They do not ask the user to
    check the hip: ``annotate`` does not mark such a hip for review for its voxels alone (on the
    sweep that would flag about ten good hips for each failing one), ``predict`` does."""
    warnings = []
    in_plane = float(np.max(spacing_mm[1:]))
    if in_plane > DESIGN_IN_PLANE_MM + 1e-6:
        warnings.append(f"in-plane voxels of {in_plane:.3g} mm are coarser than the "
                        f"{DESIGN_IN_PLANE_MM:g} mm this method was made for: its labels are "
                        f"less certain")
    if spacing_mm[0] > DESIGN_SLICE_MM + 1e-6:
        warnings.append(f"slices {spacing_mm[0]:.3g} mm apart are farther than the "
                        f"{DESIGN_SLICE_MM:g} mm this method was made for: its labels are less "
                        f"certain, above all the acetabulum in the slices at the head's top")
    return warnings


def annotate(volume: Volume, params: Params = Params(), sides: Iterable[str] = SIDES,
             progress: Callable[[float, str], None] | None = None,
             cancel: Callable[[], bool] | None = None, workers: int = 1) -> Annotation:
    """Bone mask and acetabulum / femoral head labels of both hips of a CT volume.

    A hip with more than ``params.metal_min_volume_ml`` of metal in its own region (around the
    head AFS found; :mod:`.metal`), or with no head found on a side holding that much metal, is
    reported as a metal implant and left out; a hip segmented despite metal elsewhere on its
    side says where that metal lies. A side without a credible femoral head is tried again with
    bone extraction's threshold floor lowered to :data:`LOW_DENSITY_FLOOR_HU` (its head kept
    only where its surface check sees a joint space, with a warning; that side's half of the
    bone mask is then the second one's), and reported as not found otherwise. A scan whose
    hips all hold implants (a post-operative scan) is a result, with empty labels and every hip
    reported as metal. ``workers`` processes share the work (bone
    extraction a few slices at a time, then one hip each; :mod:`.scan_workers`), with the same
    results, bit for bit, for any number; 1 works in this process. Workers are started with
    ``spawn``, which imports the calling script's main module again: a script that asks for more
    than one must start its work under ``if __name__ == "__main__":``.

    Raises :class:`InvalidParam` (a ``ValueError``) for ``params`` outside their ranges
    (:meth:`Params.validate`) and :class:`InputError` for unknown sides or ``workers`` under 1,
    all checked before any work; :class:`InputError` when no femoral head and no implant is
    found at any requested hip (every one "not_found": no hip in view, or the method failed), and
    :class:`Cancelled` when ``cancel()`` turns true.
    """
    params.validate()
    sides = tuple(sides)
    unknown = set(sides) - set(SIDES)
    if unknown or not sides:
        raise InputError(f"Sides must be chosen from {', '.join(SIDES)}; got {', '.join(sides)}.")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be an integer of at least 1, got {workers!r}.")

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    first_share = 1.0 - _RETRY_SHARE
    bone, passes = _annotate_pass(volume, params, sides, workers, cancel,
                                  lambda fraction, message: report(first_share * fraction,
                                                                   message))
    lost = [side for side in sides if passes[side][0].status == "not_found"]
    if lost and params.min_bone_threshold_hu > LOW_DENSITY_FLOOR_HU:
        lower = replace(params, min_bone_threshold_hu=LOW_DENSITY_FLOOR_HU)
        again_bone, again = _annotate_pass(
            volume, lower, lost, workers, cancel,
            lambda fraction, message: report(first_share + _RETRY_SHARE * fraction,
                                             f"again with bone from {LOW_DENSITY_FLOOR_HU:g} "
                                             f"HU: {message}"))
        for side in lost:
            result, frame, labels = again[side]
            if _credible(result, params):
                result.warnings.insert(0, _low_density_warning(params))
                passes[side] = again[side]
                frame.view(bone)[...] = frame.view(again_bone)  # that side's half
    side_labels = np.zeros(volume.shape, dtype=np.uint8)
    results: dict[str, SideResult] = {}
    for side in sides:
        result, frame, labels = passes[side]
        results[side] = result
        if labels is not None:
            frame.paste(side_labels, labels, labels > 0)
    report(1.0, "done")

    refuse_without_a_hip(results)
    return Annotation(bone=bone, side_labels=side_labels, sides=results)


def _credible(result: SideResult, params: Params) -> bool:
    """Whether a head found only with bone extraction's lowered floor is kept: its surface
    check sees a joint space and its diameter is an adult's."""
    low, high = params.usual_head_diameter_mm
    return (result.status == "segmented" and result.surface_drop_hu >= MIN_DROP_HU
            and low <= result.head_diameter_mm <= high)


def _low_density_warning(params: Params) -> str:
    return (f"this femoral head was found only with bone extraction's threshold lowered from "
            f"{params.min_bone_threshold_hu:g} to {LOW_DENSITY_FLOOR_HU:g} HU (spongy bone "
            f"darker than usual, as in osteoporosis): its bone mask and labels come from that "
            f"threshold")


def _annotate_pass(volume: Volume, params: Params, sides: tuple[str, ...] | list[str],
                   workers: int, cancel: Callable[[], bool] | None,
                   report: Callable[[float, str], None]
                   ) -> tuple[np.ndarray, dict[str, tuple[SideResult, SideFrame, np.ndarray | None]]]:
    """Bone extraction with ``params``, then AFS on each of ``sides``: the bone mask and, per
    side, its result, side frame and labels there (:func:`_annotate_side`). ``report`` is told
    the progress from 0 to 1."""
    slabs = [range(z, min(z + SLICES_PER_TASK, volume.shape[0]))
             for z in range(0, volume.shape[0], SLICES_PER_TASK)]
    with scan_runner(volume, params, workers, cancel) as runner:
        runner.run(_extract_bone_slab, slabs,
                   lambda done: report(_BE_SHARE * done / len(slabs), "bone extraction"))
        bone = runner.scan.bone.copy()
        hips = f"{' and '.join(sides)} hip"
        report(_BE_SHARE, hips)
        hips_done = 0

        def hips_progress(done: float, message: str) -> None:
            report(_BE_SHARE + (1 - _BE_SHARE) * done / len(sides), message)

        def hip_done(done: int) -> None:
            nonlocal hips_done
            hips_done = done
            hips_progress(done, hips)

        # a hip worked on in this process reports its stages; one in a child only its end
        runner.scan.progress = lambda fraction, message: hips_progress(hips_done + fraction,
                                                                       message)
        hip_results = runner.run(_annotate_side, sides, hip_done)
    return bone, dict(zip(sides, hip_results))


def _extract_bone_slab(scan: SharedScan, slices: range) -> None:
    """BE on the axial slices ``slices`` of the scan, into ``scan.bone`` (BE treats each slice on
    its own, so slabs give the whole volume's mask)."""
    to_slab = np.eye(4)
    to_slab[0, 3] = slices.start  # the slab's index 0 is the volume's slices.start
    slab = Volume(scan.volume.hu[slices.start:slices.stop], scan.volume.index_to_lps @ to_slab)
    scan.bone[slices.start:slices.stop] = extract_bone(slab, scan.params, cancel=scan.cancel)


def _annotate_side(scan: SharedScan,
                   side: str) -> tuple[SideResult, SideFrame, np.ndarray | None]:
    """AFS on one hip and its measurements: its result, its side frame and its labels there
    (uint8: 0 or its two segment codes; None for a hip not segmented)."""
    volume, params = scan.volume, scan.params
    frame = SideFrame.for_side(volume, side)
    hu = frame.view(volume.hu)
    metal = Metal.find(hu, volume.spacing_mm, params.metal_threshold_hu)
    labels = None

    def progress(fraction: float, stage: str) -> None:
        if scan.progress is not None:
            scan.progress(fraction, f"{side} hip: {stage}")

    try:
        fit = segment_side(hu, frame.view(scan.bone), volume.spacing_mm, params, scan.cancel,
                           lambda fraction, stage: progress(_AFS_SHARE * fraction, stage))
    except HeadNotFound as why:
        result = head_not_found_result(side, metal, str(why), params)
    else:
        center_mm, radius_mm = fit.sphere.center_mm, fit.sphere.radius_mm  # side frame
        result = implant_at_hip(side, metal, center_mm, radius_mm, params)
        if result is None:
            result = _side_result(volume, frame, fit, params)
            result.warnings.extend(metal_elsewhere_warnings(volume, frame, metal, center_mm,
                                                            radius_mm, params))
            result.warnings.extend(resolution_warnings(volume.spacing_mm))
            labels = np.zeros(fit.labels.shape, np.uint8)
            for cls in (ACETABULUM, FEMORAL_HEAD):
                labels[fit.labels == cls] = segment_code(side, cls)
    mark = stage_marker(progress, scan.cancel, "The annotation was cancelled.")
    mark(_AFS_SHARE, "measurements")
    # a hip's measurements read its own labels only (and the bone mask)
    side_labels = np.zeros(volume.shape, np.uint8)
    if labels is not None:
        frame.paste(side_labels, labels, labels > 0)
    measure_hips(volume, scan.bone, side_labels, {side: result})
    _check_congruence(result)
    return result, frame, labels


def _check_congruence(result: SideResult) -> None:
    """Mark a measured hip for review, with a warning, where its head's center lies more than
    :data:`MAX_CONCENTRICITY_MM` from its acetabulum's articular center; note a joint space the
    scan does not show (:data:`MIN_JOINT_READ_MM`)."""
    socket_mm = getattr(result.measurements, "acetabular_diameter_mm", None)
    if socket_mm is not None and socket_mm - result.head_diameter_mm < MIN_JOINT_READ_MM:
        result.warnings.append(
            f"no joint space shows between the femoral head ({result.head_diameter_mm:.1f} mm "
            f"across) and the acetabulum's articular surface ({socket_mm:.1f} mm): the joint is "
            f"narrowed below what the scan resolves, or closed; where bone meets bone the head's "
            f"surface cannot be told from the acetabulum's cortex, and heads in drawn closed "
            f"joints read up to 2.2 mm large (a note, not a mark for review)")
    offset_mm = getattr(result.measurements, "concentricity_mm", None)
    if offset_mm is not None and offset_mm > MAX_CONCENTRICITY_MM:
        result.needs_review = True
        result.warnings.append(
            f"the femoral head's center lies {offset_mm:.1f} mm from the acetabulum's articular "
            f"center (at most {MAX_CONCENTRICITY_MM:g} mm in a congruent joint): either fit may "
            f"be wrong, or the hip is subluxed; check this hip")
