"""Predictions out: `LabelsWriter` (skeleton, tracks, provenance, resume, lock, atomic save),
in every output format of `output_formats`."""
