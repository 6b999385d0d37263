"""PyTorch: TorchScript artifacts, and any torch module taking uint8 frames (the export
side's eager graph). torch is imported only when one of these runs."""

from __future__ import annotations

import numpy as np

from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.backends.runner import Runner


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

        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # jit.load's deprecation notice
            module = torch.jit.load(str(path), map_location=device)
        return cls(module, spec, device, **options)
