"""BE: bone extraction per axial CT slice (paper section 3.1).

Each slice is blurred with a Gaussian, an Otsu threshold over its tissue pixels gives the seed
map, and a graph cut (PyMaxflow) minimises eq. (2): a region term from the seeds and the
intensities plus lambda times a boundary term from neighbour intensity differences.
The graph is built with whole-array calls (no Python loop over pixels) and only over the
bounding box of the pixels that could be bone, which is what makes 512 x 512 slices fast.
"""
from __future__ import annotations

from typing import Callable

import maxflow
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from .errors import Cancelled
from .params import Params
from .volume import Volume

# Pixels below this are air or fat and never take part in the bone / soft tissue Otsu split.
_TISSUE_FLOOR_HU = -50.0
# Pixels this close (mm) to metal are blooming artefact, not tissue.
_METAL_HALO_MM = 10.0
# Pixels darker than the threshold by this many region scales are tissue beyond doubt and
# stay out of the graph.
_CROP_MARGIN_SCALES = 6.0
# Capacity cap of the region term: a likelihood ratio of 1e6 is as sure as the model gets.
_MAX_REGION_COST = float(np.log(1e6))
_MIN_BONE_PIXELS = 8
_RIGHT = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]])
_DOWN = np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0]])


def otsu_threshold_hu(blurred_hu: np.ndarray, params: Params, spacing_yx_mm: np.ndarray) -> float | None:
    """Otsu threshold between the soft tissue and the bone of a blurred slice, in HU.

    Only tissue pixels take part: air and fat are below the floor, and metal with its
    blooming halo (within ``_METAL_HALO_MM``) is left out so an implant cannot pull the
    threshold above the native bone. Returns None when the slice holds too little tissue
    brighter than ``params.min_bone_threshold_hu`` (no bone there).
    """
    usable = blurred_hu > _TISSUE_FLOOR_HU
    metal = blurred_hu > params.metal_threshold_hu
    if metal.any():
        usable &= ndimage.distance_transform_edt(~metal, sampling=spacing_yx_mm) > _METAL_HALO_MM
    tissue = blurred_hu[usable]
    if (tissue > params.min_bone_threshold_hu).sum() < _MIN_BONE_PIXELS:
        return None
    return max(float(threshold_otsu(tissue)), params.min_bone_threshold_hu)


def graph_cut_slice(hu: np.ndarray, threshold_hu: float, spacing_yx_mm: np.ndarray,
                    params: Params) -> np.ndarray:
    """Bone mask (bool) of one slice by a graph cut (eq. 2).

    The cut runs on the slice's own intensities: the blur only steadies the seed map's
    threshold, and blurring here would fill thin dark gaps such as the hip's joint space.

    Region term: the negative log of a logistic bone probability centred on the Otsu
    threshold (the seed map's boundary) with softness ``params.region_scale_hu``.
    Boundary term: ``exp(-(I_p - I_q)^2 / (2 sigma^2)) / distance_mm`` between 4-neighbours.
    """
    mask = np.zeros(hu.shape, dtype=bool)
    candidates = hu > threshold_hu - _CROP_MARGIN_SCALES * params.region_scale_hu
    rows = np.flatnonzero(candidates.any(axis=1))
    cols = np.flatnonzero(candidates.any(axis=0))
    pad = 3
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, hu.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, hu.shape[1])
    crop = hu[r0:r1, c0:c1].astype(np.float64)

    z = (crop - threshold_hu) / params.region_scale_hu
    cost_bone = np.minimum(np.logaddexp(0.0, -z), _MAX_REGION_COST)  # -log sigmoid(z)
    cost_tissue = np.minimum(np.logaddexp(0.0, z), _MAX_REGION_COST)  # -log (1 - sigmoid(z))

    inv_two_var = 1.0 / (2.0 * params.boundary_sigma_hu**2)
    w_right = np.zeros_like(crop)
    w_down = np.zeros_like(crop)
    w_right[:, :-1] = np.exp(-np.diff(crop, axis=1) ** 2 * inv_two_var) / spacing_yx_mm[1]
    w_down[:-1, :] = np.exp(-np.diff(crop, axis=0) ** 2 * inv_two_var) / spacing_yx_mm[0]
    # lambda is per mm of boundary, so results do not depend on the pixel size
    scale = params.graph_cut_lambda * float(np.mean(spacing_yx_mm))

    graph = maxflow.Graph[float]()
    nodes = graph.add_grid_nodes(crop.shape)
    graph.add_grid_edges(nodes, weights=scale * w_right, structure=_RIGHT, symmetric=True)
    graph.add_grid_edges(nodes, weights=scale * w_down, structure=_DOWN, symmetric=True)
    # source = bone: cutting a pixel's source edge labels it tissue and costs cost_tissue
    graph.add_grid_tedges(nodes, cost_tissue, cost_bone)
    graph.maxflow()
    mask[r0:r1, c0:c1] = ~graph.get_grid_segments(nodes)
    return mask


def extract_bone(volume: Volume, params: Params = Params(),
                 progress: Callable[[float, str], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """BE on every axial slice of ``volume``; returns a uint8 (z, y, x) mask, 1 = bone."""
    spacing_yx = volume.spacing_mm[1:]
    sigma_px = params.blur_sigma_mm / spacing_yx
    bone = np.zeros(volume.shape, dtype=np.uint8)
    n = volume.shape[0]
    for k in range(n):
        if cancel is not None and cancel():
            raise Cancelled("Bone extraction was cancelled.")
        blurred = ndimage.gaussian_filter(volume.hu[k], sigma_px, truncate=3.0)
        threshold = otsu_threshold_hu(blurred, params, spacing_yx)
        if threshold is not None:
            bone[k] = graph_cut_slice(volume.hu[k], threshold, spacing_yx, params)
        if progress is not None:
            progress((k + 1) / n, "bone extraction")
    return bone
