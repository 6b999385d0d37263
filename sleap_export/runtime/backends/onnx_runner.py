"""ONNX Runtime: the default backend for ONNX artifacts (CPU, or its CUDA provider)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.backends.runner import Runner, WarmRun, usable_cores

# The fix for a device that cannot run here, as both the CLI and Python spell the CPU device.
ON_THE_CPU = "run on the CPU (--device cpu / device='cpu')"
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def _provider(device: str) -> str:
    """ONNX Runtime's execution provider for ``device``, refused in one line where this install lacks it."""
    import onnxruntime

    if device not in PROVIDERS:
        raise InputError(f"Unknown device {device!r} for ONNX Runtime; use cpu or cuda.")
    provider = PROVIDERS[device]
    if provider not in onnxruntime.get_available_providers():
        raise InputError(
            f"ONNX Runtime has no {provider} here; install onnxruntime-gpu (on a machine with an NVIDIA GPU), or {ON_THE_CPU}."
        )
    return provider


class _OnnxWarmRun(WarmRun):
    """Ended through ONNX Runtime's `RunOptions.terminate`, checked between the graph's nodes."""

    def __init__(self, runner: "OnnxRunner", frames):
        import onnxruntime

        super().__init__(runner, frames)
        self.options = onnxruntime.RunOptions()

    def run_impl(self) -> bool:
        try:
            self.runner.infer_impl(self.runner.graph_inputs(self.frames), self.options)
        except Exception:  # ONNX Runtime's Fail, whose message says the terminate flag ended it
            if self.stop_requested:
                return False
            raise
        return True

    def stop_impl(self) -> None:
        self.options.terminate = True


class OnnxRunner(Runner):
    """ONNX Runtime; ``device="cuda"`` requires the CUDA provider and fails loudly without it.

    ``threads`` CPU threads in all (default: every core) are split over
    ``parallel_batches`` concurrent runs of one session. One batch on all cores
    gives the lowest latency; on CPUs, two batches on half the cores each give
    more frames per second (the small layers of pose networks leave threads
    idle), which is what `Predictor` asks for.
    """

    name = "onnxruntime"
    warm_run_type = _OnnxWarmRun

    def __init__(
        self,
        path: Path,
        spec: ModelSpec,
        device: str = "cpu",
        threads: Optional[int] = None,
        parallel_batches: int = 1,
    ):
        super().__init__(spec, device)
        # Refused when opened, before a run writes anything: the provider is there, or a one-line error.
        self.provider = _provider(device)
        self.path = Path(path)
        self.threads = threads
        self.parallel_batches = parallel_batches
        self.session = None

    @classmethod
    def from_path(cls, path, spec, device="cpu", **options):
        return cls(path, spec, device, **options)

    @classmethod
    def throughput_options(cls, device: str) -> dict:
        # Measured on 2 cores: two single-threaded runs beat one two-threaded run by 5-15%.
        return {"parallel_batches": 2} if device == "cpu" and usable_cores() >= 2 else {}

    def activate_impl(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        threads = self.threads or usable_cores()
        options.intra_op_num_threads = max(1, threads // self.parallel_batches)
        options.inter_op_num_threads = 1
        if self.parallel_batches > 1:
            # Spinning workers of one run would take the cores the other run needs.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(self.path), sess_options=options, providers=[self.provider])
        if self.session.get_providers()[0] != self.provider:
            raise SleapExportError(
                f"ONNX Runtime could not start {self.provider}; check the CUDA install, or {ON_THE_CPU}."
            )

    def infer_impl(self, inputs: list[np.ndarray], run_options=None) -> list[np.ndarray]:
        """``run_options``: ONNX Runtime's `RunOptions` (a warm run's, to stop it)."""
        return self.session.run(None, dict(zip(self.spec.input_names, inputs)), run_options)

    def deactivate_impl(self) -> None:
        self.session = None
