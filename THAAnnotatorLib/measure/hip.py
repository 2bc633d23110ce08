"""The measurements of each segmented hip of a pipeline result, in patient coordinates."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..params import SWEEP_MAX_PIXEL_MM
from ..result import ACETABULUM, FEMORAL_HEAD, SideResult, segment_code
from ..volume import Volume
from .articular import REACH_SHARE
from .edge_angles import SlicePlanes
from .geometry import HipGeometry, Incomplete, measure_geometry
from .ranges import range_warnings
from .partial_volume import MAX_EDGE_SHIFT_SHARE, bone_levels_hu, edge_fill
from .rays import box_probe, mask_probe, probe_box, side_axes, volume_probe
from .sphere import suggested_cup_mm
from .sphericity import REGION

REPORTED = {
    # field: short heading (unit) for tables: manifest.csv, the batch report
    "acetabular_diameter_mm": "acetabular diameter (mm)",
    "suggested_cup_mm": "suggested cup (mm)",
    "inclination_deg": "inclination (deg)",
    "anteversion_deg": "anteversion (deg)",
    "center_edge_deg": "center-edge angle (deg)",
    "anterior_sector_deg": "anterior sector angle (deg)",
    "posterior_sector_deg": "posterior sector angle (deg)",
    "head_coverage_percent": "head coverage (%)",
    "head_sphericity_rms_mm": "head sphericity RMS (mm)",
}
"""The measurements shown in tables, each with its heading."""
AXES_NOTE = ("angles against the scanner's axes (patient axes from the scan's direction cosines); "
             "the patient's pelvic tilt and rotation are not corrected")


@dataclass
class HipMeasurements:
    """THA planning measurements of one hip (RAS mm, degrees, percent); every value None and
    ``not_computed`` saying why where the hip could not be measured."""

    not_computed: str = ""
    acetabular_center_ras_mm: tuple[float, float, float] | None = None
    acetabular_diameter_mm: float | None = None
    concentricity_mm: float | None = None
    suggested_cup_mm: int | None = None
    opening_center_ras_mm: tuple[float, float, float] | None = None
    opening_normal_ras: tuple[float, float, float] | None = None
    inclination_deg: float | None = None
    anteversion_deg: float | None = None
    center_edge_deg: float | None = None
    anterior_sector_deg: float | None = None
    posterior_sector_deg: float | None = None
    head_coverage_percent: float | None = None
    head_sphericity_rms_mm: float | None = None
    head_sphericity_max_mm: float | None = None
    sphericity_region: str = REGION
    axes: str = AXES_NOTE
    voxel_mm_zyx: tuple[float, float, float] | None = None
    withheld: dict[str, str] = field(default_factory=dict)
    """Values left out (None) of a measured hip, each with why."""


def measure_hips(volume: Volume, bone: np.ndarray, side_labels: np.ndarray,
                 results: dict[str, SideResult]) -> None:
    """Give each hip in ``results`` its :class:`HipMeasurements` (``measurements``), and each
    segmented one a warning per value outside its usual adult range."""
    for side, result in results.items():
        if result.status != "segmented":
            result.measurements = HipMeasurements(
                not_computed=f"not segmented ({result.message or result.status})")
            continue
        result.measurements = measure_hip(volume, bone, side_labels, result)
        values = {k: v for k, v in vars(result.measurements).items() if isinstance(v, float)}
        result.warnings.extend(range_warnings(values))
        for name, why in result.measurements.withheld.items():
            result.warnings.append(f"no {REPORTED[name].rsplit(' (', 1)[0]}: {why}; check "
                                   "this hip's acetabular edges")
            result.needs_review = True
        if result.measurements.not_computed:
            result.warnings.append(f"no measurements: {result.measurements.not_computed}")


def measure_hip(volume: Volume, bone: np.ndarray, side_labels: np.ndarray,
                result: SideResult) -> HipMeasurements:
    """Measure one segmented hip from its acetabulum and femoral head labels (canonical
    layout), with the CT placing the articular surface (:mod:`.edges`) and the acetabulum's
    edges between slices (:mod:`.partial_volume`). Above the head's slices,
    where the label definition stops, the bone mask stands for the acetabulum (the roof over
    the head's top)."""
    side, center = result.side, np.asarray(result.sphere_center_ras_mm, float)
    radius = result.head_diameter_mm / 2.0
    spacing = tuple(round(float(s), 3) for s in volume.spacing_mm)
    reach = REACH_SHARE * radius + float(np.max(volume.spacing_mm))
    # the acetabulum lies within reach of the head's center, except below it, where it ends
    # above the head's lowest point
    extent = np.vstack([reach * np.eye(3), -reach * np.eye(3)[:2], [[0.0, 0.0, -radius]]])
    index = volume.ras_mm_to_index(center + extent)
    if (index < 0).any() or (index > np.array(volume.shape) - 1).any():
        return HipMeasurements(not_computed="the scan's field of view cuts the acetabulum (it "
                               f"must reach {reach:.0f} mm from the head's center, and below "
                               "it the head's lowest point)", voxel_mm_zyx=spacing)
    acetabulum = side_labels == segment_code(side, ACETABULUM)
    head_code = segment_code(side, FEMORAL_HEAD)
    labelled = np.flatnonzero((acetabulum | (side_labels == head_code)).any(axis=(1, 2)))
    if labelled.size == 0:
        return HipMeasurements(not_computed="the hip has no labels to measure",
                               voxel_mm_zyx=spacing)
    acetabulum[labelled[-1] + 1:] |= bone[labelled[-1] + 1:].astype(bool)
    box = probe_box(volume, center, reach)
    levels = bone_levels_hu(volume.hu[box], acetabulum[box], bone[box])
    fill = edge_fill(volume.hu[box], acetabulum[box], levels, volume.spacing_mm)
    # (where the CT moved no edge, the label's edges are read once)
    moved = (None if np.array_equal(fill, acetabulum[box])
             else box_probe(volume, fill, box, center, side, level=0.5))
    shift = MAX_EDGE_SHIFT_SHARE * float(volume.spacing_mm[0])
    try:
        geometry = measure_geometry(mask_probe(volume, acetabulum, center, side, reach),
                                    mask_probe(volume, side_labels == head_code, center, side,
                                               reach), radius,
                                    volume_probe(volume, volume.hu, center, side, reach),
                                    moved, edge_shift_mm=shift,
                                    labels_floor_mm=_labels_floor_mm(volume, labelled[0], center),
                                    slice_planes=_slice_planes(volume, center, side),
                                    bone_contrast_hu=None if levels is None
                                    else levels[1] - levels[0],
                                    dip_past_sphere=float(np.max(volume.spacing_mm[1:]))
                                    <= SWEEP_MAX_PIXEL_MM)
    except Incomplete as why:
        return HipMeasurements(not_computed=str(why), voxel_mm_zyx=spacing)
    return to_patient(geometry, center, side, spacing)


def _to_slice_ras_mm(volume: Volume, center_ras_mm: np.ndarray,
                     slice_index: float) -> np.ndarray:
    """The RAS offset (mm) from the head's center to slice ``slice_index`` (canonical z, may
    be fractional) along the slice axis."""
    at_center = volume.ras_mm_to_index(center_ras_mm)
    return volume.index_to_ras_mm(np.array([slice_index, *at_center[1:]])) - center_ras_mm


def _labels_floor_mm(volume: Volume, lowest_slice: int, center_ras_mm: np.ndarray) -> float:
    """Height of the labels' lower edge (mm from the head's center, up positive): halfway
    between their lowest slice and the one below it, where a mask probe reads it
    (:func:`.rays.mask_probe`)."""
    return float(_to_slice_ras_mm(volume, center_ras_mm, lowest_slice - 0.5)[2])


def _slice_planes(volume: Volume, center_ras_mm: np.ndarray, side: str) -> SlicePlanes:
    """The two slices bracketing the head's center (:class:`.edge_angles.SlicePlanes`)."""
    at_center = volume.ras_mm_to_index(center_ras_mm)[0]
    first = np.floor(at_center)
    axes = side_axes(side)
    return SlicePlanes(tuple(_to_slice_ras_mm(volume, center_ras_mm, z) @ axes.T
                             for z in (first, first + 1.0)), float(at_center - first))


def to_patient(geometry: HipGeometry, head_center_ras_mm: np.ndarray, side: str,
               voxel_mm_zyx: tuple[float, float, float] | None) -> HipMeasurements:
    """A hip's measurements (its frame) in RAS, rounded for reporting."""
    axes = side_axes(side)

    def ras(local_mm: np.ndarray, digits: int = 2) -> tuple[float, float, float]:
        return tuple(round(float(v), digits) for v in head_center_ras_mm + local_mm @ axes)

    def rounded(value: float | None, digits: int = 1) -> float | None:
        return None if value is None else round(float(value), digits)

    sphere, opening, sphericity = geometry.sphere, geometry.opening, geometry.sphericity
    return HipMeasurements(
        acetabular_center_ras_mm=ras(sphere.center_mm),
        acetabular_diameter_mm=rounded(sphere.diameter_mm, 2),
        concentricity_mm=rounded(np.linalg.norm(sphere.center_mm), 2),
        suggested_cup_mm=suggested_cup_mm(sphere.diameter_mm),
        opening_center_ras_mm=ras(opening.point_mm),
        opening_normal_ras=tuple(round(float(v), 4) for v in opening.normal @ axes),
        inclination_deg=rounded(opening.inclination_deg),
        anteversion_deg=rounded(opening.anteversion_deg),
        center_edge_deg=rounded(geometry.center_edge_deg),
        anterior_sector_deg=rounded(geometry.anterior_sector_deg),
        posterior_sector_deg=rounded(geometry.posterior_sector_deg),
        head_coverage_percent=rounded(geometry.head_coverage_percent),
        head_sphericity_rms_mm=None if sphericity is None else rounded(sphericity.rms_mm, 2),
        head_sphericity_max_mm=None if sphericity is None else rounded(sphericity.max_mm, 2),
        voxel_mm_zyx=voxel_mm_zyx, withheld=dict(geometry.withheld))
