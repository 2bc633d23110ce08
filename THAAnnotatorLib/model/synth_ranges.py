"""The random ranges of the randomized renderings (:mod:`.synth`), as a plain dataclass: no
torch needed to read them (the command line builds its options from it)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..sweep.generate import TISSUES


def _default_tissue_means() -> dict[str, tuple[float, float]]:
    # realistic values (sweep, phantom): air -1000, fat -100, muscle 35-65, cavity -20,
    # bladder 10, cortex 500-1500, cancellous 80-350, marrow 20, metal 3500, contrast 2600-3500
    return {"air": (-1024.0, -200.0), "fat": (-300.0, 50.0), "muscle": (-100.0, 200.0),
            "pelvic_cavity": (-200.0, 150.0), "bladder": (-150.0, 200.0),
            "cortex": (100.0, 2500.0), "cancellous": (-50.0, 700.0), "marrow": (-200.0, 250.0),
            "metal": (1500.0, 4000.0), "contrast": (200.0, 4000.0)}


@dataclass(frozen=True)
class SynthRanges:
    """Every random range of a rendering, in one place; each pair is (low, high), drawn
    uniformly.

    Attributes
    ----------
    anatomy_spacing_mm : voxel size (slice, row, column) the sweep's anatomy is rendered at;
        its tissue map is point-sampled (no partial volume), so thinner slices than these are
        simulated by the blur alone.
    margin_mm : the crop around a hip reaches this far beyond the ROI (its half size in-plane,
        its half height along S-I), room for the deformation and the ROI's shift.
    tissue_mean_hu : per tissue of :data:`~THAAnnotatorLib.sweep.generate.TISSUES`, the range
        of its mean intensity, HU: far wider than real scans (cortex may come out darker than
        cancellous bone, muscle brighter than fat or darker).
    tissue_std_hu : the spread of each tissue's intensities about its mean, HU (drawn per
        tissue).
    bias_coefficient : range of the coefficients of MONAI's Legendre polynomial bias field
        (degree ``bias_degree``); the field multiplies HU + 1024. With the defaults its factor
        spans about 0.84-1.16 over a crop (medians of 20 draws; 0.75-1.32 at the extremes):
        muscle varies by up to about 170 HU across it.
    bias_degree : degree of that polynomial.
    streaks : how many streaks (0 to this, integer).
    streak_hu : amplitude of a streak at its center line, HU (negative: dark).
    streak_width_mm : Gaussian width (standard deviation) of a streak across its line, mm.
    streak_fade_mm : distance along its line over which a streak fades to 1/e, mm.
    slice_mm : simulated slice thickness (and spacing), mm: the full width at half maximum of
        the blur along S-I, then resampling to that spacing and back.
    pixel_mm : simulated in-plane pixel size, mm (the same blur and resampling in-plane); up
        to 3 mm, as coarse reconstructions (the project's real CT) have: weights trained on
        0.5-1.5 mm lost about 0.1 Dice on sweep hips at 3 mm pixels (Resources/MODEL_CARD.md).
    noise_hu : standard deviation of the Gaussian noise added after the blur, HU.
    gamma : exponent of the gamma curve applied within the HU window.
    rotate_deg : largest rotation about each axis, degrees (out of the axial plane, see
        :func:`.synth._deform`).
    scale : largest relative scaling along each axis (0.1: 0.9-1.1).
    shear : largest shear factor, mm per mm (each of the six).
    translate_mm : largest shift along each axis, mm.
    elastic_mm : largest in-plane displacement of the smooth random deformation, mm (along
        S-I it is smaller in proportion to the crop's height: about 0.55 x).
    elastic_grid_mm : spacing of the random values the smooth deformation is interpolated from
        (trilinear), mm.
    """

    anatomy_spacing_mm: tuple[float, float, float] = (2.0, 0.7, 0.7)
    margin_mm: float = 12.0
    tissue_mean_hu: dict[str, tuple[float, float]] = field(default_factory=_default_tissue_means)
    tissue_std_hu: tuple[float, float] = (0.0, 60.0)
    bias_coefficient: tuple[float, float] = (-0.04, 0.04)
    bias_degree: int = 3
    streaks: int = 4
    streak_hu: tuple[float, float] = (-250.0, 250.0)
    streak_width_mm: tuple[float, float] = (1.0, 5.0)
    streak_fade_mm: tuple[float, float] = (20.0, 120.0)
    slice_mm: tuple[float, float] = (0.5, 5.0)
    pixel_mm: tuple[float, float] = (0.5, 3.0)
    noise_hu: tuple[float, float] = (0.0, 60.0)
    gamma: tuple[float, float] = (0.6, 1.7)
    rotate_deg: float = 10.0
    scale: float = 0.1
    shear: float = 0.05
    translate_mm: float = 8.0
    elastic_mm: float = 3.0
    elastic_grid_mm: float = 20.0

    def validate(self) -> "SynthRanges":
        """Check every range; raise ValueError naming the first one that is wrong."""
        pairs = {name: value for name, value in asdict(self).items()
                 if isinstance(value, tuple) and len(value) == 2}
        pairs.update({f"tissue_mean_hu[{t}]": v for t, v in self.tissue_mean_hu.items()})
        for name, (low, high) in pairs.items():
            if not (np.isfinite(low) and np.isfinite(high) and low <= high):
                raise ValueError(f"{name} must be a finite (low, high) pair, got {(low, high)}")
        if set(self.tissue_mean_hu) != set(TISSUES):
            raise ValueError(f"tissue_mean_hu must give a range for each of {', '.join(TISSUES)}")
        positive = {"anatomy_spacing_mm": min(self.anatomy_spacing_mm),
                    "slice_mm": self.slice_mm[0], "pixel_mm": self.pixel_mm[0],
                    "elastic_grid_mm": self.elastic_grid_mm,
                    "streak_width_mm": self.streak_width_mm[0],
                    "streak_fade_mm": self.streak_fade_mm[0], "gamma": self.gamma[0]}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be above 0, got {value}")
        non_negative = {"margin_mm": self.margin_mm, "tissue_std_hu": self.tissue_std_hu[0],
                        "noise_hu": self.noise_hu[0], "streaks": self.streaks,
                        "rotate_deg": self.rotate_deg, "scale": self.scale, "shear": self.shear,
                        "translate_mm": self.translate_mm,
                        "elastic_mm": self.elastic_mm}
        for name, value in non_negative.items():
            if not value >= 0:
                raise ValueError(f"{name} must be at least 0, got {value}")
        if self.bias_degree < 1 or self.scale >= 1:
            raise ValueError("bias_degree must be at least 1 and scale below 1")
        return self
