"""One run of the library, the same in the Slicer process and in a separate one.

:func:`compute` is what every run does. Run as ``python -m THAAnnotatorSlicerLib.worker FOLDER``
(as :mod:`.runner` does), it reads ``FOLDER/request.pickle`` and ``FOLDER/input.npy`` (the volume
node's voxels), prints progress as JSON lines and writes ``FOLDER/result.pickle``, or
``FOLDER/error.json`` for bad input. It imports neither slicer nor vtk, so it starts quickly in
``PythonSlicer``; the result goes into MRML in the Slicer process.
"""
from __future__ import annotations

import json
import os
import pickle
import sys

import numpy as np

from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.volume import canonicalize

from . import model

MODES = ("bone", "hips", "model")
"""Extract bone (BE), Segment hips (BE + AFS), Predict with model (BE + network)."""


def compute(mode: str, volume, params, sides, progress=None, cancel=None, modelPath=None, device="auto",
            models: model.ModelCache | None = None):
    """Run ``mode`` on a canonical volume; returns (bone, annotation or None for "bone", messages)."""
    if mode == "bone":
        from THAAnnotatorLib.bone import extract_bone

        return extract_bone(volume, params, progress, cancel), None, []
    if mode == "hips":
        from THAAnnotatorLib.pipeline import annotate

        annotation = annotate(volume, params, sides, progress, cancel)
        return annotation.bone, annotation, []
    if mode == "model":
        annotation, messages = model.predict(volume, models or model.ModelCache(), modelPath, device, params, sides,
                                             progress, cancel)
        return annotation.bone, annotation, messages
    raise ValueError(f"Unknown mode {mode!r}; one of {', '.join(MODES)}.")


def _writeAtomically(path: str, data: bytes) -> None:
    with open(path + ".partial", "wb") as stream:
        stream.write(data)
    os.replace(path + ".partial", path)


def main(folder: str) -> int:
    with open(os.path.join(folder, "request.pickle"), "rb") as stream:
        request = pickle.load(stream)

    def progress(fraction: float, message: str) -> None:
        print(json.dumps({"fraction": float(fraction), "message": message}), flush=True)

    try:
        from THAAnnotatorLib.io import validate_ct

        volume = canonicalize(np.load(os.path.join(folder, "input.npy")), request["arrayIndexToLps"])
        validate_ct(volume, name=request["name"])
        bone, annotation, messages = compute(request["mode"], volume, request["params"], request["sides"], progress,
                                             modelPath=request.get("modelPath"), device=request.get("device", "auto"))
    except InputError as error:
        _writeAtomically(os.path.join(folder, "error.json"), json.dumps({"message": str(error)}).encode("utf-8"))
        return 3
    geometry = (volume.index_to_lps, volume.source_axes, volume.source_flipped, volume.shape)
    _writeAtomically(os.path.join(folder, "result.pickle"), pickle.dumps(
        {"bone": bone, "annotation": annotation, "messages": messages, "geometry": geometry},
        protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
