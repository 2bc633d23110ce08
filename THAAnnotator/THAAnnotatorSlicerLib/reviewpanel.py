"""The panel's "Review queue" section: the Qt side of :mod:`.review`, made by the Widget.

Only this file of the package touches Qt widgets (imported when Slicer builds the panel).
"""
from __future__ import annotations

import slicer
from THAAnnotatorLib.errors import InputError

from . import review


class ReviewQueueSection:
    """Lists a queue's slices, moves the views to the selected one and marks it corrected.

    ``ui`` holds the panel's widgets; ``parameterNode()`` returns the module's parameter node.
    """

    def __init__(self, ui, parameterNode):
        self.ui = ui
        self._parameterNode = parameterNode
        self.entries = []
        self.busy = False
        self.ui.queueTableWidget.setColumnCount(5)
        self.ui.queueTableWidget.setHorizontalHeaderLabels(["Uncertainty", "Side", "Slice", "Corrected", "Scan"])
        self.ui.queueTableWidget.horizontalHeader().setStretchLastSection(True)
        self.ui.loadQueueButton.connect("clicked(bool)", self.onLoadQueue)
        self.ui.queueTableWidget.connect("itemSelectionChanged()", self.onQueueSelectionChanged)
        self.ui.markCorrectedButton.connect("clicked(bool)", self.onMarkCorrected)

    def updateButtons(self):
        self.ui.markCorrectedButton.enabled = not self.busy and self.selectedEntry() is not None

    def onLoadQueue(self):
        path = self.ui.queuePathLineEdit.currentPath
        try:
            self.entries = review.readReviewQueue(path)
        except InputError as error:
            self.entries = []
            self.ui.queueStatusLabel.text = str(error)
            slicer.util.errorDisplay(str(error), windowTitle="THA Annotator review queue")
        else:
            self.ui.queuePathLineEdit.addCurrentPathToHistory()
            open_ = sum(not e.corrected for e in self.entries)
            self.ui.queueStatusLabel.text = f"{len(self.entries)} slices, {open_} to review."
        self._fillTable()

    def _fillTable(self):
        import qt

        table = self.ui.queueTableWidget
        table.setRowCount(len(self.entries))
        for row, entry in enumerate(self.entries):
            values = (f"{entry.uncertainty:.4g}", entry.side, str(entry.slice), "yes" if entry.corrected else "",
                      entry.scan)
            for column, value in enumerate(values):
                table.setItem(row, column, qt.QTableWidgetItem(value))
        self.updateButtons()

    def selectedEntry(self):
        rows = {index.row() for index in self.ui.queueTableWidget.selectionModel().selectedRows()}
        return self.entries[rows.pop()] if len(rows) == 1 and self.entries else None

    def onQueueSelectionChanged(self):
        self.updateButtons()
        entry = self.selectedEntry()
        if entry is None:
            return
        volumeNode = self._parameterNode().GetNodeReference("InputVolume")
        segmentationNode = self._parameterNode().GetNodeReference("OutputSegmentation")
        if volumeNode is None:
            self.ui.queueStatusLabel.text = "Select the CT volume of this scan first."
            return
        try:
            review.jumpToReviewEntry(entry, volumeNode, segmentationNode)
        except InputError as error:
            self.ui.queueStatusLabel.text = str(error)
            return
        note = "" if review.reviewEntryMatchesVolume(entry, volumeNode) else (
            f' Note: the entry is for "{entry.scan}", but the selected volume is "{volumeNode.GetName()}".')
        self.ui.queueStatusLabel.text = f"{entry.side.capitalize()} hip, slice {entry.slice}.{note}"

    def onMarkCorrected(self):
        entry = self.selectedEntry()
        if entry is None:
            return
        path = self.ui.queuePathLineEdit.currentPath
        try:
            review.markReviewEntryCorrected(path, entry)
            self.entries = review.readReviewQueue(path)
        except InputError as error:
            self.ui.queueStatusLabel.text = str(error)
            slicer.util.errorDisplay(str(error), windowTitle="THA Annotator review queue")
            return
        self._fillTable()
        self.ui.queueStatusLabel.text = f"Marked {entry.side} hip, slice {entry.slice} as corrected."
