"""AFS: acetabulum and femoral head segmentation (paper section 3.2), one hip at a time."""
