"""Filling a slice dataset: from pipeline outputs (single scans or whole builds), or from
generated phantoms.

Data preparation follows the paper (section 5.1): per hip, the ROI around the femoral head
center the pipeline found (:mod:`.roi`), CT clipped to [-125, 275] HU and scaled to [0, 1],
labels hole-filled, classes background / acetabulum / femoral head.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..afs.frame import SideFrame
from ..batch.manifest import CASES_DIR, done_records
from ..errors import InputError
from ..io import read_scan, sitk_reference_from_volume
from ..labels import truth_side_labels
from ..outputs import LABELS_FILE, REPORT_FILE, SEGMENTATION_FILE, write_outputs
from ..params import Params
from ..phantom import generate_phantom, stored_hu
from ..pipeline import annotate
from ..result import SIDES
from ..volume import Volume
from .coarse import CoarseGrid
from .dataset import CaseData, SliceDataset, reference_to_dict
from .files import atomic_path
from .labelfiles import LabelMap, read_label_file
from .roi import RoiSpec, place_roi, sample_image, sample_labels

SCANS_FOLDER, TRUTH_FOLDER, PIPELINE_FOLDER = "scans", "truth", "pipeline"
"""Sub-folders of a phantom dataset built with ``keep_scans``: CT files, truth label maps
(``<scan>.nii.gz``, 0/1/2) and the pipeline's outputs (``<scan>/labels.nii.gz`` ...)."""


