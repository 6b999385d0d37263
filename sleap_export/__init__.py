"""sleap-export: trained sleap-nn models to fast, self-describing artifacts, and a runtime for them.

``export`` needs the ``export`` extra (torch, sleap-nn, onnx); ``load`` and
``Predictor`` need only the runtime dependencies for ONNX artifacts.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Predictor", "export", "load", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import sleap_export` stays cheap and torch-free.
    if name == "export":
        from sleap_export.exporters import export

        return export
    if name == "load":
        from sleap_export.runtime.runners import load

        return load
    if name == "Predictor":
        from sleap_export.runtime.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'sleap_export' has no attribute {name!r}")
