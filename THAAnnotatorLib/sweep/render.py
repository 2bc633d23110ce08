"""The sweep's anatomy as shapes, and those shapes as a CT scan with its truth.

Bones are signed distance functions (:mod:`.shapes`) in each hip's local frame (lateral,
anterior, superior), turned with the patient's tilt, obliquity and rotation. Each slice is
the mean of sub-slices at most ``_SUB_SLICE_MM`` apart, so a thick slice holds the partial
volume of everything in its slab; in-plane, the edge voxels are filled by their share inside
(a ramp one pixel wide). The truth is read at each voxel's center: femur where it lies inside
a femur, pelvis where inside the pelvis and not a femur.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .draw import SIDES, HipDraw, ScanDraw, cup_opening_normal
from .shapes import capsule, cone_cap, ellipsoid, smooth_union, to_local, unit

PELVIS, RIGHT_FEMUR, LEFT_FEMUR = 1, 2, 3
FEMUR_PART = {"right": RIGHT_FEMUR, "left": LEFT_FEMUR}
HU_AIR, HU_FAT, HU_METAL = -1000.0, -100.0, 3500.0
HU_MIN, HU_MAX = -1024.0, 3071.0
# Thick slices are averaged over sub-slices at most this far apart (mm).
_SUB_SLICE_MM = 0.6
# The field of view around the hips' centers: below (femoral shaft), above (ilium), mm.
_FOV_BELOW_MM, _FOV_ABOVE_MM = 75.0, 50.0
# The metal ball and cup of an implant (mm).
_IMPLANT_BALL_MM, _IMPLANT_CUP_MM = 14.0, 3.5
# The acetabulum's columns are this much (mm) thicker than its floor at the fossa.
_COLUMN_EXTRA_MM = 9.0
_SIDE_SIGN = {"right": -1.0, "left": 1.0}  # the LPS x (patient left) sign of each hip's lateral


def _rotation(tilt_deg: float, obliquity_deg: float, rotation_deg: float) -> np.ndarray:
    """Rotation of the body about LPS x (tilt), y (obliquity) and z (rotation)."""
    a, b, c = np.radians([tilt_deg, obliquity_deg, rotation_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class HipFrame:
    """A hip's local frame in body coordinates (LPS axes, mm): ``center_mm`` and the rows of
    ``axes`` (lateral, anterior, superior unit vectors)."""

    center_mm: np.ndarray
    axes: np.ndarray

    def local(self, p: np.ndarray) -> np.ndarray:
        return to_local(p, self.center_mm, self.axes)


def hip_frames(scan: ScanDraw) -> dict[str, HipFrame]:
    """Each hip's frame: centers ``hip_half_width_mm`` either side of the body origin."""
    rot = _rotation(*scan.body_rotation_deg)
    frames = {}
    for side in SIDES:
        s = _SIDE_SIGN[side]
        center = rot @ np.array([s * scan.hip_half_width_mm, 0.0, 0.0])
        axes = (rot @ np.diag([s, -1.0, 1.0])).T  # rows: lateral, anterior (-P), superior (+S)
        frames[side] = HipFrame(center, axes)
    return frames


# ---------------------------------------------------------------------------------------------
# bones as signed distance functions of local coordinates q (..., 3) = lateral, anterior, superior
# ---------------------------------------------------------------------------------------------
def head_sdf(q: np.ndarray, hip: HipDraw) -> np.ndarray:
    """The femoral head: an ellipsoid, its top cut flat at ``head_top_factor``."""
    semi = hip.head_radius_mm * np.asarray(hip.head_axis_factors)
    return np.maximum(ellipsoid(q, semi), q[..., 2] - hip.head_top_factor * semi[2])


def neck_base(hip: HipDraw) -> np.ndarray:
    """Where the neck's axis meets the shaft's, local mm."""
    slope = np.radians(180.0 - hip.neck_shaft_deg)  # the neck's angle from the vertical
    horizontal = hip.femoral_offset_mm / np.sin(slope)
    av = np.radians(hip.femoral_anteversion_deg)
    # the head lies medial, anterior (anteversion) and above the base
    return -horizontal * np.array([-np.sin(slope) * np.cos(av), np.sin(slope) * np.sin(av),
                                   np.cos(slope)])


