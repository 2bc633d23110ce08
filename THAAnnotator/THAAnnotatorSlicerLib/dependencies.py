"""Python packages the algorithms and the model need beyond what 3D Slicer ships, installed on
demand with the versions ``pyproject.toml`` asks for (a test checks that they agree)."""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import socket

import slicer
from THAAnnotatorLib.errors import InputError

REQUIRED_PACKAGES = (("scipy", "scipy>=1.10"), ("skimage", "scikit-image>=0.21"), ("maxflow", "PyMaxflow>=1.3"))
"""(import name, pip requirement) of the packages the algorithms need beyond what Slicer ships."""
SLICER_BUNDLED_PACKAGES = (("SimpleITK", "SimpleITK"),)
"""Packages that come with Slicer; never pip-installed over Slicer's own build."""
MODEL_PACKAGES = (("monai", "monai>=1.5"), ("safetensors", "safetensors>=0.4"))
"""Packages model inference needs besides torch (which comes through the PyTorch extension)."""
TORCH_REQUIREMENT = "torch>=2.4"


def _version(text: str) -> tuple[int, ...]:
    """(2, 4, 1) for "2.4.1+cu121"."""
    return tuple(int(part) for part in re.match(r"\d+(?:\.\d+)*", text).group().split("."))


def _satisfied(module: str, requirement: str) -> bool:
    """Whether ``module`` imports and its distribution is at least the requirement's version."""
    if importlib.util.find_spec(module) is None:
        return False
    name, _, minimum = requirement.partition(">=")
    if not minimum:
        return True
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # importable, yet not installed by pip: built in
        return True
    return _version(installed) >= _version(minimum)


def missingPythonPackages(model: bool = False) -> list[str]:
    """pip requirements of the packages the algorithms (and, with ``model``, inference) need that
    cannot be imported or are older than required. torch is not listed: see :func:`ensureTorch`."""
    packages = REQUIRED_PACKAGES + SLICER_BUNDLED_PACKAGES + (MODEL_PACKAGES if model else ())
    return [requirement for module, requirement in packages if not _satisfied(module, requirement)]


def requirePythonPackages(model: bool = False) -> None:
    """InputError naming what is missing, for a run that cannot install (see :func:`ensurePythonPackages`)."""
    missing = missingPythonPackages(model=model) + (["torch"] if model and importlib.util.find_spec("torch") is None
                                                     else [])
    if missing:
        raise InputError(f"THA Annotator needs the Python packages {', '.join(missing)}; install them (the "
                         "module panel offers to; torch comes with the PyTorch extension) and try again.")


def installPythonPackages(requirements: list[str]) -> None:
    """Install pip requirements into Slicer's Python (call after asking the user)."""
    bundled = {name for _, name in SLICER_BUNDLED_PACKAGES}
    toInstall = [r for r in requirements if r.partition(">=")[0] not in bundled]
    if toInstall:
        slicer.util.pip_install(" ".join(toInstall))
    importlib.invalidate_caches()
    still = [r for r in missingPythonPackages(model=True) if r in toInstall]
    if still:
        raise RuntimeError(f"These Python packages could not be installed: {', '.join(still)}; "
                           "see the Python console for pip's messages.")


def ensureTorch(askConfirmation: bool = True):
    """Import torch (at least :data:`TORCH_REQUIREMENT`), installing it through the PyTorch
    extension's helper if needed."""
    minimum = TORCH_REQUIREMENT.partition(">=")[2]
    if importlib.util.find_spec("torch") is not None:
        if not _satisfied("torch", TORCH_REQUIREMENT):
            raise InputError(f"Model inference needs PyTorch {minimum} or newer, but PyTorch "
                             f"{importlib.metadata.version('torch')} is installed; update it with the "
                             '"PyTorch Utils" module (uninstall, then install) and restart 3D Slicer.')
        return importlib.import_module("torch")
    try:
        import PyTorchUtils
    except ModuleNotFoundError:
        raise InputError('Model inference needs PyTorch: install the "PyTorch" extension from the '
                         "Extensions Manager, restart 3D Slicer, and try again.") from None
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=askConfirmation,
                                                          torchVersionRequirement=f">={minimum}")
    if torch is None:
        raise InputError("PyTorch was not installed; model inference needs it. Install it with the "
                         '"PyTorch Utils" module and try again.')
    return torch


