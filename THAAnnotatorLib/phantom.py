"""Synthetic pelvis / hip CT phantom for tests and demos.

The phantom is built from signed distance fields (mm) of simple primitives (spheres, round cones,
ellipsoids, a hemispherical shell, per-slice plates) evaluated on the voxel grid, each only inside
its bounding box. Bones get a cortex and a cancellous interior with trabecular texture; partial
volume is modelled analytically from the distance field (ramp one voxel footprint wide along the
surface normal), followed by a small in-plane Gaussian PSF and correlated Gaussian noise.

Anatomy (patient coordinates, LPS, mm): body ellipse with a subcutaneous fat ring and muscle
compartments; per hip a femur (spherical head of the requested radius, neck at ~130 deg
neck-shaft angle and ~12 deg anteversion, greater and lesser trochanters, shaft with thick cortex
and marrow) and an acetabulum (hemispherical shell around the head, 2.5-3 mm joint space)
joined to the ilium, pubic rami, ischium and sacrum. The greater trochanter's top lies about 8 mm
below the head center, and its lateral position is solved so that the neck's outline meets it
about 20 mm below the head center: axial slices from about 8 to 19 mm below the head center show
the head (with the upper neck) and the trochanter as separate blobs, lower slices one piece joined
by the neck (the paper's "initial slice" is at that transition).

Nothing here is needed by the segmentation method: the pipeline must work on real CT, and the
phantom only supplies ground truth (:attr:`Phantom.part_map`, :attr:`Phantom.heads`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .volume import Volume

PELVIS, RIGHT_FEMUR, LEFT_FEMUR = 1, 2, 3
PART_NAMES = {PELVIS: "pelvis", RIGHT_FEMUR: "right femur", LEFT_FEMUR: "left femur"}

# sign of the LPS x (patient Left) axis pointing laterally on each side
_SIDE_SIGN = {"right": -1.0, "left": 1.0}
_FEMUR_LABEL = {"right": RIGHT_FEMUR, "left": LEFT_FEMUR}

HU_AIR = -1000.0
HU_FAT = -100.0
HU_MUSCLE = 50.0
HU_SOFT = 40.0
HU_FLUID = 8.0
HU_POLYETHYLENE = -80.0
HU_METAL = 3500.0  # before clipping to the int16 CT range
HU_MIN, HU_MAX = -1024.0, 3071.0

# world LPS position (mm) of the body-frame origin: the body center in-plane, and the level 45 %
# up the z field of view. Deliberately not zero so that code cannot assume the midline is x = 0.
_WORLD_OFFSET_LPS = np.array([4.0, -18.0, -420.0])

_BIG = np.float32(1.0e4)
_F = np.float32


@dataclass
class HeadTruth:
    """Ground truth of one femoral head: sphere center in RAS mm and radius in mm."""

    center_ras_mm: tuple[float, float, float]
    radius_mm: float


@dataclass
class Phantom:
    """A generated CT scan with its ground truth.

    Attributes
    ----------
    volume : canonical :class:`Volume` (z, y, x) = (S, P, L), float32 HU in [-1024, 3071].
    part_map : uint8 array of the volume's shape: 0 none, 1 pelvis (and, in a ``hips=False``
        scan, the vertebrae: every bone that is not a femur), 2 right femur, 3 left femur. A voxel
        is marked when its center lies inside the bone's outer (periosteal) surface, so cortex,
        cancellous bone and the marrow canal all count: what a perfect, hole-filled bone
        segmentation gives. Metal implants are 0; on an implanted side the remaining femur bone
        (neck stub, trochanters, shaft around the stem) keeps its femur label.
    heads : ground truth per side ("right", "left"); a side with a metal implant, a head whose
        center is outside the field of view, or a scan without hips has no entry.
    metal_side : "right", "left" or None.
    anatomy : the drawn anatomical parameters (world LPS mm), for debugging and demos.
    """

    volume: Volume
    part_map: np.ndarray
    heads: dict[str, HeadTruth]
    metal_side: str | None
    anatomy: dict = field(default_factory=dict, repr=False)


# ---------------------------------------------------------------------------------------------
# grid and primitives (body frame: LPS axes, mm, origin at the body center / 45 % FOV level)
# ---------------------------------------------------------------------------------------------
class _Grid:
    """Voxel-center coordinates (body frame, mm) along canonical z, y, x."""

    def __init__(self, shape, spacing, origin):
        self.shape = tuple(int(n) for n in shape)
        self.spacing = np.asarray(spacing, dtype=float)  # (sz, sy, sx)
        self.origin = np.asarray(origin, dtype=float)  # body-frame (z, y, x) of index 0
        self.axes = [
            (self.origin[a] + self.spacing[a] * np.arange(self.shape[a])).astype(_F) for a in range(3)
        ]

    def slices(self, lo_xyz, hi_xyz):
        """Index slices (z, y, x) of the voxels whose centers lie in the box, or None if empty."""
        out = []
        for a, w in zip(range(3), (2, 1, 0)):  # canonical axis a follows world axis w
            lo = (lo_xyz[w] - self.origin[a]) / self.spacing[a]
            hi = (hi_xyz[w] - self.origin[a]) / self.spacing[a]
            i0 = max(0, int(np.ceil(lo)))
            i1 = min(self.shape[a], int(np.floor(hi)) + 1)
            if i1 <= i0:
                return None
            out.append(slice(i0, i1))
        return tuple(out)

    def coords(self, sl):
        """Broadcastable body-frame coordinate arrays X (1,1,nx), Y (1,ny,1), Z (nz,1,1)."""
        z = self.axes[0][sl[0]][:, None, None]
        y = self.axes[1][sl[1]][None, :, None]
        x = self.axes[2][sl[2]][None, None, :]
        return x, y, z


class _Sphere:
    def __init__(self, c, r):
        self.c, self.r = np.asarray(c, float), float(r)

    def bounds(self):
        return self.c - self.r, self.c + self.r

    def sdf(self, X, Y, Z):
        c = self.c.astype(_F)
        return np.sqrt((X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2) - _F(self.r)


class _Cone:
    """Round cone: segment a-b with radius ra at a and rb at b (rounded ends)."""

    def __init__(self, a, b, ra, rb=None):
        self.a, self.b = np.asarray(a, float), np.asarray(b, float)
        self.ra = float(ra)
        self.rb = float(ra if rb is None else rb)

    def bounds(self):
        lo = np.minimum(self.a - self.ra, self.b - self.rb)
        hi = np.maximum(self.a + self.ra, self.b + self.rb)
        return lo, hi

    def sdf(self, X, Y, Z):
        ab = (self.b - self.a)
        l2 = float(ab @ ab)
        a, ab = self.a.astype(_F), ab.astype(_F)
        px, py, pz = X - a[0], Y - a[1], Z - a[2]
        t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) * _F(1.0 / l2), 0, 1)
        d = np.sqrt((px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2 + (pz - t * ab[2]) ** 2)
        return d - (_F(self.ra) + t * _F(self.rb - self.ra))


class _Ellipsoid:
    """Axis-aligned ellipsoid (approximate distance, exact surface)."""

    def __init__(self, c, semi):
        self.c, self.s = np.asarray(c, float), np.abs(np.asarray(semi, float))

    def bounds(self):
        return self.c - self.s, self.c + self.s

    def sdf(self, X, Y, Z):
        c, s = self.c.astype(_F), self.s.astype(_F)
        qx, qy, qz = (X - c[0]) / s[0], (Y - c[1]) / s[1], (Z - c[2]) / s[2]
        k0 = np.sqrt(qx * qx + qy * qy + qz * qz)
        k1 = np.sqrt((qx / s[0]) ** 2 + (qy / s[1]) ** 2 + (qz / s[2]) ** 2)
        return k0 * (k0 - 1) / np.maximum(k1, _F(1e-6))


class _Shell:
    """Spherical shell r0..r1 around c, restricted to directions within max_angle of axis."""

    def __init__(self, c, r0, r1, axis, max_angle_rad):
        self.c, self.r0, self.r1 = np.asarray(c, float), float(r0), float(r1)
        self.axis = np.asarray(axis, float) / np.linalg.norm(axis)
        self.max_angle = float(max_angle_rad)

    def bounds(self):
        return self.c - self.r1, self.c + self.r1

    def sdf(self, X, Y, Z):
        c, ax = self.c.astype(_F), self.axis.astype(_F)
        px, py, pz = X - c[0], Y - c[1], Z - c[2]
        r = np.sqrt(px * px + py * py + pz * pz)
        cos = (px * ax[0] + py * ax[1] + pz * ax[2]) / np.maximum(r, _F(1e-6))
        ang = np.arccos(np.clip(cos, -1, 1))
        mid, half = _F(0.5 * (self.r0 + self.r1)), _F(0.5 * (self.r1 - self.r0))
        return np.maximum(np.abs(r - mid) - half, (ang - _F(self.max_angle)) * r)


def _interp_z(z, knots, values):
    return np.interp(z.ravel(), knots, values).astype(_F).reshape(z.shape)


class _Plate:
    """Per-slice thick segment (2-D capsule) whose ends and half-thickness vary with z.

    ``knots_z`` ascending; ``p``, ``q`` the (x, y) segment ends and ``h`` the half-thickness at
    each knot; the plate exists for z in [z_lo, z_hi].
    """

    def __init__(self, knots_z, p, q, h, z_lo, z_hi):
        self.kz = np.asarray(knots_z, float)
        self.p, self.q = np.asarray(p, float), np.asarray(q, float)
        self.h = np.asarray(h, float)
        self.z_lo, self.z_hi = float(z_lo), float(z_hi)

    def bounds(self):
        pts = np.concatenate([self.p, self.q])
        hm = self.h.max()
        lo = np.r_[pts.min(0) - hm, self.z_lo]
        hi = np.r_[pts.max(0) + hm, self.z_hi]
        return lo, hi

    def sdf(self, X, Y, Z):
        px, py = _interp_z(Z, self.kz, self.p[:, 0]), _interp_z(Z, self.kz, self.p[:, 1])
        qx, qy = _interp_z(Z, self.kz, self.q[:, 0]), _interp_z(Z, self.kz, self.q[:, 1])
        h = _interp_z(Z, self.kz, self.h)
        abx, aby = qx - px, qy - py
        l2 = np.maximum(abx * abx + aby * aby, _F(1e-6))
        dx, dy = X - px, Y - py
        t = np.clip((dx * abx + dy * aby) / l2, 0, 1)
        d = np.sqrt((dx - t * abx) ** 2 + (dy - t * aby) ** 2) - h
        return np.maximum(d, np.maximum(_F(self.z_lo) - Z, Z - _F(self.z_hi)))


class _Prism:
    """Per-slice ellipse (center and semi-axes vary with z) for z in [z_lo, z_hi]."""

    def __init__(self, knots_z, center, semi, z_lo, z_hi, flat_posterior=None):
        self.kz = np.asarray(knots_z, float)
        self.center, self.semi = np.asarray(center, float), np.asarray(semi, float)
        self.z_lo, self.z_hi = float(z_lo), float(z_hi)
        self.flat = flat_posterior  # cut the ellipse at y = center_y + flat * semi_y

    def bounds(self):
        lo = np.r_[(self.center - self.semi).min(0), self.z_lo]
        hi = np.r_[(self.center + self.semi).max(0), self.z_hi]
        return lo, hi

    def sdf(self, X, Y, Z):
        if np.ptp(self.center, axis=0).max() == 0 and np.ptp(self.semi, axis=0).max() == 0:
            # z-invariant cross-section: evaluate one slice and broadcast
            (cx, cy), (a, b) = self.center[0].astype(_F), self.semi[0].astype(_F)
        else:
            cx, cy = _interp_z(Z, self.kz, self.center[:, 0]), _interp_z(Z, self.kz, self.center[:, 1])
            a, b = _interp_z(Z, self.kz, self.semi[:, 0]), _interp_z(Z, self.kz, self.semi[:, 1])
        qx, qy = (X - cx) / a, (Y - cy) / b
        k0 = np.sqrt(qx * qx + qy * qy)
        k1 = np.sqrt((qx / a) ** 2 + (qy / b) ** 2)
        d = k0 * (k0 - 1) / np.maximum(k1, _F(1e-6))
        if self.flat is not None:
            d = np.maximum(d, Y - (cy + _F(self.flat) * b))
        return np.maximum(d, np.maximum(_F(self.z_lo) - Z, Z - _F(self.z_hi)))


class _Hollow:
    """Thin surface layer (half-thickness th) of another primitive's boundary."""

    def __init__(self, prim, th):
        self.prim, self.th = prim, float(th)

    def bounds(self):
        lo, hi = self.prim.bounds()
        return lo - self.th, hi + self.th

    def sdf(self, X, Y, Z):
        return np.abs(self.prim.sdf(X, Y, Z)) - _F(self.th)


