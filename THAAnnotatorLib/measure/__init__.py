"""THA planning measurements from an annotation: the acetabulum's size and orientation, the
center-edge and sector angles, the head's coverage and sphericity (numpy in, dataclasses out;
mm, degrees, percent; positions in RAS). One module per idea; :mod:`.hip` puts them together
for a pipeline result and :mod:`.geometry` for any two probes (the sweep's truth)."""
from .geometry import HipGeometry, Incomplete, measure_geometry
from .hip import HipMeasurements, measure_hip, measure_hips

__all__ = ["HipGeometry", "HipMeasurements", "Incomplete", "measure_geometry", "measure_hip",
           "measure_hips"]
