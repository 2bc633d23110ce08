"""A slice dataset of randomized renderings of sweep hips (:mod:`.synth`), labelled with the
sweep's truth.

Each sweep scan (class, seed) is drawn and its anatomy rendered once at
:attr:`~.synth.SynthRanges.anatomy_spacing_mm`; every native hip of it then gives ``renderings``
cases, each its own random deformation and appearance. A case is named
``<class>_<seed>_r<rendering>`` (scan) and side, as every case of a slice dataset; its labels
(and its ``truth``, the same) are the sweep's truth labels
(:func:`~THAAnnotatorLib.sweep.truth.sweep_truth_labels`) deformed with the anatomy, never a
pipeline's. Its index entry also records ``synth``: the sweep class and seed, the rendering's
number and what was drawn for it. Whole classes can be held out, to test on anatomy of a kind
the network never saw.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import sitk_reference_from_volume
from ..result import SIDES
from ..sweep import CLASSES, generate_sweep_case
from ..sweep.truth import sweep_truth_labels
from ..volume import Volume
from .build import make_case
from .dataset import CaseData, SliceDataset
from .labelfiles import LabelMap
from .roi import RoiSpec
from .synth import render_hip
from .synth_ranges import SynthRanges


def synth_classes(classes: Sequence[str] = CLASSES, hold_out: Sequence[str] = ()) -> list[str]:
    """The sweep classes to render: ``classes`` less ``hold_out``, in :data:`CLASSES` order.

    Raises InputError for an unknown class name or when no class is left.
    """
    unknown = sorted((set(classes) | set(hold_out)) - set(CLASSES))
    if unknown:
        raise InputError(f"Unknown sweep class(es) {', '.join(unknown)}; the classes are "
                         f"{', '.join(CLASSES)}.")
    kept = [c for c in CLASSES if c in set(classes) and c not in set(hold_out)]
    if not kept:
        raise InputError("Every class given is held out; leave at least one class to render.")
    return kept


def case_scan_name(hip_class: str, seed: int, rendering: int) -> str:
    """The scan name of one rendering, e.g. ``narrow_joint_0003_r01``."""
    return f"{hip_class}_{seed:04d}_r{rendering:02d}"


@dataclass
class SynthSummary:
    """What a build added: hips (cases), ROI slices, sweep scans rendered, and seconds."""

    cases: int = 0
    slices: int = 0
    scans: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)
    """Hips left out, with the reason (e.g. no femoral head label in view)."""


def add_synth_cases(dataset: SliceDataset, classes: Sequence[str], seeds: Sequence[int],
                    renderings: int, ranges: SynthRanges = SynthRanges(),
                    appearance_seed: int = 0,
                    progress: Callable[[str], None] | None = None,
                    workers: int = 1) -> SynthSummary:
    """Render sweep scans and add ``renderings`` randomized cases per native hip; the index is
    not saved here.

    Parameters
    ----------
    dataset : the dataset to add to (its ROI sets each rendering's crop).
    classes : sweep classes to draw scans of (check them with :func:`synth_classes`).
    seeds : sweep seeds per class.
    renderings : randomized renderings per hip, at least 1.
    ranges : the random ranges.
    appearance_seed : seed of the renderings; rendering ``r`` of a hip is the same whatever
        else is built with it.
    progress : called with a message after each sweep scan.
    workers : processes rendering sweep scans at once (one torch thread each). The dataset is
        the same, case for case and in the same order, whatever their number: each scan's
        renderings depend on its own seeds only, and cases are written in scan order.
    """
    ranges.validate()
    if renderings < 1:
        raise InputError(f"renderings must be at least 1, got {renderings}.")
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}.")
    summary = SynthSummary()
    began = time.perf_counter()
    jobs = [(hip_class, seed) for hip_class in classes for seed in seeds]
    render = partial(_render_scan, renderings=renderings, ranges=ranges, roi=dataset.roi,
                     appearance_seed=appearance_seed)
    with ExitStack() as stack:
        if workers > 1 and len(jobs) > 1:
            pool = stack.enter_context(ProcessPoolExecutor(
                max_workers=min(workers, len(jobs)), mp_context=get_context("spawn"),
                initializer=_one_torch_thread))
            scans = pool.map(render, *zip(*jobs))
        else:
            scans = map(render, *zip(*jobs))
        for (hip_class, seed), scan in zip(jobs, scans):
            for meta, data in scan.cases:
                dataset.write_case(meta, data)
                summary.cases += 1
                summary.slices += len(meta["slices"])
            summary.skipped.extend(scan.skipped)
            summary.scans += 1
            if progress:
                progress(f"{hip_class} seed {seed}: {len(scan.cases)} case(s) from "
                         f"{', '.join(scan.hips) or 'no native'} hip(s)")
    summary.seconds = time.perf_counter() - began
    return summary


@dataclass
class _RenderedScan:
    """One sweep scan's cases (index entry and arrays), the hips left out, and its native hips."""

    cases: list[tuple[dict, CaseData]]
    skipped: list[str]
    hips: list[str]


def _one_torch_thread() -> None:
    # each worker process renders one scan at a time: several torch threads per worker would
    # only compete for the cores the other workers use
    import torch
    torch.set_num_threads(1)


def _render_scan(hip_class: str, seed: int, renderings: int, ranges: SynthRanges, roi: RoiSpec,
                 appearance_seed: int) -> _RenderedScan:
    """Draw sweep scan (``hip_class``, ``seed``) and render each native hip ``renderings``
    times as slice-dataset cases of ``roi``; picklable, so that worker processes can run it."""
    case = generate_sweep_case(hip_class, seed, spacing_mm=ranges.anatomy_spacing_mm)
    truth = LabelMap(sweep_truth_labels(case), sided=True)
    spacing = case.volume.spacing_mm
    rendered = _RenderedScan(cases=[], skipped=[], hips=list(case.hips))
    for side, hip in case.hips.items():
        labels = truth.classes_for_side(side, (0, 0))
        center = case.volume.ras_mm_to_index(np.asarray(hip.center_ras_mm))
        for rendering in range(renderings):
            name = case_scan_name(hip_class, seed, rendering)
            key = [appearance_seed, CLASSES.index(hip_class), seed, rendering, SIDES.index(side)]
            try:
                synthetic = render_hip(case.tissue_map, labels, spacing, center, roi, ranges, key)
            except ValueError as why:
                rendered.skipped.append(f"{name} {side}: {why}")
                continue
            volume = _crop_volume(case.volume, synthetic.hu, synthetic.crop_start)
            meta, data = make_case(volume, sitk_reference_from_volume(volume), name, side,
                                   volume.index_to_ras_mm(synthetic.center_zyx),
                                   synthetic.labels, roi, truth=synthetic.labels)
            meta["synth"] = {"class": hip_class, "sweep_seed": seed, "rendering": rendering,
                             "draws": synthetic.draws}
            rendered.cases.append((meta, data))
    return rendered


def build_synth_dataset(root: str | Path, seeds: Sequence[int], renderings: int,
                        classes: Sequence[str] = CLASSES, hold_out: Sequence[str] = (),
                        ranges: SynthRanges = SynthRanges(), roi: RoiSpec = RoiSpec(),
                        appearance_seed: int = 0,
                        progress: Callable[[str], None] | None = None,
                        workers: int = 1) -> SynthSummary:
    """Build (or add to) the slice dataset in ``root`` from randomized sweep hips and save its
    index; the classes in ``hold_out`` are never drawn. See :func:`add_synth_cases`.

    Raises InputError for unknown or no classes, no seeds, fewer than 1 rendering, a dataset
    of another ROI in ``root``, or when no hip was added (nothing is saved then).
    """
    kept = synth_classes(classes, hold_out)
    if not seeds:
        raise InputError("Give at least one sweep seed.")
    dataset = SliceDataset.create(root, roi)
    summary = add_synth_cases(dataset, kept, seeds, renderings, ranges, appearance_seed, progress,
                              workers)
    if summary.cases == 0:
        raise InputError(f"No hip was added to the dataset {root}: "
                         f"{'; '.join(summary.skipped) or 'the scans hold no native hip'}.")
    dataset.save_index()
    return summary


def _crop_volume(source: Volume, hu: np.ndarray, start) -> Volume:
    """A volume of ``hu`` placed where the crop starting at canonical index ``start`` lies in
    ``source`` (canonical layout, stored as such)."""
    shift = np.eye(4)
    shift[:3, 3] = start
    return Volume(hu=hu, index_to_lps=source.index_to_lps @ shift)