PACKAGE_INDEX = ("pypi.org", 443)
"""Where pip downloads packages from (host, port): the self-test checks it can be reached."""


def slicerPipEnsure():
    """Slicer's ``slicer.pydeps.pip_ensure`` (Slicer 5.11 and later: it asks, installs with
    progress and offers a restart), or None in older versions."""
    try:
        return getattr(importlib.import_module("slicer.pydeps"), "pip_ensure", None)
    except ImportError:
        return None


def packageIndexReachable(timeout: float = 5.0) -> bool:
    """Whether a connection to the Python Package Index can be opened (nothing is downloaded)."""
    try:
        socket.create_connection(PACKAGE_INDEX, timeout=timeout).close()
    except OSError:
        return False
    return True


def ensurePythonPackages(model: bool = False, prompt: bool = True) -> None:
    """Make the packages of the algorithms (with ``model``: of inference, and torch through the
    PyTorch extension) importable, installing the missing ones from PyPI with the versions
    ``pyproject.toml`` asks for: through :func:`slicerPipEnsure` where the running Slicer has
    it, else ``slicer.util.pip_install``. With ``prompt`` the user is asked first (the panel);
    without, nobody is (the self-test). Raises InputError, one sentence on what is missing,
    when the user declines or the installation fails.
    """
    if model:
        ensureTorch(askConfirmation=prompt)
    missing = missingPythonPackages(model=model)
    if not missing:
        return
    bundled = [name for _, name in SLICER_BUNDLED_PACKAGES if name in missing]
    if bundled:
        raise InputError(f"THA Annotator needs {', '.join(bundled)}, which normally comes with 3D Slicer but is "
                         "missing here; reinstall 3D Slicer.")
    pipEnsure = slicerPipEnsure()
    if pipEnsure is not None:  # Slicer's own check, question and progress
        from packaging.requirements import Requirement

        pipEnsure([Requirement(r) for r in missing], prompt_install=prompt, requester="THA Annotator",
                  skip_in_testing=False)
    else:
        if prompt and not slicer.util.confirmOkCancelDisplay(
                "THA Annotator needs Python packages that are not installed in 3D Slicer yet: "
                f"{', '.join(missing)}.\n\nInstall them now? They are downloaded from the Python Package "
                "Index (pypi.org); this takes about a minute.", windowTitle="THA Annotator: install Python packages"):
            raise InputError(f"Not run: the Python packages {', '.join(missing)} are not installed.")
        try:
            installPythonPackages(missing)
        except Exception as error:  # pip's own messages are in the Python console
            raise InputError(f"Installing the Python packages failed ({error}); see the Python console.") from error
    importlib.invalidate_caches()
    still = missingPythonPackages(model=model)
    if still:
        raise InputError(f"Not run: the Python packages {', '.join(still)} are not installed.")


def ensurePackagesForSelfTest(testing: bool) -> str | None:
    """What the self-test does first: :func:`ensurePythonPackages` without asking, with the model's
    packages where torch is installed (torch itself, a large download, only through the PyTorch
    extension; without it the model scenario is skipped). Returns why the self-test must be
    skipped instead (packages missing, and ``testing``, an automated test run such as ctest or
    pytest, on a machine that cannot reach the package index); None once installed."""
    model = importlib.util.find_spec("torch") is not None
    missing = missingPythonPackages(model=model)
    if missing and testing and not packageIndexReachable():
        return (f"the Python packages {', '.join(missing)} are not installed and the package index "
                f"({PACKAGE_INDEX[0]}) cannot be reached from this machine to install them")
    ensurePythonPackages(model=model, prompt=False)
    return None
