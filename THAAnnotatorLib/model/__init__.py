"""The learned part of THA Annotator: a 2-D network trained on the pipeline's pseudo labels.

Modules, one idea each:

- :mod:`.roi` - the per-hip region of interest: where it lies in a scan, and resampling CT
  slices and label maps into it (256 x 256, HU window [-125, 275] -> [0, 1]) and back.
- :mod:`.dataset` - the slice dataset on disk (one ``.npz`` per scan and side, a JSON index).
- :mod:`.files` - atomic writes and SHA-256 of files.
- :mod:`.labelfiles` - reading label maps (NIfTI, Slicer ``.seg.nrrd``) in a scan's geometry.
- :mod:`.build` - filling a dataset from pipeline outputs or from generated phantoms.
- :mod:`.synth` - randomized renderings of a sweep hip (SynthSeg-style appearance and
  deformation); :mod:`.synth_ranges` - all their random ranges (no torch needed).
- :mod:`.synth_dataset` - a dataset of such renderings with the sweep's truth labels.
- :mod:`.config` - network and training settings (plain dataclasses).
- :mod:`.network` - the MONAI U-Net, its saved form (safetensors + JSON with SHA-256).
- :mod:`.training` - training with checkpoints and resume.
- :mod:`.localize` - finding each femoral head's ROI in a new scan from its bone mask.
- :mod:`.inference` - whole-scan prediction.
- :mod:`.aar` - active-learning annotation refinement: review queue and corrections.
- :mod:`.evaluation` - Dice and HD95 of label maps against reference label maps.

The network, training, inference, AAR, evaluation and synth modules need ``torch`` and
``monai``; the rest of the library does not import them.
"""
