"""Reading CT scans from files and DICOM folders into a canonical :class:`~.volume.Volume`.

SimpleITK reads every supported format; its physical space is LPS, so the geometry of a file
maps directly onto :func:`~.volume.canonicalize`. Each read keeps a ``reference`` image with the
file's own geometry so that label maps can be written back in the layout the user loaded.
NIfTI files are also checked raw (:mod:`.nifti_raw`): ITK's reader hides a truncated data block
and NaN or infinite voxels there. The input is only ever read, never written.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import nifti_raw
from .errors import InputError
from .volume import Volume, canonicalize

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
"""File name endings :func:`read_scan` accepts; a folder is read as a DICOM series."""

MIN_SLICES = 3
"""Fewest voxels a CT volume may have along any axis."""
AIR_MAX_HU = -200.0
"""A CT in Hounsfield units has air (about -1000 HU) around the patient, so some voxels must
lie below this value."""
DENSE_TISSUE_MIN_HU = 100.0
"""A hip CT contains bone (above ~200 HU), so some voxels must lie above this value."""

_SUPPORTED_FILES = "a .nii, .nii.gz, .nrrd, .nhdr, .mha or .mhd file"
_REEXPORT_CT = "re-export the CT from the scanner or PACS without them"


@dataclass
class LoadedScan:
    """A scan read from disk.

    Attributes
    ----------
    volume : the CT in canonical (z, y, x) = (S, P, L) layout, Hounsfield units.
    reference : an image with the source file's size, spacing (mm), origin (mm, LPS) and
        direction; its pixels are a zero placeholder. Outputs are written in this geometry.
    path : the file or DICOM folder that was read.
    dicom_files : for a DICOM folder, the files of the series that was read, in the order of the
        source layout's slice axis (ITK's k, the first numpy axis); empty for an image file.
    """

    volume: Volume
    reference: sitk.Image
    path: Path
    dicom_files: tuple[str, ...] = ()


def read_scan(path: str | Path) -> LoadedScan:
    """Read a CT scan file or DICOM series folder and check that it is a usable CT.

    Parameters
    ----------
    path : a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd) file, or a
        folder holding one or more DICOM series (the series with most files is read).

    Returns
    -------
    LoadedScan with the canonical volume, the source-geometry reference image and the path.

    Raises
    ------
    InputError : the path is missing, not a supported image, damaged, or not a 3-D CT in HU.
    """
    path = Path(path)
    image, dicom_files = _read_with_series_files(path)
    volume = volume_from_sitk(image, name=f"The scan {path.name}")
    validate_ct(volume, name=f"The scan {path.name}")
    return LoadedScan(volume=volume, reference=_geometry_placeholder(image), path=path,
                      dicom_files=dicom_files)


def read_image(path: str | Path) -> sitk.Image:
    """Read a scan file or DICOM series folder as it is stored (no checks that it is a CT).

    Raises
    ------
    InputError : the path is missing, not a supported image, or damaged, or it is a NIfTI file
        with NaN or infinite voxels (which ITK would read as 0).
    """
    return _read_with_series_files(Path(path))[0]


def _read_with_series_files(path: Path) -> tuple[sitk.Image, tuple[str, ...]]:
    """The image at ``path`` (a file, or the chosen DICOM series of a folder) and, for a folder,
    the series' files in slice order (empty for a file)."""
    if not path.exists():
        raise InputError(f"The scan {path} does not exist; check the path and try again.")
    if not path.is_dir():
        return _read_image_file(path), ()
    files = chosen_dicom_series(path)
    return _read_dicom_series(path, files), files


