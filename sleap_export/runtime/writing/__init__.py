"""Predictions out: `LabelsWriter` (skeleton, tracks, provenance, resume, lock, atomic save)."""
