"""From bone to labels: the femur / pelvis split and the acetabulum / femoral head label map.

The label definition lives here once and serves both the pipeline and the phantom's truth, so
the accuracy tests compare like with like: in every slice the head sphere spans (or the
shape of a head that is not a sphere), femur bone within ``joint_region_factor`` x R of the
head center is "femoral head" (2) and pelvic bone there is "acetabulum" (1); both are
hole-filled per slice (paper, Table 4).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from .afs.geometry import disk_footprint
from .joint_cut import cut_at_joint
from .joint_gap import joint_gap
from .params import Params
from .result import ACETABULUM, FEMORAL_HEAD, SIDES, segment_code

if TYPE_CHECKING:
    from .afs.head_ellipsoid import HeadShape

# The cut between head and acetabulum: a spherical band around the fitted head surface, mm.
_CUT_INSIDE_MM, _CUT_OUTSIDE_MM = 1.5, 2.5
# Head interior (mm inside the surface) that seeds the femur.
_HEAD_SEED_DEPTH_MM = 3.0
# Bone this far (mm) above the head's top is pelvis (acetabular roof, ilium).
_ROOF_MARGIN_MM = 3.0
# Bone beyond the cut in the head's slices and this far medial of its center (a share of the
# radius) is pelvis too: the femur leaves the head laterally and downward (the neck), while the
# acetabulum wraps it on the medial side.
_MEDIAL_SHARE = 0.5
_SIX_CONNECTED = ndimage.generate_binary_structure(3, 1)
# Breaks in a thin cortex up to about twice this wide (mm) are bridged before a bone's interior
# is filled.
_CORTEX_GAP_MM = 2.0
# An enclosed region more than this share of which is the other bone is that bone's (the head
# inside an acetabulum wrapped around it), not this one's interior; specks of the other bone
# left inside a cortex by the split stay below it.
_OTHER_SHARE = 0.2
# A region enclosed by both bones is this one's when at least this share of its rim is.
_OWN_RIM_SHARE = 0.8


def _distance_mm(shape: tuple[int, ...], center_idx: np.ndarray, radius_mm: float,
                 spacing_mm: np.ndarray, head_shape: HeadShape | None) -> np.ndarray:
    """Each voxel's distance to the head's center (mm); for a head that is not a sphere, the
    radius less its depth inside the ``head_shape``, so the head's surface lies at the radius
    either way."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    if head_shape is None:
        return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center_idx, spacing_mm)))
    points = np.stack(np.broadcast_arrays(*(g * s for g, s in zip(grids, spacing_mm))), axis=-1)
    return radius_mm - head_shape.depth_mm(points.astype(float))


