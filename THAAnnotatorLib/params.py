"""All pipeline parameters in one dataclass; defaults come from the paper and its method notes."""
from __future__ import annotations

from dataclasses import asdict, dataclass


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
