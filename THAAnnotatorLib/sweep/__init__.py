"""The sweep: a randomized family of hip CTs with known truth, apart from the demo phantom.

It varies what patients vary (joint space down to contact and bony bridges, acetabular depth and
version, head shape, bone density, noise, resolution, storage order, metal) by class, so that
accuracy is measured on anatomy the pipeline was not tuned on and reported per class.
"""
from .draw import CLASSES, DistantMetal, HipDraw, ScanDraw, draw_scan
from .generate import HipTruth, SweepCase, generate_sweep_case, render_scan

__all__ = ["CLASSES", "DistantMetal", "HipDraw", "HipTruth", "ScanDraw", "SweepCase",
           "draw_scan", "generate_sweep_case", "render_scan"]
