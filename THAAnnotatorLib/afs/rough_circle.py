"""Rough femoral head circle in the initial slice from three convex-hull feature points."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull
from skimage.morphology import convex_hull_image

from ..params import SWEEP_MAX_PIXEL_MM
from .geometry import circle_through, disk_footprint, ray_polygon_hit

# side frame: rows point posterior, columns point medial
_ANTERIOR = np.array([-1.0, 0.0])
_MEDIAL = np.array([0.0, 1.0])
_CORE_FACTOR = 1.2
# A round head's section is at most this much larger than its largest inscribed disk (the
# disk shrinks where spongy bone left holes at the surface).
_MAX_OVER_INSCRIBED = 1.05
# Bone bridges thinner than about twice this (mm) between the head and its neighbours are cut.
_BRIDGE_MM = 1.5
# A head whose opened core keeps an inscribed disk under this share of the hole-filled one's
# was a thin cortical ring (measured: 4.1 mm against 20 mm on a sweep head at 92 HU).
_RING_SHARE = 0.5
# A hole of the head's bone with more than this share of its area inside the head's hull is
# the head's own (spongy bone), not a joint space it encloses with touching bone.
_MIN_HOLE_IN_HULL = 0.5


@dataclass
class RoughCircle:
    """Feature points and circles in side-frame slice mm (y, x)."""

    # (3, 2): anterior hull point, medial hull point, the hull point farthest from the
    # trochanter (the inscribed disk's center where there is no trochanter)
    feature_points_mm: np.ndarray
    center_mm: np.ndarray
    anatomy_radius_mm: float  # r of the paper
    rough_radius_mm: float  # r / rough_shrink


def _head_core(head: np.ndarray, spacing_yx_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The head's part of its bone component, with the head's largest inscribed disk.

    Thin bone bridges to touching bone are opened, and the core is what is left within
    ``_CORE_FACTOR`` x the inscribed disk's radius of its center. Where bone extraction kept
    only the head's cortex (low-density spongy bone), the opening erases the thin ring: the
    component is then hole-filled first. Not always, as a hole can also be the joint space
    where the head's bone touches the acetabulum on both sides of it; the head's own spongy
    holes are filled all the same (``_spongy_holes``). Returns (core mask, disk center (y, x)
    mm, disk radius mm).
    """
    plain = _opened_core(head, spacing_yx_mm)
    filled = _opened_core(ndimage.binary_fill_holes(head), spacing_yx_mm)
    return filled if plain[2] < _RING_SHARE * filled[2] else plain


