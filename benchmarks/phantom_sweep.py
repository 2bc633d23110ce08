"""What the accuracy benchmarks share: which phantoms a run covers, and their HU as saved."""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from THAAnnotatorLib.volume import Volume


def add_sweep_arguments(parser: argparse.ArgumentParser, seeds: int,
                        spacing_mm: tuple[float, float, float]) -> None:
    """--seeds, --first-seed and --spacing-mm, with these defaults."""
    parser.add_argument("--seeds", type=int, default=seeds, help="phantoms FIRST .. FIRST+N-1")
    parser.add_argument("--first-seed", type=int, default=0, help="the first phantom's seed")
    parser.add_argument("--spacing-mm", type=float, nargs=3, default=spacing_mm,
                        metavar=("Z", "Y", "X"), help="voxel size in mm (slice, row, column)")


def swept_seeds(args: argparse.Namespace) -> range:
    return range(args.first_seed, args.first_seed + args.seeds)


def as_saved(volume: Volume) -> Volume:
    """The volume with its HU rounded to whole numbers, as a scan saved in 16 bits has them."""
    return dataclasses.replace(volume, hu=np.round(volume.hu).astype(np.float32))
