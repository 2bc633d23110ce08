"""Metal is judged at each hip, in its region around the acetabulum and proximal femur: metal
elsewhere in the hip's half of the scan (a bead on the skin, contrast in an arm) leaves the hip
segmented with a warning, while an implant still makes the hip "metal"."""
from __future__ import annotations

import re

import numpy as np
import pytest

from THAAnnotatorLib.metal import METAL_MESSAGE, Metal, in_hip_region
from THAAnnotatorLib.model.inference import predict_scan
from THAAnnotatorLib.model.network import load_model
from THAAnnotatorLib.phantom import HU_METAL, generate_phantom
from THAAnnotatorLib.pipeline import annotate

SPACING_MM = (2.0, 1.0, 1.0)
BEAD_ML = 1.1  # more than Params.metal_min_volume_ml (0.5 ml)
BEAD_RADIUS_MM = (3.0 * BEAD_ML * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
# where each bead's center lies from its hip's head center (RAS mm; the patient's left is -x)
BEAD_OFFSETS_MM = {"right": np.array([0.0, 0.0, 70.0]),  # straight above the head
                   "left": np.array([-72.0, 0.0, 0.0])}  # in the soft tissue where an arm lies


def _paint_bead(volume, center_ras_mm: np.ndarray) -> None:
    """Paint a metal sphere of :data:`BEAD_ML` (3500 HU) centered at ``center_ras_mm``."""
    index = np.indices(volume.shape).reshape(3, -1).T
    offset_mm = (index - volume.ras_mm_to_index(center_ras_mm)) * volume.spacing_mm
    volume.hu[(np.linalg.norm(offset_mm, axis=1) <= BEAD_RADIUS_MM).reshape(volume.shape)] = HU_METAL


@pytest.fixture(scope="module")
def beads():
    """A phantom with one metal bead on each side, away from that hip (:data:`BEAD_OFFSETS_MM`)."""
    phantom = generate_phantom(spacing_mm=SPACING_MM, seed=2)
    for side, offset_mm in BEAD_OFFSETS_MM.items():
        _paint_bead(phantom.volume, np.array(phantom.heads[side].center_ras_mm) + offset_mm)
    return phantom


OTHER_SIDE = {"left": "right", "right": "left"}


@pytest.fixture(scope="module", params=["left", "right"])
def implant_side(request) -> str:
    """The hip holding the prosthesis: each side in turn, so that metal is judged at both."""
    return request.param


@pytest.fixture(scope="module")
def implant(implant_side):
    """A phantom one of whose hips (:func:`implant_side`) is a total hip prosthesis (ball, cup,
    stem)."""
    return generate_phantom(spacing_mm=SPACING_MM, seed=2, metal_side=implant_side)


def _metal_warning(result) -> tuple[float, float]:
    """The metal (ml) outside the hip's region, and how far (mm) its nearest voxel lies."""
    (warning,) = [w for w in result.warnings if "metal" in w]
    match = re.fullmatch(r"([\d.]+) ml of metal outside this hip's region, the nearest (\d+) mm "
                         r"from the head's center \(RAS \(.+\) mm\): not part of this hip", warning)
    assert match, warning
    return float(match[1]), float(match[2])


def test_the_hip_region_takes_in_a_whole_prosthesis_and_no_bead(implant, implant_side):
    truth = implant.anatomy["sides"][implant_side]
    radius_mm = truth["head_radius_mm"]
    volume = implant.volume

    def canonical_mm(ras_mm):  # canonical (z, y, x) mm, z up, as the region wants
        return volume.ras_mm_to_index(ras_mm) * volume.spacing_mm

    center_ras = np.array(truth["head_center_lps_mm"]) * [-1.0, -1.0, 1.0]
    metal = Metal.find(volume.hu, volume.spacing_mm, 2500.0)
    assert metal.volume_ml > 20.0
    assert in_hip_region(metal.points_mm, canonical_mm(center_ras), radius_mm).all()
    for offset_mm in BEAD_OFFSETS_MM.values():
        nearest_ras = center_ras + offset_mm * (1.0 - BEAD_RADIUS_MM / np.linalg.norm(offset_mm))
        assert not in_hip_region(canonical_mm(nearest_ras), canonical_mm(center_ras), radius_mm)


@pytest.mark.parametrize("side", BEAD_OFFSETS_MM)
def test_a_metal_bead_away_from_the_hip_leaves_it_segmented_with_a_warning(beads, side):
    result = annotate(beads.volume, sides=[side]).sides[side]
    assert result.status == "segmented", result.message
    assert abs(result.head_diameter_mm - 2 * beads.heads[side].radius_mm) <= 1.5
    outside_ml, nearest_mm = _metal_warning(result)
    assert abs(outside_ml - BEAD_ML) <= 0.15
    assert abs(nearest_mm - (np.linalg.norm(BEAD_OFFSETS_MM[side]) - BEAD_RADIUS_MM)) <= 3.0


def test_an_implant_makes_its_hip_metal_and_the_other_is_segmented(implant, implant_side):
    sides = annotate(implant.volume).sides
    metal, other = sides[implant_side], sides[OTHER_SIDE[implant_side]]
    assert metal.status == "metal" and metal.message == METAL_MESSAGE
    (warning,) = metal.warnings
    assert re.fullmatch(r"\d+\.\d ml brighter than 2500 HU", warning) and float(warning.split()[0]) > 20
    assert other.status == "segmented"
    assert abs(other.head_diameter_mm - 2 * implant.heads[other.side].radius_mm) <= 1.5
    assert not any("metal" in w for w in other.warnings)


def test_the_model_judges_metal_at_the_hip_it_localized(beads, implant, implant_side):
    model = load_model(device="cpu")
    if implant_side == "left":  # the beads once is enough
        for side, result in predict_scan(beads.volume, model).sides.items():
            assert result.status == "segmented", (side, result.message)
            assert abs(_metal_warning(result)[0] - BEAD_ML) <= 0.15, side
    sides = predict_scan(implant.volume, model).sides
    metal, other = sides[implant_side], sides[OTHER_SIDE[implant_side]]
    assert metal.status == "metal" and metal.message == METAL_MESSAGE
    assert other.status == "segmented" and not other.warnings