def _smin(a, b, k):
    """Polynomial smooth minimum (fillet of size ~k mm)."""
    h = np.clip((k - np.abs(a - b)) / k, 0, 1)
    return np.minimum(a, b) - h * h * _F(k / 4.0)


class _Solid:
    """Signed distance field of a union of primitives, stored only in its bounding box."""

    def __init__(self, grid: _Grid, items, pad: float):
        """items: list of (prim, op) with op 0 (union), k > 0 (smooth union, fillet k mm) or
        "cut" (subtract). The box covers the union primitives plus ``pad`` mm."""
        self.grid = grid
        unions = [p for p, op in items if op != "cut"]
        lo = np.min([p.bounds()[0] for p in unions], axis=0) - pad
        hi = np.max([p.bounds()[1] for p in unions], axis=0) + pad
        self.sl = grid.slices(lo, hi)
        if self.sl is None:
            self.d = None
            return
        self.d = np.full(tuple(s.stop - s.start for s in self.sl), _BIG, dtype=_F)
        for prim, op in items:
            k = 0.0 if op == "cut" else float(op)
            plo, phi = prim.bounds()
            sub = self._sub(plo - pad - k, phi + pad + k)
            if sub is None:
                continue
            X, Y, Z = grid.coords(self._abs(sub))
            dn = prim.sdf(X, Y, Z)
            cur = self.d[sub]
            if op == "cut":
                np.maximum(cur, -dn, out=cur)
            elif k > 0:
                self.d[sub] = _smin(cur, dn, _F(k))
            else:
                np.minimum(cur, dn, out=cur)

    @property
    def empty(self):
        return self.d is None

    def _sub(self, lo, hi):
        s = self.grid.slices(lo, hi)
        if s is None:
            return None
        out = []
        for a, b in zip(s, self.sl):
            i0, i1 = max(a.start, b.start), min(a.stop, b.stop)
            if i1 <= i0:
                return None
            out.append(slice(i0 - b.start, i1 - b.start))
        return tuple(out)

    def _abs(self, sub):
        return tuple(slice(s.start + b.start, s.stop + b.start) for s, b in zip(sub, self.sl))

    def coords(self):
        return self.grid.coords(self.sl)

    def overlap(self, other: "_Solid"):
        """(slices into self.d, slices into other.d) of the common box, or None."""
        if self.empty or other.empty:
            return None
        mine, theirs = [], []
        for a, b in zip(self.sl, other.sl):
            i0, i1 = max(a.start, b.start), min(a.stop, b.stop)
            if i1 <= i0:
                return None
            mine.append(slice(i0 - a.start, i1 - a.start))
            theirs.append(slice(i0 - b.start, i1 - b.start))
        return tuple(mine), tuple(theirs)


