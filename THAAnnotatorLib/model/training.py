"""Training the segmentation network on a slice dataset, with checkpoints and resume.

Loss: MONAI's ``DiceCELoss`` (soft Dice plus cross-entropy over the three classes). Optimiser:
Adam with the learning rate decayed each epoch as ``lr * (1 - epoch / epochs) ** 0.9``.

Augmentation, on the fly and on the training device: a random affine map of each ROI slice
(shift up to ``max_shift_mm`` - the ROI center at prediction time comes from
:mod:`.localize`, which is some millimetres off the head center - rotation up to 10 degrees,
scale 0.9-1.1), brightness / contrast changes, Gaussian noise, and for 30 % of the slices a
blur that imitates scans with 1.5-5 mm voxels.

A dataset whose arrays fit in :data:`PRELOAD_BYTES` is read once, at the start, and
every epoch shuffles all its slices together. A larger one is read lazily: each epoch visits the
cases in random order, a few at a time, and shuffles the slices of those cases, so each case
file is read once per epoch.

Cases of a randomized dataset (``synth-dataset``) record their sweep class; ``hold_out`` leaves
whole classes out of a training run, to test on them later.

After every epoch the output folder gets ``checkpoints/last.pt`` (network, optimiser, epoch and
loss history; loaded with ``torch.load(weights_only=True)``) and an up-to-date model
(``model.json`` + ``model.safetensors``, see :mod:`.network`), both written atomically; an
interrupted run continues with ``resume=True``.
"""
from __future__ import annotations

import math
import platform
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import monai
import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from ..errors import Cancelled, InputError, some_names
from .config import ModelConfig, TrainOptions
from .dataset import SliceDataset
from .files import atomic_path
from .network import build_network, load_model, resolve_device, save_model

CHECKPOINT = Path("checkpoints") / "last.pt"
CASES_IN_MEMORY = 8
"""Cases whose slices are shuffled together (and held in memory) while training lazily."""
PRELOAD_BYTES = 12 * 2**30
"""Datasets whose images (float16) and labels take at most this are held in memory whole."""


