"""The ignore label of exports: where a hip the build did not annotate may lie.

A hip with no labels (not asked for with ``--side``, a metal implant, or not found) is not
background: a network trained on it as background would learn to miss hips. Its half of the scan
is set to :data:`IGNORE_LABEL` instead, which nnU-Net v2 leaves out of its loss (the label named
``ignore`` in ``dataset.json``, the highest value) and a MONAI loss must be masked with.

The region is the whole half of the scan on that side of the body's midline, in every slice: the
half the pipeline searches for that hip (:class:`~.afs.frame.SideFrame`). A hip not asked for or
not found has no position, and an implant hides where the acetabulum's and head's labels would
end, so a smaller region (a sphere, the other hip's slices) could leave part of that hip as
background; the whole half cannot. What it costs: that half's other background (soft tissue,
the spine's side) teaches nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..afs.frame import SideFrame
from ..errors import InputError
from ..io import volume_from_sitk
from ..result import CLASS_NAMES, SIDES

IGNORE_LABEL = max(CLASS_NAMES) + 1
"""Label of voxels whose class is unknown: 3, after 0 background, 1 acetabulum, 2 femoral
head."""
IGNORE_NAME = "ignore"
"""nnU-Net v2 treats the label of this name (it must be the highest) as not annotated."""


def ignored_sides(record: dict) -> list[str]:
    """The sides of a build's case ``record`` whose hip has no labels: not asked for, "metal" or
    "not_found". A segmented hip marked for review keeps its labels (it is exported only with
    ``include_flagged``, which asks for them)."""
    results = record.get("results", {})
    return [side for side in SIDES if results.get(side, {}).get("status") != "segmented"]


def ignore_mask(image: sitk.Image, sides: list[str]) -> np.ndarray:
    """The region of the hips of ``sides`` in the scan ``image`` (module docstring), as a bool
    array in the image's stored (k, j, i) layout."""
    volume = volume_from_sitk(image)
    mask = np.zeros(volume.shape, dtype=bool)
    for side in sides:
        frame = SideFrame.for_side(volume, side)
        mask[..., frame.x_start:frame.x_stop] = True
    return volume.to_source_layout(mask)


def write_labels_with_ignore(labels_path: Path, dest: Path, scan: sitk.Image,
                             sides: list[str]) -> None:
    """Copy the label map at ``labels_path`` to ``dest`` with the background voxels of the
    region of ``sides`` (:func:`ignore_mask` of ``scan``) set to :data:`IGNORE_LABEL`. The hips
    that were annotated keep their labels (they lie in their own half)."""
    image = sitk.ReadImage(str(labels_path))
    array = sitk.GetArrayFromImage(image)
    mask = ignore_mask(scan, sides)
    if array.shape != mask.shape:
        raise InputError(f"The label map {labels_path} does not match its scan's size; run "
                         "`tha-annotator build-dataset` again.")
    array[mask & (array == 0)] = IGNORE_LABEL
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    sitk.WriteImage(out, str(dest), useCompression=True)


def no_hip_labelled(record: dict) -> bool:
    """Whether no hip of ``record`` has labels (every side is in :func:`ignored_sides`), as in a
    scan whose requested hips all hold implants: an export has nothing but ignore to take."""
    return len(ignored_sides(record)) == len(SIDES)
