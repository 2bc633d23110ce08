"""Per-segment statistics of a result, as TotalSegmentator's ``--statistics`` gives them: the
volume (ml) of each labelled segment (acetabulum and femoral head of each hip) and the CT
intensity inside it (mean and standard deviation, HU).

They are computed from the label map and the CT on the scan's own voxels: a segment's volume is
its voxel count times the volume of one voxel (from the spacing and direction, mm^3), and its
intensity statistics are over the HU of those voxels. ``annotation.json`` (every command that
writes one: ``annotate``, ``demo``, ``predict``, ``build-dataset``), the batch manifest and the
batch report carry them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .result import CLASS_NAMES, SIDES, segment_code
from .volume import Volume

SEGMENT_KEYS = {label: name.replace(" ", "_") for label, name in CLASS_NAMES.items()}
"""The key of each class in the statistics: ``acetabulum``, ``femoral_head``."""
MM3_PER_ML = 1000.0


@dataclass(frozen=True)
class SegmentStatistics:
    """One segment's size and intensity.

    Attributes
    ----------
    volume_ml : the segment's volume in millilitres (0 for an empty segment).
    mean_hu : mean CT value of its voxels, HU; None for an empty segment.
    std_hu : standard deviation of its voxels' CT values (population, ddof 0), HU; None for an
        empty segment.
    """

    volume_ml: float
    mean_hu: float | None
    std_hu: float | None


STATISTICS = tuple(f.name for f in fields(SegmentStatistics))
"""The quantities of a segment: ``volume_ml``, ``mean_hu``, ``std_hu``."""


def voxel_volume_ml(volume: Volume) -> float:
    """The volume of one voxel of ``volume`` in millilitres (|det| of its index-to-mm matrix)."""
    return abs(float(np.linalg.det(volume.index_to_lps[:3, :3]))) / MM3_PER_ML


def segment_statistics(volume: Volume, side_labels: np.ndarray,
                       sides: tuple[str, ...] = SIDES) -> dict[str, dict[str, SegmentStatistics]]:
    """Volume (ml) and HU statistics of each hip's segments.

    Parameters
    ----------
    volume : the CT (HU) in its canonical layout.
    side_labels : the per-side label map in the same layout (0 background, 1..4 the segments of
        :func:`~.result.segment_code`), as :attr:`~.result.Annotation.side_labels`.
    sides : the hips to report.

    Returns
    -------
    side -> class key (:data:`SEGMENT_KEYS`) -> :class:`SegmentStatistics`.
    """
    if side_labels.shape != volume.shape:
        raise ValueError(f"label map shape {side_labels.shape} differs from the CT's "
                         f"{volume.shape}")
    labelled = side_labels > 0  # one pass over the scan; the segments are small
    codes = side_labels[labelled]
    hu = volume.hu[labelled].astype(np.float64)
    ml_per_voxel = voxel_volume_ml(volume)
    statistics: dict[str, dict[str, SegmentStatistics]] = {}
    for side in sides:
        statistics[side] = {}
        for label, key in SEGMENT_KEYS.items():
            values = hu[codes == segment_code(side, label)]
            statistics[side][key] = SegmentStatistics(
                volume_ml=values.size * ml_per_voxel,
                mean_hu=float(values.mean()) if values.size else None,
                std_hu=float(values.std()) if values.size else None)
    return statistics
