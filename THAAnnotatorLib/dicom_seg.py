"""The label map as a DICOM Segmentation object (SEG) that references the source DICOM series.

The SEG holds the four segments of ``labels.seg.nrrd`` (:data:`~.terminology.SEGMENTS`), each
numbered by its label value (1..4), with the same names and SNOMED CT codes: category
"Anatomical Structure", type Acetabulum or Femoral head, laterality as the type's modifier (where
3D Slicer's terminology keeps it too). It is a BINARY segmentation on the source slices' own
grid, each frame referencing the source slice it was derived from; frames without a labelled
voxel are left out, so a segment whose hip was not segmented is described but has no frames.

highdicom (and pydicom) take a second to import, so they are imported only when a SEG is made.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from . import __version__
from .errors import InputError
from .terminology import ANATOMICAL_STRUCTURE, LATERALITY_CODES, SEGMENTS, STRUCTURE_CODES, Code

if TYPE_CHECKING:
    from pydicom import Dataset

DICOM_SEG_FILE = "labels.seg.dcm"
OPTION = "--dicom-seg"


@dataclass(frozen=True)
class Algorithm:
    """What made the labels, as the SEG's algorithm identification names it (DICOM CID 7162
    family)."""

    name: str
    family: Code


PIPELINE = Algorithm("THA Annotator BE + AFS", Code("DCM", "123103", "Edge Detection"))
"""``annotate``: graph-cut bone extraction and the femoral head's edges and Hough circles."""
NETWORK = Algorithm("THA Annotator 2-D U-Net", Code("DCM", "123110", "Artificial Intelligence"))
"""``predict``: the segmentation network."""


@dataclass(frozen=True)
class SegSource:
    """The DICOM series a SEG references and what made its labels.

    Attributes
    ----------
    headers : the series' slices (pydicom datasets without pixel data), in the order of the
        source layout's slice axis (ITK's k: the first axis of a source-layout array).
    algorithm : :data:`PIPELINE` or :data:`NETWORK`.
    """

    headers: tuple[Dataset, ...]
    algorithm: Algorithm


def check_dicom_input(scan_path: str | Path) -> None:
    """Raise :class:`InputError` unless ``scan_path`` is a folder, as a DICOM series is given;
    cheap, for a check before any work."""
    if not Path(scan_path).is_dir():
        raise InputError(f"argument {OPTION}: needs a DICOM series folder as the scan, and "
                         f"{scan_path} is not a folder; leave out {OPTION} for other formats.")


def read_seg_source(dicom_files: tuple[str, ...], reference: sitk.Image,
                    algorithm: Algorithm) -> SegSource:
    """Read the headers of the series a scan was read from (``dicom_files``, in slice order, as
    :attr:`~.io.LoadedScan.dicom_files` lists them) and check a SEG can reference it.

    A slice without a slice thickness (DICOM makes it optional for CT) is given the distance
    between slices (mm, from ``reference``): highdicom copies it into the SEG's pixel measures.

    Raises
    ------
    InputError : not a DICOM input, or a series a SEG cannot reference slice by slice (one
        multi-frame file, slices of another size than the image read, no common frame of
        reference).
    """
    import pydicom

    size_ijk = reference.GetSize()
    if not dicom_files or len(dicom_files) != size_ijk[2]:
        raise InputError(f"argument {OPTION}: needs a DICOM series of one file per slice; this "
                         f"scan is not one ({len(dicom_files)} DICOM files for {size_ijk[2]} "
                         "slices).")
    headers = tuple(pydicom.dcmread(name, stop_before_pixels=True) for name in dicom_files)
    frames = {str(h.get("FrameOfReferenceUID", "")) for h in headers}
    if len(frames) != 1 or frames == {""}:
        raise InputError(f"argument {OPTION}: the DICOM series' slices do not share one "
                         "FrameOfReferenceUID, which a SEG must reference; export the series "
                         "again with it.")
    for header in headers:
        if (header.Rows, header.Columns) != (size_ijk[1], size_ijk[0]):
            raise InputError(f"argument {OPTION}: the DICOM slices are not all "
                             f"{size_ijk[0]} x {size_ijk[1]} pixels; export the series again.")
        if header.get("SliceThickness") in (None, ""):
            header.SliceThickness = f"{reference.GetSpacing()[2]:.6g}"
    return SegSource(headers, algorithm)


def write_dicom_seg(path: Path, source_labels: np.ndarray, source: SegSource) -> None:
    """Write ``source_labels`` (uint8 0..4, source layout (k, j, i): one (rows, columns) frame
    per slice of ``source.headers``) as a DICOM SEG file at ``path``."""
    import highdicom as hd

    empty = not source_labels.any()
    seg = hd.seg.Segmentation(
        source_images=list(source.headers),
        pixel_array=source_labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_segment_descriptions(source.algorithm),
        series_instance_uid=hd.UID(),
        series_number=_series_number(source.headers[0]),
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="THA Annotator contributors",
        manufacturer_model_name="THA Annotator",
        software_versions=__version__,
        device_serial_number="none",
        series_description="THA Annotator hip labels",
        content_label="HIP_LABELS",
        # a SEG holds at least one frame: with no labelled voxel, every (empty) frame is kept
        omit_empty_frames=not empty,
    )
    seg.save_as(str(path))


def _segment_descriptions(algorithm: Algorithm) -> list:
    import highdicom as hd

    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm.name, family=_coded(algorithm.family), version=__version__)
    descriptions = []
    for segment in SEGMENTS:
        description = hd.seg.SegmentDescription(
            segment_number=segment.label_value,
            segment_label=segment.name,
            segmented_property_category=_coded(ANATOMICAL_STRUCTURE),
            segmented_property_type=_coded(STRUCTURE_CODES[segment.class_label]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification,
            tracking_id=segment.segment_id,
            tracking_uid=hd.UID(),
            display_color=hd.color.CIELabColor.from_rgb(*(255 * c for c in segment.color)),
        )
        # highdicom has no argument for it; DICOM PS3.3 C.8.20.2 puts laterality here
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            _coded(LATERALITY_CODES[segment.side])]
        descriptions.append(description)
    return descriptions


def _coded(code: Code):
    import highdicom as hd

    return hd.sr.CodedConcept(value=code.value, scheme_designator=code.scheme,
                              meaning=code.meaning)


def _series_number(source: Dataset) -> int:
    """A series number for the SEG: one above the source series' (1 where it has none)."""
    try:
        return int(source.get("SeriesNumber", 0)) + 1
    except (TypeError, ValueError):
        return 1
