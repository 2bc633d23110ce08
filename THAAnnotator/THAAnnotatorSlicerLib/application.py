"""Slicer's scripted-module base classes, or stand-ins where the Slicer application is absent.

On the ``slicer-core`` wheel (pytest, batch scripts) there is real MRML but no application:
the stand-ins carry what the Logic and the self-test use; the panel needs the application.
"""
import logging
import unittest

try:
    from slicer.ScriptedLoadableModule import (  # noqa: F401 (imported for THAAnnotator.py)
        ScriptedLoadableModule,
        ScriptedLoadableModuleLogic,
        ScriptedLoadableModuleTest,
        ScriptedLoadableModuleWidget,
    )

    SLICER_APPLICATION = True
except ImportError:
    SLICER_APPLICATION = False

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent
            self.moduleName = self.__class__.__name__

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            raise RuntimeError("The THA Annotator panel needs the 3D Slicer application; "
                               "use THAAnnotatorLogic for work without a GUI.")

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            self.moduleName = self.__class__.__name__
            if self.moduleName.endswith("Logic"):
                self.moduleName = self.moduleName[:-5]
            self.isSingletonParameterNode = True

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, requestedDelay=None, msec=None):
            logging.info(message)