# ---------------------------------------------------------------------------------------------
# painting
# ---------------------------------------------------------------------------------------------
def _occupancy(d, grid: _Grid, offset=0.0):
    """Partial-volume fraction of each voxel inside the surface d = -offset.

    The ramp is one voxel footprint wide along the surface normal: the in-plane voxel size for
    vertical surfaces, the slice spacing for horizontal ones (normal z component from the field).
    """
    sz = float(grid.spacing[0])
    sxy = float(np.sqrt(grid.spacing[1] * grid.spacing[2]))
    if d.shape[0] > 1:
        nz = np.minimum(np.abs(np.gradient(d, axis=0)) * _F(1.0 / sz), _F(1.0))
        w = _F(sxy) * np.sqrt(_F(1.0) - nz * nz) + _F(sz) * nz
    else:
        w = _F(sxy)
    dd = d + _F(offset) if offset else d
    return np.clip(_F(0.5) - dd / w, 0, 1), w


def _paint(hu, solid: _Solid, value):
    """Fill the solid with ``value`` (scalar or array of the solid's box) with partial volume."""
    if solid.empty:
        return None
    occ, _ = _occupancy(solid.d, solid.grid)
    sub = hu[solid.sl]
    sub += occ * (value - sub)
    return occ


def _paint_bone(hu, solid: _Solid, cortex_hu, thickness, interior):
    """Cortex of ``thickness`` mm at ``cortex_hu`` around an ``interior`` (arrays broadcastable
    to the solid's box)."""
    if solid.empty:
        return
    grid = solid.grid
    d = solid.d
    occ_out, w = _occupancy(d, grid)
    occ_in = np.clip(_F(0.5) - (d + thickness) / w, 0, 1)
    sub = hu[solid.sl]
    sub += occ_out * (cortex_hu - sub)
    sub += occ_in * (interior - sub)


def _texture(shape, spacing, rng, fine_mm=0.8, coarse_mm=2.2):
    """Trabecular texture in [-1, 1]: band-passed white noise (blobs ~2-4 mm), soft-clipped."""
    noise = rng.standard_normal(shape, dtype=_F)
    sp = np.asarray(spacing, float)
    fine = ndimage.gaussian_filter(noise, fine_mm / sp, truncate=3.0)
    coarse = ndimage.gaussian_filter(noise, coarse_mm / sp, truncate=3.0)
    fine -= coarse
    std = float(fine[::2, ::3, ::3].std()) or 1.0
    return np.tanh(fine * _F(1.3 / std))


