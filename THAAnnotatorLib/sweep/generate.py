"""One scan of the sweep: the drawn anatomy rendered as a CT, with the truth it was drawn from."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from ..volume import Volume, canonicalize
from .draw import HipDraw, ScanDraw, draw_scan
from .render import (FEMUR_PART, HU_AIR, HU_FAT, HU_MAX, HU_METAL, HU_MIN, PELVIS, Coverage,
                     Grid, HipFrame, acetabulum_sdf, femur_sdf, head_sdf, hip_frames, local_box_mm,
                     implant_sdf, make_grid, neck_base, rasterize)

# Femoral shaft: the cortex thickens to this (mm) from 35 mm below the head's center down, and
# the cancellous bone gives way to fatty marrow (HU) from 45 mm below.
_SHAFT_CORTEX_MM, _MARROW_HU = 4.5, 20.0
# The head's articular surface, for its equivalent sphere: directions more than this from the
# neck's axis (deg).
_ARTICULAR_FROM_NECK_DEG = 70.0
# The bladder: center (body x, y, z) and semi-axes, mm.
_BLADDER_CENTER_MM, _BLADDER_SEMI_AXES_MM = (0.0, -45.0, 5.0), (40.0, 30.0, 30.0)
# The world position of the body's origin varies by this much (mm), so nothing can assume it.
_WORLD_OFFSET_RANGE_MM = 60.0

TISSUES = ("air", "fat", "muscle", "pelvic_cavity", "bladder", "cortex", "cancellous", "marrow",
           "metal", "contrast")
"""The tissues of :attr:`SweepCase.tissue_map`, its codes in this order (air 0 ... contrast 9):
muscle includes the joint space and an arm at the side; cortex, cancellous bone and marrow are
those of pelvis and femurs alike; metal is an implant or a bead; contrast is dense contrast
(bladder, a vein)."""
(AIR, FAT, MUSCLE, PELVIC_CAVITY, BLADDER, CORTEX, CANCELLOUS, MARROW, METAL,
 CONTRAST) = range(len(TISSUES))


@dataclass(frozen=True)
class HipTruth:
    """What the sweep drew of one native hip, in the scan's patient coordinates.

    ``center_ras_mm`` and ``radius_mm``: the sphere fitted (least squares) to the head's
    articular surface (for a round head, the head itself), what a surgeon's template measures;
    ``semi_axes_mm``: the drawn ellipsoid's (lateral, anterior, superior) semi-axes;
    ``span_s_mm``: the lowest and highest S (mm) of the head's surface (the head's slices).
    """

    center_ras_mm: tuple[float, float, float]
    radius_mm: float
    semi_axes_mm: tuple[float, float, float]
    span_s_mm: tuple[float, float]


@dataclass
class SweepCase:
    """A sweep scan and its truth.

    ``volume``: the CT as a reader gives it (canonical layout, HU rounded as stored);
    ``part_map``: canonical layout, 0 none, 1 pelvis, 2 right femur, 3 left femur (a voxel
    whose center lies inside the bone; metal is 0); ``hips``: truth of each native hip in view
    (an implanted side has none); ``draw``: everything drawn; ``tissue_map``: canonical layout,
    the :data:`TISSUES` code of the tissue at each voxel's center (the anatomy without its
    imaging: no partial volume, texture, streaks, blur or noise).
    """

    draw: ScanDraw
    volume: Volume
    part_map: np.ndarray
    hips: dict[str, HipTruth]
    tissue_map: np.ndarray

    @property
    def implant_sides(self) -> tuple[str, ...]:
        return tuple(s for s, h in self.draw.hips.items() if h.implant)


def generate_sweep_case(hip_class: str, seed: int,
                        spacing_mm: tuple[float, float, float] | None = None) -> SweepCase:
    """Draw and render scan ``seed`` of the sweep's class ``hip_class``; ``spacing_mm`` (slice,
    row, column) overrides the drawn voxel size (fast tests)."""
    scan = draw_scan(hip_class, seed)
    if spacing_mm is not None:
        scan = replace(scan, spacing_mm=tuple(float(s) for s in spacing_mm))
    return render_scan(scan)


def render_scan(scan: ScanDraw) -> SweepCase:
    """The CT and truth of a drawn scan."""
    rng = np.random.default_rng(np.random.SeedSequence([1000 + len(scan.hip_class), scan.seed]))
    frames = hip_frames(scan)
    grid = make_grid(scan, frames)
    hu, tissue = _soft_tissue(grid, scan)
    part = np.zeros(grid.shape, np.uint8)
    texture = _smooth_noise(grid, rng, 1.2) * (0.35 * scan.cancellous_hu)

    for side, hip in scan.hips.items():
        frame = frames[side]
        r = hip.head_radius_mm
        lo, hi = local_box_mm(frame, (-scan.hip_half_width_mm - 5.0, -1.6 * r - 12.0, -r - 45.0),
                              (r + 20.0, 1.6 * r + 18.0, r + 80.0))
        cover = rasterize(grid, lambda p: acetabulum_sdf(frame.local(p), hip), lo, hi, scan.cortex_mm)
        _paint_bone(hu, cover, scan.cortex_hu, scan.cancellous_hu + texture[cover.box])
        part[cover.box][cover.truth] = PELVIS
        _label_bone(tissue, cover, CANCELLOUS)
    for side, hip in scan.hips.items():
        frame = frames[side]
        r = hip.head_radius_mm
        lo, hi = local_box_mm(frame, (-1.2 * r, -1.6 * r, -300.0),
                              (hip.femoral_offset_mm + 1.2 * r, 1.4 * r, 1.2 * r))
        cover = rasterize(grid, lambda p: femur_sdf(frame.local(p), hip), lo, hi,
                          lambda p: _femur_cortex_mm(frame.local(p), scan.cortex_mm))
        _paint_bone(hu, cover, scan.cortex_hu,
                    _femur_interior_hu(grid, cover.box, frame, scan) + texture[cover.box])
        part[cover.box][cover.truth] = FEMUR_PART[side]
        marrow = _marrow_share(grid, cover.box, frame)[:, None, None] > 0.5
        _label_bone(tissue, cover, np.where(marrow, MARROW, CANCELLOUS))
        if hip.implant:
            metal = rasterize(grid, lambda p: implant_sdf(frame.local(p), hip), lo, hi, 0.0)
            _paint(hu, metal, HU_METAL)
            part[metal.box][metal.truth] = 0
            tissue[metal.box][metal.truth] = METAL
            _add_metal_streaks(hu, grid, metal, rng)
    for m in scan.distant_metal:
        _add_distant_metal(hu, tissue, grid, m, scan)

    _add_hip_streaks(hu, grid, frames, scan, rng)
    pixel = float(np.mean(grid.spacing_mm[1:]))
    ndimage.gaussian_filter(hu, (0.0, scan.psf_mm / pixel, scan.psf_mm / pixel), output=hu)
    hu += _smooth_noise(grid, rng, 0.6 * pixel, in_plane_only=True) * scan.noise_hu
    hu = np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.float32)

    offset = np.random.default_rng(scan.seed).uniform(-1, 1, 3) * _WORLD_OFFSET_RANGE_MM
    volume, part = _stored(hu, part, grid, offset, scan.storage)
    hips = {side: _hip_truth(hip, frames[side], offset) for side, hip in scan.hips.items()
            if not hip.implant}
    return SweepCase(scan, volume, part, hips, tissue)


def _soft_tissue(grid: Grid, scan: ScanDraw) -> tuple[np.ndarray, np.ndarray]:
    """Air, subcutaneous fat, muscle and the pelvic cavity with the bladder: HU and
    :data:`TISSUES` codes."""
    y = grid.axis_mm(1)[:, None]
    x = grid.axis_mm(2)[None, :]
    a, b = scan.body_semi_axes_mm
    body = (x / a) ** 2 + (y / b) ** 2 <= 1.0
    muscle = (x / (a - scan.fat_mm)) ** 2 + (y / (b - scan.fat_mm)) ** 2 <= 1.0
    cavity = (x / (0.45 * scan.hip_half_width_mm)) ** 2 + ((y - 10.0) / (0.45 * b)) ** 2 <= 1.0
    plane = np.where(muscle, scan.muscle_hu, np.where(body, HU_FAT, HU_AIR))
    plane = np.where(cavity, -20.0, plane).astype(np.float32)
    codes = np.select([cavity, muscle, body], [PELVIC_CAVITY, MUSCLE, FAT], AIR).astype(np.uint8)
    hu = np.repeat(plane[None], grid.shape[0], axis=0)
    tissue = np.repeat(codes[None], grid.shape[0], axis=0)
    z = grid.axis_mm(0)[:, None, None]
    bladder = np.broadcast_to(_in_bladder(x, y, z), hu.shape)
    hu[bladder] = 10.0
    tissue[bladder] = BLADDER
    return hu, tissue


def _in_bladder(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Whether body coordinates (mm, broadcastable) lie in the bladder: an ellipsoid in front of
    the pelvic cavity, midline."""
    return sum(((c - m) / a) ** 2 for c, m, a in zip((x, y, z), _BLADDER_CENTER_MM,
                                                     _BLADDER_SEMI_AXES_MM)) <= 1.0


