"""The torch-free runtime: artifact formats, backends, decoding, frame sources,
labels writing and the drivers (batch `Predictor`, Ray, live).

Importing it needs neither sleap-nn nor torch; only the TorchScript runner
imports torch. Training runs open through the export side (`open_model`). Its
public names are imported on first use, so that reading an artifact's format
(as ``--help`` does) loads nothing else.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ModelOptions": ("sleap_export.runtime.open_model", "ModelOptions"),
    "open_model": ("sleap_export.runtime.open_model", "open_model"),
    # Artifacts only (training runs: `open_model`).
    "load": ("sleap_export.runtime.open_model", "load_artifact"),
    "Outputs": ("sleap_export.runtime.decoding.outputs", "Outputs"),
    "Runner": ("sleap_export.runtime.backends.runner", "Runner"),
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'sleap_export.runtime' has no attribute {name!r}")