def _opened_core(head: np.ndarray, spacing_yx_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    disk = disk_footprint(_BRIDGE_MM, spacing_yx_mm)
    opened = ndimage.binary_opening(head, structure=disk)
    # closed and hole-filled, so spongy gaps at the surface do not shrink the inscribed disk
    solid = ndimage.binary_fill_holes(ndimage.binary_closing(opened, structure=disk))
    depth = ndimage.distance_transform_edt(solid, sampling=spacing_yx_mm)
    if depth.max() == 0:
        return head, np.argwhere(head).mean(axis=0) * spacing_yx_mm, 0.0
    pieces, _ = ndimage.label(opened)
    center = np.unravel_index(np.argmax(depth), depth.shape)
    # a center in a hole that the solid filled has the head's bone all around it (spongy bone
    # the opening broke up inside the cortex): then every hole is the head's own
    spongy = _spongy_holes(head, pieces == pieces[center] if pieces[center] else None,
                           spacing_yx_mm)
    if spongy.any():  # measured again with the head's own holes and their walls filled in
        opened = opened | spongy
        depth = ndimage.distance_transform_edt(solid | spongy, sampling=spacing_yx_mm)
        pieces, _ = ndimage.label(opened)
        center = np.unravel_index(np.argmax(depth), depth.shape)
    yy, xx = np.ogrid[:head.shape[0], :head.shape[1]]
    dist2 = ((yy - center[0]) * spacing_yx_mm[0]) ** 2 + ((xx - center[1]) * spacing_yx_mm[1]) ** 2
    core = (pieces == pieces[center]) & (dist2 <= (_CORE_FACTOR * depth.max()) ** 2)
    return core, np.array(center, dtype=float) * spacing_yx_mm, float(depth.max())


def _spongy_holes(head: np.ndarray, piece: np.ndarray | None,
                  spacing_yx_mm: np.ndarray) -> np.ndarray:
    """The holes of ``head`` that lie mostly within the convex hull of ``piece`` (its part that
    the opening kept; every hole where ``piece`` is None), with the ring of bone of ``head``
    around them.

    The opening takes a spongy hole's wall where it is thin at the head's surface; the hole
    then opens to the outside, and filling no longer closes it (on a sweep head, a 22 mm
    section read as a 15 mm disk beside it). The joint space enclosed where the head's bone
    touches the acetabulum lies outside the head's hull, and stays open.

    None in pixels coarser than ``SWEEP_MAX_PIXEL_MM``: spongy bone's spaces show as holes only
    in fine pixels. In coarser ones a hole is another structure: on the real 3 mm CT, the
    acetabulum's spongy interior, enclosed by its cortex and the head (filled, the disk took the
    acetabulum in with the head, and the head was not found).
    """
    if max(spacing_yx_mm) > SWEEP_MAX_PIXEL_MM:
        return np.zeros_like(head)
    holes, n = ndimage.label(ndimage.binary_fill_holes(head) & ~head)
    if n == 0:
        return np.zeros_like(head)
    if piece is None:
        spongy = holes > 0
    else:
        inside = np.bincount(holes[convex_hull_image(piece)], minlength=n + 1)
        keep = inside > _MIN_HOLE_IN_HULL * np.bincount(holes.ravel(), minlength=n + 1)
        keep[0] = False
        spongy = keep[holes]
    # the bone touching a hole encloses it; more than that ring would put back the thin bridges
    # the opening cut (a phantom at 1.5 mm pixels: head and acetabulum joined, its head marked)
    walls = head & ndimage.binary_dilation(spongy, structure=np.ones((3, 3), bool))
    return spongy | walls


def _agrees(circle: tuple[np.ndarray, float], disk_center: np.ndarray, disk_radius: float) -> bool:
    center, r = circle
    return (disk_radius <= r <= _MAX_OVER_INSCRIBED * disk_radius
            and np.linalg.norm(center - disk_center) <= 0.5 * disk_radius)


def rough_circle(head: np.ndarray, trochanter: np.ndarray | None, spacing_yx_mm: np.ndarray,
                 rough_shrink: float) -> RoughCircle | None:
    """Paper 3.2: hull of the head's bone, its centroid p_c, the hull points p_u and p_r hit by
    rays from p_c (anterior and medial here), and p_m, the hull point farthest from the greater
    trochanter. For a round head all three lie on its boundary, so their circumcircle is the
    head's cross-section; its radius is the anatomy radius r.

    Where the head's bone touches the acetabulum or the neck in this slice, the component is
    first trimmed to the head's core (see ``_head_core``), which leaves a lone head unchanged.
    The three points all lie on the head's anterior-medial side, so their circle is unstable
    when the outline is not round; a circle that disagrees with the head's largest inscribed
    disk (radius outside 1 to ``_MAX_OVER_INSCRIBED`` x the disk's, or center off the disk's
    by more than half its radius) is replaced by that disk.
    """
    core, disk_center, disk_radius = _head_core(head, spacing_yx_mm)
    pts = np.argwhere(core) * spacing_yx_mm
    if len(pts) < 3:
        return None
    hull = pts[ConvexHull(pts).vertices]
    p_c = pts.mean(axis=0)
    p_u = ray_polygon_hit(p_c, _ANTERIOR, hull)
    p_r = ray_polygon_hit(p_c, _MEDIAL, hull)
    if p_u is None or p_r is None:
        return None
    if trochanter is None:  # no trochanter to be far from: the inscribed disk alone
        if disk_radius == 0:
            return None
        return RoughCircle(np.array([p_u, p_r, disk_center]), disk_center, disk_radius,
                           disk_radius / rough_shrink)
    trochanter_center = np.argwhere(trochanter).mean(axis=0) * spacing_yx_mm
    p_m = hull[np.argmax(np.linalg.norm(hull - trochanter_center, axis=1))]
    circle = circle_through(p_u, p_r, p_m)
    if circle is None or not _agrees(circle, disk_center, disk_radius):
        if disk_radius == 0:
            return None
        circle = (disk_center, disk_radius)
    center, r = circle
    return RoughCircle(np.array([p_u, p_r, p_m]), center, r, r / rough_shrink)