def _smooth_noise(grid: Grid, rng: np.random.Generator, sigma_mm: float,
                  in_plane_only: bool = False) -> np.ndarray:
    """Gaussian noise smoothed over ``sigma_mm``, scaled back to unit standard deviation."""
    noise = rng.standard_normal(grid.shape, dtype=np.float32)
    sigma = np.asarray([0.0 if in_plane_only else sigma_mm, sigma_mm, sigma_mm]) / grid.spacing_mm
    ndimage.gaussian_filter(noise, sigma, output=noise, truncate=3.0)
    return noise / max(float(noise.std()), 1e-6)


def _paint(hu: np.ndarray, cover: Coverage, value_hu) -> None:
    view = hu[cover.box]
    view *= 1.0 - cover.outer
    view += cover.outer * value_hu


def _paint_bone(hu: np.ndarray, cover: Coverage, cortex_hu: float, interior_hu) -> None:
    """Cortex between the outer and inner surfaces, ``interior_hu`` inside."""
    view = hu[cover.box]
    view *= 1.0 - cover.outer
    view += (cover.outer - cover.inner) * cortex_hu + cover.inner * interior_hu


def _label_bone(tissue: np.ndarray, cover: Coverage, interior) -> None:
    """Cortex where a voxel's center is inside the bone, ``interior`` (a code, or codes
    broadcastable to the box) where it is inside the cortex's inner surface."""
    view = tissue[cover.box]
    view[cover.truth] = CORTEX
    view[cover.inner_truth] = np.broadcast_to(interior, view.shape)[cover.inner_truth]


