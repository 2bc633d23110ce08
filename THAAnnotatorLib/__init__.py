"""THA Annotator library: bone extraction (BE), acetabulum / femoral head segmentation (AFS)
and the tools around them. Numpy in, numpy out; never imports Slicer or Qt."""

__version__ = "0.1.0"