class SliceSamples(Dataset):
    """The dataset's slices as (image, labels) tensors (1, P, P), as stored: float16 (preloaded)
    or float32 images, uint8 labels; a batch of them (n, 1, P, P) by :meth:`__getitems__`.

    Only the cases numbered in ``cases`` (all by default) are sampled. With ``preload`` every
    one of them is read at once, one case file after another, into one array per kind, so
    that a batch is one gather; otherwise the :data:`CASES_IN_MEMORY` most recently used cases
    are kept.
    """

    def __init__(self, dataset: SliceDataset, labels: str = "label",
                 cases: list[int] | None = None, preload: bool = False):
        self.dataset = dataset
        self.labels = labels
        chosen = set(range(len(dataset.cases)) if cases is None else cases)
        kept = sorted(chosen)
        self.index = [(number, row) for number, row in dataset.samples if number in chosen]
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._images = self._labels = None
        if preload:
            # one after another: NumPy parses each array's header with ast.literal_eval, which
            # Python 3.11 cannot run in two threads at once ("AST constructor recursion depth
            # mismatch", seen here); float16, as stored: half the memory of float32
            arrays = [self._read(number, np.float16) for number in kept]
            # rows in sample order: the index runs through the kept cases' rows in turn
            self._images = np.concatenate([image for image, _ in arrays])[:, None]
            self._labels = np.concatenate([labels for _, labels in arrays])[:, None]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def preloaded(self) -> bool:
        return self._images is not None

    def _read(self, number: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        data = self.dataset.load_case(number)
        labels = data.label if self.labels == "label" else data.truth
        if labels is None:
            raise InputError(
                f"Case {self.dataset.cases[number]['id']} has no {self.labels!r} labels; "
                "train on the dataset's labels instead.")
        return data.image.astype(dtype, copy=False), labels

    def _case(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        if number not in self._cache:
            self._cache[number] = self._read(number)
            while len(self._cache) > CASES_IN_MEMORY:
                self._cache.popitem(last=False)
        self._cache.move_to_end(number)
        return self._cache[number]

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        # as stored: made float32 / int64 on the training device, which halves what crosses to
        # a GPU and spares the CPU the conversion
        if self.preloaded:
            return torch.from_numpy(self._images[item]), torch.from_numpy(self._labels[item])
        number, row = self.index[item]
        image, labels = self._case(number)
        return torch.from_numpy(image[row][None]), torch.from_numpy(labels[row][None])

    def __getitems__(self, items: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The slices ``items`` as one batch (the DataLoader fetches batches with this)."""
        if self.preloaded:
            rows = np.asarray(items)
            return torch.from_numpy(self._images[rows]), torch.from_numpy(self._labels[rows])
        pairs = [self[item] for item in items]
        return torch.stack([image for image, _ in pairs]), torch.stack([labels for _, labels in pairs])


def _as_fetched(batch):
    """The DataLoader's collate function: :meth:`SliceSamples.__getitems__` already batches."""
    return batch


def cases_kept(dataset: SliceDataset, hold_out: tuple[str, ...]) -> list[int]:
    """Numbers of the dataset's cases not of a held-out sweep class (a case's class is
    recorded by ``synth-dataset``; other cases have none and are kept).

    Raises InputError when no case is left.
    """
    held = set(hold_out)
    kept = [number for number, case in enumerate(dataset.cases)
            if case.get("synth", {}).get("class") not in held]
    if not kept:
        raise InputError(f"Every case of {dataset.root} is of a held-out class "
                         f"({', '.join(hold_out)}); nothing is left to train on.")
    return kept


def _fits_in_memory(dataset: SliceDataset, cases: list[int]) -> bool:
    pixels = dataset.roi.pixels ** 2
    rows = sum(len(dataset.cases[number]["slices"]) for number in cases)
    return rows * pixels * 3 <= PRELOAD_BYTES  # float16 image + uint8 labels


class CaseBlockSampler(Sampler[int]):
    """Sample order: cases shuffled, then the slices of each run of ``block`` cases shuffled."""

    def __init__(self, case_of_sample: list[int], block: int, generator: torch.Generator):
        self.case_of_sample = np.asarray(case_of_sample)
        self.block = block
        self.generator = generator

    def __len__(self) -> int:
        return len(self.case_of_sample)

    def __iter__(self) -> Iterator[int]:
        cases = np.unique(self.case_of_sample)
        order = cases[torch.randperm(len(cases), generator=self.generator).numpy()]
        for start in range(0, len(order), self.block):
            members = np.flatnonzero(np.isin(self.case_of_sample, order[start:start + self.block]))
            yield from members[torch.randperm(len(members), generator=self.generator).numpy()].tolist()


def augment(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
            max_shift_mm: float, pixel_mm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly transform a batch of ROI slices and their labels together.

    Parameters
    ----------
    images : float (n, 1, P, P) in [0, 1].
    labels : int64 (n, 1, P, P).
    generator : CPU random generator (its state decides every draw).
    max_shift_mm : largest shift along each in-plane axis, mm.
    pixel_mm : ROI pixel size, mm.
    """
    n, _, size, _ = images.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * (high - low) + low).to(images.device)

    angle = uniform(-math.pi / 18, math.pi / 18)
    zoom = uniform(0.9, 1.1)
    shift = 2.0 * max_shift_mm / (pixel_mm * size)  # in affine_grid's [-1, 1] units
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0] = torch.cos(angle) / zoom
    theta[:, 0, 1] = -torch.sin(angle) / zoom
    theta[:, 1, 0] = torch.sin(angle) / zoom
    theta[:, 1, 1] = torch.cos(angle) / zoom
    theta[:, 0, 2] = uniform(-shift, shift)
    theta[:, 1, 2] = uniform(-shift, shift)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    labels = F.grid_sample(labels.float(), grid, mode="nearest", padding_mode="zeros",
                           align_corners=False).long()

    coarse = torch.rand(n, generator=generator) < 0.3
    for i in torch.nonzero(coarse).flatten().tolist():
        voxel_mm = float(torch.empty(1).uniform_(1.5, 5.0, generator=generator))
        factor = min(1.0, pixel_mm / voxel_mm)
        small = F.interpolate(images[i:i + 1], scale_factor=factor, mode="area")
        images[i:i + 1] = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)

    contrast = uniform(0.85, 1.15).view(n, 1, 1, 1)
    brightness = uniform(-0.05, 0.05).view(n, 1, 1, 1)
    noise = uniform(0.0, 0.03).view(n, 1, 1, 1)
    # drawn on the images' device (a GPU draws it far faster than the CPU), from a seed the CPU
    # generator gives, so that a run still repeats exactly
    device_generator = torch.Generator(device=images.device).manual_seed(
        int(torch.randint(0, 2**62, (1,), generator=generator)))
    random = torch.randn(images.shape, generator=device_generator, device=images.device)
    images = (images * contrast + brightness + noise * random).clamp(0.0, 1.0)
    return images, labels


def _learning_rate(options: TrainOptions, epoch: int) -> float:
    return options.learning_rate * (1.0 - epoch / options.epochs) ** 0.9


def _load_checkpoint(out_dir: Path, config: ModelConfig) -> dict:
    path = out_dir / CHECKPOINT
    if not path.is_file():
        raise InputError(f"There is no checkpoint to resume from in {out_dir}; train without --resume.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged pickle
        raise InputError(f"The checkpoint {path} is damaged; train again without --resume.") from error
    if checkpoint.get("architecture") != config.architecture():
        raise InputError(
            f"The checkpoint in {out_dir} is of another architecture "
            f"({checkpoint.get('architecture')}); resume with the options it was started with.")
    return checkpoint


def _starting_weights(model_dir: str, config: ModelConfig) -> tuple[dict, str]:
    """The weights of the saved model a fine-tuning run starts from (SHA-256 checked), and
    that SHA-256."""
    start = load_model(model_dir, "cpu")
    if start.config.architecture() != config.architecture():
        stored = start.config.architecture()
        raise InputError(
            f"The model in {model_dir} is a U-Net with channels {stored['channels']}, strides "
            f"{stored['strides']} and {stored['num_res_units']} residual unit(s); fine-tuning "
            "keeps its architecture, so give the same or leave those options out.")
    if start.config.roi != config.roi:
        raise InputError(
            f"The model in {model_dir} reads a {start.config.roi.size_mm:g} mm ROI of "
            f"{start.config.roi.pixels} pixels, the dataset holds {config.roi.size_mm:g} mm of "
            f"{config.roi.pixels}; fine-tune it on a dataset built with its ROI.")
    return start.network.state_dict(), start.info["sha256"]


@dataclass
class TrainResult:
    """What a training run did: loss per epoch, and where the model was written."""

    history: list[dict] = field(default_factory=list)
    model_dir: Path | None = None


def train(dataset_dir: str | Path, out_dir: str | Path, options: TrainOptions = TrainOptions(),
          resume: bool = False, show_progress: bool = True,
          cancel: Callable[[], bool] | None = None,
          on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Train a network on a slice dataset and save it (and a checkpoint) after every epoch.

    Parameters
    ----------
    dataset_dir : a folder built by :mod:`.build`.
    out_dir : the model folder to write: new or empty, or, with ``resume``, the run's own.
    options : training settings.
    resume : continue the run whose checkpoint is in ``out_dir``, up to ``options.epochs``
        (a resumed fine-tuning run continues from its checkpoint, not from ``init_from``).
    show_progress : a tqdm bar per epoch with the running loss, on stderr.
    cancel : polled after each step; when it returns True, :class:`Cancelled` is raised (the
        last finished epoch stays saved).
    on_epoch : called with each finished epoch's history entry once it is saved (the command
        line prints it then, so a log shows training as it goes).

    Returns
    -------
    TrainResult with one entry per epoch: epoch, mean loss, learning rate, seconds.
    """
    dataset = SliceDataset.open(dataset_dir)
    out_dir = Path(out_dir)
    if not dataset.cases:
        raise InputError(f"The dataset {dataset.root} has no cases; add scans to it first.")
    if options.labels not in ("label", "truth"):
        raise InputError(f"labels must be 'label' or 'truth', not {options.labels!r}.")
    if options.labels == "truth" and not all(c.get("has_truth") for c in dataset.cases):
        raise InputError(f"Not every case of {dataset.root} has truth labels; train on 'label'.")
    if options.epochs < 1 or options.batch_size < 1 or options.learning_rate <= 0:
        raise InputError("epochs and batch size must be at least 1 and the learning rate positive.")
    config = ModelConfig(options.channels, options.strides, options.num_res_units, dataset.roi)
    device = resolve_device(options.device)
    torch.manual_seed(options.seed)
    network = build_network(config).to(device)
    optimiser = torch.optim.Adam(network.parameters(), lr=options.learning_rate)
    result = TrainResult(model_dir=out_dir)
    start, notes = 0, {}
    if resume:
        checkpoint = _load_checkpoint(out_dir, config)
        network.load_state_dict(checkpoint["network"])
        optimiser.load_state_dict(checkpoint["optimiser"])
        start = int(checkpoint["epoch"])
        result.history = list(checkpoint["history"])
        notes = dict(checkpoint.get("notes", {}))
    elif (out_dir / CHECKPOINT).exists():
        raise InputError(
            f"{out_dir} already holds a training run; pass --resume to continue it or choose "
            "another folder.")
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        held = sorted(entry.name for entry in out_dir.iterdir())
        raise InputError(
            f"{out_dir} already holds {len(held)} file(s) ({some_names(held)}), which "
            "training would mix with or replace (a model's weights); choose a new or empty "
            "folder.")
    elif options.init_from is not None:
        weights, digest = _starting_weights(options.init_from, config)
        network.load_state_dict(weights)
        notes["initial_weights_sha256"] = digest

    kept = cases_kept(dataset, options.hold_out)
    samples = SliceSamples(dataset, options.labels, kept, _fits_in_memory(dataset, kept))
    case_of_sample = [number for number, _ in samples.index]
    block = len(kept) if samples.preloaded else CASES_IN_MEMORY
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    for epoch in range(start, options.epochs):
        generator = torch.Generator().manual_seed(options.seed * 100_003 + epoch)
        learning_rate = _learning_rate(options, epoch)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate
        loader = DataLoader(samples, batch_size=options.batch_size, collate_fn=_as_fetched,
                            sampler=CaseBlockSampler(case_of_sample, block, generator))
        network.train()
        began, total, steps = time.perf_counter(), 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{options.epochs}", disable=not show_progress,
                   leave=False, unit="batch")
        for images, labels in bar:
            images, labels = images.to(device).float(), labels.to(device).long()
            if options.augment:
                images, labels = augment(images, labels, generator, options.max_shift_mm,
                                         dataset.roi.pixel_mm)
            optimiser.zero_grad(set_to_none=True)
            loss = loss_function(network(images), labels)
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
            steps += 1
            bar.set_postfix(loss=f"{total / steps:.4f}")
            if cancel is not None and cancel():
                raise Cancelled("Training was cancelled; the last finished epoch is saved.")
        bar.close()
        result.history.append({"epoch": epoch + 1, "loss": round(total / steps, 5),
                               "learning_rate": learning_rate,
                               "seconds": round(time.perf_counter() - began, 1)})
        _save_epoch(out_dir, network, optimiser, config, options, dataset, samples,
                    result.history, notes)
        if on_epoch is not None:
            on_epoch(result.history[-1])
    return result


def _save_epoch(out_dir: Path, network: torch.nn.Module, optimiser: torch.optim.Optimizer,
                config: ModelConfig, options: TrainOptions, dataset: SliceDataset,
                samples: SliceSamples, history: list[dict], notes: dict) -> None:
    with atomic_path(out_dir / CHECKPOINT) as temporary:
        torch.save({"epoch": history[-1]["epoch"], "network": network.state_dict(),
                    "optimiser": optimiser.state_dict(), "architecture": config.architecture(),
                    "history": history, "notes": notes}, temporary)
    save_model(out_dir, network, config, training={
        "dataset": str(dataset.root.resolve()),
        "cases": len({number for number, _ in samples.index}),
        "slices": len(samples.index),
        "options": options.to_dict(),
        "history": history,
        **notes,
        "software": {"torch": torch.__version__, "monai": monai.__version__,
                     "python": platform.python_version()},
    })
