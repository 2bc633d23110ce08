"""What the pipeline returns: masks in the canonical volume layout plus per-side measurements."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    from .measure import HipMeasurements

SIDES = ("right", "left")
ACETABULUM, FEMORAL_HEAD = 1, 2
CLASS_NAMES = {ACETABULUM: "acetabulum", FEMORAL_HEAD: "femoral head"}


def segment_code(side: str, class_label: int) -> int:
    """Code of a (side, class) pair in :attr:`Annotation.side_labels`: 1..4."""
    return SIDES.index(side) * 2 + class_label


@dataclass
class SliceCircle:
    """The femoral head boundary found in one axial slice."""

    slice_index: int  # canonical z index
    center_ras_mm: tuple[float, float, float]
    radius_mm: float
    boundary_points_ras_mm: list[tuple[float, float, float]] = field(default_factory=list)


@dataclass
class SideResult:
    """Outcome for one hip. ``status`` is "segmented", "metal" or "not_found"."""

    side: str
    status: str
    message: str = ""
    initial_slice: int | None = None
    circles: list[SliceCircle] = field(default_factory=list)
    sphere_center_ras_mm: tuple[float, float, float] | None = None
    head_diameter_mm: float | None = None
    # the head surface at the fitted sphere (afs.surface_check): cortex-to-joint-space drop
    # (HU) and where the mean radial profile falls fastest (mm from the sphere, + outside)
    surface_drop_hu: float | None = None
    surface_edge_offset_mm: float | None = None
    # the pipeline doubts this hip: its sphere failed the surface check (unmended), was
    # refitted in 3-D, or has a diameter outside the usual adult range; exports and slice
    # datasets leave such hips out
    needs_review: bool = False
    warnings: list[str] = field(default_factory=list)
    # THA planning measurements (measure.measure_hips); None where the pipeline did not run them
    measurements: HipMeasurements | None = None
    # a hip the model segmented: Dice per class ("acetabulum", "femoral_head") between its
    # labels and those of a shifted view (model.uncertainty); None where no model ran
    model_agreement: dict[str, float] | None = None


@dataclass
class Annotation:
    """Pipeline output in the canonical (z, y, x) layout of the input :class:`Volume`.

    ``side_labels`` holds 0 for background and :func:`segment_code` (1..4) for the four segments.
    """

    bone: np.ndarray  # uint8 0/1
    side_labels: np.ndarray  # uint8 0..4
    sides: dict[str, SideResult]

    @property
    def labels(self) -> np.ndarray:
        """Class label map: 0 background, 1 acetabulum, 2 femoral head (both sides)."""
        out = np.zeros_like(self.side_labels)
        nonzero = self.side_labels > 0
        out[nonzero] = (self.side_labels[nonzero] - 1) % 2 + 1
        return out


def refuse_without_a_hip(results: dict[str, SideResult]) -> None:
    """Raise :class:`InputError` naming each hip's reason when every hip in ``results`` is
    "not_found"; hips reported as metal implants are a result (a post-operative scan)."""
    if all(r.status == "not_found" for r in results.values()):
        reasons = "; ".join(f"{s} hip: {r.message}" for s, r in results.items())
        raise InputError(f"No hip could be segmented in this scan ({reasons}).")