def scan_id_from_path(path: str | Path) -> str:
    """A scan's name without its folder and image suffix, e.g. ``ct001`` for ``/d/ct001.nii.gz``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def make_case(volume: Volume, reference: sitk.Image, scan: str, side: str,
              center_ras_mm, labels: np.ndarray, roi: RoiSpec,
              truth: np.ndarray | None = None, scan_path: str | None = None,
              labels_path: str | None = None) -> tuple[dict, CaseData]:
    """The index entry and arrays of one hip.

    Parameters
    ----------
    volume : the scan, canonical layout.
    reference : the scan's source geometry (see :class:`~THAAnnotatorLib.io.LoadedScan`).
    scan, side : scan identifier and "right" / "left".
    center_ras_mm : femoral head center (RAS, mm) the ROI is centred on.
    labels : canonical class labels (0/1/2) of this hip.
    roi : the ROI of the dataset the case is for.
    truth : canonical class labels known to be right, kept alongside; or None.
    scan_path, labels_path : where the CT and the labels were read from, for the record.
    """
    # rounded as recorded in the index, so that later readers of the case (corrections) sample
    # exactly the grid its arrays were sampled on
    center_zyx = np.round(volume.ras_mm_to_index(np.asarray(center_ras_mm, dtype=float)), 3)
    placement = place_roi(volume.shape, volume.spacing_mm, center_zyx, side, roi)
    if len(placement.slices) == 0:
        raise InputError(f"The {side} hip's center of scan {scan} lies outside the scan.")
    frame = SideFrame.for_side(volume, side)
    data = CaseData(
        image=sample_image(volume.hu, placement),
        label=sample_labels(labels, placement),
        truth=None if truth is None else sample_labels(truth, placement),
    )
    meta = {
        "scan": scan, "side": side, "scan_path": scan_path, "labels_path": labels_path,
        "center_zyx": [float(c) for c in center_zyx],
        "center_ras_mm": [round(float(c), 3) for c in center_ras_mm],
        "x_range": [frame.x_start, frame.x_stop],
        "spacing_mm": [float(s) for s in volume.spacing_mm],
        "reference": reference_to_dict(reference),
        "slices": [int(k) for k in placement.slices],
    }
    return meta, data


def _pipeline_labels_file(annotation_dir: Path) -> Path:
    for name in (SEGMENTATION_FILE, LABELS_FILE):
        if (annotation_dir / name).is_file():
            return annotation_dir / name
    raise InputError(
        f"The folder {annotation_dir} holds neither {SEGMENTATION_FILE} nor {LABELS_FILE}; pass "
        "the output folder of `tha-annotator annotate` for this scan.")


def add_annotated_scan(dataset: SliceDataset, scan_path: str | Path, annotation_dir: str | Path,
                       scan: str | None = None,
                       include_flagged: bool = False) -> tuple[list[str], list[str]]:
    """Add the hips of one scan annotated by the pipeline; the index is not saved here.

    Parameters
    ----------
    dataset : the dataset to add to.
    scan_path : the CT the pipeline read.
    annotation_dir : the pipeline's output folder for it (``annotation.json`` and
        ``labels.seg.nrrd`` or ``labels.nii.gz``).
    scan : identifier in the dataset; default: the scan file's name without suffix.
    include_flagged : also add hips the pipeline marked for review (left out by default:
        their sphere failed the surface check or is of unusual size, so their labels are
        doubtful).

    Returns
    -------
    The sides added (those the pipeline segmented), and those left out as flagged.
    """
    annotation_dir = Path(annotation_dir)
    report_path = annotation_dir / REPORT_FILE
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        sides = report["sides"]
        size = tuple(report["volume"]["source_size_ijk"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(
            f"{report_path} is missing or damaged; pass the output folder of `tha-annotator "
            "annotate` for this scan.") from error
    loaded = read_scan(scan_path)
    if size != tuple(loaded.reference.GetSize()):
        raise InputError(
            f"The annotation in {annotation_dir} was made on a scan of size {size}, but "
            f"{Path(scan_path).name} has size {tuple(loaded.reference.GetSize())}; pair each scan "
            "with its own annotation folder.")
    segmented = [side for side in SIDES
                 if (sides.get(side) or {}).get("status") == "segmented"
                 and sides[side].get("sphere_center_ras_mm") is not None]
    flagged = [side for side in segmented
               if sides[side].get("needs_review") and not include_flagged]
    if len(flagged) == len(segmented):  # no hip to add (all metal, say): empty labels unread
        return [], flagged
    labels_file = _pipeline_labels_file(annotation_dir)
    label_map = read_label_file(labels_file, loaded.reference)
    scan = scan or scan_id_from_path(scan_path)
    added = []
    for side in segmented:
        if side in flagged:
            continue
        info = sides[side]
        frame = SideFrame.for_side(loaded.volume, side)
        labels = label_map.classes_for_side(side, (frame.x_start, frame.x_stop))
        meta, data = make_case(loaded.volume, loaded.reference, scan, side,
                               info["sphere_center_ras_mm"], labels, dataset.roi,
                               scan_path=str(Path(scan_path).resolve()),
                               labels_path=str(labels_file.resolve()))
        dataset.write_case(meta, data)
        added.append(side)
    return added, flagged


def check_scan_names(dataset: SliceDataset, sources: list[tuple[Path, str]]) -> None:
    """Refuse sources that would share a scan name in ``dataset``, before any is added.

    A scan's cases are ``<name>_<side>``, and names that differ only in letter case are one file
    on macOS and Windows: two of ``sources`` ((scan file, name) pairs) whose names are equal
    letter case aside, or one whose name differs only in letter case from a scan already in the
    dataset, would overwrite each other's cases. (One file given twice, or a source named exactly
    as a scan already in the dataset, replaces its cases, as adding a scan again does.)

    Raises
    ------
    InputError : naming both files.
    """
    seen: dict[str, tuple[str, Path]] = {}
    for path, name in sources:
        if name.casefold() in seen:
            first_name, first = seen[name.casefold()]
            if first_name == name and Path(first).resolve() == Path(path).resolve():
                continue  # one scan given twice: added twice, the same cases
            raise InputError(
                f"{first} and {path} would share the scan name '{first_name}' in the dataset "
                "(letter case aside, as macOS and Windows tell names apart), the second "
                "replacing the first's cases; give them distinct file names.")
        seen[name.casefold()] = (name, path)
    for case in dataset.cases:
        name, path = seen.get(case["scan"].casefold(), (case["scan"], None))
        if name != case["scan"]:
            raise InputError(
                f"{path} would be the scan '{name}' in the dataset {dataset.root}, which holds "
                f"'{case['scan']}' (from {case.get('scan_path')}): names that differ only in "
                "letter case are one file on macOS and Windows; rename the file.")


def annotated_cases_of_build(out_dir: str | Path) -> list[tuple[Path, Path]]:
    """The done cases of a ``tha-annotator build-dataset`` output folder.

    Parameters
    ----------
    out_dir : the build's output folder (``manifest.json`` and ``cases/<case>/``).

    Returns
    -------
    (scan, annotation folder) of every case whose status is "done" in the manifest, in its
    order: the scan is the manifest's ``source`` path, the folder ``out_dir/cases/<case>``.

    Raises
    ------
    InputError : ``out_dir`` has no readable ``manifest.json``.
    """
    return [(Path(r["source"]), Path(out_dir) / CASES_DIR / r["case"])
            for r in done_records(out_dir)]


@dataclass(frozen=True)
class PhantomRecipe:
    """How one training phantom is drawn (all lengths in mm).

    Attributes
    ----------
    seed : phantom seed; the phantom's name is ``phantom<seed>``.
    spacing_mm : voxel size (z, y, x).
    head_radius_mm : femoral head radius (right, left).
    noise_hu : image noise standard deviation, HU.
    spongy : strong trabecular texture in cancellous bone.
    joint_gap_mm : width of both joint spaces; None for the phantom's own (2.5-3 mm).
    """

    seed: int
    spacing_mm: tuple[float, float, float]
    head_radius_mm: tuple[float, float]
    noise_hu: float
    spongy: bool
    joint_gap_mm: float | None = None

    @property
    def name(self) -> str:
        return f"phantom{self.seed:05d}"

    @classmethod
    def draw(cls, seed: int) -> "PhantomRecipe":
        """A recipe with voxel sizes, head sizes and noise of clinical hip CTs (paper, section 4:
        0.7-1.0 mm in-plane, 1-5 mm slices; adult femoral heads 40-55 mm across) and joint
        spaces of 0.5-3 mm (THA patients' are often narrowed by osteoarthritis). The joint
        space is drawn last, so the other figures of a seed are those drawn before it existed."""
        rng = np.random.default_rng(seed)
        in_plane = round(float(rng.uniform(0.7, 1.0)), 3)
        return cls(seed=seed,
                   spacing_mm=(float(rng.choice([1.5, 2.0, 2.5, 3.0])), in_plane, in_plane),
                   head_radius_mm=tuple(round(float(r), 2) for r in rng.uniform(20.0, 27.0, 2)),
                   noise_hu=round(float(rng.uniform(8.0, 25.0)), 1),
                   spongy=bool(rng.random() < 0.7),
                   joint_gap_mm=round(float(rng.uniform(0.5, 3.0)), 2))


PHANTOM_FOV_MM = (100.0, 280.0, 400.0)
"""Field of view (z, y, x) of dataset phantoms, mm: both hips with 45 mm of scan below the head
centers (the pipeline looks there for the greater trochanter) and 55 mm above."""


def add_phantom_scans(dataset: SliceDataset, recipes, params: Params = Params(),
                      keep_scans: bool = False, coarse_voxels_mm: tuple[float, ...] = (),
                      progress: Callable[[str], None] | None = None) -> list[str]:
    """Generate phantoms, annotate them with the pipeline and add their hips as cases.

    Labels for training are the pipeline's pseudo labels; the phantom's truth (labels from its
    known bone parts and head spheres, :func:`~THAAnnotatorLib.labels.truth_side_labels`) is
    kept alongside for experiments. The index is not saved here.

    Parameters
    ----------
    dataset : the dataset to add to.
    recipes : one :class:`PhantomRecipe` per scan (e.g. ``PhantomRecipe.draw(seed)``).
    params : pipeline parameters.
    keep_scans : also write each CT (``scans/<scan>.nii.gz``), its truth label map
        (``truth/<scan>.nii.gz``) and the pipeline's outputs (``pipeline/<scan>/``) into the
        dataset folder, so predictions can be scored on whole scans (coarse copies: CT and
        truth only).
    coarse_voxels_mm : for each size (mm), also add a coarse copy of every phantom
        (``<scan>_<size>mm``, :mod:`.coarse`): its CT averaged over cubic voxels of that size,
        with the pseudo labels and truth of the fine scan carried over, and the same hips.
    progress : called with a message after each scan.

    Returns
    -------
    Names of the scans of which at least one hip was added (coarse copies not counted).
    """
    added = []
    for recipe in recipes:
        phantom = generate_phantom(spacing_mm=recipe.spacing_mm, fov_mm=PHANTOM_FOV_MM,
                                   seed=recipe.seed, head_radius_mm=recipe.head_radius_mm,
                                   spongy=recipe.spongy, noise_hu=recipe.noise_hu,
                                   joint_gap_mm=recipe.joint_gap_mm)
        volume = phantom.volume
        reference = sitk_reference_from_volume(volume)
        try:
            annotation = annotate(volume, params)
        except InputError as why:
            if progress:
                progress(f"{recipe.name}: skipped ({why})")
            continue
        truth_codes = truth_side_labels(phantom, params)
        scan_path = labels_path = None
        if keep_scans:
            scan_path, labels_path = _keep_phantom_files(dataset.root, recipe.name, phantom,
                                                         reference, annotation, truth_codes, params)
        # hips marked for review are left out, as from real scans
        centers = {side: result.sphere_center_ras_mm for side, result in annotation.sides.items()
                   if result.status == "segmented" and not result.needs_review}
        _add_hips(dataset, volume, reference, recipe.name, centers, annotation.side_labels,
                  truth_codes, scan_path, labels_path)
        for voxel_mm in coarse_voxels_mm:
            grid = CoarseGrid.over(volume, voxel_mm)
            coarse = grid.volume(volume, recipe.noise_hu,
                                 np.random.default_rng([recipe.seed, round(voxel_mm * 1000)]))
            name = f"{recipe.name}_{voxel_mm:g}mm"
            coarse_truth = grid.labels(truth_codes)
            coarse_reference = sitk_reference_from_volume(coarse)
            coarse_path = (_keep_scan_and_truth(dataset.root, name, coarse, coarse_reference,
                                                coarse_truth) if keep_scans else None)
            _add_hips(dataset, coarse, coarse_reference, name, centers,
                      grid.labels(annotation.side_labels), coarse_truth, coarse_path, None)
        if centers:
            added.append(recipe.name)
        if progress:
            progress(f"{recipe.name}: {', '.join(centers) or 'no'} hip(s) added"
                     + (f", also at {', '.join(f'{v:g}' for v in coarse_voxels_mm)} mm"
                        if centers and coarse_voxels_mm else ""))
    return added


def _add_hips(dataset: SliceDataset, volume: Volume, reference: sitk.Image, scan: str,
              centers: dict, side_labels: np.ndarray, truth_codes: np.ndarray,
              scan_path: str | None, labels_path: str | None) -> None:
    """Write one case per hip of ``centers`` (side -> head center, RAS mm) of a generated scan
    whose pseudo labels and truth are segment codes (as :attr:`Annotation.side_labels`)."""
    pseudo = LabelMap(side_labels, sided=True)
    truth = LabelMap(truth_codes, sided=True)
    for side, center in centers.items():
        meta, data = make_case(volume, reference, scan, side, center,
                               pseudo.classes_for_side(side, (0, 0)), dataset.roi,
                               truth=truth.classes_for_side(side, (0, 0)),
                               scan_path=scan_path, labels_path=labels_path)
        dataset.write_case(meta, data)


def _keep_phantom_files(root: Path, name: str, phantom, reference: sitk.Image, annotation,
                        truth_codes: np.ndarray, params: Params) -> tuple[str, str]:
    """Write a phantom's CT, truth labels and pipeline outputs; return CT and labels paths."""
    scan_path = _keep_scan_and_truth(root, name, phantom.volume, reference, truth_codes)
    written = write_outputs(root / PIPELINE_FOLDER / name, reference, phantom.volume, annotation,
                            params, input_path=Path(scan_path))
    return scan_path, str(written[SEGMENTATION_FILE].resolve())


def _keep_scan_and_truth(root: Path, name: str, volume: Volume, reference: sitk.Image,
                         truth_codes: np.ndarray) -> str:
    """Write a generated CT and its truth class map (0/1/2); return the CT's path."""
    scan_path = root / SCANS_FOLDER / f"{name}.nii.gz"
    truth = LabelMap(truth_codes, sided=True)
    classes = np.maximum.reduce([truth.classes_for_side(side, (0, 0)) for side in SIDES])
    for folder, array in ((SCANS_FOLDER, stored_hu(volume.hu)), (TRUTH_FOLDER, classes)):
        image = sitk.GetImageFromArray(volume.to_source_layout(array))
        image.CopyInformation(reference)
        with atomic_path(root / folder / f"{name}.nii.gz") as temporary:
            sitk.WriteImage(image, str(temporary), useCompression=True)
    return str(scan_path.resolve())
