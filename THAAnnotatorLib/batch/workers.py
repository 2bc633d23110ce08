"""Dask worker set-up for the build."""
from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin


class SingleThreadedLibraries(WorkerPlugin):
    """Keep OpenCV and SimpleITK to one thread per worker: the cluster parallelises over scans,
    and libraries that start threads of their own would only fight for the same cores."""

    def setup(self, worker) -> None:
        import cv2
        import SimpleITK as sitk

        cv2.setNumThreads(1)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
