"""The torch-free runtime: artifact formats, backends, decoding, frame sources,
labels writing and the drivers (batch `Predictor`, Ray, live).

Importing it needs neither sleap-nn nor torch; only the TorchScript runner
imports torch. Training runs open through the export side (`open_model`).
"""

from sleap_export.runtime.backends.runner import Runner
from sleap_export.runtime.decoding.outputs import Outputs
from sleap_export.runtime.open_model import ModelOptions, open_model
from sleap_export.runtime.open_model import load_artifact as load

__all__ = ["ModelOptions", "Outputs", "Runner", "load", "open_model"]