# ---------------------------------------------------------------------------------------------
# anatomy
# ---------------------------------------------------------------------------------------------
def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


class _Frame:
    """Local frame of one side: u lateral, v anterior, w superior (mm) around an origin."""

    def __init__(self, origin, side):
        self.o = np.asarray(origin, float)
        self.sgn = _SIDE_SIGN[side]

    def vec(self, u, v, w):
        return np.array([self.sgn * u, -v, w], float)

    def pt(self, u, v, w):
        return self.o + self.vec(u, v, w)


def _draw_anatomy(rng, head_radius_mm):
    """All random anatomical choices, drawn in a fixed order (same seed, same anatomy)."""

    def jit(p=0.05):
        return 1.0 + rng.uniform(-p, p)

    an = {
        "pelvis_origin": np.array([rng.uniform(-4, 4), -22.0 + rng.uniform(-5, 5), rng.uniform(-5, 5)]),
        "hip_half_width": 90.0 * jit(),
        "body_scale": jit(),
        "pelvis_scale": jit(),
        "sides": {},
    }
    for side, radius in zip(("right", "left"), head_radius_mm):
        an["sides"][side] = {
            "head_radius": float(radius),
            "hip_jitter": rng.uniform(-1.5, 1.5, 3),
            "femur_scale": jit(),
            "neck_elevation_deg": 40.0 + rng.uniform(-3, 3),  # 180 - neck-shaft angle (~130 deg)
            "neck_anteversion_deg": 12.0 + rng.uniform(-3, 3),
            "troch_jitter": rng.uniform(-1.0, 1.0, 3),
            "cup_inclination_deg": 45.0 + rng.uniform(-3, 3),
            "cup_anteversion_deg": 15.0 + rng.uniform(-3, 3),
            "cup_coverage_deg": 90.0 + rng.uniform(-3, 3),
            "cup_thickness": 9.0 * jit(0.1),
            "joint_gap": rng.uniform(2.5, 3.0),
            "shaft_adduction_deg": 7.0 + rng.uniform(-2, 2),
        }
    an["gas"] = rng.uniform(0, 1, (7, 4))
    an["vertebra_jitter"] = rng.uniform(-3, 3, 8)
    return an


# level (mm, relative to the head center) where the neck's outline touches the greater trochanter;
# with the fillet the femur slice becomes one piece about 1.5 mm higher (~ -20 mm)
_NECK_TROCH_JOIN_MM = -21.0


def _trochanter_offset(loc, neck, semi, v_c, w_c, w_join):
    """Lateral offset (hip-local u) of the greater trochanter's center such that its outline
    touches the neck's outline in the axial plane w = w_join (mm above the head center)."""
    su, sv, sw = semi
    scale2 = 1.0 - ((w_join - w_c) / sw) ** 2
    if scale2 <= 0:
        raise ValueError("The greater trochanter does not reach the neck-trochanter junction level.")
    u = np.arange(0.0, 120.0, 0.25, dtype=_F)
    v = np.arange(v_c - sv, v_c + sv, 0.25, dtype=_F)
    P = loc.pt(0, 0, w_join)
    X = (P[0] + loc.sgn * u)[None, None, :]
    Y = (P[1] - v)[None, :, None]
    Z = np.full((1, 1, 1), P[2], dtype=_F)
    inside = neck.sdf(X, Y, Z)[0] <= 0
    vv, uu = np.nonzero(inside)
    half = su * np.sqrt(np.clip(scale2 - ((v[vv] - v_c) / sv) ** 2, 0, None))
    ok = half > 0
    return float(np.max(u[uu][ok] + half[ok]))


def _femur_items(side, an, with_head=True):
    """Primitives of one femur in the body frame; returns (items, info)."""
    s = an["sides"][side]
    C = s["center"]
    R = s["head_radius"]
    f = s["femur_scale"]
    loc = _Frame(C, side)
    e = np.radians(s["neck_elevation_deg"])
    av = np.radians(s["neck_anteversion_deg"])
    # neck axis from the head center outwards: lateral, posterior, inferior
    n = loc.vec(np.cos(e) * np.cos(av), -np.cos(e) * np.sin(av), -np.sin(e))
    neck_len = 50.0 * f
    neck_end = C + neck_len * n
    neck = _Cone(C, neck_end, 0.6 * R, 0.66 * R)
    tj = s["troch_jitter"]
    troch_semi = np.array([11.0, 16.0, 20.0]) * f
    troch_v, troch_w = -6.0 * f + tj[1], -28.0 * f + tj[2]
    troch_u = _trochanter_offset(loc, neck, troch_semi, troch_v, troch_w, _NECK_TROCH_JOIN_MM)
    troch_c = loc.pt(troch_u, troch_v, troch_w)
    ad = np.radians(s["shaft_adduction_deg"])
    shaft_dir = loc.vec(-np.sin(ad), 0.0, -np.cos(ad))  # going down, slightly medial
    shaft_top = loc.pt(46.0 * f, -6.0 * f, -45.0 * f)
    shaft_mid = shaft_top + 45.0 * f * shaft_dir
    shaft_end = shaft_top + 400.0 * shaft_dir
    items = []
    if with_head:
        items.append((_Sphere(C, R), 0))
        items.append((neck, 6.0))  # smooth head-neck junction
    else:  # resected: only the neck base (calcar) remains
        items.append((_Cone(C + 0.6 * neck_len * n, neck_end, 0.64 * R, 0.66 * R), 0))
    items += [
        (_Ellipsoid(troch_c, troch_semi), 3.0),
        (_Cone(shaft_top, shaft_mid, 20.0 * f, 14.0 * f), 4.0),
        (_Cone(shaft_mid, shaft_end, 14.0 * f), 3.0),
        (_Ellipsoid(loc.pt(29.0 * f, -13.0 * f, -62.0 * f), np.array([9.0, 9.0, 13.0]) * f), 3.0),
    ]
    info = {
        "neck_axis": n, "neck_end": neck_end, "shaft_top": shaft_top, "shaft_dir": shaft_dir,
        "troch_top_z_rel": float(troch_c[2] + troch_semi[2] - C[2]),
    }
    return items, info


