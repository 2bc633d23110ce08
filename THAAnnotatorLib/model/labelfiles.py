"""Reading label maps (pipeline outputs, corrections made in 3D Slicer) in a scan's geometry.

Two kinds of file are understood:

- a 3D Slicer segmentation (``.seg.nrrd``) with one labelmap layer; segments are recognised by
  their ID or name (``right_femoral_head`` / "Right femoral head", see
  :mod:`~THAAnnotatorLib.terminology`), whatever label value Slicer gave them; a segment with
  another name is ignored;
- any other label image (NIfTI, NRRD, MetaImage): values 0 background, 1 acetabulum, 2 femoral
  head (as ``labels.nii.gz``), or 1..4 side codes (as :attr:`~THAAnnotatorLib.result.Annotation.side_labels`)
  when a value above 2 occurs.

The file is resampled (nearest neighbour) onto the scan's voxel grid, so a segmentation Slicer
cropped to its segments' extent lines up with the scan.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..io import check_nifti_voxels, volume_from_sitk
from ..result import ACETABULUM, FEMORAL_HEAD, SIDES, segment_code
from ..terminology import SEGMENTS


def _segment_codes(image: sitk.Image, name: str) -> dict[int, int] | None:
    """Map of file label value -> side code from Slicer segment metadata; None if there is none."""
    keys = set(image.GetMetaDataKeys())
    if not any(k.startswith("Segment") and k.endswith("_LabelValue") for k in keys):
        return None
    known = {}
    for segment in SEGMENTS:
        known[segment.segment_id.lower()] = segment.label_value
        known[segment.name.lower()] = segment.label_value
    mapping: dict[int, int] = {}
    index = 0
    while f"Segment{index}_LabelValue" in keys:
        prefix = f"Segment{index}_"
        layer = image.GetMetaData(prefix + "Layer") if prefix + "Layer" in keys else "0"
        if layer.strip() != "0":
            raise InputError(
                f"{name} stores overlapping segments in several layers; in Slicer's Segment "
                "Editor remove the overlap (or the extra segments) and save it again.")
        for field in ("ID", "Name"):
            label = image.GetMetaData(prefix + field).strip().lower() if prefix + field in keys else ""
            if label in known:
                mapping[int(image.GetMetaData(prefix + "LabelValue"))] = known[label]
                break
        index += 1
    if not mapping:
        raise InputError(
            f"{name} has none of the segments {', '.join(s.name for s in SEGMENTS)}; correct "
            "the labels in a segmentation made by THA Annotator so the segments keep their names.")
    return mapping


@dataclass
class LabelMap:
    """A label file in a scan's canonical (z, y, x) layout.

    Attributes
    ----------
    values : uint8 array; side codes 1..4 (:func:`~THAAnnotatorLib.result.segment_code`) when
        ``sided``, otherwise classes 1 acetabulum, 2 femoral head; 0 is background.
    sided : whether the file said which hip each label belongs to.
    """

    values: np.ndarray
    sided: bool

    def classes_for_side(self, side: str, x_range: tuple[int, int]) -> np.ndarray:
        """Class labels (0/1/2) of one hip.

        Parameters
        ----------
        side : "right" or "left".
        x_range : [start, stop) canonical x columns of the side's half of the body; used only
            when the file did not say which side a label belongs to.
        """
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        out = np.zeros(self.values.shape, dtype=np.uint8)
        if self.sided:
            for cls in (ACETABULUM, FEMORAL_HEAD):
                out[self.values == segment_code(side, cls)] = cls
            return out
        start, stop = x_range
        out[..., start:stop] = self.values[..., start:stop]
        return out


def read_label_file(path: str | Path, reference: sitk.Image) -> LabelMap:
    """Read a label file as side codes in the canonical layout of the scan ``reference`` describes.

    Parameters
    ----------
    path : the label file (see the module docstring for the kinds accepted).
    reference : an image with the scan's size, spacing (mm), origin (mm) and direction.

    Returns
    -------
    LabelMap in the scan's canonical layout.

    Raises
    ------
    InputError : the file is missing, unreadable, truncated, multi-layer, holds unknown values
        (NaN included), or has no labels inside the scan.
    """
    path = Path(path)
    name = f"The label file {path.name}"
    if not path.is_file():
        raise InputError(f"{name} does not exist; check the path.")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InputError(f"{name} is not a readable image; save it again as NIfTI or .seg.nrrd.") from error
    if path.name.lower().endswith((".nii", ".nii.gz")):  # ITK reads NaN there as 0, background
        check_nifti_voxels(path, name, fix="save it again with only the values 0..4")
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{name} is not a single-layer 3-D label map (overlapping segments are stored as "
            "layers); remove the overlap in Slicer's Segment Editor and save it again.")
    mapping = _segment_codes(image, name)
    values = sitk.GetArrayViewFromImage(image)
    if mapping is None:
        if values.min() < 0 or values.max() > 4 or not np.all(np.equal(np.mod(values, 1), 0)):
            raise InputError(
                f"{name} holds values other than 0..4; use 0 background, 1 acetabulum, "
                "2 femoral head (or the side codes 1..4 of THA Annotator's segmentation).")
        lookup = np.arange(5, dtype=np.uint8)
    else:
        lookup = np.zeros(max(int(values.max()), max(mapping)) + 1, dtype=np.uint8)
        for value, code in mapping.items():
            lookup[value] = code
    labels = sitk.Cast(image, sitk.sitkInt32)
    resampled = sitk.Resample(labels, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                              sitk.sitkInt32)
    canonical = volume_from_sitk(resampled, name=name).hu.astype(np.int64)
    if canonical.max() <= 0:
        raise InputError(
            f"{name} has no labels inside the scan's volume; check it was drawn on this scan.")
    codes = lookup[np.clip(canonical, 0, len(lookup) - 1)]
    return LabelMap(codes, sided=mapping is not None or int(codes.max()) > FEMORAL_HEAD)