def split_femur_pelvis(hu: np.ndarray, bone: np.ndarray, femur_seed: np.ndarray,
                       center_idx: np.ndarray, radius_mm: float, spacing_mm: np.ndarray,
                       head_shape: HeadShape | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split a bone mask around one hip into femur and pelvis (bool arrays).

    A spherical band at the head surface cuts the joint; the pieces are then assigned by 3-D
    connectivity: to the femur when they reach the head's interior or ``femur_seed`` (femur
    tracked up from the thigh) below the head's lowest point, to the pelvis when they reach
    above the head or the acetabulum's side (beyond the cut, medial of the head, in its
    slices); a piece reaching neither goes with the side of the cut most of it lies on. A piece
    touching both (femur and pelvis joined elsewhere, e.g. at coarse resolution) is divided by
    a watershed between the two seeds. The band's bone is divided by a graph cut along the
    joint space (:func:`.joint_cut.cut_at_joint`, ``hu`` in HU); the joint space's own voxels,
    bone in the mask where the joint is one or two voxels wide (:func:`.joint_gap.joint_gap`),
    go to neither bone, and the cut runs through them. Arrays are in the side frame (x runs
    lateral to medial). A head that is not a sphere comes with its ``head_shape`` (mm, index x
    spacing of these arrays), whose surface the band and the head's seed then follow.
    """
    distance = _distance_mm(bone.shape, center_idx, radius_mm, spacing_mm, head_shape)
    band = (distance >= radius_mm - _CUT_INSIDE_MM) & (distance <= radius_mm + _CUT_OUTSIDE_MM)
    # the joint space's own voxels, bone in the mask where it is narrow, belong to neither
    gap = joint_gap(hu, band, center_idx, radius_mm, spacing_mm, head_shape)
    bone = bone & ~gap
    cut = bone & ~band
    dz_mm = (np.arange(bone.shape[0])[:, None, None] - center_idx[0]) * spacing_mm[0]
    # the tracked femur seeds only below the head: in the head's slices the slice-by-slice
    # tracking that made it runs into pelvic bone wherever the bone mask joins that to the neck
    # (a bridged joint space, an acetabular rim against the neck)
    seed = femur_seed & (dz_mm < -radius_mm)
    femur_marker = cut & (seed | (distance <= radius_mm - _HEAD_SEED_DEPTH_MM))
    medial_mm = (np.arange(bone.shape[2])[None, None, :] - center_idx[2]) * spacing_mm[2]
    acetabulum_side = ((np.abs(dz_mm) <= radius_mm) & (medial_mm > _MEDIAL_SHARE * radius_mm)
                       & (distance > radius_mm))
    pelvis_marker = cut & ~femur_marker & ((dz_mm > radius_mm + _ROOF_MARGIN_MM) | acetabulum_side)

    pieces, n = ndimage.label(cut, structure=_SIX_CONNECTED)
    index = np.arange(1, n + 1)
    has_femur = ndimage.maximum(femur_marker, pieces, index).astype(bool) if n else np.zeros(0, bool)
    has_pelvis = ndimage.maximum(pelvis_marker, pieces, index).astype(bool) if n else np.zeros(0, bool)
    # a piece reaching neither seed goes with the side of the sphere it lies on: inside, the head's
    # own cortex where its spongy interior is too dark to be bone (no path to the head seed)
    inside = (ndimage.mean(distance < radius_mm, pieces, index) > 0.5 if n
              else np.zeros(0, bool))
    femur_pieces = np.zeros(n + 1, dtype=bool)
    femur_pieces[1:] = (has_femur | inside) & ~has_pelvis
    femur = femur_pieces[pieces]
    for label in index[has_femur & has_pelvis]:
        piece = pieces == label
        markers = np.where(femur_marker & piece, 1, np.where(pelvis_marker & piece, 2, 0))
        depth = ndimage.distance_transform_edt(piece, sampling=spacing_mm)
        femur |= watershed(-depth, markers, mask=piece) == 1
    pelvis = cut & ~femur

    # band voxels: a graph cut along the joint space's intensity valley, the sphere as prior
    femur_side = cut_at_joint(hu, band, femur, pelvis, distance, radius_mm, spacing_mm, gap)
    band_bone = band & bone
    femur |= band_bone & femur_side
    pelvis |= band_bone & ~femur_side
    return femur, pelvis


def fill_enclosed_slices(mask: np.ndarray, spacing_mm: np.ndarray,
                         other: np.ndarray | None = None,
                         beyond: tuple[np.ndarray, tuple[slice, ...]] | None = None) -> np.ndarray:
    """``mask`` (z, y, x) with, in each slice, what its bone encloses once breaks in the cortex
    up to about ``2 x _CORTEX_GAP_MM`` wide are bridged: spongy bone darker than bone extraction's
    threshold (low-density or fatty marrow) inside one bone's cortex. Run on one bone at a
    time (femur, pelvis); an enclosed region largely of the ``other`` bone is left out, so an
    acetabulum wrapped around the head never takes the joint space. A voxel both neighbouring
    slices hold (and not of the ``other`` bone) is added too, and so is what this bone encloses
    only together with the ``other`` where it holds most of the rim (:func:`_closed_by_other`).
    ``beyond`` is (bone, box): the bone mask of whole slices and where ``mask`` lies in them;
    bone outside the box closes the cortex rings the box cuts (an ilium or a neck leaving it),
    so what is enclosed does not depend on the crop."""
    disk = disk_footprint(_CORTEX_GAP_MM, np.asarray(spacing_mm[1:], float))
    # bone within a disk's reach of the box's edge may belong to a ring the box cuts
    near_edge = np.ones(mask.shape[1:], dtype=bool)
    reach_y, reach_x = np.asarray(disk.shape) // 2 + 1
    near_edge[reach_y:-reach_y, reach_x:-reach_x] = False
    out = mask.copy()
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        rest = None if other is None else other[k]
        walls, in_box = mask[k], (slice(None), slice(None))
        if beyond is not None and (mask[k] & near_edge).any():
            bone, box = beyond
            walls, in_box = bone[box[0].start + k].copy(), box[1:]
            walls[in_box] = mask[k]
            if rest is not None:
                rest = np.zeros(walls.shape, dtype=bool)
                rest[in_box] = other[k]
        # grown, filled, shrunk back: unlike a closing this also bridges breaks in a cortex
        # thinner than the disk
        grown = ndimage.binary_dilation(walls, structure=disk)
        enclosed = ndimage.binary_fill_holes(grown)
        holes = enclosed & ~grown
        if rest is not None and holes.any() and rest.any():
            pieces, n = ndimage.label(holes)
            holds_other = np.ones(n + 1, dtype=bool)
            holds_other[1:] = ndimage.mean(rest, pieces, np.arange(1, n + 1)) > _OTHER_SHARE
            holes = ~holds_other[pieces]
        out[k] |= ndimage.binary_erosion(grown | holes, structure=disk)[in_box]
        if other is not None and other[k].any():  # the other bone lies in the box only
            out[k] |= _closed_by_other(grown[in_box], enclosed[in_box], other[k], disk)
    # a slice whose cortex broke wider than that (a thin cortex in a thick slab) still holds
    # what both of its neighbours enclose
    between = out[:-2] & out[2:]
    if other is not None:
        between &= ~other[1:-1]
    out[1:-1] |= between
    return out


def _closed_by_other(grown: np.ndarray, enclosed: np.ndarray, other: np.ndarray,
                     disk: np.ndarray) -> np.ndarray:
    """What one slice's bone (``grown``: its walls dilated by ``disk``; ``enclosed``: that
    hole-filled) encloses only together with the ``other`` bone: a head whose cortex the split
    gave in part to the acetabulum where they touch. A region so enclosed is this bone's when
    at least ``_OWN_RIM_SHARE`` of its rim is this bone's (a joint space between a head and an
    acetabulum ring round it has about half); grown back to the walls, it never takes the
    other bone's voxels."""
    grown_all = grown | ndimage.binary_dilation(other, structure=disk)
    between = ndimage.binary_fill_holes(grown_all) & ~grown_all & ~enclosed
    pieces, n = ndimage.label(between)
    if not n:
        return between
    index = np.arange(1, n + 1)
    rim = ndimage.grey_dilation(pieces, size=(3, 3)) * ~between
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = ((ndimage.mean(other, pieces, index) <= _OTHER_SHARE)
                & (ndimage.mean(grown, rim, index) >= _OWN_RIM_SHARE))
    return ndimage.binary_dilation(keep[pieces], structure=disk) & ~other


