"""AFS for one hip, in its side frame: initial slice -> rough circle -> refined Hough circle
-> propagation -> sphere -> femur / pelvis split -> labels, and a check of the sphere."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from ..errors import stage_marker
from ..labels import fill_enclosed_slices, joint_labels, split_femur_pelvis
from ..params import SWEEP_MAX_PIXEL_MM, Params
from ..result import FEMORAL_HEAD
from .articular_sphere import articular_sphere
from .coverage import upper_coverage
from .half_maximum import trim_to_half_maximum
from .head_ellipsoid import surface_ellipsoid
from .head_flattening import flattened_head
from .hough import Circle
from .initial_slice import find_initial_slice
from .propagate import MIN_RADIUS_PX, propagate
from .slab_height import refine_height_on_slabs
from .slice_fit import SliceFit, fit_slice, sections_mm
from .rough_circle import RoughCircle, rough_circle
from .sphere import Sphere, fit_sphere, section_radius_mm
from .surface_check import SurfaceCheck, check_surface
from .surface_refit import MAX_SLICE_MM, RECOVERY_MIN_DROP_HU, refit_to_surface

# The split and the labels only need bone this close to the head (multiples of its radius).
_BOX_BELOW, _BOX_ABOVE, _BOX_IN_PLANE = 2.5, 1.5, 3.0
# A head found without a head / trochanter split must be covered by pelvic bone over this share
# of its upper half (afs/coverage.py). Measured (share of upward rays meeting bone 1.5-12 mm
# beyond the sphere): 0.66-0.94 on 24 sweep and phantom hips, dysplastic cups included;
# 0.34-0.48 on the vertebral bodies of phantoms without hips.
MIN_FALLBACK_COVERAGE = 0.6
# A sphere that passed the surface check and its 3-D refit disagree when their diameters or
# centers differ by more than this (mm). On phantoms at 0.8-2 mm voxels (86 right spheres,
# benchmarks/surface_check.py) the two agreed within 0.9 mm in diameter and 0.8 mm in center.
_DISAGREE_MM = 1.5
# The articular sphere (afs/articular_sphere.py) is reported where it lies within this (mm, in
# diameter and center) of the sphere the labels were made with: on the sweep it moved the
# diameter by at most 1.3 mm on heads it got right.
_ARTICULAR_REACH_MM = 4.0
# ... and where pixels are at most params.SWEEP_MAX_PIXEL_MM (where it was measured): the
# label's edge, which guides each ray, is a voxel's width uncertain.
# Progress within a hip's AFS: following the circles slice by slice runs from the first to the
# second share; the other stages take about their shares of the time measured on the 512 x 512
# x 200 phantom of benchmarks/pipeline.py (circles 55 %, filling the bones' interiors 14 %).
_PROPAGATION_SHARE = (0.1, 0.6)


class HeadNotFound(Exception):
    """No credible femoral head on this side; the message says why, in one sentence."""


@dataclass
class SideFit:
    """AFS result for one side, in side-frame indices (z, y, x)."""

    initial_slice: int
    rough: RoughCircle
    fits: list[SliceFit]  # sorted by slice index
    sphere: Sphere  # side-frame mm
    labels: np.ndarray  # uint8 (z, y, x): 1 acetabulum, 2 femoral head
    surface: SurfaceCheck  # whether the sphere sits on a visible head surface
    warnings: list[str]  # for the user: the surface check's, or the refit's
    # the sphere is the 3-D refit's, not the slices', which failed: such a hip is marked for
    # review (on the sweep, 128 hips, 12 of 19 refitted hips missed a target when this was
    # decided; 2 of 12 of 256 since the circles reach a thick cortex's surface)
    refitted: bool = False
    # the head's size and center as reported: the sphere fitted to its articular surface, None
    # where there is none (then ``sphere``'s)
    articular: Sphere | None = None
    # the head's surface is an ellipsoid wider than the sphere along two axes (see
    # :attr:`.head_ellipsoid.SurfaceEllipsoid.outgrows_sphere`): marked for review
    outgrown: bool = False


def segment_side(hu: np.ndarray, bone: np.ndarray, spacing_mm: np.ndarray, params: Params,
                 cancel: Callable[[], bool] | None = None,
                 progress: Callable[[float, str], None] | None = None) -> SideFit:
    """Run AFS on one side frame (lateral at low x); raises :class:`HeadNotFound`.

    ``progress(fraction, stage)`` is told, as each stage begins and before each slice the
    circles are followed into, how much of this hip's AFS is done; ``cancel`` is checked at
    the same points (:class:`~THAAnnotatorLib.errors.Cancelled`).
    """
    stage = stage_marker(progress, cancel, "The femoral head search was cancelled.")
    stage(0.0, "initial slice")
    bone = bone.astype(bool)
    initial = find_initial_slice(bone, spacing_mm, params.min_head_radius_mm)
    if initial is None:
        raise HeadNotFound("no slice shows the femoral head separate from the greater trochanter")
    rough = rough_circle(initial.head, initial.trochanter, spacing_mm[1:], params.rough_shrink)
    if rough is None:
        raise HeadNotFound("the femoral head's outline in the initial slice is degenerate")

    pixel_mm = float(np.mean(spacing_mm[1:]))
    r_px = rough.anatomy_radius_mm / pixel_mm
    band = (r_px / params.rough_shrink, r_px * params.search_extent)
    first = fit_slice(hu[initial.index], rough.center_mm / spacing_mm[1:], band, r_px, band,
                      pixel_mm, params)
    if first is None:
        raise HeadNotFound("no circular femoral head boundary was found in the initial slice")
    start = SliceFit(initial.index, first)
    # a sphere's sections span at most its diameter, and the initial slice's section is close
    # to the largest one: going farther than that diameter means following something else
    reach = int(np.floor(2.0 * first.radius_px * pixel_mm / spacing_mm[0]))

    def following(found_before: int) -> Callable[[int], None]:
        low, high = _PROPAGATION_SHARE

        def before_slice(found: int) -> None:  # both ways together, about reach slices
            done = min((found_before + found) / max(reach, 1), 1.0)
            stage(low + done * (high - low),
                  f"circles, slice {2 + found_before + found}")
        return before_slice

    below = propagate(hu, bone, [start], -1, reach, spacing_mm, params, following(0))
    above = propagate(hu, bone, below + [start], +1, reach, spacing_mm, params,
                      following(len(below)))
    fits = below[::-1] + [start] + above
    stage(_PROPAGATION_SHARE[1], "sphere")

    sphere = fit_sphere(*sections_mm(fits, spacing_mm), slab_mm=spacing_mm[0])
    # second pass: every slice the sphere spans, fitted again with the sphere's section as the
    # prior, so a start that was off (a head merged with its neck) does not steer the result
    refits = _refit_with_sphere(hu, sphere, spacing_mm, params)
    if len(refits) >= 3:
        fits, sphere = refits, fit_sphere(*sections_mm(refits, spacing_mm), slab_mm=spacing_mm[0])
    stage(0.7, "surface check")
    if params.use_slab_height:
        sphere, _ = refine_height_on_slabs(hu, sphere, spacing_mm)
    surface = check_surface(hu, sphere, spacing_mm)
    warnings = surface.warnings()
    # the 3-D refit, an estimate independent of the slices, cross-checks every sphere
    refit = _refit_on_surface(hu, sphere, spacing_mm, params)
    refitted = False
    if refit is not None and not surface.passed:
        warnings = [f"the per-slice circles missed the head's surface (cortex to joint space "
                    f"{surface.drop_hu:.0f} HU at their sphere, {2 * sphere.radius_mm:.1f} mm "
                    f"across); the sphere was refitted to the surface in 3-D: check this hip"]
        sphere, fits, surface = refit
        refitted = True
    elif refit is not None and _disagree(sphere, refit.sphere) and not _grows(sphere, refit.sphere):
        across = (f"the per-slice circles' sphere ({2 * sphere.radius_mm:.1f} mm across, "
                  f"edge {surface.drop_hu:.0f} HU) and a 3-D fit to the head's surface "
                  f"({2 * refit.sphere.radius_mm:.1f} mm, edge {refit.check.drop_hu:.0f} HU, "
                  f"{np.linalg.norm(refit.sphere.center_mm - sphere.center_mm):.1f} mm away) "
                  f"disagree")
        # a sphere that passed gives way only to a smaller one on a sharper edge: circles that
        # followed the acetabulum (on the sweep, 2-5.5 mm too large). A refit about as large,
        # or larger, fits the upper part of a head that is not a sphere, or in a narrowed
        # joint the acetabulum's cortex falling into its spongy bone: on the sweep (seeds
        # 0-15) the 7 such refits taken before were all farther from the truth.
        shrinks = 2.0 * (sphere.radius_mm - refit.sphere.radius_mm) > _DISAGREE_MM
        if refit.check.drop_hu > surface.drop_hu and shrinks:
            warnings = [f"{across}; the sphere was refitted to the sharper edge in 3-D: "
                        f"check this hip"]
            sphere, fits, surface = refit
            refitted = True
        else:  # on the sweep's good hips, a refit on a weaker edge was mostly the wrong one:
            # a warning, not a mark for review (1 failing hip and 4 good ones, 3 seeds a class)
            warnings = [f"{across}; the circles' sphere is kept (a note, not a mark for "
                        f"review)"]
    if initial.trochanter is None:
        coverage = upper_coverage(bone, sphere, spacing_mm)
        if coverage < MIN_FALLBACK_COVERAGE:
            raise HeadNotFound(
                f"no slice shows the femoral head apart from the greater trochanter, and the "
                f"round bone found instead is not covered by an acetabulum ({100 * coverage:.0f} "
                f"% of its upper half, a hip has at least {100 * MIN_FALLBACK_COVERAGE:.0f} %)")
        warnings.append("no slice shows the greater trochanter apart from the femoral head; "
                        "the femur's thickest slice was taken as the initial slice (a note, not a "
                        "mark for review)")
    if not params.min_head_radius_mm <= sphere.radius_mm <= params.max_head_radius_mm:
        raise HeadNotFound(
            f"the fitted femoral head radius, {sphere.radius_mm:.1f} mm, is outside the "
            f"anatomical range {params.min_head_radius_mm:g}-{params.max_head_radius_mm:g} mm")

    stage(0.72, "head shape")
    surface_fit = surface_ellipsoid(hu, sphere, spacing_mm)
    ellipsoid = (surface_fit.ellipsoid if surface_fit is not None and surface_fit.is_head_shape
                 else None)
    outgrown = surface_fit is not None and surface_fit.outgrows_sphere
    if outgrown:
        warnings.append(f"the femoral head's surface fits {surface_fit.ellipsoid.describe()} "
                        f"far better than a sphere, wider than its sphere "
                        f"({2 * sphere.radius_mm:.1f} mm) along two axes: the sphere may have "
                        f"followed the short axis of a head that is not round; check this hip")
    head_shape = ellipsoid if ellipsoid is not None else flattened_head(hu, sphere, spacing_mm)
    if head_shape is not None:
        warnings.append(f"the femoral head is not a sphere ({head_shape.describe()} fits its "
                        f"surface better); its labels follow that shape: an anatomical finding "
                        f"to confirm, not a doubt about the labels")

    stage(0.75, "femur / pelvis split")
    center_idx = sphere.center_mm / spacing_mm
    box = _joint_box(bone.shape, center_idx, sphere.radius_mm / spacing_mm)
    offset = np.array([s.start for s in box], dtype=float)
    box_shape = None if head_shape is None else head_shape.shifted(offset * spacing_mm)
    femur, pelvis = split_femur_pelvis(hu[box], bone[box], initial.femur_seed[box],
                                       center_idx - offset, sphere.radius_mm, spacing_mm,
                                       box_shape)
    stage(0.8, "labels")
    # spongy bone that bone extraction left out, inside each bone's cortex, goes with that bone
    whole = (bone, box)
    femur = fill_enclosed_slices(femur, spacing_mm, other=pelvis, beyond=whole)
    pelvis = fill_enclosed_slices(pelvis, spacing_mm, other=femur, beyond=whole) & ~femur
    labels = np.zeros(bone.shape, dtype=np.uint8)
    labels[box] = joint_labels(femur, pelvis, center_idx - offset, sphere.radius_mm, spacing_mm,
                               params, head_shape=box_shape)
    stage(0.95, "labels' edges")
    if params.use_half_maximum_edges:
        labels[box] = trim_to_half_maximum(labels[box], hu[box], bone[box], spacing_mm)
    articular = None
    # rays through slabs thicker than MAX_SLICE_MM put the surface high
    if spacing_mm[0] <= MAX_SLICE_MM and max(spacing_mm[1:]) <= SWEEP_MAX_PIXEL_MM:
        articular = articular_sphere(hu, labels == FEMORAL_HEAD, bone, sphere, spacing_mm)
        if articular is not None and not _near(articular, sphere, params):
            articular = None
    return SideFit(initial.index, rough, fits, sphere, labels, surface, warnings, refitted,
                   articular, outgrown)


def _near(articular: Sphere, sphere: Sphere, params: Params) -> bool:
    return (params.min_head_radius_mm <= articular.radius_mm <= params.max_head_radius_mm
            and 2.0 * abs(articular.radius_mm - sphere.radius_mm) <= _ARTICULAR_REACH_MM
            and np.linalg.norm(articular.center_mm - sphere.center_mm) <= _ARTICULAR_REACH_MM)


def _grows(sphere: Sphere, refit: Sphere) -> bool:
    """Whether ``refit`` is more than ``_DISAGREE_MM`` larger across than ``sphere``, which
    passed the surface check: it then lies on a fall beyond that clear edge, the acetabulum's
    cortex into its spongy bone where the joint is narrowed (on the sweep, seeds 0-15: 15 hips,
    all meeting the targets with the first sphere), which casts no doubt on the head."""
    return 2.0 * (refit.radius_mm - sphere.radius_mm) > _DISAGREE_MM


def _disagree(sphere: Sphere, other: Sphere) -> bool:
    return (abs(sphere.radius_mm - other.radius_mm) * 2.0 > _DISAGREE_MM
            or np.linalg.norm(sphere.center_mm - other.center_mm) > _DISAGREE_MM)


class _Refit(NamedTuple):
    sphere: Sphere
    fits: list[SliceFit]
    check: SurfaceCheck


def _refit_on_surface(hu: np.ndarray, sphere: Sphere, spacing_mm: np.ndarray,
                      params: Params) -> _Refit | None:
    """The sphere refitted to the head's surface in 3-D (:mod:`.surface_refit`), its sections
    as the slices' circles (each with the surface points of its slice), and its check. None
    where slices are more than ``MAX_SLICE_MM`` apart, and unless the refit is anatomical,
    centred inside the first sphere (it describes the same head, not a structure beside it)
    and passes the check with ``RECOVERY_MIN_DROP_HU``."""
    if spacing_mm[0] > MAX_SLICE_MM:
        return None
    refit = refit_to_surface(hu, sphere, spacing_mm)
    if refit is None:
        return None
    new, points_mm = refit
    check = check_surface(hu, new, spacing_mm)
    if not (params.min_head_radius_mm <= new.radius_mm <= params.max_head_radius_mm
            and np.linalg.norm(new.center_mm - sphere.center_mm) < sphere.radius_mm
            and check.passed and check.drop_hu >= RECOVERY_MIN_DROP_HU):
        return None
    pixel_mm = float(np.mean(spacing_mm[1:]))
    slice_of_point = np.round(points_mm[:, 0] / spacing_mm[0]).astype(int)
    fits = []
    for k in range(hu.shape[0]):
        r_mm = section_radius_mm(new, k * spacing_mm[0])
        if r_mm / pixel_mm < MIN_RADIUS_PX:
            continue
        points_px = points_mm[slice_of_point == k][:, 1:] / spacing_mm[1:]
        fits.append(SliceFit(k, Circle(new.center_mm[1:] / spacing_mm[1:], r_mm / pixel_mm,
                                       points_px, 0.0)))
    return _Refit(new, fits, check)


def _refit_with_sphere(hu: np.ndarray, sphere: Sphere, spacing_mm: np.ndarray,
                       params: Params) -> list[SliceFit]:
    """Circles in the slices ``sphere`` spans, each fitted with its expected section."""
    pixel_mm = float(np.mean(spacing_mm[1:]))
    center_px = sphere.center_mm[1:] / spacing_mm[1:]
    lo, hi = params.propagation_radius_window
    fits = []
    for k in range(hu.shape[0]):
        r = section_radius_mm(sphere, k * spacing_mm[0]) / pixel_mm
        if r * lo < MIN_RADIUS_PX:
            continue
        circle = fit_slice(hu[k], center_px, (r / params.rough_shrink, r * params.search_extent), r,
                           (r * lo, r * hi), pixel_mm, params, center_px)
        if circle is not None:
            fits.append(SliceFit(k, circle))
    return fits


def _joint_box(shape: tuple[int, ...], center_idx: np.ndarray, radius_idx: np.ndarray) -> tuple[slice, ...]:
    lo = center_idx - radius_idx * np.array([_BOX_BELOW, _BOX_IN_PLANE, _BOX_IN_PLANE])
    hi = center_idx + radius_idx * np.array([_BOX_ABOVE, _BOX_IN_PLANE, _BOX_IN_PLANE])
    return tuple(slice(max(int(np.floor(a)), 0), min(int(np.ceil(b)) + 1, n))
                 for a, b, n in zip(lo, hi, shape))
