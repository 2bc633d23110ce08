"""Where "Predict with model" finds a trained model."""
from __future__ import annotations

import importlib.util
import logging
import os

MODEL_INFERENCE_MODULE = "THAAnnotatorLib.model.inference"
"""The model feature is offered only when this module of the library exists."""
MODEL_DESCRIPTION_FILE = "model.json"
"""A saved model folder holds this file beside its weights (THAAnnotatorLib.model.network.MODEL_FILE)."""


def moduleModelDirectory() -> str:
    """``Resources/model`` beside ``THAAnnotator.py``: where a built extension may ship a trained model."""
    moduleFolder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(moduleFolder, "Resources", "model")


def libraryModelDirectory() -> str:
    """The library's bundled model folder, ``Resources/model`` beside the ``THAAnnotatorLib`` folder
    (the repository root of a checkout), as ``THAAnnotatorLib.model.network.BUNDLED_MODEL_DIR``
    says, found without importing torch."""
    spec = importlib.util.find_spec("THAAnnotatorLib")
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(spec.origin))), "Resources", "model")


def modelAvailable() -> bool:
    """Whether this version of the library has model inference."""
    try:
        return importlib.util.find_spec(MODEL_INFERENCE_MODULE) is not None
    except ModuleNotFoundError:  # no THAAnnotatorLib.model package at all
        return False


def modelDirectory(modelPath=None) -> str:
    """The model folder "Predict with model" uses.

    ``modelPath`` if given; else the module's ``Resources/model`` if it holds a model (a built
    extension may ship one there); else the library's bundled model, ``Resources/model`` at
    the repository root (:func:`libraryModelDirectory`).
    """
    if modelPath:
        return os.fspath(modelPath)
    shipped = moduleModelDirectory()
    if os.path.isfile(os.path.join(shipped, MODEL_DESCRIPTION_FILE)):
        return shipped
    return libraryModelDirectory()


def modelProblem(modelPath=None) -> str | None:
    """Why "Predict with model" cannot run with ``modelPath`` (see :func:`modelDirectory`): one
    sentence saying what is wrong and what to do; None when a saved model is in reach.

    Only checks that the folder holds a model description; the weights and their SHA-256
    are checked when the model is loaded.
    """
    if not modelAvailable():
        return ("This version of THA Annotator has no model inference "
                f"({MODEL_INFERENCE_MODULE}); update the extension.")
    folder = modelDirectory(modelPath)
    if os.path.isfile(os.path.join(folder, MODEL_DESCRIPTION_FILE)):
        return None
    if modelPath:
        return (f"The model folder {folder} holds no trained model (no {MODEL_DESCRIPTION_FILE}); choose "
                'the folder that "tha-annotator train" wrote in Advanced > Model folder.')
    places = list(dict.fromkeys(os.path.normpath(p) for p in (moduleModelDirectory(), folder)))
    return (f"No trained model is installed (no {MODEL_DESCRIPTION_FILE} in {' or '.join(places)}); "
            'choose the folder that "tha-annotator train" wrote in Advanced > Model folder, or put '
            f"the trained model in {places[-1]}.")


DEVICE_CHOICES = ("auto", "cpu", "cuda")
"""Where the network runs: "auto" takes the GPU when there is one (the "Device" parameter)."""


def _folderSignature(folder: str) -> tuple:
    """Name, modification time and size of each file of a model folder."""
    return tuple(sorted((entry.name, entry.stat().st_mtime_ns, entry.stat().st_size)
                        for entry in os.scandir(folder) if entry.is_file()))


class ModelCache:
    """The last loaded network, reused while its folder's files and the device are unchanged
    (loading checks the weights' SHA-256, which takes a while for each run)."""

    def __init__(self):
        self._key = None
        self._model = None

    def load(self, folder: str, device: str):
        """``THAAnnotatorLib.model.network.load_model(folder, device)``, or the one loaded before."""
        from THAAnnotatorLib.model.network import load_model

        key = (os.path.realpath(folder), device, _folderSignature(folder))
        if key != self._key:
            self._model, self._key = None, None  # free the old network (GPU memory) before loading
            self._model = load_model(folder, device)
            self._key = key
        return self._model


def predict(volume, models: ModelCache, folder: str, device: str, params, sides, progress=None, cancel=None):
    """The network's annotation of ``volume`` (its hips marked for review as the library's
    ``predict_scan`` says) and the messages for the user: when the GPU runs out of memory, the prediction runs again on the CPU."""
    import torch
    from THAAnnotatorLib.model.inference import predict_scan

    def predictOn(device: str):
        if progress is not None:
            progress(0.0, "loading the model")
        return predict_scan(volume, models.load(folder, device), params, sides, progress=progress, cancel=cancel)

    messages = []
    try:
        annotation = predictOn(device)
    except torch.cuda.OutOfMemoryError:
        messages.append("The GPU ran out of memory, so the model ran on the CPU.")
        logging.warning("THA Annotator: %s", messages[-1])
        torch.cuda.empty_cache()
        annotation = predictOn("cpu")
    return annotation, messages
