"""Settings of the network and of training, as plain dataclasses (no torch needed to read them)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .roi import RoiSpec

NUM_CLASSES = 3
"""Network outputs: background, acetabulum, femoral head."""
CPU_BATCH_SIZE = 4
"""ROI slices per forward pass on the CPU. Larger batches are slower there: from 8 slices of
256 x 256 on, the activations are larger than the memory the C library keeps for reuse, so each
pass maps fresh pages (minor page faults per slice: none at 4, 1,600 at 8, 3,400 at 16); on the
project's 2-core CPU 4 slices per pass ran 1.7-2 times as fast as 16 (``benchmarks/inference.py``).
"""
GPU_BATCH_SIZE = 32
"""ROI slices per forward pass on a GPU, where larger batches use it better (not measured here:
the project's machine has none)."""


def inference_batch_size(device_type: str) -> int:
    """ROI slices per forward pass when none is asked for: :data:`GPU_BATCH_SIZE` on a CUDA
    device (``torch.device.type`` "cuda"), :data:`CPU_BATCH_SIZE` otherwise."""
    return GPU_BATCH_SIZE if device_type == "cuda" else CPU_BATCH_SIZE


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and input sampling of a network.

    Attributes
    ----------
    channels : feature channels per U-Net level, finest first.
    strides : down-sampling factor between consecutive levels (one fewer than ``channels``).
    num_res_units : residual units per block.
    roi : the ROI the network reads (size in mm, pixels, slab height in mm).
    """

    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 1
    roi: RoiSpec = field(default_factory=RoiSpec)

    def architecture(self) -> dict:
        """The architecture as stored in ``model.json``."""
        return {"name": "monai.networks.nets.UNet", "spatial_dims": 2, "in_channels": 1,
                "out_channels": NUM_CLASSES, "channels": list(self.channels),
                "strides": list(self.strides), "num_res_units": self.num_res_units,
                "norm": "INSTANCE"}

    @classmethod
    def from_stored(cls, architecture: dict, roi: dict) -> "ModelConfig":
        """Rebuild a config from ``model.json``'s ``architecture`` and ``roi`` entries."""
        expected = {"name": "monai.networks.nets.UNet", "spatial_dims": 2, "in_channels": 1,
                    "out_channels": NUM_CLASSES, "norm": "INSTANCE"}
        for key, value in expected.items():
            if architecture.get(key) != value:
                raise ValueError(f"architecture {key} is {architecture.get(key)!r}, not {value!r}")
        return cls(channels=tuple(int(c) for c in architecture["channels"]),
                   strides=tuple(int(s) for s in architecture["strides"]),
                   num_res_units=int(architecture["num_res_units"]),
                   roi=RoiSpec(**roi))


@dataclass(frozen=True)
class TrainOptions:
    """Settings of one training run.

    Attributes
    ----------
    epochs : passes over the training slices.
    batch_size : slices per optimisation step.
    learning_rate : Adam's initial learning rate.
    seed : seed of the initial weights, the sample order and the augmentation.
    device : "auto", "cpu" or "cuda".
    labels : which labels to learn: "label" (the dataset's pseudo / corrected labels) or
        "truth" (known-right labels, for experiments).
    max_shift_mm : largest random in-plane ROI shift, in mm.
    augment : apply augmentation at all.
    channels, strides, num_res_units : U-Net architecture (:class:`~.network.ModelConfig`).
    init_from : a saved model folder to start from instead of random weights (fine-tuning,
        e.g. after review-queue corrections); its architecture and ROI must be the run's.
    hold_out : sweep classes whose cases (of a randomized dataset) are left out of the run.
    """

    epochs: int = 20
    batch_size: int = 8
    learning_rate: float = 2e-3
    seed: int = 0
    device: str = "auto"
    labels: str = "label"
    max_shift_mm: float = 20.0
    augment: bool = True
    channels: tuple[int, ...] = ModelConfig.channels
    strides: tuple[int, ...] = ModelConfig.strides
    num_res_units: int = ModelConfig.num_res_units
    init_from: str | None = None
    hold_out: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        values = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
