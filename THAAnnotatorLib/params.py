"""All pipeline parameters in one dataclass; defaults come from the paper and its method notes."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from .errors import InvalidParam
from .limits import Range, shown

SWEEP_MAX_PIXEL_MM = 1.5
"""The coarsest in-plane pixels (mm) the sweep draws (``THAAnnotatorLib.sweep``, its resolution
class: 0.5-1.5 mm). The steps that were measured only there, and misread the real 3 mm CT, stand
aside in coarser pixels: the articular sphere (``afs/side.py``), the head's spongy holes in the
rough circle (``afs/rough_circle.py``), the joint's dip past the head's sphere
(``measure/edges.py``)."""


@dataclass(frozen=True)
class Params:
    # --- BE: bone extraction (paper 3.1) ---
    blur_sigma_mm: float = 1.2
    """Gaussian blur before the Otsu threshold, in mm (prototype: 1.5 pixels at ~0.8 mm)."""
    graph_cut_lambda: float = 2.0
    """Weight of the boundary term against the region term in the graph-cut energy (eq. 2)."""
    boundary_sigma_hu: float = 60.0
    """Intensity difference, in HU, at which the boundary term has fallen to exp(-1/2)."""
    region_scale_hu: float = 40.0
    """Softness, in HU, of the region term's logistic bone probability around the threshold."""
    min_bone_threshold_hu: float = 150.0
    """Lower bound for the per-slice Otsu bone threshold, in HU (guards bone-poor slices)."""

    # --- AFS: acetabulum and femoral head segmentation (paper 3.2) ---
    rough_shrink: float = 1.7
    """Rough boundary radius = anatomy radius / rough_shrink."""
    search_extent: float = 1.5
    """Search along each normal out to search_extent x anatomy radius."""
    n_rays: int = 90
    """Normals (rays) cast around the rough circle."""
    enhance_percentile: float = 92.0
    """Bone threshold (percentile) of the Hessian-enhanced ROI."""
    use_fsg: bool = True
    """First- and second-order gradient synergy (eq. 4) instead of the second-order rule (eq. 3)."""
    use_lnms: bool = True
    """Line-based non-maximum suppression (eq. 5): keep the outermost point of each run."""
    use_ahs: bool = True
    """Anatomy-prior Hough selection: pick the peak whose radius is closest to the anatomy radius."""
    hough_peaks: int = 5
    """Hough peaks considered by AHS."""
    propagation_radius_window: tuple[float, float] = (0.8, 1.2)
    """Hough radius window, relative to the previous slice's radius, when propagating."""
    min_head_radius_mm: float = 12.0
    """Smallest femoral head radius considered anatomical, in mm."""
    max_head_radius_mm: float = 35.0
    """Largest femoral head radius considered anatomical, in mm."""
    usual_head_diameter_mm: tuple[float, float] = (38.0, 58.0)
    """Adult femoral heads measure about 40-55 mm across; a diameter outside this range (mm)
    is reported with a warning and the hip marked for review."""
    use_slab_height: bool = True
    """In slices at least 1.5 pixels thick, refit the head's center height to the voxels' partial
    volume (the circles of thick slices set it a few tenths of a mm off; that decides whether the
    slab at the head's top is a head slice)."""
    joint_region_factor: float = 2.0
    """Labels are kept within joint_region_factor x head radius (in-plane) of the head center."""
    use_half_maximum_edges: bool = True
    """Drop label edge voxels darker than halfway between the soft tissue beside them and the
    bone's peak near them (less than half bone: partial volume the graph cut keeps)."""
    metal_threshold_hu: float = 2500.0
    """Voxels brighter than this are metal (cortical bone stays below ~2000 HU)."""
    metal_min_volume_ml: float = 0.5
    """A hip region with more metal than this, in millilitres, holds an implant."""

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> Params:
        """Return ``self`` when every field lies in its range (:data:`PARAM_RANGES`, and the
        ordered pairs of :data:`ORDERED_FIELDS`); else raise :class:`InvalidParam` (a
        ``ValueError``) naming the first field that does not."""
        for field in fields(self):
            problem = _field_problem(field.name, getattr(self, field.name), field.default)
            if problem is not None:
                raise InvalidParam(field.name, problem)
        for low, high in ORDERED_FIELDS:
            if not getattr(self, low) < getattr(self, high):
                raise InvalidParam(low, f"must be below {{other}} ({shown(getattr(self, high))}), "
                                        f"got {shown(getattr(self, low))}", other=high)
        return self


PARAM_RANGES: dict[str, Range] = {
    "blur_sigma_mm": Range(low=0, unit="mm"),
    "graph_cut_lambda": Range(low=0),
    "boundary_sigma_hu": Range(low=0, low_open=True, unit="HU"),
    "region_scale_hu": Range(low=0, low_open=True, unit="HU"),
    "min_bone_threshold_hu": Range(unit="HU"),
    "rough_shrink": Range(low=1),
    "search_extent": Range(low=1, low_open=True),
    "n_rays": Range(low=3, integer=True),
    "enhance_percentile": Range(low=0, high=100),
    "hough_peaks": Range(low=1, integer=True),
    "propagation_radius_window": Range(low=0, low_open=True),
    "min_head_radius_mm": Range(low=0, low_open=True, unit="mm"),
    "max_head_radius_mm": Range(low=0, low_open=True, unit="mm"),
    "usual_head_diameter_mm": Range(low=0, low_open=True, unit="mm"),
    "joint_region_factor": Range(low=1),
    "metal_threshold_hu": Range(unit="HU"),
    "metal_min_volume_ml": Range(low=0, unit="ml"),
}
"""Allowed values of each number field of :class:`Params` (of each of a pair's two numbers);
boolean fields must be ``True`` or ``False``."""

ORDERED_FIELDS: tuple[tuple[str, str], ...] = (
    ("min_head_radius_mm", "max_head_radius_mm"),
    ("min_bone_threshold_hu", "metal_threshold_hu"),
)
"""Pairs of fields whose first must be below the second."""


def allowed_values(name: str, name_of: Callable[[str], str] = str) -> str:
    """What field ``name`` of :class:`Params` may be, in words (for help texts); ``name_of``
    names the other field of an ordered pair."""
    default = Params.__dataclass_fields__[name].default
    if isinstance(default, bool):
        return "True or False"
    if isinstance(default, tuple):
        return f"two {PARAM_RANGES[name].describe(plural=True)}, the first below the second"
    order = [f"below {name_of(high)}" for low, high in ORDERED_FIELDS if low == name]
    order += [f"above {name_of(low)}" for low, high in ORDERED_FIELDS if high == name]
    return ", ".join([PARAM_RANGES[name].describe(), *order])


def _field_problem(name: str, value: object, default: object) -> str | None:
    """None when ``value`` is allowed for field ``name`` (whose default is ``default``), else
    what it must be and what it is."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"must be True or False, got {value!r}"
    if isinstance(default, tuple):
        numbers_ok = (isinstance(value, (tuple, list)) and len(value) == len(default)
                      and all(PARAM_RANGES[name].contains(v) for v in value))
        if numbers_ok and value[0] < value[1]:
            return None
        got = " ".join(map(shown, value)) if isinstance(value, (tuple, list)) else shown(value)
        return f"must be {allowed_values(name)}, got {got}"
    return PARAM_RANGES[name].problem(value)
