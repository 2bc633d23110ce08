"""Usual adult ranges of the measurements; a value outside gives a warning.

Sources (docs/measurements.md lists them with the numbers they report): center-edge angle
20-40 deg, Wiberg 1939 (under 20: dysplastic) and Tönnis & Heinecke 1999 (over 39: deep),
as tabulated by Tannast et al. 2015; sector angles, Anda et al. 1991 (deficient below 50 deg
anterior, 90 deg posterior); inclination and anteversion, the spread of native acetabula on CT
(Stem et al. 2006; Wang et al. 2017, Murray's radiographic definitions). The acetabular
diameter and sphericity bounds are this project's: the usual head diameters
(38-58 mm) with a joint space each side, and departures no adult head's template would hide.
The head's concentricity has no range here: off its socket's center it marks the hip for review
(``pipeline.MAX_CONCENTRICITY_MM``).
"""
from __future__ import annotations

USUAL_RANGES = {
    # field: (low, high, what it is called in a warning, unit); None: no bound that side
    "acetabular_diameter_mm": (40.0, 64.0, "the acetabular diameter", "mm"),
    "inclination_deg": (30.0, 60.0, "the acetabular inclination", "deg"),
    "anteversion_deg": (10.0, 35.0, "the acetabular anteversion", "deg"),
    "center_edge_deg": (20.0, 40.0, "the lateral center-edge angle", "deg"),
    "anterior_sector_deg": (50.0, None, "the anterior acetabular sector angle", "deg"),
    "posterior_sector_deg": (90.0, None, "the posterior acetabular sector angle", "deg"),
    "head_sphericity_rms_mm": (None, 1.0, "the head's sphericity (RMS)", "mm"),
}


def range_warnings(values: dict) -> list[str]:
    """A warning for each value in ``values`` (field -> number or None) outside its usual
    adult range."""
    warnings = []
    for field, (low, high, name, unit) in USUAL_RANGES.items():
        value = values.get(field)
        if value is None or ((low is None or value >= low) and (high is None or value <= high)):
            continue
        if low is None:
            usual = f"at most {high:g}"
        elif high is None:
            usual = f"at least {low:g}"
        else:
            usual = f"{low:g}-{high:g}"
        warnings.append(f"{name} of {value:.1f} {unit} is outside the usual adult range "
                        f"({usual} {unit}): an anatomical finding to confirm, not a doubt about "
                        f"the labels")
    return warnings
