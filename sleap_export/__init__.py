"""sleap-export: trained sleap-nn models to fast, self-describing artifacts, and a runtime for them.

The package is in layers, each importing only those below it (docs/architecture.md):
``core`` (spec, model types, tolerances; numpy only), ``runtime`` (artifacts,
backends, decoding, sources, labels writing, drivers; torch-free), ``exporting``
(checkpoints, graphs, writers; torch and sleap-nn), ``evaluation`` (check,
bench, the sleap-nn reference) and ``cli``.

``export`` needs the ``export`` extra (torch, sleap-nn, onnx), as do
``check_artifact`` and ``run_bench``'s comparisons with sleap-nn; ``open_model``
and ``Predictor`` need only the runtime dependencies for ONNX artifacts.
"""

from __future__ import annotations

import importlib

from sleap_export import old_import_paths

__version__ = "0.1.0"

# Public name -> the module defining it, imported on first use so that
# `import sleap_export` stays cheap and torch-free.
_LAZY = {
    "export": "sleap_export.evaluation.checked_export",
    "predict": "sleap_export.runtime.drivers.prediction_request",
    "PredictionRequest": "sleap_export.runtime.drivers.prediction_request",
    "ExportOptions": "sleap_export.exporting.options",
    "open_model": "sleap_export.runtime.open_model",
    "ModelOptions": "sleap_export.runtime.open_model",
    "load": "sleap_export.runtime.open_model",
    "read_spec": "sleap_export.runtime.artifacts.formats",
    "Outputs": "sleap_export.runtime.decoding.outputs",
    "Predictor": "sleap_export.runtime.drivers.predictor",
    "SingleInstancePredictor": "sleap_export.runtime.drivers.predictor",
    "CentroidPredictor": "sleap_export.runtime.drivers.predictor",
    "CenteredInstancePredictor": "sleap_export.runtime.drivers.predictor",
    "TopDownPredictor": "sleap_export.runtime.drivers.predictor",
    "MultiClassTopDownPredictor": "sleap_export.runtime.drivers.predictor",
    "BottomUpPredictor": "sleap_export.runtime.drivers.predictor",
    "MultiClassBottomUpPredictor": "sleap_export.runtime.drivers.predictor",
    "SegmentationPredictor": "sleap_export.runtime.drivers.predictor",
    "MaskOptions": "sleap_export.core.mask_options",
    "LiveRunner": "sleap_export.runtime.drivers.live",
    "LiveRecording": "sleap_export.runtime.drivers.live",
    "read_times": "sleap_export.runtime.drivers.live",
    "RayPrediction": "sleap_export.runtime.drivers.ray_cluster",
    "RayCluster": "sleap_export.runtime.drivers.ray_cluster",
    "check_artifact": "sleap_export.evaluation.parity_check",
    "run_bench": "sleap_export.evaluation.throughput",
}

__all__ = [*_LAZY, "__version__"]

old_import_paths.install()


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sleap_export' has no attribute {name!r}")
