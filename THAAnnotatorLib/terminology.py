"""The four output segments: names, colours, label values and standard (SNOMED CT) terminology.

Codes follow DICOM PS3.16: category "Anatomical Structure" (CID 7150), structure types from
CID 1005 (Acetabulum, Femoral head) and laterality from CID 244 (Right, Left). 3D Slicer stores a
segment's terminology as a ``TerminologyEntry`` tag, serialised as
``context~category~type~typeModifier~anatomicContext~anatomicRegion~anatomicRegionModifier``
with every code written ``scheme^value^meaning``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .result import ACETABULUM, CLASS_NAMES, FEMORAL_HEAD, SIDES, segment_code

TERMINOLOGY_CONTEXT = "Segmentation category and type - THA Annotator"
"""Terminology context name written into each segment's TerminologyEntry tag."""
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
"""Anatomic region context name (no anatomic region is set: the type is itself anatomy)."""


@dataclass(frozen=True)
class Code:
    """A coded concept: coding scheme designator, code value and code meaning."""

    scheme: str
    value: str
    meaning: str

    def serialized(self) -> str:
        return f"{self.scheme}^{self.value}^{self.meaning}"


ANATOMICAL_STRUCTURE = Code("SCT", "123037004", "Anatomical Structure")
STRUCTURE_CODES = {
    ACETABULUM: Code("SCT", "37783008", "Acetabulum"),
    FEMORAL_HEAD: Code("SCT", "2812003", "Femoral head"),
}
LATERALITY_CODES = {
    "right": Code("SCT", "24028007", "Right"),
    "left": Code("SCT", "7771000", "Left"),
}
_EMPTY_CODE = "^^"

# display colours, RGB in 0..1: bone-like tones for the acetabula, blue/green for the heads
_COLORS = {
    ("right", ACETABULUM): (0.89, 0.76, 0.45),
    ("right", FEMORAL_HEAD): (0.30, 0.62, 0.90),
    ("left", ACETABULUM): (0.93, 0.55, 0.30),
    ("left", FEMORAL_HEAD): (0.35, 0.80, 0.50),
}


@dataclass(frozen=True)
class SegmentInfo:
    """One output segment: a (side, class) pair with its display and terminology properties."""

    side: str
    class_label: int

    @property
    def label_value(self) -> int:
        """Value of this segment in :attr:`~.result.Annotation.side_labels` (1..4)."""
        return segment_code(self.side, self.class_label)

    @property
    def segment_id(self) -> str:
        """Stable identifier, e.g. ``right_femoral_head``."""
        return f"{self.side}_{CLASS_NAMES[self.class_label].replace(' ', '_')}"

    @property
    def name(self) -> str:
        """Display name, e.g. ``Right femoral head``."""
        return f"{self.side.capitalize()} {CLASS_NAMES[self.class_label]}"

    @property
    def color(self) -> tuple[float, float, float]:
        """Display colour, RGB in 0..1."""
        return _COLORS[(self.side, self.class_label)]

    def terminology_entry(self) -> str:
        """The segment's terminology serialised the way 3D Slicer stores it in a tag."""
        return "~".join([
            TERMINOLOGY_CONTEXT,
            ANATOMICAL_STRUCTURE.serialized(),
            STRUCTURE_CODES[self.class_label].serialized(),
            LATERALITY_CODES[self.side].serialized(),
            ANATOMIC_CONTEXT,
            _EMPTY_CODE,
            _EMPTY_CODE,
        ])


SEGMENTS = tuple(
    sorted(
        (SegmentInfo(side, cls) for side in SIDES for cls in (ACETABULUM, FEMORAL_HEAD)),
        key=lambda segment: segment.label_value,
    )
)
"""All four segments in label-value order: right acetabulum, right femoral head, left ..."""