def _cup_axis(s, loc):
    """Inward acetabular axis (from the head center towards the cup's pole)."""
    inc = np.radians(s["cup_inclination_deg"])
    ant = np.radians(s["cup_anteversion_deg"])
    opening = loc.vec(np.sin(inc) * np.cos(ant), np.sin(ant), -np.cos(inc) * np.cos(ant))
    return -opening


def _pelvis_items(an):
    """Primitives of the pelvis (both hip bones and the sacrum) in the body frame."""
    O = an["pelvis_origin"]
    ps = an["pelvis_scale"]
    items, cuts = [], []
    for side, s in an["sides"].items():
        C, R = s["center"], s["head_radius"]
        loc = _Frame(C, side)  # hip-local
        pf = _Frame(O, side)  # pelvis frame, u measured from the midline
        ri = R + s["joint_gap"]
        ro = ri + s["cup_thickness"]
        rm = 0.5 * (ri + ro)
        axis = _cup_axis(s, loc)
        items.append((_Shell(C, ri, ro, axis, np.radians(s["cup_coverage_deg"])), 0))
        # ilium: a plate rising from the acetabular roof, flaring laterally, its posterior end
        # joining the sacrum (sacroiliac) and its anterior end at the iliac spines
        hw = an["hip_half_width"]
        kz = np.array([12.0, 30.0, 60.0, 90.0, 130.0]) * ps + C[2] - O[2]
        post = [loc.pt(-22, -46, 0), loc.pt(-32, -55, 0), pf.pt(43, -66, 0), pf.pt(44, -62, 0),
                pf.pt(46, -58, 0)]
        ant = [loc.pt(6, 16, 0), loc.pt(14, 22, 0), loc.pt(30, 30, 0), loc.pt(42, 36, 0),
               loc.pt(48, 38, 0)]
        # the wing bulges posterolaterally (the iliac fossa is concave anteromedially)
        bulge = [(0, 0), (6, -4), (16, -10), (20, -12), (22, -12)]
        mids = [0.5 * (p + q) + loc.vec(bu, bv, 0) for p, q, (bu, bv) in zip(post, ant, bulge)]
        h = np.array([12.0, 9.0, 5.5, 5.0, 6.0]) * ps
        z_lo, z_hi = O[2] + kz[0] - 8.0, O[2] + kz[-1]
        kzw = O[2] + kz
        items.append((_Plate(kzw, np.array(post)[:, :2], np.array(mids)[:, :2], h, z_lo, z_hi), 3.0))
        items.append((_Plate(kzw, np.array(mids)[:, :2], np.array(ant)[:, :2], h, z_lo, z_hi), 3.0))
        # pubis: superior ramus from the anterior wall to the pubic body at the symphysis
        pubic_body = pf.pt(12.5, 64, -30)
        q1 = C + rm * _unit(loc.vec(-0.7, 0.55, -0.3))
        items.append((_Cone(q1, pf.pt(14, 60, -24), 10.0 * ps, 8.0 * ps), 4.0))
        items.append((_Ellipsoid(pubic_body, np.array([9.5, 9.0, 20.0]) * ps), 3.0))
        # ischium: posterior column down to the tuberosity, inferior ramus back to the pubis
        tub = pf.pt(hw - 35.0, -16, -56)
        q3 = C + rm * _unit(loc.vec(-0.45, -0.75, -0.45))
        items.append((_Cone(q3, tub, 11.0 * ps, 9.0 * ps), 4.0))
        items.append((_Ellipsoid(tub, np.array([11.0, 14.0, 15.0]) * ps), 3.0))
        items.append((_Cone(pf.pt(16, 56, -44), tub + pf.vec(-4, 6, 0), 6.0 * ps, 6.5 * ps), 3.0))
        cuts.append((_Sphere(C, ri), "cut"))  # joint space
    # sacrum: tilted block at the posterior midline, widening upwards, with the sacral canal
    kz = O[2] + np.array([8.0, 40.0, 80.0, 130.0]) * ps
    center = np.array([[O[0], O[1] + 84], [O[0], O[1] + 74], [O[0], O[1] + 64], [O[0], O[1] + 56]])
    semi = np.array([[26.0, 16.0], [48.0, 20.0], [56.0, 22.0], [56.0, 24.0]]) * ps
    items.append((_Prism(kz, center, semi, kz[0], kz[-1]), 0))
    canal_c = center + np.array([0.0, 13.0])
    cuts.append((_Prism(kz, canal_c, np.array([[9.0, 4.0], [12.0, 5.0], [13.0, 6.0], [13.0, 6.0]]),
                        kz[0] + 6, kz[-1] + 50), "cut"))
    return items + cuts


def _spine_items(an, z_range):
    """Lumbar vertebrae (body, arch, spinous and transverse processes) and their discs."""
    items, discs = [], []
    yb = 12.0  # vertebral body center, posterior of the body center
    pitch = 37.0
    z0, z1 = z_range
    for k, zc in enumerate(np.arange(z0 - pitch, z1 + pitch, pitch)):
        zc = zc + an["vertebra_jitter"][k % 8]
        top, bot = zc + 13.5, zc - 13.5
        items.append((_Prism([bot, top], [[0, yb], [0, yb]], [[25, 18], [25, 18]], bot, top), 0))
        items.append((_Prism([bot, top], [[0, yb + 30]] * 2, [[19, 15]] * 2, bot + 3, top - 3), 2.0))
        items.append((_Cone([0, yb + 40, zc - 4], [0, yb + 64, zc - 10], 5.0, 4.0), 2.0))
        for sg in (-1, 1):
            items.append((_Cone([sg * 12, yb + 28, zc + 2], [sg * 48, yb + 24, zc + 2], 5.5, 4.0), 2.0))
        discs.append(_Prism([top, top + pitch - 27], [[0, yb]] * 2, [[24, 17]] * 2, top, top + pitch - 27))
    cuts = [(_Prism([z0 - 100, z1 + 100], [[0, yb + 30]] * 2, [[10.5, 8.5]] * 2, z0 - 100, z1 + 100), "cut")]
    return items + cuts, discs


