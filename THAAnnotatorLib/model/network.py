"""The segmentation network and its saved form.

The network is MONAI's 2-D residual U-Net (``monai.networks.nets.UNet``): one input channel
(an ROI slice, :mod:`.roi`), three output channels (background, acetabulum, femoral head
logits), instance normalisation (so a slice's prediction does not depend on the batch it is
in).

A saved model is a folder::

    model.json          architecture, ROI and HU window, class names, weights file name and
                        its SHA-256, and notes on how it was trained
    model.safetensors   the weights (safetensors: plain tensors, no code runs on loading)

:func:`load_model` refuses weights whose SHA-256 differs from the recorded one, so a corrupt,
swapped or tampered file is reported instead of used.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from monai.networks.nets import UNet
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ..errors import InputError
from ..result import CLASS_NAMES
from .config import NUM_CLASSES, ModelConfig
from .files import sha256_file, write_bytes_atomic, write_json_atomic
from .roi import HU_WINDOW

MODEL_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1
BUNDLED_MODEL_DIR = Path(__file__).resolve().parents[2] / "Resources" / "model"
"""The model shipped in the repository's ``Resources/model`` folder."""


def build_network(config: ModelConfig) -> torch.nn.Module:
    """A freshly initialised network for ``config`` (seed torch first for repeatable weights)."""
    if len(config.strides) != len(config.channels) - 1:
        raise InputError(
            f"A U-Net with {len(config.channels)} levels needs {len(config.channels) - 1} strides, "
            f"got {len(config.strides)}.")
    return UNet(spatial_dims=2, in_channels=1, out_channels=NUM_CLASSES,
                channels=config.channels, strides=config.strides,
                num_res_units=config.num_res_units, norm="INSTANCE")


@dataclass
class LoadedModel:
    """A network ready for inference, with the settings it was trained for."""

    network: torch.nn.Module
    config: ModelConfig
    info: dict
    device: torch.device


def save_model(model_dir: str | Path, network: torch.nn.Module, config: ModelConfig,
               training: dict | None = None) -> Path:
    """Write ``model.safetensors`` and ``model.json`` (with the weights' SHA-256) atomically.

    Parameters
    ----------
    model_dir : destination folder (created if missing).
    network : the trained network.
    config : its architecture and ROI.
    training : notes stored under ``"training"`` (data, command, epochs, losses ...).

    Returns
    -------
    The path of ``model.json``.
    """
    model_dir = Path(model_dir)
    state = {name: tensor.detach().to("cpu").contiguous()
             for name, tensor in network.state_dict().items()}
    content = save(state, metadata={"format": "pt"})
    digest = hashlib.sha256(content).hexdigest()
    write_bytes_atomic(model_dir / WEIGHTS_FILE, content)
    write_json_atomic(model_dir / MODEL_FILE, {
        "format_version": FORMAT_VERSION,
        "architecture": config.architecture(),
        "roi": config.roi.to_dict(),
        "hu_window": list(HU_WINDOW),
        "classes": {"0": "background", **{str(k): v for k, v in CLASS_NAMES.items()}},
        "weights": WEIGHTS_FILE,
        "sha256": digest,
        "training": training or {},
    })
    return model_dir / MODEL_FILE


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when a GPU is available, else CPU; ``cpu`` / ``cuda`` as asked.

    Raises
    ------
    InputError : ``cuda`` is asked for but no GPU is available, or the name is unknown.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was chosen but no CUDA GPU is available; use --device cpu.")
    if name not in ("cpu", "cuda"):
        raise InputError(f"Unknown device {name!r}; choose auto, cpu or cuda.")
    return torch.device(name)


def load_model(model_dir: str | Path | None = None, device: str = "auto") -> LoadedModel:
    """Load a saved model after checking its weights against the recorded SHA-256.

    Parameters
    ----------
    model_dir : a folder written by :func:`save_model`; default: the bundled model
        (:data:`BUNDLED_MODEL_DIR`).
    device : "auto", "cpu" or "cuda" (see :func:`resolve_device`).

    Raises
    ------
    InputError : the folder, ``model.json`` or the weights are missing, unreadable, do not
        match the recorded SHA-256, or do not fit the recorded architecture.
    """
    model_dir = Path(model_dir) if model_dir is not None else BUNDLED_MODEL_DIR
    description = model_dir / MODEL_FILE
    if not description.is_file():
        raise InputError(
            f"No model found in {model_dir} (it has no {MODEL_FILE}); pass the folder written "
            "by `tha-annotator train`, or restore the bundled Resources/model.")
    try:
        info = json.loads(description.read_text(encoding="utf-8"))
        if info.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {info.get('format_version')!r}")
        config = ModelConfig.from_stored(info["architecture"], info["roi"])
        weights = model_dir / Path(info["weights"]).name
        recorded = str(info["sha256"]).lower()
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{description} is damaged or from another program ({error}); "
                         "restore it or train the model again.") from error
    if not weights.is_file():
        raise InputError(f"The model weights {weights} are missing; restore them or train again.")
    if sha256_file(weights) != recorded:
        raise InputError(
            f"The model weights {weights.name} do not match the SHA-256 recorded in "
            f"{MODEL_FILE}: the file is corrupt or was changed. Restore the original weights or "
            "train the model again; they were not loaded.")
    torch_device = resolve_device(device)
    network = build_network(config)
    try:
        state = load_file(str(weights))
        network.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as error:
        raise InputError(
            f"The model weights {weights.name} do not fit the architecture in {MODEL_FILE}; "
            "train the model again.") from error
    network.to(torch_device).eval()
    return LoadedModel(network, config, info, torch_device)