def femur_sdf(q: np.ndarray, hip: HipDraw) -> np.ndarray:
    """Head, neck, shaft, greater and lesser trochanter; the head and neck are left out where
    an implant replaces them."""
    r = hip.head_radius_mm
    base = neck_base(hip)
    shaft_down = unit([-np.sin(np.radians(7.0)), 0.0, -np.cos(np.radians(7.0))])  # toward the knee
    shaft_r = 0.6 * r
    d = capsule(q, base + np.array([0.0, 0.0, 10.0]), base + 250.0 * shaft_down, shaft_r + 2.0,
                shaft_r - 1.0)
    troch_semi = np.array([0.42, 0.55, 0.75]) * r
    troch_center = base + np.array([0.55 * shaft_r + 0.5 * troch_semi[0], -0.45 * r, 0.0])
    troch_center[2] = hip.trochanter_top_mm - troch_semi[2]
    d = smooth_union(d, ellipsoid(q - troch_center, troch_semi), 6.0)
    lesser = base + 38.0 * shaft_down + np.array([-0.2 * r, -0.2 * r, 0.0])
    d = smooth_union(d, capsule(q, lesser, lesser + np.array([-0.7 * r, -0.4 * r, -4.0]), 6.0, 4.0), 4.0)
    if hip.implant:
        return d
    neck_r = hip.neck_radius_factor * r
    d = smooth_union(d, capsule(q, np.zeros(3), base, neck_r, 1.3 * neck_r), 5.0)
    return smooth_union(d, head_sdf(q, hip), 3.0)


def joint_inner_sdf(q: np.ndarray, hip: HipDraw) -> np.ndarray:
    """The joint's outer boundary: the head grown by the joint space, which closes to 0 at the
    contact directions. Pelvic bone never lies inside it (except the bridges)."""
    gap = np.full(q.shape[:-1], hip.joint_space_mm, dtype=q.dtype)
    if hip.contact_directions:
        direction = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-6)
        width = np.radians(hip.contact_width_deg)
        closed = np.zeros_like(gap)
        for c in hip.contact_directions:
            angle = np.arccos(np.clip(direction @ np.asarray(c, dtype=q.dtype), -1.0, 1.0))
            closed = np.maximum(closed, np.exp(-(angle / width) ** 2))
        gap = gap * (1.0 - np.clip(1.5 * closed, 0.0, 1.0))
    return head_sdf(q, hip) - gap


def acetabulum_sdf(q: np.ndarray, hip: HipDraw) -> np.ndarray:
    """The acetabular shell, its columns (ilium above, pubis in front, ischium behind) and
    the osteophyte bridges, all as one hip's half of the pelvis (local frame)."""
    r = hip.head_radius_mm
    inner = joint_inner_sdf(q, hip)
    pole = -cup_opening_normal(hip)
    coverage = np.radians(hip.cup_coverage_deg)
    # thin at the fossa around the pole, thick columns around it, tapering to the rim's edge
    angle = np.arccos(np.clip((q @ pole.astype(q.dtype)) / np.maximum(
        np.linalg.norm(q, axis=-1), 1e-6), -1.0, 1.0))
    thickness = (hip.acetabular_wall_mm + _COLUMN_EXTRA_MM * np.clip(angle / np.radians(40.0), 0, 1)) \
        * np.clip((coverage - angle) / np.radians(15.0), 0.35, 1.0)
    shell = np.maximum(np.maximum(-inner, inner - thickness), cone_cap(q, pole, coverage))
    medial = np.array([-1.0, 0.0, 0.0])
    ilium = ellipsoid(q - np.array([-0.35 * r, -0.15 * r, r + 30.0], q.dtype),
                      np.array([0.55 * r, 1.0 * r, 45.0]))
    pubis = capsule(q, np.array([-0.35 * r, 0.65 * r, -0.35 * r]),
                    np.array([-95.0, 1.3 * r + 10.0, -0.9 * r]), 0.42 * r, 0.32 * r)
    ischium = capsule(q, np.array([-0.35 * r, -0.65 * r, -0.3 * r]),
                      np.array([-0.5 * r, -1.1 * r, -r - 32.0]), 0.5 * r, 0.45 * r)
    floor = capsule(q, 0.55 * r * medial, (0.55 * r + 12.0) * medial, 0.55 * r, 0.5 * r)
    d = shell
    for part in (ilium, pubis, ischium, floor):
        d = smooth_union(d, part, 6.0)
    # the joint space stays open outside the contacts, around the neck too
    d = np.maximum(d, -np.minimum(inner, femur_sdf(q, hip) - hip.joint_space_mm))
    for b in hip.bridge_directions:
        b = np.asarray(b)
        d = np.minimum(d, capsule(q, (r + hip.joint_space_mm + 0.6 * hip.acetabular_wall_mm) * b,
                                  (r - 1.5) * b, hip.bridge_radius_mm, hip.bridge_radius_mm))
    return d


