"""Evaluation above the export side: `check` against sleap-nn, `bench`, live latency, the
sleap-nn reference, and `export()` with its check."""
