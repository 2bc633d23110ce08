"""Writing results: label maps in the source geometry, a 3D Slicer segmentation and a JSON report.

Everything is first written into a hidden staging folder and only then moved into place, so a
failure part-way leaves no half-written result behind. An output folder that already holds files
is refused, unless it holds an earlier result and ``overwrite`` is asked for: then the new results
replace it whole, once they are complete.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import __version__
from .dicom_seg import DICOM_SEG_FILE, SegSource, write_dicom_seg
from .errors import InputError, OutputNotWritable, some_names
from .model.files import replace_folder
from .params import Params
from .result import CLASS_NAMES, Annotation, SideResult, SliceCircle
from .statistics import SegmentStatistics, segment_statistics
from .terminology import SEGMENTS
from .volume import Volume

BONE_FILE = "bone.nii.gz"
LABELS_FILE = "labels.nii.gz"
SEGMENTATION_FILE = "labels.seg.nrrd"
REPORT_FILE = "annotation.json"
STANDARD_FILES = (BONE_FILE, LABELS_FILE, SEGMENTATION_FILE, REPORT_FILE)
"""The files every result holds; a DICOM input may add :data:`~.dicom_seg.DICOM_SEG_FILE`."""
_RESERVED_FILES = (*STANDARD_FILES, DICOM_SEG_FILE)
"""Names no extra output file may take."""

_EMPTY_EXTENT = "0 -1 0 -1 0 -1"


def check_output_dir(out_dir: str | Path, input_path: str | Path | None = None,
                     overwrite: bool = False) -> Path:
    """Refuse an output folder that would mix results with the input or with earlier results, or
    that cannot be written; call before processing.

    Parameters
    ----------
    out_dir : the folder results will be written to (it need not exist yet).
    input_path : the scan file or DICOM folder being processed (None: not checked against it).
    overwrite : allow replacing a folder that holds an earlier result (see :func:`write_outputs`).

    Returns
    -------
    The resolved output folder.

    Raises
    ------
    InputError : ``out_dir`` is an existing file, the input file's own folder, the DICOM input
        folder or a folder inside it, or a folder holding the input; or it already holds files
        and ``overwrite`` is off, or they are not an earlier result (no ``annotation.json``).
    OutputNotWritable : the folder cannot be created or written (an ``OSError``).
    """
    out = Path(out_dir).resolve()
    if out.is_file():
        raise InputError(f"The output path {out} is an existing file; choose a folder instead.")
    if input_path is not None:
        _check_apart_from_input(out, Path(input_path).resolve())
    replacing = _replaces_earlier_result(Path(out_dir), overwrite)
    check_writable(out_dir, whole=replacing)
    return out


def check_writable(path: str | Path, whole: bool = False) -> None:
    """Raise :class:`OutputNotWritable`, naming ``path`` as given, when results cannot be written
    there: a file stands in the way, or the folder (when it does not exist yet, the nearest
    existing folder above it) refuses a new file. Writes nothing (a probe file is removed).

    ``whole``: ``path`` is made beside itself and renamed into place (a folder replaced as a
    whole, a file written atomically), so its parent folder is tried instead.
    """
    given = Path(path)
    place = given.resolve().parent if whole else given.resolve()
    existing = next(folder for folder in (place, *place.parents) if folder.exists())
    where = "" if existing == given.resolve() else f" (at {existing})"
    if not existing.is_dir():
        raise OutputNotWritable(f"cannot write to {given}: {existing} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OutputNotWritable(
            f"cannot write to {given}: {error.strerror or error}{where}") from error


def _check_apart_from_input(out: Path, source: Path) -> None:
    """Refuse an output folder (resolved) that is or holds the input, or lies in the DICOM input
    folder (resolved ``source``)."""
    if source.is_dir():
        if out == source or source in out.parents:
            raise InputError(
                f"The output folder {out} is inside the DICOM input folder {source}; choose a "
                "folder outside it so the input series is left untouched."
            )
    elif out == source.parent:
        raise InputError(
            f"The output folder {out} is the folder of the input scan; choose a separate folder "
            "so results are not mixed with the input."
        )
    if out in source.parents:
        raise InputError(
            f"The output folder {out} holds the input {source}; choose a folder outside it so "
            "the input is left untouched."
        )


def _replaces_earlier_result(out_dir: Path, overwrite: bool) -> bool:
    """Whether writing to ``out_dir`` replaces an earlier result (it holds files, among them
    ``annotation.json``, and ``overwrite`` is on); raise :class:`InputError` for a folder holding
    files that may not be replaced. False for a missing or empty folder."""
    names = sorted(entry.name for entry in out_dir.iterdir()) if out_dir.is_dir() else []
    if not names:
        return False
    listed = some_names(names)
    if not overwrite:
        raise InputError(
            f"The output folder {out_dir} already holds {len(names)} file(s) ({listed}); choose "
            "a new or empty folder, or give --overwrite to replace an earlier result with the "
            "new one."
        )
    if not (out_dir / REPORT_FILE).is_file():
        raise InputError(
            f"The output folder {out_dir} holds files ({listed}) but no {REPORT_FILE}, so it is "
            "not an earlier result, which is all --overwrite replaces; choose another folder."
        )
    return True


def write_outputs(
    out_dir: str | Path,
    reference: sitk.Image,
    volume: Volume,
    annotation: Annotation,
    params: Params,
    input_path: str | Path | None = None,
    extra_files: dict[str, bytes] | None = None,
    overwrite: bool = False,
    dicom_seg: SegSource | None = None,
) -> dict[str, Path]:
    """Write all result files into ``out_dir`` in one atomic step.

    Files: ``bone.nii.gz`` (uint8 0/1) and ``labels.nii.gz`` (uint8: 0 background,
    1 acetabulum, 2 femoral head) in the source geometry; ``labels.seg.nrrd``, a 3D Slicer
    segmentation with the four segments of :data:`~.terminology.SEGMENTS`; ``annotation.json``
    with parameters, geometry and per-side measurements and segment statistics (volume ml,
    mean and standard deviation HU: :mod:`.statistics`); ``labels.seg.dcm``, the same four
    segments as a DICOM SEG referencing the source series, when ``dicom_seg`` is given
    (:mod:`.dicom_seg`); and every entry of ``extra_files``.

    Parameters
    ----------
    out_dir : destination folder; created (with its parents) if missing. It must be missing or
        empty, unless ``overwrite``.
    reference : image carrying the source geometry (size, spacing mm, origin mm, direction).
    volume : the canonical volume the annotation was computed on.
    annotation : masks in ``volume``'s canonical layout plus per-side results.
    params : the parameters used, recorded in the JSON report.
    input_path : the scan that was processed, recorded in the JSON report as an absolute path
        (so the report still names it when read from another working folder).
    extra_files : more files to write, plain file name -> content.
    overwrite : replace an ``out_dir`` that holds an earlier result (an ``annotation.json``) as a
        whole: the new results are staged beside it and take its place only once complete, and
        the earlier folder is deleted after that, so nothing of it is mixed with the new results
        or lost when writing fails.
    dicom_seg : the DICOM series the scan was read from (:func:`~.dicom_seg.read_seg_source`),
        to write ``labels.seg.dcm``; None writes no SEG.

    Raises
    ------
    InputError : mismatched inputs, a bad extra file name, or an ``out_dir`` holding files that
        may not be replaced (see ``overwrite``).
    OutputNotWritable : a file could not be written (disk full, say); nothing is left behind.

    Returns
    -------
    dict mapping each written file name to its final path.
    """
    out_dir = Path(out_dir)
    extra_files = dict(extra_files or {})
    _check_write_inputs(out_dir, reference, volume, annotation, extra_files)
    replacing = _replaces_earlier_result(out_dir, overwrite)
    writers: dict[str, Callable[[Path], None]] = {
        BONE_FILE: lambda path: _write_label_image(path, annotation.bone, volume, reference),
        LABELS_FILE: lambda path: _write_label_image(path, annotation.labels, volume, reference),
        SEGMENTATION_FILE: lambda path: _write_segmentation(path, annotation, volume, reference),
        REPORT_FILE: lambda path: _write_report(
            path, _report(reference, volume, annotation, params, input_path)
        ),
    }
    if dicom_seg is not None:
        writers[DICOM_SEG_FILE] = lambda path: write_dicom_seg(
            path, volume.to_source_layout(annotation.side_labels), dicom_seg)
    for name, content in extra_files.items():
        writers[name] = lambda path, content=content: path.write_bytes(content)
    with _staged_folder(out_dir, replacing) as staging:
        for name, write in writers.items():
            try:
                write(staging / name)
            except (OSError, RuntimeError) as error:  # SimpleITK's failed writes: RuntimeError
                raise write_failed(out_dir, name, staging, error) from error
    return {name: out_dir / name for name in writers}


def write_failed(out_dir: Path, name: str, staging: Path,
                 error: OSError | RuntimeError) -> OutputNotWritable:
    """The error of a write into ``staging`` that failed part-way (disk full, say), naming the
    output folder ``out_dir`` and the file ``name``, not the hidden staging folder. SimpleITK's
    RuntimeError gives no system reason, so the disk's free space stands in for it."""
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
    else:
        try:
            free = f"{shutil.disk_usage(staging).free / 2**20:.1f} MiB free on its disk"
        except OSError:
            free = "is the disk full?"
        reason = f"the image writer failed ({free})"
    return OutputNotWritable(f"cannot write to {out_dir}: {reason} (writing {name})")