def implant_sdf(q: np.ndarray, hip: HipDraw) -> np.ndarray:
    """A total hip implant: metal ball, neck and stem down the femoral canal, and a metal cup
    lining the acetabulum."""
    base = neck_base(hip)
    shaft_down = unit([-np.sin(np.radians(7.0)), 0.0, -np.cos(np.radians(7.0))])
    d = np.sqrt((q * q).sum(-1)) - _IMPLANT_BALL_MM
    d = np.minimum(d, capsule(q, np.zeros(3), base, 6.0, 8.0))
    d = np.minimum(d, capsule(q, base, base + 120.0 * shaft_down, 8.0, 5.0))
    inner = joint_inner_sdf(q, hip)
    cup = np.maximum(np.maximum(inner + _IMPLANT_CUP_MM, -inner),
                     cone_cap(q, -cup_opening_normal(hip), np.radians(85.0)))
    return np.minimum(d, cup)


# ---------------------------------------------------------------------------------------------
# rasterizing
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """The scan's voxel grid in body coordinates: canonical (z, y, x) = (S, P, L) axes."""

    shape: tuple[int, int, int]
    spacing_mm: np.ndarray  # (z, y, x)
    origin_mm: np.ndarray  # body coordinates (x, y, z) of voxel (0, 0, 0)

    def axis_mm(self, axis: int) -> np.ndarray:
        """Body coordinate along canonical ``axis`` (0: z, 1: y, 2: x) of each voxel center."""
        return self.origin_mm[2 - axis] + self.spacing_mm[axis] * np.arange(self.shape[axis])

    def index_box(self, lo_mm: np.ndarray, hi_mm: np.ndarray) -> tuple[slice, slice, slice]:
        """Voxel index ranges (z, y, x) covering the body-coordinate box [lo, hi] (x, y, z)."""
        out = []
        for axis in range(3):
            a = (lo_mm[2 - axis] - self.origin_mm[2 - axis]) / self.spacing_mm[axis]
            b = (hi_mm[2 - axis] - self.origin_mm[2 - axis]) / self.spacing_mm[axis]
            out.append(slice(int(np.clip(np.floor(a), 0, self.shape[axis])),
                             int(np.clip(np.ceil(b) + 1, 0, self.shape[axis]))))
        return tuple(out)


def make_grid(scan: ScanDraw, frames: dict[str, HipFrame]) -> Grid:
    spacing = np.asarray(scan.spacing_mm, dtype=float)
    centers_z = [f.center_mm[2] for f in frames.values()]
    a, b = scan.body_semi_axes_mm
    lo = np.array([-a - 10.0, -b - 10.0, min(centers_z) - _FOV_BELOW_MM])
    hi = np.array([a + 10.0, b + 10.0, max(centers_z) + _FOV_ABOVE_MM])
    if any(m.kind == "arm_vessel" for m in scan.distant_metal):
        lo[0], hi[0] = lo[0] - 90.0, hi[0] + 90.0
    shape = tuple(int(np.ceil((hi[2 - ax] - lo[2 - ax]) / spacing[ax])) for ax in range(3))
    return Grid(shape, spacing, lo)