def joint_labels(femur: np.ndarray, pelvis: np.ndarray, center_idx: np.ndarray, radius_mm: float,
                 spacing_mm: np.ndarray, params: Params,
                 span_mm: tuple[float, float] | None = None,
                 head_shape: HeadShape | None = None) -> np.ndarray:
    """Acetabulum (1) / femoral head (2) label map of one hip, same shape as the masks.

    ``center_idx`` is the head center in (z, y, x) indices of these arrays, ``radius_mm`` its
    radius. The head's slices are those whose middle lies within ``span_mm`` (lowest, highest
    height relative to the center, mm), by default the sphere's (-radius, +radius). Without a
    span, the head's disk in each slice (its section, less 1 mm) is added to the femur so spongy
    bone that bone extraction left out does not leave gaps in a spherical head; a head given
    its own span is not assumed round. A head that is not a sphere comes with its
    ``head_shape`` (an ellipsoid or a sphere cut flat; mm, index x spacing of these arrays;
    :mod:`.afs.head_ellipsoid`, :mod:`.afs.head_flattening`), which then gives the span and the
    sections (less 1 mm) in the sphere's place.
    """
    low_mm, high_mm = (-radius_mm, radius_mm) if span_mm is None else span_mm
    if head_shape is not None:
        low_mm, high_mm = (z - center_idx[0] * spacing_mm[0] for z in head_shape.z_span_mm())
    labels = np.zeros(femur.shape, dtype=np.uint8)
    yy, xx = np.ogrid[:femur.shape[1], :femur.shape[2]]
    in_plane_mm2 = ((yy - center_idx[1]) * spacing_mm[1]) ** 2 + ((xx - center_idx[2]) * spacing_mm[2]) ** 2
    region = in_plane_mm2 <= (params.joint_region_factor * radius_mm) ** 2
    for k in range(femur.shape[0]):
        dz_mm = (k - center_idx[0]) * spacing_mm[0]
        if not low_mm <= dz_mm <= high_mm:
            continue
        if head_shape is not None:
            disk = _inside_by(head_shape, k, femur.shape[1:], spacing_mm, 1.0)
        else:
            section_mm = np.sqrt(radius_mm**2 - dz_mm**2) - 1.0 if span_mm is None else 0.0
            disk = in_plane_mm2 <= section_mm**2 if section_mm > 0 else False
        head = ndimage.binary_fill_holes((femur[k] & region) | disk)
        acetabulum = ndimage.binary_fill_holes(pelvis[k] & region) & ~head
        labels[k][acetabulum] = ACETABULUM
        labels[k][head] = FEMORAL_HEAD
    return labels


def _inside_by(head_shape: HeadShape, k: int, shape_yx: tuple[int, int], spacing_mm: np.ndarray,
               depth_mm: float) -> np.ndarray:
    """Slice ``k``'s pixels at least ``depth_mm`` inside ``head_shape`` (bool, ``shape_yx``)."""
    yy, xx = np.ogrid[:shape_yx[0], :shape_yx[1]]
    points = np.stack(np.broadcast_arrays(k * spacing_mm[0], yy * spacing_mm[1],
                                          xx * spacing_mm[2]), axis=-1).astype(float)
    return head_shape.depth_mm(points) >= depth_mm


def truth_side_labels(phantom, params: Params = Params()) -> np.ndarray:
    """Truth segment codes (as :attr:`Annotation.side_labels`) of a generated phantom."""
    from .phantom import LEFT_FEMUR, PELVIS, RIGHT_FEMUR

    volume = phantom.volume
    out = np.zeros(volume.shape, dtype=np.uint8)
    femur_part = {"right": RIGHT_FEMUR, "left": LEFT_FEMUR}
    for side in SIDES:
        head = phantom.heads.get(side)
        if head is None:
            continue
        center = volume.ras_mm_to_index(np.asarray(head.center_ras_mm))
        labels = joint_labels(phantom.part_map == femur_part[side], phantom.part_map == PELVIS,
                              center, head.radius_mm, volume.spacing_mm, params)
        for cls in (ACETABULUM, FEMORAL_HEAD):
            out[labels == cls] = segment_code(side, cls)
    return out
