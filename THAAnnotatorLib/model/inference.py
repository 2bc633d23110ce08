"""Whole-scan prediction with a trained network.

For each hip: bone extraction (BE, :func:`~THAAnnotatorLib.bone.extract_bone`) gives the bone
mask, :func:`~.localize.locate_head` the ROI center, :mod:`.roi` the ROI slices; the network
predicts class probabilities per ROI slice in batches (on the GPU when there is one), and these
are resampled (bilinear) onto the scan's voxels of that hip's half of the body, where the most
probable class wins; of the femoral head only the largest connected piece is kept, and the
acetabulum only in the slices that hold some femoral head (the labels' definition, see
:mod:`THAAnnotatorLib.labels`). Metal is judged at each hip as in the pipeline
(:mod:`THAAnnotatorLib.metal`), in the region around the localized head: a hip with an implant is
reported and left out. Labels that are not a femoral head in its socket (:mod:`.presence`: a
scan without hips) are not kept and the hip is reported as not found; a hip that is kept gets
the network's agreement with itself under a shifted view (:mod:`.uncertainty`), and is marked
for review when that agreement is low or the scan is coarser than the method was made for.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..afs.frame import SideFrame
from ..bone import extract_bone
from ..errors import stage_marker
from ..metal import Metal, head_not_found_result, implant_at_hip, metal_elsewhere_warnings
from ..params import Params
from ..pipeline import resolution_warnings
from ..result import (ACETABULUM, FEMORAL_HEAD, SIDES, Annotation, SideResult, refuse_without_a_hip,
                      segment_code)
from ..volume import Volume
from .localize import locate_head
from .config import inference_batch_size
from .network import LoadedModel
from .presence import HeadShape, not_a_head_reason
from .roi import RoiPlacement, place_roi, sample_image
from .uncertainty import doubt_warnings, shift_agreement

MODEL_MESSAGE = "segmented by the model (no sphere fitted)"
# Share of the progress bar taken by bone extraction; the hips share the rest, each mostly for the
# network's labels, the last fifth for the shifted view's (measured on the 512 x 512 x 200
# phantom, two threads: bone extraction 1.6 s, each hip 0.6 s and 0.1 s).
_BE_SHARE = 0.5


@torch.inference_mode()
def predict_probabilities(model: LoadedModel, images: np.ndarray,
                          batch_size: int | None = None) -> torch.Tensor:
    """Class probabilities of ROI slices.

    Parameters
    ----------
    model : a loaded network.
    images : float32 (n, P, P) ROI slices in [0, 1].
    batch_size : slices per forward pass; None: :func:`~.config.inference_batch_size` of the
        model's device.

    Returns
    -------
    float32 tensor (n, 3, P, P) on the model's device: background, acetabulum, femoral head.
    """
    if batch_size is None:
        batch_size = inference_batch_size(model.device.type)
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size]))
        logits = model.network(batch[:, None].to(model.device))
        out.append(torch.softmax(logits, dim=1))
    if not out:
        size = model.config.roi.pixels
        return torch.zeros((0, 3, size, size), device=model.device)
    return torch.cat(out)


@torch.inference_mode()
def roi_to_voxels(probabilities: torch.Tensor, placement: RoiPlacement, height: int,
                  x_range: tuple[int, int]) -> np.ndarray:
    """Class labels on the scan's voxels from ROI probabilities.

    Parameters
    ----------
    probabilities : (n, 3, P, P), one row per slice of ``placement``.
    placement : the ROI the probabilities belong to.
    height : number of canonical y rows of the scan.
    x_range : [start, stop) canonical x columns to label (the hip's half of the body).

    Returns
    -------
    uint8 (n, height, stop - start): 0 background, 1 acetabulum, 2 femoral head; voxels
    outside the ROI are background.
    """
    size = placement.spec.pixels
    labels = np.zeros((len(probabilities), height, x_range[1] - x_range[0]), dtype=np.uint8)
    # bilinear samples with zero padding: only rows and columns less than a pixel outside the
    # ROI get any probability (half a pixel more is sampled, to spare float32 rounding), the
    # rest stay background: a 160 mm ROI covers about a third of a 512 x 512 scan's half
    rows = placement.y_to_row(np.arange(height))
    cols = placement.x_to_col(np.arange(*x_range))
    inside_rows = np.flatnonzero((rows > -1.5) & (rows < size + 0.5))
    inside_cols = np.flatnonzero((cols > -1.5) & (cols < size + 0.5))
    if not (len(probabilities) and inside_rows.size and inside_cols.size):
        return labels
    # y_to_row and x_to_col are monotonic, so the inside ones are one run of each
    row_span = slice(inside_rows[0], inside_rows[-1] + 1)
    col_span = slice(inside_cols[0], inside_cols[-1] + 1)
    rows = torch.as_tensor(rows[row_span], dtype=torch.float32)
    cols = torch.as_tensor(cols[col_span], dtype=torch.float32)
    v = (2.0 * rows / (size - 1) - 1.0).view(-1, 1).expand(len(rows), len(cols))
    u = (2.0 * cols / (size - 1) - 1.0).view(1, -1).expand(len(rows), len(cols))
    grid = torch.stack([u, v], dim=-1).to(probabilities.device)
    grid = grid.expand(len(probabilities), *grid.shape)
    sampled = F.grid_sample(probabilities, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=True)
    # the most probable class, ties to the lower class as argmax does (comparisons are much
    # faster than argmax over the channel axis on the CPU)
    background, acetabulum, head = sampled.unbind(dim=1)
    inside = torch.zeros(background.shape, dtype=torch.uint8, device=sampled.device)
    inside[(acetabulum > background) & (acetabulum >= head)] = ACETABULUM
    inside[(head > background) & (head > acetabulum)] = FEMORAL_HEAD
    labels[:, row_span, col_span] = inside.cpu().numpy()
    return labels


def keep_largest_head(labels: np.ndarray) -> None:
    """Relabel as background every femoral head voxel outside the largest 3-D connected
    femoral head region (in place): a hip has one head, so other pieces are false positives."""
    pieces, count = ndimage.label(labels == FEMORAL_HEAD)
    if count > 1:
        sizes = np.bincount(pieces.ravel())[1:]
        labels[(pieces > 0) & (pieces != int(np.argmax(sizes)) + 1)] = 0


def clear_acetabulum_outside_head_slices(labels: np.ndarray) -> None:
    """Relabel as background the acetabulum in slices (axis 0) without femoral head (in place).

    Both classes are defined only in the slices the head's sphere spans; a 2-D network cannot
    see where that slab ends, and on held-out phantoms it carried the acetabulum a slice above
    the head's top (10-epoch weights: acetabulum Dice 0.884 without this rule, 0.891 with it).
    """
    no_head = ~(labels == FEMORAL_HEAD).any(axis=(1, 2))
    labels[no_head] = 0  # these slices hold only background and acetabulum


def label_roi(model: LoadedModel, hu: np.ndarray, placement: RoiPlacement,
              x_range: tuple[int, int], batch_size: int | None = None) -> np.ndarray:
    """One hip's class labels from the network.

    Parameters
    ----------
    model : a loaded network.
    hu : the scan's canonical CT values, HU.
    placement : the hip's ROI.
    x_range : [start, stop) canonical x columns to label (the hip's half of the body).
    batch_size : ROI slices per forward pass (None: the device's default).

    Returns
    -------
    uint8 (len(placement.slices), y, stop - start): 0 background, 1 acetabulum, 2 femoral head,
    with only the largest femoral head piece and the acetabulum only in slices holding head.
    """
    probabilities = predict_probabilities(model, sample_image(hu, placement), batch_size)
    labels = roi_to_voxels(probabilities, placement, hu.shape[1], x_range)
    keep_largest_head(labels)
    clear_acetabulum_outside_head_slices(labels)
    return labels


def typical_head_radius_mm(params: Params) -> float:
    """Radius (mm) sizing a hip's metal region where no sphere is fitted: the middle of the usual
    adult head diameters. The localized center lies 5-10 mm from the true one
    (:mod:`.localize`), well within the region's margin
    (:data:`~THAAnnotatorLib.metal.CUP_MARGIN_MM`)."""
    return float(np.mean(params.usual_head_diameter_mm)) / 2.0


def _side_frame_mm(frame: SideFrame, zyx_canonical: np.ndarray,
                   spacing_mm: np.ndarray) -> np.ndarray:
    """A canonical (z, y, x) index as side-frame mm."""
    zyx = np.array(zyx_canonical, dtype=float)
    zyx[2] = frame.to_frame_x(zyx[2])
    return zyx * spacing_mm


def _head_shape(volume: Volume, frame: SideFrame, placement: RoiPlacement,
                labels: np.ndarray) -> HeadShape:
    """:class:`HeadShape` of one hip's labels (on ``placement.slices`` and the frame's columns)."""
    hu = volume.hu[placement.slices, :, frame.x_start:frame.x_stop]
    if frame.mirrored:  # the side frame runs lateral -> medial
        labels, hu = labels[..., ::-1], hu[..., ::-1]
    return HeadShape.measure(labels, hu, volume.spacing_mm)


def predict_scan(volume: Volume, model: LoadedModel, params: Params = Params(),
                 sides=SIDES, batch_size: int | None = None,
                 progress: Callable[[float, str], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> Annotation:
    """Bone mask and network labels of the hips of one scan.

    Parameters
    ----------
    volume : the scan, canonical layout, HU.
    model : a loaded network.
    params : pipeline parameters (bone extraction; metal threshold and volume; the head sizes
        :mod:`.presence` accepts).
    sides : the hips to label.
    batch_size : ROI slices per forward pass (None: :func:`~.config.inference_batch_size`).
    progress : called with (fraction 0..1, message).
    cancel : polled between stages; True raises :class:`~THAAnnotatorLib.errors.Cancelled`.

    Returns
    -------
    Annotation: the BE bone mask, side codes from the network, and per hip a status
    ("segmented", "metal", "not_found": also when the network's labels are not a femoral head
    in its socket, :mod:`.presence`, with the reason) and, for a segmented hip, the agreement
    under a shifted view (``model_agreement``, :mod:`.uncertainty`); no sphere is fitted, so
    centers and diameters are None.

    Raises
    ------
    InvalidParam : ``params`` outside their ranges (:meth:`Params.validate`), before any work.
    InputError : every requested hip is "not_found" (hips that are all metal are a result).
    """
    params.validate()

    step = stage_marker(progress, cancel, "Prediction was cancelled.")
    step(0.0, "bone extraction")
    bone = extract_bone(volume, params, None if progress is None else
                        lambda fraction, message: progress(_BE_SHARE * fraction, message), cancel)
    side_labels = np.zeros(volume.shape, dtype=np.uint8)
    results: dict[str, SideResult] = {}
    hip_share = (1.0 - _BE_SHARE) / len(sides)
    for i, side in enumerate(sides):
        step(_BE_SHARE + i * hip_share, f"{side} hip")
        frame = SideFrame.for_side(volume, side)
        metal = Metal.find(frame.view(volume.hu), volume.spacing_mm, params.metal_threshold_hu)
        center = locate_head(volume, bone, frame)
        placement = None if center is None else place_roi(
            volume.shape, volume.spacing_mm, center, side, model.config.roi)
        if placement is None or len(placement.slices) == 0:
            results[side] = head_not_found_result(side, metal, "no thick bone", params)
            continue
        center_mm = _side_frame_mm(frame, center, volume.spacing_mm)
        radius_mm = typical_head_radius_mm(params)
        implant = implant_at_hip(side, metal, center_mm, radius_mm, params)
        if implant is not None:
            results[side] = implant
            continue
        x_range = (frame.x_start, frame.x_stop)
        labels = label_roi(model, volume.hu, placement, x_range, batch_size)
        if not (labels == FEMORAL_HEAD).any():
            results[side] = SideResult(side, "not_found", "femoral head not found by the model")
            continue
        reason = not_a_head_reason(_head_shape(volume, frame, placement, labels), params)
        if reason is not None:
            results[side] = head_not_found_result(side, metal, reason, params)
            continue
        target = side_labels[placement.slices, :, frame.x_start:frame.x_stop]
        for cls in (ACETABULUM, FEMORAL_HEAD):
            target[labels == cls] = segment_code(side, cls)
        side_labels[placement.slices, :, frame.x_start:frame.x_stop] = target
        step(_BE_SHARE + (i + 0.8) * hip_share, f"{side} hip: shifted view")
        agreement = shift_agreement(
            labels, placement, lambda view: label_roi(model, volume.hu, view, x_range, batch_size))
        # the network fits no sphere, so no surface check vouches for its labels: whatever
        # the scan or the network's own doubt gives cause for marks the hip for review
        warnings = (metal_elsewhere_warnings(volume, frame, metal, center_mm, radius_mm, params)
                    + resolution_warnings(volume.spacing_mm) + doubt_warnings(agreement))
        results[side] = SideResult(side, "segmented", MODEL_MESSAGE, needs_review=bool(warnings),
                                   warnings=warnings, model_agreement=agreement)
    step(1.0, "done")
    refuse_without_a_hip(results)
    return Annotation(bone=bone, side_labels=side_labels, sides=results)
