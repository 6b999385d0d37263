"""PyTorch: TorchScript artifacts, and any torch module taking uint8 frames (the export
side's eager graph). torch is imported only when one of these runs."""

from __future__ import annotations

import os
import sys

import numpy as np

from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.backends.runner import Runner


def import_torch_with_sleeping_workers():
    """torch, with its OpenMP workers sleeping rather than spinning while they wait for work,
    where this process loads torch first (libgomp reads ``OMP_WAIT_POLICY`` once, as it loads).

    Spinning workers hold the cores that the frame decoder, host decoding and anything else on
    the machine need. Measured with predict on 2 shared cores, top-down TorchScript, 100 frames of
    centered_pair_small.mp4: spinning 24-46 s of CPU and 2.3-5.3 fps, sleeping 10-12 s and
    10.5-14.8 fps, the outputs equal bit for bit (the work is split over threads as before).
    A user's own ``OMP_WAIT_POLICY`` wins; the environment is restored, so child processes do
    not inherit it.
    """
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        import torch

        return torch
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        import torch
    finally:
        del os.environ["OMP_WAIT_POLICY"]
    return torch


class TorchModuleRunner(Runner):
    """Any torch module taking uint8 frames: the eager graph or a loaded TorchScript."""

    name = "torch"

    def __init__(self, module, spec: ModelSpec, device: str = "cpu", compile: bool = False):
        super().__init__(spec, device)
        self.module = module
        self.compile = compile
        self._callable = None

    def activate_impl(self) -> None:
        import torch

        from sleap_export.runtime.backends.malloc import keep_large_buffers_mapped

        keep_large_buffers_mapped()
        self.module = self.module.to(self.device).eval()
        self._callable = torch.compile(self.module, dynamic=True) if self.compile else self.module

    def infer_impl(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            outputs = self._callable(*(torch.from_numpy(a).to(self.device) for a in inputs))
        return [t.cpu().numpy() for t in outputs]

    def deactivate_impl(self) -> None:
        self._callable = None


class TorchScriptRunner(TorchModuleRunner):
    """A TorchScript artifact."""

    name = "torchscript"

    @classmethod
    def from_path(cls, path, spec, device="cpu", **options):
        import warnings

        torch = import_torch_with_sleeping_workers()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # jit.load's deprecation notice
            module = torch.jit.load(str(path), map_location=device)
        return cls(module, spec, device, **options)
