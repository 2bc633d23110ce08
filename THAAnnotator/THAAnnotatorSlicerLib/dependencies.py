"""Python packages the algorithms and the model need beyond what 3D Slicer ships."""
from __future__ import annotations

import importlib
import importlib.util

import slicer
from THAAnnotatorLib.errors import InputError

REQUIRED_PACKAGES = (("scipy", "scipy"), ("skimage", "scikit-image"), ("maxflow", "PyMaxflow"))
"""(import name, pip requirement) of the packages the algorithms need beyond what Slicer ships."""
SLICER_BUNDLED_PACKAGES = (("SimpleITK", "SimpleITK"),)
"""Packages that come with Slicer; never pip-installed over Slicer's own build."""
MODEL_PACKAGES = (("monai", "monai"), ("safetensors", "safetensors"))
"""Packages model inference needs besides torch (which comes through the PyTorch extension)."""


def missingPythonPackages(model: bool = False) -> list[str]:
    """pip names of the packages the algorithms (and, with ``model``, inference) need that
    cannot be imported. torch is not listed: see :func:`ensureTorch`."""
    packages = REQUIRED_PACKAGES + SLICER_BUNDLED_PACKAGES + (MODEL_PACKAGES if model else ())
    return [requirement for module, requirement in packages if importlib.util.find_spec(module) is None]


def installPythonPackages(requirements: list[str]) -> None:
    """Install pip requirements into Slicer's Python (call after asking the user)."""
    bundled = {name for _, name in SLICER_BUNDLED_PACKAGES}
    toInstall = [r for r in requirements if r not in bundled]
    if toInstall:
        slicer.util.pip_install(" ".join(toInstall))
    importlib.invalidate_caches()
    still = [r for r in missingPythonPackages(model=True) if r in toInstall]
    if still:
        raise RuntimeError(f"These Python packages could not be installed: {', '.join(still)}; "
                           "see the Python console for pip's messages.")


def ensureTorch(askConfirmation: bool = True):
    """Import torch, installing it through the PyTorch extension's helper if needed."""
    if importlib.util.find_spec("torch") is not None:
        return importlib.import_module("torch")
    try:
        import PyTorchUtils
    except ModuleNotFoundError:
        raise InputError('Model inference needs PyTorch: install the "PyTorch" extension from the '
                         "Extensions Manager, restart 3D Slicer, and try again.") from None
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=askConfirmation)
    if torch is None:
        raise InputError("PyTorch was not installed; model inference needs it. Install it with the "
                         '"PyTorch Utils" module and try again.')
    return torch


def ensurePythonPackages(model: bool = False, confirm=None) -> None:
    """Make the packages of the algorithms (with ``model``: of inference, and torch through the
    PyTorch extension, which asks the user itself) importable, installing the missing ones from
    PyPI once ``confirm(question)`` returns True.

    ``confirm`` defaults to asking the user in a dialog of the Slicer application. Raises
    InputError, one sentence on what is missing, when the user declines or the installation fails.
    """
    if model:
        ensureTorch(askConfirmation=True)
    missing = missingPythonPackages(model=model)
    if not missing:
        return
    bundled = [name for _, name in SLICER_BUNDLED_PACKAGES if name in missing]
    if bundled:
        raise InputError(f"THA Annotator needs {', '.join(bundled)}, which normally comes with 3D Slicer but is "
                         "missing here; reinstall 3D Slicer.")
    if confirm is None:
        def confirm(question):
            return slicer.util.confirmOkCancelDisplay(question, windowTitle="THA Annotator: install Python packages")
    if not confirm("THA Annotator needs Python packages that are not installed in 3D Slicer yet: "
                   f"{', '.join(missing)}.\n\nInstall them now? They are downloaded from the Python "
                   "Package Index (pypi.org); this takes about a minute."):
        raise InputError(f"Not run: the Python packages {', '.join(missing)} are not installed.")
    try:
        installPythonPackages(missing)
    except Exception as error:  # pip's own messages are in the Python console
        raise InputError(f"Installing the Python packages failed ({error}); see the Python console.") from error
