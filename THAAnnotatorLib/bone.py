"""BE: bone extraction per axial CT slice (paper section 3.1).

Each slice is blurred with a Gaussian, an Otsu threshold over its tissue pixels gives the seed
map, and a graph cut (PyMaxflow) minimises eq. (2): a region term from the seeds and the
intensities plus lambda times a boundary term from neighbour intensity differences.
The graph is built with whole-array calls (no Python loop over pixels) and only over the
bounding box of the pixels that could be bone, which is what makes 512 x 512 slices fast.
"""
from __future__ import annotations

from dataclasses import dataclass
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
# Smallest class spread, in HU, so a near-uniform class does not give a degenerate likelihood.
_MIN_CLASS_STD_HU = 10.0
# Capacity cap of the region term: a likelihood ratio of 1e6 is as sure as the model gets.
_MAX_REGION_COST = float(np.log(1e6))
_MIN_BONE_PIXELS = 8
_RIGHT = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]])
_DOWN = np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0]])


@dataclass(frozen=True)
class SeedModel:
    """Intensity classes of one slice from its Otsu seed map: mean and spread in HU."""

    threshold_hu: float
    tissue_mean_hu: float
    tissue_std_hu: float
    bone_mean_hu: float
    bone_std_hu: float


def seed_model(blurred_hu: np.ndarray, params: Params, spacing_yx_mm: np.ndarray) -> SeedModel | None:
    """Otsu split of a blurred slice's tissue pixels into soft tissue and bone seeds.

    Metal and its blooming halo (within ``_METAL_HALO_MM``) are left out, so an implant cannot
    pull the threshold above the native bone. Returns None when the slice holds too little
    tissue brighter than the bone floor.
    """
    usable = blurred_hu > _TISSUE_FLOOR_HU
    metal = blurred_hu > params.metal_threshold_hu
    if metal.any():
        usable &= ndimage.distance_transform_edt(~metal, sampling=spacing_yx_mm) > _METAL_HALO_MM
    tissue = blurred_hu[usable]
    if (tissue > params.min_bone_threshold_hu).sum() < _MIN_BONE_PIXELS:
        return None
    threshold = max(float(threshold_otsu(tissue)), params.min_bone_threshold_hu)
    soft, hard = tissue[tissue <= threshold], tissue[tissue > threshold]
    if soft.size < _MIN_BONE_PIXELS or hard.size < _MIN_BONE_PIXELS:
        return None
    return SeedModel(threshold, float(soft.mean()), max(float(soft.std()), _MIN_CLASS_STD_HU),
                     float(hard.mean()), max(float(hard.std()), _MIN_CLASS_STD_HU))


def _negative_log_gaussian(values: np.ndarray, mean: float, std: float) -> np.ndarray:
    return 0.5 * ((values - mean) / std) ** 2 + np.log(std)


def graph_cut_slice(blurred_hu: np.ndarray, seeds: SeedModel, spacing_yx_mm: np.ndarray,
                    params: Params) -> np.ndarray:
    """Bone mask (bool) of one blurred slice by a graph cut (eq. 2).

    Region term: negative log-likelihood of a Gaussian per seed class; intensities are first
    clamped to [tissue mean, bone mean] so air reads as tissue and cortex as bone.
    Boundary term: ``exp(-(I_p - I_q)^2 / (2 sigma^2)) / distance_mm`` between 4-neighbours.
    """
    mask = np.zeros(blurred_hu.shape, dtype=bool)
    candidates = blurred_hu > seeds.tissue_mean_hu + 2.0 * seeds.tissue_std_hu
    rows = np.flatnonzero(candidates.any(axis=1))
    cols = np.flatnonzero(candidates.any(axis=0))
    pad = 3
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, blurred_hu.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, blurred_hu.shape[1])
    crop = blurred_hu[r0:r1, c0:c1].astype(np.float64)

    clamped = np.clip(crop, seeds.tissue_mean_hu, seeds.bone_mean_hu)
    cost_bone = _negative_log_gaussian(clamped, seeds.bone_mean_hu, seeds.bone_std_hu)
    cost_tissue = _negative_log_gaussian(clamped, seeds.tissue_mean_hu, seeds.tissue_std_hu)
    # only the difference matters to the cut; cap it so one pixel cannot dominate its neighbours
    excess = np.clip(cost_bone - cost_tissue, -_MAX_REGION_COST, _MAX_REGION_COST)
    cost_bone, cost_tissue = np.maximum(excess, 0.0), np.maximum(-excess, 0.0)

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
        seeds = seed_model(blurred, params, spacing_yx)
        if seeds is not None:
            bone[k] = graph_cut_slice(blurred, seeds, spacing_yx, params)
        if progress is not None:
            progress((k + 1) / n, "bone extraction")
    return bone
