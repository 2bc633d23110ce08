"""Building a dataset from a folder of scans: BE + AFS on every scan, in parallel on Dask.

Modules, one idea each:

- :mod:`.discover` - finding the scans (image files and DICOM series folders) and naming cases.
- :mod:`.case` - one case: run the pipeline on a worker and write its folder atomically.
- :mod:`.manifest` - the manifest of a build (JSON and CSV) and the records it is made of.
- :mod:`.build` - the resumable build itself on a Dask cluster (local by default).
- :mod:`.report` - the static quality report page.
- :mod:`.export` - nnU-Net v2 raw layout and MONAI datalist for training frameworks.
"""
