"""The thin runtime: artifact reader, runners, Outputs, Labels building, Predictor.

Importing it needs neither sleap-nn nor torch; only the TorchScript runner
(and the eager runner, which lives outside this package) imports torch.
"""

from sleap_export.runtime.outputs import Outputs
from sleap_export.runtime.runners import Runner, load

__all__ = ["Outputs", "Runner", "load"]