def _check_write_inputs(
    out_dir: Path,
    reference: sitk.Image,
    volume: Volume,
    annotation: Annotation,
    extra_files: dict[str, bytes],
) -> None:
    if out_dir.is_file():
        raise InputError(f"The output path {out_dir} is an existing file; choose a folder instead.")
    for name, array in (("bone", annotation.bone), ("side_labels", annotation.side_labels)):
        if array.shape != volume.shape:
            raise InputError(
                f"The annotation's {name} array has shape {array.shape} but the volume has shape "
                f"{volume.shape}; pass the annotation computed on this volume."
            )
    expected = tuple(volume.source_shape[::-1])
    if tuple(reference.GetSize()) != expected:
        raise InputError(
            f"The reference image has size {tuple(reference.GetSize())} but the volume's source "
            f"layout has size {expected}; pass the reference read together with this volume."
        )
    for name in extra_files:
        if name in _RESERVED_FILES or Path(name).name != name or name in ("", ".", ".."):
            raise InputError(
                f"The extra output file name {name!r} is not a plain file name distinct from "
                f"{', '.join(_RESERVED_FILES)}; rename it."
            )


@contextmanager
def _staged_folder(out_dir: Path, replacing: bool) -> Iterator[Path]:
    """Yield an empty hidden folder; on success its files become ``out_dir``'s.

    Into an existing empty ``out_dir`` (the user's folder, kept with its permissions) the staged
    files are moved one by one with ``os.replace``; otherwise the staging folder is a sibling that
    takes ``out_dir``'s place (:func:`~.model.files.replace_folder`; ``replacing``: an earlier
    ``out_dir`` is deleted only after that). On any exception the staging folder and everything
    in it is removed, and ``out_dir`` is left as it was. Ctrl-C is held off while the files are
    moved into place (:func:`_sigint_held`), so it never leaves half of them moved, nor a
    complete result reported as cancelled.
    """
    into_existing = out_dir.is_dir() and not replacing
    if into_existing:
        staging = out_dir / f".partial-{uuid.uuid4().hex[:12]}"
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        yield staging
        with _sigint_held():
            if into_existing:
                for staged in sorted(staging.iterdir()):
                    os.replace(staged, out_dir / staged.name)
                staging.rmdir()
            else:
                replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Ignore Ctrl-C (SIGINT) for the moment staged results take a few renames to be moved into
    place: an interrupt then would leave them half moved, or complete but reported as cancelled.
    One that comes meanwhile is dropped (the results are complete; the run ends right after).
    Python handles signals in the main thread only, so elsewhere (a Dask worker's thread) this
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def _source_image(canonical: np.ndarray, volume: Volume, reference: sitk.Image) -> sitk.Image:
    """A uint8 image of a canonical-layout array, in the reference's source geometry."""
    image = sitk.GetImageFromArray(volume.to_source_layout(canonical.astype(np.uint8, copy=False)))
    image.CopyInformation(reference)
    return image


def _write_label_image(
    path: Path, canonical: np.ndarray, volume: Volume, reference: sitk.Image
) -> None:
    sitk.WriteImage(_source_image(canonical, volume, reference), str(path), useCompression=True)


def _write_segmentation(
    path: Path, annotation: Annotation, volume: Volume, reference: sitk.Image
) -> None:
    """Write a 3D Slicer ``.seg.nrrd``: one labelmap layer holding all four segments."""
    image = _source_image(annotation.side_labels, volume, reference)
    array = sitk.GetArrayViewFromImage(image)
    for key, value in _segmentation_header(array).items():
        image.SetMetaData(key, value)
    sitk.WriteImage(image, str(path), useCompression=True)


def _segmentation_header(source_labels: np.ndarray) -> dict[str, str]:
    """Slicer segmentation header fields for a source-layout (k, j, i) array of codes 1..4."""
    header = {
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|Closed surface|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
    }
    for index, segment in enumerate(SEGMENTS):
        prefix = f"Segment{index}_"
        header.update({
            prefix + "ID": segment.segment_id,
            prefix + "Name": segment.name,
            prefix + "NameAutoGenerated": "0",
            prefix + "Color": " ".join(f"{c:g}" for c in segment.color),
            prefix + "ColorAutoGenerated": "0",
            prefix + "LabelValue": str(segment.label_value),
            prefix + "Layer": "0",
            prefix + "Extent": _extent(source_labels == segment.label_value),
            prefix + "Tags": f"TerminologyEntry:{segment.terminology_entry()}|",
        })
    return header


def _extent(mask: np.ndarray) -> str:
    """Slicer extent "i0 i1 j0 j1 k0 k1" (inclusive voxel bounds) of a (k, j, i) mask."""
    bounds = []
    for axis in (2, 1, 0):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if present.size == 0:
            return _EMPTY_EXTENT
        bounds += [str(present[0]), str(present[-1])]
    return " ".join(bounds)


def _write_report(path: Path, report: dict) -> None:
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _report(
    reference: sitk.Image,
    volume: Volume,
    annotation: Annotation,
    params: Params,
    input_path: str | Path | None,
) -> dict:
    """The JSON report as plain Python values (non-finite numbers become null)."""
    statistics = segment_statistics(volume, annotation.side_labels, tuple(annotation.sides))
    return _plain({
        "software": {"name": "THA Annotator", "version": __version__},
        "input_path": str(Path(input_path).resolve()) if input_path is not None else None,
        "params": params.to_dict(),
        "labels": {"0": "background", **{str(k): v for k, v in CLASS_NAMES.items()}},
        "segments": [
            {"id": s.segment_id, "name": s.name, "label_value": s.label_value} for s in SEGMENTS
        ],
        "volume": {
            "canonical_axes": "z, y, x = patient Superior, Posterior, Left",
            "canonical_shape_zyx": volume.shape,
            "spacing_mm_zyx": volume.spacing_mm,
            "canonical_index_to_ras_mm": _ras_matrix(volume),
            "source_size_ijk": reference.GetSize(),
            "source_spacing_mm_ijk": reference.GetSpacing(),
            "source_origin_lps_mm": reference.GetOrigin(),
            "source_direction_lps": reference.GetDirection(),
        },
        "sides": {side: _side_report(result, volume, statistics[side])
                  for side, result in annotation.sides.items()},
    })


def _ras_matrix(volume: Volume) -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ volume.index_to_lps


def _source_slice(volume: Volume, z: int) -> dict:
    """Where canonical slice ``z`` lies in the source file: its ITK index axis and index."""
    numpy_axis = volume.source_axes[0]
    index = volume.shape[0] - 1 - z if volume.source_flipped[0] else z
    return {"axis": "kji"[numpy_axis], "index": index}


def _side_report(result: SideResult, volume: Volume,
                 statistics: dict[str, SegmentStatistics]) -> dict:
    report = asdict(result)
    report["statistics"] = {key: asdict(value) for key, value in statistics.items()}
    report["initial_slice_source"] = (
        None if result.initial_slice is None else _source_slice(volume, result.initial_slice)
    )
    report["circles"] = [_circle_report(circle, volume) for circle in result.circles]
    return report


def _circle_report(circle: SliceCircle, volume: Volume) -> dict:
    report = asdict(circle)
    report["source_slice"] = _source_slice(volume, circle.slice_index)
    return report


def _plain(value):
    """Convert numpy values, tuples and non-finite floats to JSON-ready Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
