"""sleap-export: trained sleap-nn models to fast, self-describing artifacts, and a runtime for them.

``export`` needs the ``export`` extra (torch, sleap-nn, onnx), as do
``check_artifact`` and ``run_bench``'s comparisons with sleap-nn; ``load`` and
``Predictor`` need only the runtime dependencies for ONNX artifacts.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> the module defining it, imported on first use so that
# `import sleap_export` stays cheap and torch-free.
_LAZY = {
    "export": "sleap_export.exporters",
    # Artifacts through the runtime, training runs eagerly (the runtime's own load() opens artifacts only).
    "load": "sleap_export.model_paths",
    "Predictor": "sleap_export.runtime.predictor",
    "SingleInstancePredictor": "sleap_export.runtime.predictor",
    "CentroidPredictor": "sleap_export.runtime.predictor",
    "CenteredInstancePredictor": "sleap_export.runtime.predictor",
    "TopDownPredictor": "sleap_export.runtime.predictor",
    "MultiClassTopDownPredictor": "sleap_export.runtime.predictor",
    "BottomUpPredictor": "sleap_export.runtime.predictor",
    "MultiClassBottomUpPredictor": "sleap_export.runtime.predictor",
    "check_artifact": "sleap_export.check",
    "run_bench": "sleap_export.bench",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sleap_export' has no attribute {name!r}")
