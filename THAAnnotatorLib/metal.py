"""Metal in a CT scan, judged at each hip.

A hip holds an implant when metal lies within its own region, around the acetabulum and the
proximal femur, not when metal lies anywhere in its half of the scan: a bead on the skin or
dense contrast in an arm says nothing about the hip.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .afs.frame import SideFrame
from .params import Params
from .result import SideResult
from .volume import Volume

METAL_MESSAGE = "metal implant, not segmented"

# A hip's region, from its femoral head's center and radius (mm). A total hip's ball sits at the
# center and its cup within a few mm of the head's surface; the cup's screws and a prosthetic
# neck reach some 25 mm beyond it, hence the head's radius plus CUP_MARGIN_MM.
CUP_MARGIN_MM = 30.0
# A femoral stem runs down the shaft, whose axis lies some 40-45 mm lateral of the head's center
# (on phantoms the stem reaches 2.4 head radii in-plane): the region takes in a cylinder from the
# center down STEM_DEPTH_RADII head radii (the stem's proximal part, its widest), and within
# STEM_REACH_RADII head radii of the center in-plane.
STEM_DEPTH_RADII = 4.0
STEM_REACH_RADII = 2.5


@dataclass(frozen=True)
class Metal:
    """Metal voxels of one array.

    Attributes
    ----------
    points_mm : float (n, 3) voxel centers in mm along the array's (z, y, x) axes, z up.
    voxel_ml : volume of one voxel in millilitres.
    """

    points_mm: np.ndarray
    voxel_ml: float

    @classmethod
    def find(cls, hu: np.ndarray, spacing_mm: np.ndarray, threshold_hu: float) -> Metal:
        """The voxels of ``hu`` (z, y, x; voxel size ``spacing_mm``) brighter than
        ``threshold_hu``."""
        spacing = np.asarray(spacing_mm, float)
        return cls(np.argwhere(hu > threshold_hu) * spacing, float(np.prod(spacing)) / 1000.0)

    @property
    def volume_ml(self) -> float:
        return len(self.points_mm) * self.voxel_ml

    def split_at_hip(self, center_mm: np.ndarray, radius_mm: float) -> tuple[Metal, Metal]:
        """This metal within and outside the region (:func:`in_hip_region`) of the hip whose
        head has center ``center_mm`` (the array's axes, mm) and radius ``radius_mm``."""
        inside = in_hip_region(self.points_mm, center_mm, radius_mm)
        return (Metal(self.points_mm[inside], self.voxel_ml),
                Metal(self.points_mm[~inside], self.voxel_ml))


def in_hip_region(points_mm: np.ndarray, center_mm: np.ndarray, radius_mm: float) -> np.ndarray:
    """Whether each point (n, 3; z up, mm) lies in the region of a hip around the acetabulum and
    the proximal femur: within the head's radius plus :data:`CUP_MARGIN_MM` of its center
    ``center_mm``, or in the femoral stem's cylinder below it (:data:`STEM_DEPTH_RADII`,
    :data:`STEM_REACH_RADII`)."""
    offset = np.asarray(points_mm, float).reshape(-1, 3) - np.asarray(center_mm, float)
    near_joint = np.linalg.norm(offset, axis=1) <= radius_mm + CUP_MARGIN_MM
    along_femur = ((offset[:, 0] <= 0.0) & (offset[:, 0] >= -STEM_DEPTH_RADII * radius_mm)
                   & (np.linalg.norm(offset[:, 1:], axis=1) <= STEM_REACH_RADII * radius_mm))
    return near_joint | along_femur


def metal_result(side: str, metal_ml: float, params: Params) -> SideResult:
    """The result of a hip holding an implant (``metal_ml`` ml of metal): not segmented."""
    return SideResult(side, "metal", METAL_MESSAGE, warnings=[
        f"{metal_ml:.1f} ml brighter than {params.metal_threshold_hu:g} HU"])


def head_not_found_result(side: str, metal: Metal, reason: str, params: Params) -> SideResult:
    """The result of a hip whose femoral head was not found (``reason``): "metal" when its side
    holds more than ``params.metal_min_volume_ml`` of metal (an implant hides the head),
    "not_found" otherwise."""
    if metal.volume_ml > params.metal_min_volume_ml:
        return metal_result(side, metal.volume_ml, params)
    return SideResult(side, "not_found", f"femoral head not found: {reason}")


def implant_at_hip(side: str, metal: Metal, center_mm: np.ndarray, radius_mm: float,
                   params: Params) -> SideResult | None:
    """The "metal" result when more than ``params.metal_min_volume_ml`` of the side's ``metal``
    lies in the region of the hip found at ``center_mm`` (side frame, mm) with head radius
    ``radius_mm``; None when the hip is free of metal."""
    at_hip, _ = metal.split_at_hip(center_mm, radius_mm)
    if at_hip.volume_ml > params.metal_min_volume_ml:
        return metal_result(side, at_hip.volume_ml, params)
    return None


def metal_elsewhere_warnings(volume: Volume, frame: SideFrame, metal: Metal, center_mm: np.ndarray,
                             radius_mm: float, params: Params) -> list[str]:
    """For a hip free of metal (:func:`implant_at_hip` gave None) on a side holding more than
    ``params.metal_min_volume_ml`` of metal: a warning saying how much lies outside the hip's
    region and where its nearest voxel is (RAS, mm). No warning for a side with less metal,
    which is not judged at all.

    ``metal`` is the side's (side-frame mm); ``center_mm`` the head's center (side frame, mm)."""
    if metal.volume_ml <= params.metal_min_volume_ml:
        return []
    _, elsewhere = metal.split_at_hip(center_mm, radius_mm)
    distances_mm = np.linalg.norm(elsewhere.points_mm - center_mm, axis=1)
    nearest = elsewhere.points_mm[int(np.argmin(distances_mm))] / volume.spacing_mm
    x, y, z = volume.index_to_ras_mm(frame.to_canonical_zyx(nearest))
    return [f"{elsewhere.volume_ml:.1f} ml of metal outside this hip's region, the nearest "
            f"{distances_mm.min():.0f} mm from the head's center (RAS ({x:.1f}, {y:.1f}, {z:.1f}) "
            f"mm): not part of this hip"]
