"""The eager runner: the graph built from checkpoints, run by PyTorch directly.

Lives outside the runtime because it needs sleap-nn to build the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sleap_export.exporting.graph_builder import build_graph
from sleap_export.exporting.options import ExportOptions
from sleap_export.runtime.backends.torch_runner import TorchModuleRunner


def eager_runner(
    model_paths: Sequence[str | Path],
    device: str = "cpu",
    compile: bool = False,
    options: ExportOptions = ExportOptions(),
) -> TorchModuleRunner:
    """A runner over the same module the exporters trace (optionally torch.compile'd)."""
    built = build_graph(model_paths, options)
    return TorchModuleRunner(built.module, built.spec, device=device, compile=compile)