@dataclass
class Coverage:
    """A shape on the grid: ``outer`` and ``inner`` the slab-averaged shares of each voxel
    inside its surface and inside its cortex's inner surface; ``truth`` whether the voxel's
    center is inside, ``inner_truth`` whether it is inside the cortex's inner surface; all over
    the index box ``box``."""

    box: tuple[slice, slice, slice]
    outer: np.ndarray
    inner: np.ndarray
    truth: np.ndarray
    inner_truth: np.ndarray


def rasterize(grid: Grid, sdf: Callable[[np.ndarray], np.ndarray], lo_mm: np.ndarray,
              hi_mm: np.ndarray, cortex_mm: float | Callable[[np.ndarray], np.ndarray]) -> Coverage:
    """A shape's coverage of the grid's voxels within the body-coordinate box [lo, hi];
    ``cortex_mm``: the cortex's thickness, or a function giving it at points.

    The shape is first read at the voxels' centers; only voxels whose slab may hold a surface
    (outer or cortex) are read again at every sub-slice, which is what makes thin slices of a
    large box affordable.
    """
    box = grid.index_box(lo_mm - 3.0, hi_mm + 3.0)
    dz = grid.spacing_mm[0]
    n_sub = max(1, int(np.ceil(dz / _SUB_SLICE_MM)))
    n_sub += 1 - n_sub % 2  # odd: the middle sub-slice is the slice's center, where truth is read
    sub = ((np.arange(n_sub) - (n_sub - 1) / 2) * dz / n_sub).astype(np.float32)
    pixel = float(np.mean(grid.spacing_mm[1:]))
    thickness = (lambda p: cortex_mm(p)) if callable(cortex_mm) else (lambda p: cortex_mm)
    z, y, x = np.meshgrid(*(grid.axis_mm(axis)[box[axis]].astype(np.float32) for axis in range(3)),
                          indexing="ij")
    centers = np.stack([x, y, z], axis=-1)
    d = sdf(centers)
    d_inner = d + thickness(centers)
    truth = d <= 0
    outer = np.clip(0.5 - d / pixel, 0, 1).astype(np.float32)
    inner = np.clip(0.5 - d_inner / pixel, 0, 1).astype(np.float32)
    # the distance bounds may overstate by a quarter (ellipsoids, fillets): a generous reach
    reach = 1.3 * float(np.hypot(dz / 2, pixel)) + 0.5
    near = (np.abs(d) < reach) | (np.abs(d_inner) < reach)
    if n_sub > 1 and near.any():
        points = centers[near][:, None, :] + np.stack(
            [np.zeros_like(sub), np.zeros_like(sub), sub], axis=-1)[None]
        d_sub = sdf(points)
        outer[near] = np.clip(0.5 - d_sub / pixel, 0, 1).mean(axis=1)
        inner[near] = np.clip(0.5 - (d_sub + thickness(points)) / pixel, 0, 1).mean(axis=1)
    return Coverage(box, outer, inner, truth, d_inner <= 0)


def local_box_mm(frame: HipFrame, lo_local_mm, hi_local_mm) -> tuple[np.ndarray, np.ndarray]:
    """Body-coordinate box holding the hip-frame box [lo, hi] (lateral, anterior, superior)."""
    corners = np.array([[a, b, c] for a in (lo_local_mm[0], hi_local_mm[0])
                        for b in (lo_local_mm[1], hi_local_mm[1])
                        for c in (lo_local_mm[2], hi_local_mm[2])])
    world = frame.center_mm + corners @ frame.axes
    return world.min(axis=0), world.max(axis=0)
