"""The module's parameter node: the panel's settings, kept as strings in the scene."""
from __future__ import annotations

from dataclasses import replace

import slicer
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.result import SIDES

from .model import DEVICE_CHOICES

SIDE_CHOICES = ("both", "right", "left")
"""Values of the "Side" parameter, in the order of the panel's side combo box."""

PARAMETER_DEFAULTS = {
    "Side": "both",
    "UseFSG": "true",
    "UseLNMS": "true",
    "UseAHS": "true",
    "UseHalfMaximumEdges": "true",
    "UseSlabHeight": "true",
    "GraphCutLambda": repr(Params.graph_cut_lambda),
    "BlurSigmaMm": repr(Params.blur_sigma_mm),
    "NumberOfRays": str(Params.n_rays),
    "EnhancePercentile": repr(Params.enhance_percentile),
    "ReviewQueuePath": "",
    "ModelPath": "",
    "Device": "auto",
    "ShowOverlays": "true",
}
"""Parameter node values (strings) and their defaults. Node references: InputVolume,
OutputSegmentation."""
_BOOL_PARAMETERS = {"UseFSG": "use_fsg", "UseLNMS": "use_lnms", "UseAHS": "use_ahs",
                    "UseHalfMaximumEdges": "use_half_maximum_edges", "UseSlabHeight": "use_slab_height"}
_FLOAT_PARAMETERS = {"GraphCutLambda": "graph_cut_lambda", "BlurSigmaMm": "blur_sigma_mm",
                     "EnhancePercentile": "enhance_percentile"}
_INT_PARAMETERS = {"NumberOfRays": "n_rays"}


def sidesFromChoice(choice) -> tuple[str, ...]:
    """("right", "left") for "both", else the one side; an iterable of sides is checked and kept."""
    if isinstance(choice, str):
        if choice not in SIDE_CHOICES:
            raise InputError(f'The side must be one of {", ".join(SIDE_CHOICES)}; got "{choice}".')
        return SIDES if choice == "both" else (choice,)
    sides = tuple(choice)
    if not sides or any(side not in SIDES for side in sides):
        raise InputError(f"Sides must be chosen from {', '.join(SIDES)}; got {', '.join(map(str, sides)) or 'none'}.")
    return sides


def getParameterNode(scene, moduleName: str):
    """The module's singleton parameter node in ``scene`` (created with defaults if missing)."""
    node = scene.GetSingletonNode(moduleName, "vtkMRMLScriptedModuleNode")
    if node is None:
        node = slicer.vtkMRMLScriptedModuleNode()
        node.SetSingletonTag(moduleName)
        node.SetAttribute("ModuleName", moduleName)
        node.SetName(scene.GenerateUniqueName(moduleName))
        setDefaultParameters(node)
        node = scene.AddNode(node)
    elif node.GetAttribute("ModuleName") != moduleName:
        node.SetAttribute("ModuleName", moduleName)
    return node


def setDefaultParameters(parameterNode) -> None:
    """Fill in every parameter that has no value yet."""
    for name, value in PARAMETER_DEFAULTS.items():
        if not parameterNode.GetParameter(name):
            parameterNode.SetParameter(name, value)


def paramsFromParameterNode(parameterNode) -> Params:
    """Pipeline parameters stored in the node (defaults for the ones not stored)."""
    values = {}
    for name, fieldName in _BOOL_PARAMETERS.items():
        text = parameterNode.GetParameter(name)
        if text:
            values[fieldName] = text == "true"
    for table, convert in ((_FLOAT_PARAMETERS, float), (_INT_PARAMETERS, int)):
        for name, fieldName in table.items():
            text = parameterNode.GetParameter(name)
            if text:
                try:
                    values[fieldName] = convert(text)
                except ValueError:
                    raise InputError(f'The parameter {name} is "{text}", not a number; reset it in '
                                     "the Advanced section.") from None
    return replace(Params(), **values)


def setParametersFromParams(parameterNode, params: Params) -> None:
    """Store the panel's pipeline parameters of ``params`` in the node."""
    wasModified = parameterNode.StartModify()
    for name, fieldName in _BOOL_PARAMETERS.items():
        parameterNode.SetParameter(name, "true" if getattr(params, fieldName) else "false")
    for table in (_FLOAT_PARAMETERS, _INT_PARAMETERS):
        for name, fieldName in table.items():
            parameterNode.SetParameter(name, repr(getattr(params, fieldName)))
    parameterNode.EndModify(wasModified)


def sidesFromParameterNode(parameterNode) -> tuple[str, ...]:
    return sidesFromChoice(parameterNode.GetParameter("Side") or "both")


def showOverlaysFromParameterNode(parameterNode) -> bool:
    """The panel's "Show overlays" (the ShowOverlays parameter; yes without a parameter node):
    whether a result's Hough circle, boundary points and measurement markups are shown."""
    if parameterNode is None:
        return True
    return (parameterNode.GetParameter("ShowOverlays") or PARAMETER_DEFAULTS["ShowOverlays"]) == "true"


def showOverlaysInScene(scene, moduleName: str) -> bool:
    """:func:`showOverlaysFromParameterNode` of the module's parameter node in ``scene``, without making one."""
    return showOverlaysFromParameterNode(scene.GetSingletonNode(moduleName, "vtkMRMLScriptedModuleNode"))


def deviceFromParameterNode(parameterNode) -> str:
    """Where the network runs: one of ``model.DEVICE_CHOICES``."""
    device = parameterNode.GetParameter("Device") or "auto"
    if device not in DEVICE_CHOICES:
        raise InputError(f'The parameter Device is "{device}"; choose {", ".join(DEVICE_CHOICES)} in the Advanced section.')
    return device
