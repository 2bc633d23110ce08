"""The THA Annotator module's own parts, one file each, beside ``THAAnnotator.py``.

- :mod:`.parameters`: the parameter node (panel settings as strings, with defaults);
- :mod:`.dependencies`: Python packages the algorithms and the model need, installed on demand;
- :mod:`.model`: where the trained model is looked up;
- :mod:`.mrml`: volume node <-> canonical volume, segment arrays, slice geometry;
- :mod:`.results`: segments, measurements and circle tables written into the scene;
- :mod:`.overlays`: the Hough circle and boundary points of the slice being viewed;
- :mod:`.edits`: segment fingerprints, the backup of replaced segments, undoing a failed write;
- :mod:`.review`: review queue files and jumping to their slices;
- :mod:`.review_loop`: the AAR loop: a queue's scans and labels opened, corrections taken into the
  dataset (as ``apply-corrections``), fine-tuning and rebuilding the queue in the background;
- :mod:`.resultspanel`, :mod:`.reviewpanel`: the panel's Results and Review queue sections (the
  only ones that need the Slicer application);
- :mod:`.worker`: one run of the library, in this process or (as a script) in a separate one;
- :mod:`.runner`: a run (or a ``tha-annotator`` command) in a separate process, polled and
  cancelled at once;
- :mod:`.picture`: an off-screen picture of a result;
- :mod:`.application`: Slicer's scripted-module base classes, or stand-ins without Slicer.

None of the others imports qt or ctk: they run in Slicer and headless on the ``slicer-core`` wheel.
Importing this package makes ``THAAnnotatorLib`` importable first.
"""
import importlib.util
import os
import sys


def _addLibraryToPath() -> None:
    """Make ``THAAnnotatorLib`` importable when the module is loaded from a source checkout.

    A built extension ships the library beside ``THAAnnotator.py``. Loaded through "Additional
    module paths" from a checkout, the library is one folder above the module's
    (``<checkout>/THAAnnotatorLib``).
    """
    if importlib.util.find_spec("THAAnnotatorLib") is not None:
        return
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(checkout, "THAAnnotatorLib", "__init__.py")):
        sys.path.append(checkout)


_addLibraryToPath()