# ---------------------------------------------------------------------------------------------
# metal artifacts
# ---------------------------------------------------------------------------------------------
def _add_streaks(hu, grid: _Grid, metal: _Solid, rng):
    """Streaks radiating from the metal in each slice that contains it (alternating bright and
    dark bands, +-300 HU) and a dark beam-hardening halo next to the metal."""
    if metal.empty:
        return
    nlines = 16
    theta0 = rng.uniform(0, np.pi, nlines)
    amp0 = rng.uniform(150, 320, nlines) * rng.choice([-1.0, 1.0], nlines)
    width = np.radians(rng.uniform(0.8, 2.5, nlines))
    bins = np.linspace(0, np.pi, 1440, endpoint=False)
    X, Y, _ = grid.coords((slice(0, 1), slice(0, grid.shape[1]), slice(0, grid.shape[2])))
    X, Y = X[0], Y[0]
    inside = metal.d <= 0
    px_area = float(grid.spacing[1] * grid.spacing[2])
    for kz in range(inside.shape[0]):
        sl_mask = inside[kz]
        count = int(sl_mask.sum())
        if count == 0:
            continue
        yy, xx = np.nonzero(sl_mask)
        cy = float(grid.axes[1][metal.sl[1]][yy].mean())
        cx = float(grid.axes[2][metal.sl[2]][xx].mean())
        area = count * px_area
        r_eq = np.sqrt(area / np.pi)
        strength = float(np.clip(np.sqrt(area) / 25.0, 0.35, 1.0))
        th = theta0 + rng.normal(0, 0.015, nlines)
        diff = (bins[:, None] - th[None, :] + np.pi / 2) % np.pi - np.pi / 2
        amp = amp0 * rng.uniform(0.8, 1.2, nlines)
        table = (amp * np.exp(-0.5 * (diff / width) ** 2)).sum(1).astype(_F)
        dx, dy = X - _F(cx), Y - _F(cy)
        r = np.sqrt(dx * dx + dy * dy)
        ang = np.arctan2(dy, dx) % _F(np.pi)
        idx = np.minimum((ang * _F(len(bins) / np.pi)).astype(np.int32), len(bins) - 1)
        outside = np.clip((r - _F(r_eq)) / _F(3.0), 0, 1)
        decay = _F(strength) / (_F(1.0) + r / _F(90.0))
        halo = _F(-140.0 * strength) * np.exp(-np.maximum(r - _F(r_eq), 0) / _F(10.0))
        art = np.clip(table[idx] * decay + halo, -300, 300) * outside
        z_index = metal.sl[0].start + kz
        art *= hu[z_index] > -600  # inside the body
        hu[z_index] += art


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def generate_phantom(
    spacing_mm=(2.0, 0.8, 0.8),
    fov_mm=(160.0, 280.0, 400.0),
    seed=0,
    head_radius_mm=(24.0, 23.0),
    spongy=True,
    noise_hu=15.0,
    metal_side=None,
    hips=True,
    joint_gap_mm=None,
) -> Phantom:
    """Generate a synthetic hip CT with ground truth.

    Parameters
    ----------
    spacing_mm : voxel size (z, y, x) in mm.
    fov_mm : field of view (z, y, x) in mm; the array shape is ``round(fov / spacing)``.
    seed : random seed; the same arguments give the same phantom.
    head_radius_mm : femoral head radius (right, left) in mm.
    spongy : give cancellous bone a strong trabecular texture (+-~220 HU blobs of 2-4 mm);
        otherwise it is uniform.
    noise_hu : standard deviation of the (slightly correlated) Gaussian image noise, HU.
    metal_side : "right" or "left" to replace that hip's femoral head and neck by a metal implant
        (ball, stem, acetabular cup) with streak artifacts; None for no implant.
    hips : False gives a scan with no hip in view (lumbar spine and soft tissue only).
    joint_gap_mm : width of both joint spaces (head surface to acetabulum) in mm; None draws
        2.5-3 mm per hip. A narrow gap imitates the joint space narrowing of osteoarthritis.

    Returns
    -------
    Phantom. Body-frame geometry: the femoral head centers lie about 90 mm either side of the
    midline, slightly anterior of the body center, about 45 % up the z field of view.
    """
    spacing = np.asarray(spacing_mm, float)
    fov = np.asarray(fov_mm, float)
    if spacing.shape != (3,) or fov.shape != (3,) or np.any(spacing <= 0) or np.any(fov <= 0):
        raise ValueError("spacing_mm and fov_mm must be three positive numbers (z, y, x) in mm.")
    if metal_side not in (None, "right", "left"):
        raise ValueError('metal_side must be None, "right" or "left".')
    if metal_side is not None and not hips:
        raise ValueError("A metal implant needs hips=True.")
    radii = tuple(float(r) for r in head_radius_mm)
    if len(radii) != 2 or min(radii) <= 5:
        raise ValueError("head_radius_mm must be two radii (right, left) above 5 mm.")

    shape = tuple(max(1, int(round(f / s))) for f, s in zip(fov, spacing))
    nz, ny, nx = shape
    origin = np.array([
        (0.5 - 0.45 * nz) * spacing[0],
        -0.5 * (ny - 1) * spacing[1],
        -0.5 * (nx - 1) * spacing[2],
    ])
    grid = _Grid(shape, spacing, origin)
    streams = np.random.SeedSequence(seed).spawn(6)
    rng_geo, rng_tex, rng_noise, rng_streak, rng_tex2, rng_soft = (
        np.random.default_rng(s) for s in streams
    )
    an = _draw_anatomy(rng_geo, radii)
    if joint_gap_mm is not None:  # set after the draws, so the rest of the phantom is unchanged
        if not joint_gap_mm > 0:
            raise ValueError("joint_gap_mm must be positive.")
        for s in an["sides"].values():
            s["joint_gap"] = float(joint_gap_mm)
    O = an["pelvis_origin"]
    for side, s in an["sides"].items():
        s["center"] = O + _Frame(O, side).vec(an["hip_half_width"], 0, 0) + s["hip_jitter"]

    hu = np.full(shape, HU_AIR, dtype=_F)
    part = np.zeros(shape, dtype=np.uint8)
    z_lo, z_hi = grid.axes[0][0] - 50.0, grid.axes[0][-1] + 50.0

    # --- soft tissue -------------------------------------------------------------------------
    bs = an["body_scale"]
    a, b = 176.0 * bs, 114.0 * bs
    body = _Solid(grid, [(_Prism([z_lo, z_hi], [[0, 0]] * 2, [[a, b]] * 2, z_lo, z_hi, 0.93), 0)], 4.0)
    _paint(hu, body, HU_FAT)
    inner_flat = (0.93 * b - 13.0 + 2.0) / (b - 17.0)  # posterior fat ~13 mm on the table side
    inner = _Prism([z_lo, z_hi], [[0, -2]] * 2, [[a - 19, b - 17]] * 2, z_lo, z_hi, inner_flat)
    muscle = _Solid(grid, [(inner, 0)], 4.0)
    _paint(hu, muscle, HU_MUSCLE)
    planes = []
    if hips:
        for side in ("right", "left"):
            pf = _Frame(O, side)
            c = pf.pt(80, -58, 0)  # gluteal compartment
            planes.append(_Hollow(_Prism([z_lo, z_hi], [c[:2]] * 2, [[70, 44], [70, 44]], z_lo, z_hi), 0.9))
            c = pf.pt(68, 38, 0)  # iliopsoas
            planes.append(_Hollow(_Prism([z_lo, z_hi], [c[:2]] * 2, [[20, 16], [20, 16]], z_lo, O[2] + 60), 0.8))
            c = pf.pt(128, 5, 0)  # lateral thigh compartment (tensor fasciae / vastus)
            planes.append(_Hollow(_Prism([z_lo, z_hi], [c[:2]] * 2, [[28, 40], [28, 40]], z_lo, O[2] - 5), 0.8))
    else:
        for sg in (-1, 1):
            planes.append(_Hollow(_Prism([z_lo, z_hi], [[sg * 45, 20]] * 2, [[17, 22]] * 2, z_lo, z_hi), 0.8))
            planes.append(_Hollow(_Prism([z_lo, z_hi], [[sg * 32, 75]] * 2, [[26, 22]] * 2, z_lo, z_hi), 0.8))
    for p in planes:
        _paint(hu, _Solid(grid, [(p, 0)], 3.0), HU_FAT + 15.0)
    if hips:
        kz = O[2] + np.array([-20.0, 10.0, 200.0])
        cavity = _Prism(kz, [[O[0], O[1] - 5]] * 3, [[30, 24], [50, 38], [55, 45]], kz[0], kz[-1])
        _paint(hu, _Solid(grid, [(cavity, 0)], 3.0), -15.0)  # pelvic fat and bowel
        _paint(hu, _Solid(grid, [(_Ellipsoid(O + [0, -34, -8], [36, 24, 24]), 0)], 3.0), HU_FLUID)
        for g in an["gas"]:
            c = O + np.array([(g[0] - 0.5) * 80, -8 + (g[1] - 0.5) * 50, 30 + g[2] * 60])
            _paint(hu, _Solid(grid, [(_Sphere(c, 3.0 + 7.0 * g[3]), 0)], 3.0), -950.0)

    # --- bones -------------------------------------------------------------------------------
    heads: dict[str, HeadTruth] = {}
    tex_spacing = spacing
    anatomy_out: dict = {"sides": {}}

    def interior(solid, base, amp, rng):
        if not spongy or solid.empty:
            return base
        return base + amp * _texture(solid.d.shape, tex_spacing, rng)

    if hips:
        femurs = {}
        for side in ("right", "left"):
            s = an["sides"][side]
            items, info = _femur_items(side, an, with_head=(side != metal_side))
            femurs[side] = _Solid(grid, items, max(8.0, 2 * spacing[0] + 2))
            s.update(info)
        pelvis = _Solid(grid, _pelvis_items(an), max(8.0, 2 * spacing[0] + 2))
        for side, fem in femurs.items():  # keep the joint space: no pelvis within gap of a femur
            ov = pelvis.overlap(fem)
            if ov is not None:
                mine, theirs = ov
                gap = _F(an["sides"][side]["joint_gap"])
                np.maximum(pelvis.d[mine], gap - fem.d[theirs], out=pelvis.d[mine])
        if not pelvis.empty:
            _paint_bone(hu, pelvis, _F(880.0), _F(1.6), interior(pelvis, _F(240.0), _F(170.0), rng_tex))
            part[pelvis.sl][pelvis.d <= 0] = PELVIS
        for side, fem in femurs.items():
            if fem.empty:
                continue
            s = an["sides"][side]
            _, _, Z = fem.coords()
            w = Z - _F(s["center"][2])  # height above the head center
            t_cortex = _F(2.0) + _F(3.0) * np.clip((-w - 40) / 35, 0, 1)
            cortex = _F(950.0) + _F(300.0) * np.clip((-w - 40) / 35, 0, 1)
            marrow = np.clip((-w - 45) / 35, 0, 1)  # 0: cancellous, 1: fatty marrow
            base = _F(300.0) - _F(260.0) * marrow
            amp = _F(220.0) - _F(190.0) * marrow
            rng_side = rng_tex2 if side == "left" else rng_tex
            _paint_bone(hu, fem, cortex, t_cortex, interior(fem, base, amp, rng_side))
            part[fem.sl][fem.d <= 0] = _FEMUR_LABEL[side]
        metal = None
        if metal_side is not None:
            s = an["sides"][metal_side]
            C, R = s["center"], s["head_radius"]
            loc = _Frame(C, metal_side)
            ball = 14.0
            ri = R + s["joint_gap"]
            axis = _cup_axis(s, loc)
            cov = np.radians(s["cup_coverage_deg"])
            liner = _Solid(grid, [(_Shell(C, ball - 0.5, ri - 3.0, axis, cov), 0)], 4.0)
            _paint(hu, liner, HU_POLYETHYLENE)
            n, top, sd = s["neck_axis"], s["shaft_top"], s["shaft_dir"]
            metal = _Solid(grid, [
                (_Sphere(C, ball), 0),
                (_Shell(C, ri - 3.0, ri, axis, cov), 0),
                (_Cone(C, C + 0.45 * 50.0 * n, 5.5, 6.5), 0),
                (_Cone(C + 0.4 * 50.0 * n, top + 4.0 * sd, 7.0, 8.5), 2.0),
                (_Cone(top + 4.0 * sd, top + 115.0 * sd, 8.5, 5.0), 2.0),
            ], 4.0)
            _paint(hu, metal, HU_METAL)
            part[metal.sl][metal.d <= 0] = 0
        for side, s in an["sides"].items():
            c_idx = (s["center"][::-1] - origin) / spacing
            in_view = bool(np.all(c_idx >= -0.5) and np.all(c_idx <= np.array(shape) - 0.5))
            if side != metal_side and in_view:
                c = s["center"] + _WORLD_OFFSET_LPS
                heads[side] = HeadTruth((float(-c[0]), float(-c[1]), float(c[2])), s["head_radius"])
            anatomy_out["sides"][side] = {
                "head_center_lps_mm": tuple(float(v) for v in s["center"] + _WORLD_OFFSET_LPS),
                "head_radius_mm": s["head_radius"],
                "joint_gap_mm": float(s["joint_gap"]),
                "greater_trochanter_top_z_rel_mm": s["troch_top_z_rel"],
                # outlines of neck and trochanter touch here; the slice is one piece ~1.5 mm higher
                "neck_trochanter_contact_z_rel_mm": _NECK_TROCH_JOIN_MM,
                "neck_axis_lps": tuple(float(v) for v in s["neck_axis"]),
                "cup_axis_lps": tuple(float(v) for v in _cup_axis(s, _Frame(s["center"], side))),
            }
    else:
        spine_items, discs = _spine_items(an, (grid.axes[0][0], grid.axes[0][-1]))
        for dsc in discs:
            _paint(hu, _Solid(grid, [(dsc, 0)], 3.0), 75.0)
        spine = _Solid(grid, spine_items, max(8.0, 2 * spacing[0] + 2))
        if not spine.empty:
            _paint_bone(hu, spine, _F(850.0), _F(1.5), interior(spine, _F(200.0), _F(120.0), rng_tex))
            part[spine.sl][spine.d <= 0] = PELVIS
        metal = None

    # --- imaging: PSF, metal artifacts, noise ------------------------------------------------
    ndimage.gaussian_filter(hu, (0.0, 0.5, 0.5), output=hu, truncate=3.0)
    if metal is not None:
        _add_streaks(hu, grid, metal, rng_streak)
    if noise_hu > 0:
        noise = rng_noise.standard_normal(shape, dtype=_F)
        ndimage.gaussian_filter(noise, (0.0, 0.6, 0.6), output=noise, truncate=2.5)
        noise *= _F(noise_hu / 0.47)  # the filter leaves std ~0.47 of white noise
        hu += noise
    np.clip(hu, HU_MIN, HU_MAX, out=hu)

    index_to_lps = np.eye(4)
    index_to_lps[:3, :3] = 0.0
    index_to_lps[0, 2] = spacing[2]  # x index -> L
    index_to_lps[1, 1] = spacing[1]  # y index -> P
    index_to_lps[2, 0] = spacing[0]  # z index -> S
    index_to_lps[:3, 3] = np.array([origin[2], origin[1], origin[0]]) + _WORLD_OFFSET_LPS
    anatomy_out["world_offset_lps_mm"] = tuple(_WORLD_OFFSET_LPS)
    return Phantom(
        volume=Volume(hu=hu, index_to_lps=index_to_lps),
        part_map=part,
        heads=heads,
        metal_side=metal_side,
        anatomy=anatomy_out,
    )


