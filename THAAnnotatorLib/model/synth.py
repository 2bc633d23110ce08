"""Randomized renderings of a sweep hip: the anatomy kept, its appearance drawn at random.

After SynthSeg (Billot et al., Medical Image Analysis 2023): a network trained on images whose
contrast, resolution, noise, bias field and deformation are drawn at random over ranges wider
than real scans ever show cannot rely on any one scanner's (or generator's) look, and so learns
shape. Here the anatomy is a sweep scan's tissue map (:attr:`~THAAnnotatorLib.sweep.SweepCase.
tissue_map`) and its truth labels, cropped around one hip; each rendering

1. deforms tissue map and labels together (MONAI ``RandAffined``: a random rotation, scale,
   shear and shift; then ``RandSmoothDeformd``: a smooth random field; nearest neighbour, so
   labels stay labels);
2. gives each tissue a random mean and spread (a Gaussian mixture, one Gaussian per tissue);
3. multiplies by a smooth random bias field (MONAI ``RandBiasField``);
4. adds streaks (bands along random lines, fading with distance, as beam hardening draws);
5. blurs to a random slice thickness and pixel size and resamples down to it and back;
6. adds Gaussian noise (MONAI ``RandGaussianNoise``);
7. clips to the network's HU window (:data:`~.roi.HU_WINDOW`) and applies a random gamma
   within it (MONAI ``AdjustContrast``).

Every range is a field of :class:`~.synth_ranges.SynthRanges`; a rendering is reproducible
from its seed, and its deformation is drawn from a generator of its own, so changing only the
appearance ranges leaves labels unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from monai.transforms import (AdjustContrast, RandAffined, RandBiasField, RandGaussianNoise,
                              RandSmoothDeformd)
from scipy import ndimage

from ..result import FEMORAL_HEAD
from ..sweep.generate import TISSUES
from .roi import HU_WINDOW, RoiSpec
from .synth_ranges import SynthRanges

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
_ATTENUATION_ZERO_HU = -1024.0
"""The bias field multiplies HU above this (attenuation relative to none), not HU itself."""


@dataclass
class SyntheticHip:
    """One randomized rendering of one hip, on a crop of the anatomy grid.

    Attributes
    ----------
    hu : float32 (z, y, x), the rendered image in HU, within :data:`~.roi.HU_WINDOW`.
    labels : uint8 (z, y, x), classes 0 background, 1 acetabulum, 2 femoral head, deformed
        with the anatomy.
    tissue : uint8 (z, y, x), the deformed tissue map the image was drawn from.
    center_zyx : the femoral head center in the crop, fractional index, moved with the
        deformation (by the shift of the head label's centroid).
    crop_start : index (z, y, x) of the crop's first voxel in the anatomy grid.
    draws : the values drawn for this rendering (JSON-ready).
    """

    hu: np.ndarray
    labels: np.ndarray
    tissue: np.ndarray
    center_zyx: np.ndarray
    crop_start: tuple[int, int, int]
    draws: dict


def crop_box(shape, spacing_mm, center_zyx, roi: RoiSpec,
             margin_mm: float) -> tuple[slice, slice, slice]:
    """Index box around a head center holding the ROI (``roi.size_mm`` square, slices within
    ``roi.half_height_mm``) plus ``margin_mm`` on every side, clipped to the grid."""
    reach_mm = np.array([roi.half_height_mm, roi.size_mm / 2, roi.size_mm / 2]) + margin_mm
    reach = np.ceil(reach_mm / np.asarray(spacing_mm, float)).astype(int)
    center = np.round(np.asarray(center_zyx, float)).astype(int)
    return tuple(slice(int(max(c - r, 0)), int(min(c + r + 1, n)))
                 for c, r, n in zip(center, reach, shape))


def render_hip(tissue_map: np.ndarray, labels: np.ndarray, spacing_mm, center_zyx,
               roi: RoiSpec, ranges: SynthRanges, seed) -> SyntheticHip:
    """A randomized rendering of the hip whose head center is ``center_zyx``.

    Parameters
    ----------
    tissue_map : uint8 (z, y, x) :data:`~THAAnnotatorLib.sweep.generate.TISSUES` codes.
    labels : uint8 (z, y, x) classes of this hip (0/1/2), same grid.
    spacing_mm : voxel size (z, y, x) of that grid, mm.
    center_zyx : the femoral head center, fractional index.
    roi : the ROI the rendering is for (sets the crop).
    ranges : the random ranges.
    seed : int or sequence of ints; the same seed gives the same rendering.
    """
    deform_seed, appearance_seed = np.random.SeedSequence(seed).spawn(2)
    box = crop_box(tissue_map.shape, spacing_mm, center_zyx, roi, ranges.margin_mm)
    start = np.array([b.start for b in box])
    spacing = np.asarray(spacing_mm, float)
    if not (labels[box] == FEMORAL_HEAD).any():
        raise ValueError(f"There is no femoral head label within the crop around {center_zyx}.")
    tissue, deformed = _deform(tissue_map[box], labels[box], spacing, ranges,
                               np.random.default_rng(deform_seed))
    head_before = np.argwhere(labels[box] == FEMORAL_HEAD).mean(axis=0)
    head_after = np.argwhere(deformed == FEMORAL_HEAD).mean(axis=0)
    center = np.asarray(center_zyx, float) - start + (head_after - head_before)
    hu, draws = _appearance(tissue, spacing, center, ranges, np.random.default_rng(appearance_seed))
    return SyntheticHip(hu, deformed, tissue, center, tuple(int(s) for s in start), draws)


def _deform(tissue: np.ndarray, labels: np.ndarray, spacing: np.ndarray, ranges: SynthRanges,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Tissue map and labels through one random affine and one random smooth deformation
    (MONAI ``RandAffined``, ``RandSmoothDeformd``; nearest neighbour, border values outside).

    MONAI's affine acts on voxel indices; with voxels of unequal size a rotation or shear of
    indices is another one in mm, so the ranges given to it are set per pair of axes for the
    result in mm to stay within ``ranges`` (a rotation out of the axial plane becomes a
    rotation with a little shear and scaling, still within ``rotate_deg`` of every axis).
    (MONAI's ``Rand3DElasticd`` would do both in one step, but its full-size Gaussian smoothing
    takes 25 s per hip on one CPU thread.)"""
    # ratio[i, j] = spacing j / spacing i: index i moving by p x index j moves i by
    # p / ratio[i, j] mm per mm along j
    ratio = spacing[None, :] / spacing[:, None]
    sin_max = np.sin(np.radians(ranges.rotate_deg))
    # MONAI rotates by angle k in the plane of the two axes other than k
    rotate = tuple(float(np.arcsin(sin_max * min(ratio[i, j], ratio[j, i])))
                   for i, j in ((1, 2), (0, 2), (0, 1)))
    # shear parameters (i moved along j) in MONAI's order
    shear = tuple(float(ranges.shear * ratio[i, j]) for i, j in
                  ((0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)))
    keys = ("tissue", "labels")
    affine = RandAffined(keys, prob=1.0, rotate_range=rotate, shear_range=shear,
                         scale_range=(ranges.scale,) * 3,
                         translate_range=tuple(ranges.translate_mm / spacing), mode="nearest",
                         padding_mode="border")
    transforms = [affine]
    if ranges.elastic_mm > 0:  # MONAI refuses an empty range
        extent_mm = np.array(tissue.shape) * spacing
        # MONAI's field is in units of half the crop's size along each axis, the same on all
        transforms.append(RandSmoothDeformd(
            keys, spatial_size=tissue.shape, prob=1.0,
            rand_size=tuple(int(n) for n in np.ceil(extent_mm / ranges.elastic_grid_mm) + 1),
            def_range=2.0 * ranges.elastic_mm / float(extent_mm[1:].max()),
            field_mode="trilinear", grid_mode="nearest", grid_padding_mode="border",
            grid_align_corners=True))
    data = {"tissue": torch.from_numpy(tissue[None].astype(np.float32)),
            "labels": torch.from_numpy(labels[None].astype(np.float32))}
    for transform in transforms:
        transform.set_random_state(seed=int(rng.integers(2**31)))
        data = transform(data)
    return tuple(np.rint(np.asarray(data[key][0])).astype(np.uint8) for key in keys)


def _appearance(tissue: np.ndarray, spacing: np.ndarray, center_zyx: np.ndarray,
                ranges: SynthRanges, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The image of a tissue map (steps 2-7 of the module docstring), and what was drawn."""
    means = np.array([rng.uniform(*ranges.tissue_mean_hu[t]) for t in TISSUES])
    stds = rng.uniform(*ranges.tissue_std_hu, len(TISSUES))
    hu = (means[tissue] + stds[tissue] * rng.standard_normal(tissue.shape)).astype(np.float32)

    bias = RandBiasField(degree=ranges.bias_degree, coeff_range=ranges.bias_coefficient, prob=1.0)
    bias.set_random_state(seed=int(rng.integers(2**31)))
    hu = np.asarray(bias((hu - _ATTENUATION_ZERO_HU)[None]))[0] + _ATTENUATION_ZERO_HU

    n_streaks = int(rng.integers(0, ranges.streaks + 1))
    for _ in range(n_streaks):
        _add_streak(hu, spacing, center_zyx, ranges, rng)

    resolution = np.array([rng.uniform(*ranges.slice_mm), *[rng.uniform(*ranges.pixel_mm)] * 2])
    hu = _through_resolution(hu, spacing, resolution)

    noise_hu = float(rng.uniform(*ranges.noise_hu))
    noise = RandGaussianNoise(prob=1.0, std=noise_hu, sample_std=False)
    noise.set_random_state(seed=int(rng.integers(2**31)))
    hu = np.asarray(noise(hu[None]))[0]

    gamma = float(rng.uniform(*ranges.gamma))
    clipped = np.clip(hu, *HU_WINDOW).astype(np.float32)
    hu = np.asarray(AdjustContrast(gamma)(clipped[None]))[0].astype(np.float32)
    draws = {"tissue_mean_hu": {t: round(float(m), 1) for t, m in zip(TISSUES, means)},
             "tissue_std_hu": {t: round(float(s), 1) for t, s in zip(TISSUES, stds)},
             "streaks": n_streaks, "slice_mm": round(float(resolution[0]), 3),
             "pixel_mm": round(float(resolution[1]), 3), "noise_hu": round(noise_hu, 1),
             "gamma": round(gamma, 3)}
    return hu, draws


def _add_streak(hu: np.ndarray, spacing: np.ndarray, center_zyx: np.ndarray,
                ranges: SynthRanges, rng: np.random.Generator) -> None:
    """A band along a random in-plane line through a point within 30 mm of the head center,
    fading along the line and along S-I (in place)."""
    origin = center_zyx * spacing + rng.uniform(-30.0, 30.0, 3)
    angle = rng.uniform(0.0, np.pi)
    amplitude, width = rng.uniform(*ranges.streak_hu), rng.uniform(*ranges.streak_width_mm)
    fade, height = rng.uniform(*ranges.streak_fade_mm), rng.uniform(10.0, 40.0)
    z, y, x = (np.arange(n) * s - o for n, s, o in zip(hu.shape, spacing, origin))
    along = y[:, None] * np.cos(angle) + x[None, :] * np.sin(angle)
    across = -y[:, None] * np.sin(angle) + x[None, :] * np.cos(angle)
    band = amplitude * np.exp(-0.5 * (across / width) ** 2 - np.abs(along) / fade)
    hu += (np.exp(-0.5 * (z / height) ** 2)[:, None, None] * band[None]).astype(np.float32)


def _through_resolution(hu: np.ndarray, spacing: np.ndarray, voxel_mm: np.ndarray) -> np.ndarray:
    """``hu`` as a scanner with ``voxel_mm`` voxels (z, y, x) shows it, on the same grid: a
    Gaussian blur whose full width at half maximum is a voxel (the point-sampled anatomy has
    none of its own), then, along axes where those voxels are larger than the grid's, down to
    them and back (linear)."""
    blurred = ndimage.gaussian_filter(hu, voxel_mm / spacing / _FWHM_PER_SIGMA, mode="nearest")
    zoom = np.minimum(spacing / voxel_mm, 1.0)
    if np.all(zoom == 1.0):
        return blurred
    small = ndimage.zoom(blurred, zoom, order=1, mode="nearest", grid_mode=True)
    return ndimage.zoom(small, np.array(hu.shape) / np.array(small.shape), order=1,
                        mode="nearest", grid_mode=True).astype(np.float32)