def _femur_cortex_mm(q: np.ndarray, cortex_mm: float) -> np.ndarray:
    depth = np.clip((-q[..., 2] - 35.0) / 30.0, 0.0, 1.0)
    return cortex_mm + (max(_SHAFT_CORTEX_MM, cortex_mm) - cortex_mm) * depth


def _femur_interior_hu(grid: Grid, box, frame: HipFrame, scan: ScanDraw) -> np.ndarray:
    """Cancellous bone in the head, neck and trochanters, fatty marrow down the shaft."""
    marrow = _marrow_share(grid, box, frame)[:, None, None]
    return (scan.cancellous_hu * (1.0 - marrow) + _MARROW_HU * marrow).astype(np.float32)


def _marrow_share(grid: Grid, box, frame: HipFrame) -> np.ndarray:
    """The femur's share of fatty marrow (rather than cancellous bone) in each slice of ``box``:
    none down to 45 mm below the head's center, all from 75 mm below."""
    height = grid.axis_mm(0)[box[0]] - frame.center_mm[2]
    return np.clip((-height - 45.0) / 30.0, 0.0, 1.0)


def _add_hip_streaks(hu: np.ndarray, grid: Grid, frames: dict[str, HipFrame], scan: ScanDraw,
                     rng: np.random.Generator) -> None:
    """Beam hardening: a dark band along the line joining the femoral heads, in their slices."""
    if scan.streak_hu <= 0:
        return
    right, left = frames["right"].center_mm, frames["left"].center_mm
    y = grid.axis_mm(1)[:, None]
    x = grid.axis_mm(2)[None, :]
    direction = (left - right)[:2] / np.linalg.norm((left - right)[:2])
    across = (x - right[0]) * -direction[1] + (y - right[1]) * direction[0]
    width = rng.uniform(2.0, 5.0)
    band = (-scan.streak_hu * np.exp(-0.5 * (across / width) ** 2)).astype(np.float32)
    radius = np.mean([h.head_radius_mm for h in scan.hips.values()])
    for k, z in enumerate(grid.axis_mm(0)):
        weight = 1.0 - abs(z - 0.5 * (right[2] + left[2])) / radius
        if weight > 0:
            hu[k] += weight * band


def _add_metal_streaks(hu: np.ndarray, grid: Grid, metal: Coverage,
                       rng: np.random.Generator) -> None:
    """Dark and bright streaks through the metal in each slice that holds it."""
    y = grid.axis_mm(1)[:, None]
    x = grid.axis_mm(2)[None, :]
    angles = rng.uniform(0, np.pi, 6)
    signs = rng.choice([-1.0, 1.0], 6)
    for k_local, k in enumerate(range(*metal.box[0].indices(grid.shape[0]))):
        where = np.argwhere(metal.truth[k_local])
        if len(where) == 0:
            continue
        cy = grid.axis_mm(1)[metal.box[1]][where[:, 0]].mean()
        cx = grid.axis_mm(2)[metal.box[2]][where[:, 1]].mean()
        distance = np.hypot(x - cx, y - cy)
        for angle, sign in zip(angles, signs):
            across = (x - cx) * np.sin(angle) - (y - cy) * np.cos(angle)
            hu[k] += (sign * 400.0 * np.exp(-0.5 * (across / 1.5) ** 2)
                      * np.exp(-distance / 80.0)).astype(np.float32)