def volume_from_sitk(image: sitk.Image, name: str = "The image") -> Volume:
    """Convert a 3-D SimpleITK image to a canonical :class:`Volume`.

    Parameters
    ----------
    image : 3-D single-component image; its spacing (mm), origin (mm) and direction are in
        ITK's LPS physical space.
    name : how error messages refer to the image, e.g. "The scan ct.nii.gz".

    Returns
    -------
    Volume in canonical (S, P, L) layout with float32 intensities.
    """
    if image.GetDimension() == 2:
        raise InputError(f"{name} is a single 2-D slice; load the whole 3-D CT series instead.")
    if image.GetDimension() != 3:
        raise InputError(
            f"{name} has {image.GetDimension()} dimensions; load a single 3-D CT volume "
            "(not a time series or multi-volume file)."
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{name} has {image.GetNumberOfComponentsPerPixel()} values per voxel (a colour or "
            "vector image); load a grey-scale CT volume."
        )
    return canonicalize(sitk.GetArrayFromImage(image), _array_index_to_lps(image))


def sitk_reference_from_volume(volume: Volume) -> sitk.Image:
    """An image with the geometry of ``volume``'s source layout, for volumes not read from a file.

    Parameters
    ----------
    volume : any canonical volume, e.g. a generated phantom or an array taken from Slicer.

    Returns
    -------
    sitk.Image of zeros (uint8) whose size, spacing (mm), origin (mm, LPS) and direction
    describe ``volume.to_source_layout(...)`` arrays.
    """
    matrix = volume.source_index_to_lps()
    # numpy axes (0, 1, 2) of the source array are ITK index axes (k, j, i)
    columns = matrix[:3, 2::-1]
    spacing = np.linalg.norm(columns, axis=0)
    reference = sitk.Image([int(n) for n in volume.source_shape[::-1]], sitk.sitkUInt8)
    reference.SetSpacing([float(s) for s in spacing])
    reference.SetOrigin([float(o) for o in matrix[:3, 3]])
    reference.SetDirection([float(d) for d in (columns / spacing).ravel()])
    return reference


def validate_ct(volume: Volume, name: str = "The volume") -> None:
    """Check that a volume is a 3-D CT in Hounsfield units the pipeline can work on.

    Rules: at least :data:`MIN_SLICES` voxels along every axis; only finite values; not
    constant; some voxels below :data:`AIR_MAX_HU` (air around the patient; MR images and CTs
    saved without their rescale slope/intercept have none) and some above
    :data:`DENSE_TISSUE_MIN_HU` (bone).

    Parameters
    ----------
    volume : the canonical volume to check.
    name : how error messages refer to the volume.

    Raises
    ------
    InputError : with one sentence naming the first rule the volume breaks.
    """
    hu = volume.hu
    if hu.size == 0:
        raise InputError(f"{name} is empty (it has no voxels); load a CT scan with image data.")
    if min(hu.shape) < MIN_SLICES:
        raise InputError(
            f"{name} is only {min(hu.shape)} voxel(s) thick along one axis, which makes it a 2-D "
            "slice or a thin slab; load the full 3-D CT series."
        )
    finite = np.isfinite(hu)
    if not finite.all():
        nan_count = int(np.count_nonzero(np.isnan(hu)))
        inf_count = hu.size - int(np.count_nonzero(finite)) - nan_count
        raise InputError(_non_finite_message(name, nan_count, inf_count, _REEXPORT_CT))
    low, high = float(hu.min()), float(hu.max())
    if low == high:
        raise InputError(
            f"{name} has the same value ({low:g}) in every voxel; load a CT scan with image "
            "content."
        )
    if low > AIR_MAX_HU:
        raise InputError(
            f"{name} has no values below {AIR_MAX_HU:g} HU (lowest {low:g}), so it shows no air "
            "and is not a CT in Hounsfield units (perhaps an MR image or a CT saved without its "
            "rescale slope/intercept); load the original CT."
        )
    if high < DENSE_TISSUE_MIN_HU:
        raise InputError(
            f"{name} has no values above {DENSE_TISSUE_MIN_HU:g} HU (highest {high:g}), so it "
            "shows no bone and is not a hip CT in Hounsfield units; load the original CT."
        )


def check_nifti_voxels(path: Path, name: str, fix: str = _REEXPORT_CT) -> None:
    """Check the raw voxel data of a .nii or .nii.gz file: complete, and no NaN or infinity.

    ITK's NIfTI reader fills missing data with zeros and reads NaN and infinite voxels as 0,
    so neither shows in the image it returns; :mod:`.nifti_raw` looks at the file itself.

    Parameters
    ----------
    path : the NIfTI file.
    name : how error messages refer to it, e.g. "The scan ct.nii.gz".
    fix : what to do about NaN or infinite voxels, the end of that error's sentence.

    Raises
    ------
    InputError : the file is truncated or damaged, or holds NaN or infinite voxels.
    """
    check = nifti_raw.check_voxels(path)
    if check is None or not check.complete:
        raise InputError(_damaged_message(name))
    if check.nan_count or check.inf_count:
        raise InputError(_non_finite_message(name, check.nan_count, check.inf_count, fix))


def _non_finite_message(name: str, nan_count: int, inf_count: int, fix: str) -> str:
    """The one-sentence error for an image with NaN or infinite voxels, counting both."""
    return f"{name} contains {nan_count} NaN and {inf_count} infinite voxel(s); {fix}."


def _damaged_message(name: str) -> str:
    """The one-sentence error for a file whose voxel data is incomplete or unreadable."""
    return (f"{name} is damaged or truncated (its voxel data is incomplete); re-export or copy "
            "it again.")


def _array_index_to_lps(image: sitk.Image) -> np.ndarray:
    """4 x 4 matrix from homogeneous numpy indices (k, j, i) of ``image`` to LPS mm."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    ijk_to_lps = direction * np.asarray(image.GetSpacing(), dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = ijk_to_lps[:, ::-1]
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def _geometry_placeholder(image: sitk.Image) -> sitk.Image:
    """A uint8 image of zeros with ``image``'s size, spacing, origin and direction."""
    reference = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    reference.CopyInformation(image)
    return reference


def _read_image_file(path: Path) -> sitk.Image:
    """Read a single image file, translating SimpleITK failures into :class:`InputError`."""
    lower_name = path.name.lower()
    if lower_name.endswith(".dcm"):
        raise InputError(
            f"The file {path.name} is a single DICOM file; pass the folder that holds the whole "
            "series."
        )
    if not lower_name.endswith(FILE_SUFFIXES):
        raise InputError(
            f"The file {path.name} is not a supported scan format; choose {_SUPPORTED_FILES} "
            "or a DICOM series folder."
        )
    if path.stat().st_size == 0:
        raise InputError(f"The scan {path.name} is an empty file; re-export or copy it again.")
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise InputError(
            f"The scan {path.name} is not a readable image: its contents are not in the format "
            "its name says, or its header is damaged; re-export or copy it again."
        ) from error
    if lower_name.endswith((".nii", ".nii.gz")):
        check_nifti_voxels(path, f"The scan {path.name}")
    try:
        return reader.Execute()
    except RuntimeError as error:
        raise InputError(_damaged_message(f"The scan {path.name}")) from error


def dicom_series_files(folder: str | Path) -> dict[str, tuple[str, ...]]:
    """The DICOM series in ``folder`` (not its sub-folders): series UID -> its files, in slice
    order; empty for a folder without DICOM files.

    GDCM's own warning for a folder without series (printed by ITK straight onto the terminal's
    stderr) is held back while the folder is searched: the caller says what is wrong instead.
    """
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return {sid: tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid))
                for sid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))}
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def chosen_dicom_series(folder: Path) -> tuple[str, ...]:
    """The files, in slice order, of the DICOM series in ``folder`` (not its sub-folders) that
    is read as the scan: the one with most files (a warning names it when there are several).

    Raises
    ------
    InputError : the folder holds no DICOM series.
    """
    files = dicom_series_files(folder)
    if not files:
        raise InputError(
            f"The folder {folder} holds no DICOM series; choose the folder with the CT's DICOM "
            f"files, or {_SUPPORTED_FILES}."
        )
    series_ids = list(files)
    chosen = max(series_ids, key=lambda sid: len(files[sid]))
    if len(series_ids) > 1:
        logger.warning(
            "The folder %s holds %d DICOM series; reading series %s, which has the most "
            "files (%d).",
            folder, len(series_ids), chosen, len(files[chosen]),
        )
    return files[chosen]


def _read_dicom_series(folder: Path, files: tuple[str, ...]) -> sitk.Image:
    """Read the DICOM series of ``files`` (in slice order) from ``folder``."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as error:
        raise InputError(
            f"The DICOM series in {folder} could not be read: some of its files are damaged or "
            "are not image slices; export the series again."
        ) from error