def stored_hu(hu: np.ndarray) -> np.ndarray:
    """HU as a generated scan is written to a file: rounded int16 in the scanner range."""
    return np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.int16)


def phantom_to_sitk(phantom: Phantom, storage: str = "LPS"):
    """The phantom as a SimpleITK image (int16 HU) with the same world geometry.

    ``storage="LPS"`` stores the canonical array as is (direction identity); ``"RAS"`` stores it
    with the x and y axes reversed (direction diag(-1, -1, 1)), as many NIfTI files are.
    """
    import SimpleITK as sitk

    if storage not in ("LPS", "RAS"):
        raise ValueError('storage must be "LPS" or "RAS".')
    vol = phantom.volume
    arr = stored_hu(vol.hu)
    m = np.asarray(vol.index_to_lps, float)
    nz, ny, nx = arr.shape
    if storage == "LPS":
        cols = m[:3, [2, 1, 0]]  # sitk index (i, j, k) = canonical (x, y, z)
        origin = m[:3, 3]
    else:
        arr = arr[:, ::-1, ::-1]
        cols = m[:3, [2, 1, 0]] * np.array([-1.0, -1.0, 1.0])
        origin = (m @ np.array([0.0, ny - 1, nx - 1, 1.0]))[:3]
    spacing = np.linalg.norm(cols, axis=0)
    direction = cols / spacing
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(o) for o in origin))
    img.SetDirection(tuple(float(v) for v in direction.ravel()))
    return img