def _add_distant_metal(hu: np.ndarray, tissue: np.ndarray, grid: Grid, metal,
                       scan: ScanDraw) -> None:
    """A metal bead, contrast layered in the bladder, or an arm with contrast in a vein (HU and
    :data:`TISSUES` codes)."""
    z = grid.axis_mm(0)[:, None, None]
    y = grid.axis_mm(1)[None, :, None]
    x = grid.axis_mm(2)[None, None, :]
    cx, cy, cz = metal.center_mm
    if metal.kind == "bead":
        inside = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= metal.size_mm ** 2
    elif metal.kind == "bladder_contrast":  # the contrast sinks: the bladder's posterior part
        inside = _in_bladder(x, y, z) & (y > _BLADDER_CENTER_MM[1] + _BLADDER_SEMI_AXES_MM[1]
                                         - metal.size_mm)
    else:
        arm = np.broadcast_to(((x - cx) / 45.0) ** 2 + ((y - cy) / 40.0) ** 2 <= 1.0, hu.shape)
        hu[arm] = scan.muscle_hu
        tissue[arm] = MUSCLE
        inside = np.broadcast_to((x - cx - 15.0) ** 2 + (y - cy) ** 2 <= metal.size_mm ** 2,
                                 hu.shape)
    inside = np.broadcast_to(inside, hu.shape)
    hu[inside] = metal.hu
    tissue[inside] = METAL if metal.kind == "bead" else CONTRAST


def _stored(hu: np.ndarray, part: np.ndarray, grid: Grid, offset_mm: np.ndarray,
            storage: str) -> tuple[Volume, np.ndarray]:
    """The scan as a reader gives it back from a file stored in ``storage`` order ("LPS": the
    array as rendered; "RAS": rows and columns reversed), and the part map in the same layout."""
    index_to_lps = np.zeros((4, 4))
    index_to_lps[3, 3] = 1.0
    index_to_lps[0, 2], index_to_lps[1, 1], index_to_lps[2, 0] = grid.spacing_mm[::-1]
    index_to_lps[:3, 3] = grid.origin_mm + offset_mm
    if storage == "RAS":
        flip = np.diag([1.0, -1.0, -1.0, 1.0])
        flip[1, 3], flip[2, 3] = hu.shape[1] - 1, hu.shape[2] - 1
        volume = canonicalize(hu[:, ::-1, ::-1], index_to_lps @ flip)
    else:
        volume = canonicalize(hu, index_to_lps)
    return volume, part  # canonicalizing undoes the reversal, so the part map's layout holds


def _hip_truth(hip: HipDraw, frame: HipFrame, offset_mm: np.ndarray) -> HipTruth:
    """The head's equivalent sphere and span from points on its drawn surface."""
    n = 4000  # Fibonacci directions
    k = np.arange(n) + 0.5
    polar = np.arccos(1 - 2 * k / n)
    azimuth = np.pi * (1 + 5 ** 0.5) * k
    directions = np.column_stack([np.sin(polar) * np.cos(azimuth),
                                  np.sin(polar) * np.sin(azimuth), np.cos(polar)])
    low = np.zeros(n)
    high = np.full(n, 2.0 * hip.head_radius_mm)
    for _ in range(40):  # bisection along each ray to the head's surface
        mid = 0.5 * (low + high)
        inside = head_sdf(directions * mid[:, None], hip) <= 0
        low, high = np.where(inside, mid, low), np.where(inside, high, mid)
    points = directions * low[:, None]
    neck = neck_base(hip) / np.linalg.norm(neck_base(hip))  # from the head's center down the neck
    articular = directions @ neck < np.cos(np.radians(_ARTICULAR_FROM_NECK_DEG))
    # algebraic sphere fit: |p|^2 = 2 c.p + (r^2 - |c|^2)
    a = np.column_stack([2 * points[articular], np.ones(articular.sum())])
    solution = np.linalg.lstsq(a, (points[articular] ** 2).sum(1), rcond=None)[0]
    center_local = solution[:3]
    radius = float(np.sqrt(solution[3] + center_local @ center_local))
    world = frame.center_mm + center_local @ frame.axes + offset_mm
    surface_s = (frame.center_mm + points @ frame.axes + offset_mm)[:, 2]
    return HipTruth((float(-world[0]), float(-world[1]), float(world[2])), radius,
                    tuple(float(s) for s in hip.head_radius_mm * np.asarray(hip.head_axis_factors)),
                    (float(surface_s.min()), float(surface_s.max())))
