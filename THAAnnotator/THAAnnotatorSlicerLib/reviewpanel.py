"""The panel's "Review queue" section: the Qt side of :mod:`.review_loop`, made by the Widget.

Only this file of the package touches Qt widgets (imported when Slicer builds the panel).
"""
from __future__ import annotations

import logging
import time

import slicer
from THAAnnotatorLib.errors import InputError

from . import model, parameters, review_loop, runner


def _thumbnail(entry):
    """The entry's thumbnail picture as a QPixmap; None where the queue has none or it cannot be read."""
    import qt

    pixmap = qt.QPixmap(entry.thumbnailPath) if entry.thumbnailPath else None
    return pixmap if pixmap is not None and not pixmap.isNull() else None


class ReviewQueueSection:
    """Works through a review queue: opens each slice's scan and labels, an embedded Segment
    Editor, saves corrections into the dataset, and fine-tunes the model and rebuilds the queue
    in the background.

    ``ui`` holds the panel's widgets; ``parameterNode()`` returns the module's parameter node;
    ``parent`` is the panel's widget (for the keyboard shortcuts).
    """

    COLUMNS = ("Thumbnail", "Uncertainty", "Side", "Slice", "Reviewed", "In dataset", "Scan")
    THUMBNAIL_ICON_HEIGHT_PX = 32
    """Height of the table's thumbnail icons; the queue's thumbnails are twice as wide as high
    (label left, prediction right)."""

    def __init__(self, ui, parameterNode, parent):
        import qt

        self.ui = ui
        self._parameterNode = parameterNode
        self.loop = None
        self.busy = False
        self.task = None
        self._filling = False
        self.ui.queueTableWidget.setColumnCount(len(self.COLUMNS))
        self.ui.queueTableWidget.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.ui.queueTableWidget.horizontalHeader().setStretchLastSection(True)
        self.ui.queueTableWidget.setIconSize(qt.QSize(2 * self.THUMBNAIL_ICON_HEIGHT_PX, self.THUMBNAIL_ICON_HEIGHT_PX))
        self.ui.queueTableWidget.verticalHeader().setDefaultSectionSize(self.THUMBNAIL_ICON_HEIGHT_PX + 4)
        self.ui.loadQueueButton.connect("clicked(bool)", self.onLoadQueue)
        self.ui.queueTableWidget.connect("itemSelectionChanged()", self.onQueueSelectionChanged)
        self.ui.previousEntryButton.connect("clicked(bool)", lambda checked=False: self.onMove(-1))
        self.ui.nextEntryButton.connect("clicked(bool)", lambda checked=False: self.onMove(1))
        self.ui.markReviewedButton.connect("clicked(bool)", self.onMarkReviewed)
        self.ui.saveCorrectionButton.connect("clicked(bool)", self.onSaveCorrection)
        self.ui.fineTuneButton.connect("clicked(bool)", self.onFineTune)
        self.ui.rebuildQueueButton.connect("clicked(bool)", self.onRebuildQueue)
        self.ui.taskCancelButton.connect("clicked(bool)", self.onCancelTask)
        self._shortcuts = []
        for key, action in (("previous", lambda: self.onMove(-1)), ("next", lambda: self.onMove(1)),
                            ("save", self.onSaveCorrection)):
            shortcut = qt.QShortcut(qt.QKeySequence(review_loop.SHORTCUTS[key]), parent)
            shortcut.connect("activated()", action)
            self._shortcuts.append(shortcut)
        self.editor = slicer.qMRMLSegmentEditorWidget()
        self.editor.setMaximumNumberOfUndoStates(10)
        self.editor.setMRMLScene(slicer.mrmlScene)
        self.ui.segmentEditorFrame.layout().addWidget(self.editor)
        self._timer = qt.QTimer()
        self._timer.setInterval(250)
        self._timer.connect("timeout()", self._pollTask)
        self.updateButtons()

    def cleanup(self):
        if self.task is not None:
            self.task.cancel()
        self._timer.stop()

    def updateButtons(self):
        ready = self.loop is not None and not self.busy
        for button in (self.ui.markReviewedButton, self.ui.saveCorrectionButton):
            button.enabled = ready
        self.ui.previousEntryButton.enabled = ready and self.loop.index > 0
        self.ui.nextEntryButton.enabled = ready and self.loop.index < len(self.loop.entries) - 1
        for button in (self.ui.fineTuneButton, self.ui.rebuildQueueButton):
            button.enabled = ready and self.task is None
        self.ui.taskCancelButton.enabled = self.task is not None
        self.ui.reviewProgressLabel.text = self.loop.progress() if self.loop is not None else ""

    def _report(self, error: Exception):
        if not isinstance(error, InputError):
            logging.error("THA Annotator review queue: %s", error, exc_info=error)
        self.ui.queueStatusLabel.text = str(error)
        slicer.util.errorDisplay(str(error), windowTitle="THA Annotator review queue")

    def onLoadQueue(self):
        try:
            self.loop = review_loop.ReviewLoop(self.ui.queuePathLineEdit.currentPath)
        except InputError as error:
            self.loop = None
            self._fillTable()
            self._report(error)
            return
        self.ui.queuePathLineEdit.addCurrentPathToHistory()
        self._fillTable()
        self.openEntry()

    def _fillTable(self):
        import qt

        table = self.ui.queueTableWidget
        entries = self.loop.entries if self.loop is not None else []
        self._filling = True
        try:
            table.setRowCount(len(entries))
            for row, entry in enumerate(entries):
                thumbnail = _thumbnail(entry)
                values = ("" if thumbnail is not None else "none", f"{entry.uncertainty:.4g}", entry.side,
                          str(entry.slice), "yes" if entry.reviewed else "", "yes" if entry.corrected else "",
                          entry.scan)
                for column, value in enumerate(values):
                    item = qt.QTableWidgetItem(value)
                    if column == 0 and thumbnail is not None:
                        item.setIcon(qt.QIcon(thumbnail))
                        item.setToolTip("Label (left) and the model's prediction (right) on this slice.")
                    table.setItem(row, column, item)
            if entries:
                table.selectRow(self.loop.index)
        finally:
            self._filling = False
        self.updateButtons()

    def onQueueSelectionChanged(self):
        rows = {index.row() for index in self.ui.queueTableWidget.selectionModel().selectedRows()}
        if self._filling or self.loop is None or len(rows) != 1:
            return
        self.loop.index = rows.pop()
        self.openEntry()

    def openEntry(self):
        """Open the loop's entry: its scan and labels as the input volume and segmentation, the
        views on its slice, its segment in the Segment Editor, its thumbnail."""
        try:
            volumeNode, segmentationNode = self.loop.open(slicer.mrmlScene)
        except Exception as error:
            self._report(error)
            return
        parameterNode = self._parameterNode()
        parameterNode.SetNodeReferenceID("InputVolume", volumeNode.GetID())
        parameterNode.SetNodeReferenceID("OutputSegmentation", segmentationNode.GetID())
        slicer.util.setSliceViewerLayers(background=volumeNode)
        self.editor.setMRMLSegmentEditorNode(
            slicer.mrmlScene.GetSingletonNode("SegmentEditor", "vtkMRMLSegmentEditorNode"))
        pixmap = _thumbnail(self.loop.entry)
        if pixmap is not None:
            self.ui.thumbnailLabel.setPixmap(pixmap)
        else:
            self.ui.thumbnailLabel.setText("No thumbnail for this slice.")
        self._filling = True
        self.ui.queueTableWidget.selectRow(self.loop.index)
        self._filling = False
        self.ui.queueStatusLabel.text = self.loop.position()
        self.updateButtons()

    def onMove(self, step: int):
        if self.loop is None or self.busy:
            return
        if self.loop.move(step):
            self.openEntry()
        else:
            self.ui.queueStatusLabel.text = "This is the queue's " + ("last" if step > 0 else "first") + " slice."

    def onMarkReviewed(self):
        if self.loop is None or self.busy:
            return
        try:
            self.loop.markReviewed()
        except InputError as error:
            self._report(error)
            return
        self._fillTable()
        self.onMove(1)

    def onSaveCorrection(self):
        if self.loop is None or self.busy:
            return
        entry = self.loop.entry
        segmentationNode = self._parameterNode().GetNodeReference("OutputSegmentation")
        try:
            self.loop.saveCorrection(segmentationNode)
        except Exception as error:  # the dataset and the queue are left as they were
            self._report(error)
            return
        self._fillTable()
        self.onMove(1)
        self.ui.queueStatusLabel.text = (f"Saved {entry.scan}, {entry.side} hip, slice {entry.slice} into the dataset. "
                                         + self.ui.queueStatusLabel.text)

    # --- fine-tuning and rebuilding, in the background ---------------------------------------------

    def onFineTune(self):
        self._startTask(lambda device: self.loop.fineTune(device))

    def onRebuildQueue(self):
        modelPath = self._parameterNode().GetParameter("ModelPath") or None
        self._startTask(lambda device: self.loop.rebuildQueue(modelPath if model.modelProblem(modelPath) is None
                                                              else None, device))

    def _startTask(self, start):
        if self.loop is None or self.task is not None:
            return
        try:
            self.task = start(parameters.deviceFromParameterNode(self._parameterNode()))
        except InputError as error:
            self._report(error)
            return
        self._showLog(self.task)
        self._timer.start()
        self.updateButtons()

    def onCancelTask(self):
        if self.task is not None:
            self.task.cancel()  # the next poll reports it

    def _pollTask(self):
        task = self.task
        state = task.poll()
        self._showLog(task)
        if state == runner.RUNNING:
            self.ui.queueStatusLabel.text = f"{task.description}: running for {time.monotonic() - task.started:.0f} s."
            return
        self._timer.stop()
        self.task = None
        if state == runner.DONE:
            self._taskDone(task)
        elif state == runner.CANCELLED:
            self.ui.queueStatusLabel.text = f"{task.description} was cancelled."
        else:
            self._report(task.error())
        task.close()
        self.updateButtons()

    def _showLog(self, task):
        """The command line and its output so far."""
        self.ui.taskLogTextEdit.setPlainText("\n".join(["$ tha-annotator " + " ".join(task.arguments)] + task.lines))
        import qt

        self.ui.taskLogTextEdit.moveCursor(qt.QTextCursor.End)

    def _taskDone(self, task):
        if getattr(task, "modelPath", None):  # fine-tuned: the new model is the model folder from now on
            self._parameterNode().SetParameter("ModelPath", task.modelPath)
            self.ui.queueStatusLabel.text = (f"Fine-tuned model written to {task.modelPath}; it is now the model "
                                             'folder (Advanced). "Rebuild queue" makes a new queue with it.')
            return
        self.loop = review_loop.ReviewLoop(self.loop.path)
        self._fillTable()
        self.openEntry()
        self.ui.queueStatusLabel.text = "The queue was rebuilt. " + self.ui.queueStatusLabel.text
