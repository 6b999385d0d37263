"""TensorRT engines at run time: what built them, whether this machine can run them, the runner.

An engine only runs under the TensorRT version that built it, and on GPUs of
the compute capability it was built for, unless it was built
hardware-compatible (Ampere and newer). The builder records its target in the
spec (`EngineTarget`), so `load()` can refuse a mismatch in one line before
TensorRT fails deep inside deserialization. Needs ``tensorrt``, ``polygraphy``
and ``cuda-python`` (``pip install 'sleap-export[trt]'``), never torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from sleap_export.core.errors import InputError, SleapExportError, install_extra
from sleap_export.core.spec import EngineTarget, ModelSpec
from sleap_export.runtime.backends.runner import Runner

INSTALL_HINT = f"install it with {install_extra('trt')} on a machine with an NVIDIA GPU"
# Engines built hardware-compatible run on this compute capability and newer.
HARDWARE_COMPATIBLE_FROM = (8, 0)


def _capability(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def built_for(spec: ModelSpec) -> EngineTarget:
    """The TensorRT version and GPU an engine's spec says built it."""
    if spec.export.engine is None:
        raise SleapExportError("The engine's spec does not say which TensorRT and GPU built it; rebuild it with `sleap-export trt`.")
    return spec.export.engine.target


def compatibility_problem(built: EngineTarget, here: EngineTarget, engine_name: str = "The engine") -> Optional[str]:
    """Why an engine built for ``built`` cannot run ``here``, in one line; None when it can."""
    rebuild = f"rebuild it on this machine with `sleap-export trt RUN_DIR... -o {engine_name}`"
    if built.tensorrt != here.tensorrt:
        return (
            f"{engine_name} was built with TensorRT {built.tensorrt} and this machine has TensorRT "
            f"{here.tensorrt}; engines run only under the version that built them: {rebuild}."
        )
    built_cc, here_cc = _capability(built.compute_capability), _capability(here.compute_capability)
    if built.hardware_compatibility == "ampere+":
        if here_cc < HARDWARE_COMPATIBLE_FROM:
            return (
                f"{engine_name} is hardware-compatible from Ampere (compute capability 8.0) on, and this "
                f"GPU ({here.gpu}) is {here.compute_capability}: {rebuild}."
            )
        return None
    if built_cc != here_cc:
        return (
            f"{engine_name} was built for compute capability {built.compute_capability} ({built.gpu}) and "
            f"this GPU ({here.gpu}) is {here.compute_capability}: {rebuild}, or build it once with "
            "--hardware-compatibility to run on any Ampere or newer GPU."
        )
    return None


def import_tensorrt():
    """The tensorrt module, or a one-line error saying how to get it."""
    try:
        import tensorrt
    except ImportError:
        raise SleapExportError(f"TensorRT is not installed; {INSTALL_HINT}.") from None
    return tensorrt


def _cudart():
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            raise SleapExportError(f"cuda-python is not installed; {INSTALL_HINT}.") from None
    return runtime


def local_target(device_index: int = 0, hardware_compatibility: str = "none") -> EngineTarget:
    """This machine's TensorRT version and GPU ``device_index``."""
    tensorrt = import_tensorrt()
    cudart = _cudart()
    error, count = cudart.cudaGetDeviceCount()
    if int(error) != 0 or count == 0:
        raise SleapExportError(
            "No CUDA GPU is visible here; TensorRT engines are built and run on an NVIDIA GPU "
            "(use an ONNX artifact on this machine)."
        )
    if device_index >= count:
        raise InputError(f"GPU {device_index} does not exist here ({count} visible); pass --device cuda:0.")
    error, properties = cudart.cudaGetDeviceProperties(device_index)
    if int(error) != 0:
        raise SleapExportError(f"Could not query GPU {device_index} ({error}); check the CUDA driver.")
    name = properties.name
    name = (name.decode() if isinstance(name, bytes) else str(name)).rstrip("\0")
    return EngineTarget(
        tensorrt=tensorrt.__version__,
        gpu=name,
        compute_capability=f"{properties.major}.{properties.minor}",
        hardware_compatibility=hardware_compatibility,
    )


def cuda_device_index(device: str) -> int:
    """``"cuda"`` / ``"cuda:N"`` -> N; anything else is refused (engines run on GPUs only)."""
    if device == "cuda":
        return 0
    prefix, _, index = device.partition(":")
    if prefix != "cuda" or not index.isdigit():
        raise InputError(f"TensorRT engines run on a GPU; pass device 'cuda' or 'cuda:N', not {device!r}.")
    return int(index)


def _checked(result):
    """The values of a cuda-python call, which returns ``(error, *values)``; raises on error."""
    error, *values = result
    if int(error) != 0:
        raise SleapExportError(f"A CUDA call failed ({getattr(error, 'name', error)}); check the GPU and its driver.")
    return values[0] if len(values) == 1 else None


class _DeviceBuffers:
    """One device allocation per tensor name, grown only when a call needs more, freed on close."""

    def __init__(self, cudart):
        self.cudart = cudart
        self.allocations: dict[str, tuple[int, int]] = {}  # name -> (bytes, pointer)

    def pointer(self, name: str, nbytes: int) -> int:
        capacity, pointer = self.allocations.get(name, (0, 0))
        if nbytes > capacity:
            if pointer:
                _checked(self.cudart.cudaFree(pointer))
            pointer = int(_checked(self.cudart.cudaMalloc(max(nbytes, 1))))
            self.allocations[name] = (nbytes, pointer)
        return pointer

    def free(self) -> None:
        for _, pointer in self.allocations.values():
            self.cudart.cudaFree(pointer)
        self.allocations.clear()


class TensorRTRunner(Runner):
    """A TensorRT engine on one GPU: device buffers kept per tensor and reused across
    calls (regrown only for larger shapes), its own CUDA stream, no torch."""

    name = "tensorrt"
    default_device = "cuda"

    def __init__(self, path: Path, spec: ModelSpec, device: str = "cuda"):
        super().__init__(spec, device)
        self.path = Path(path)
        self.device_index = cuda_device_index(device)
        self._engine = None
        self._context = None
        self._stream = None
        self._buffers = None
        self._outputs: list[str] = []  # every output tensor of the engine, the spec's too
        self._dtypes: dict[str, np.dtype] = {}

    @classmethod
    def from_path(cls, path, spec, device="cuda", **options):
        return cls(path, spec, device, **options)

    def activate_impl(self) -> None:
        # Before deserializing: TensorRT's own refusal is a multi-line log deep in its runtime.
        problem = compatibility_problem(
            built_for(self.spec), local_target(self.device_index), self.path.name
        )
        if problem:
            raise SleapExportError(problem)
        tensorrt = import_tensorrt()
        cudart = _cudart()
        _checked(cudart.cudaSetDevice(self.device_index))
        self._engine = tensorrt.Runtime(tensorrt.Logger(tensorrt.Logger.ERROR)).deserialize_cuda_engine(
            self.path.read_bytes()
        )
        if self._engine is None:
            raise SleapExportError(
                f"TensorRT could not load {self.path.name} (see its message above); rebuild it with `sleap-export trt`."
            )
        self._context = self._engine.create_execution_context()
        self._stream = _checked(cudart.cudaStreamCreate())
        self._buffers = _DeviceBuffers(cudart)
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._outputs = [n for n in names if self._engine.get_tensor_mode(n) == tensorrt.TensorIOMode.OUTPUT]
        self._dtypes = {n: np.dtype(tensorrt.nptype(self._engine.get_tensor_dtype(n))) for n in names}

    def infer_impl(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        cudart = self._buffers.cudart
        to_device, to_host = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        stream = self._stream
        # Held until the stream is synchronized: the copies below are asynchronous.
        staged = [np.ascontiguousarray(a, dtype=self._dtypes[n]) for n, a in zip(self.spec.input_names, inputs)]
        for name, array in zip(self.spec.input_names, staged):
            if not self._context.set_input_shape(name, array.shape):
                low, _, high = self._engine.get_tensor_profile_shape(name, 0)
                raise InputError(
                    f"{name} of shape {array.shape} is outside {self.path.name}'s profile ({tuple(low)} to "
                    f"{tuple(high)}); rebuild it with --batch/--height/--width covering it, or change the batch size."
                )
            pointer = self._buffers.pointer(name, array.nbytes)
            _checked(cudart.cudaMemcpyAsync(pointer, array.ctypes.data, array.nbytes, to_device, stream))
            self._context.set_tensor_address(name, pointer)
        host = {}
        for name in self._outputs:  # every output needs an address, the spec's too
            shape = tuple(self._context.get_tensor_shape(name))
            host[name] = np.empty(shape, dtype=self._dtypes[name])
            self._context.set_tensor_address(name, self._buffers.pointer(name, host[name].nbytes))
        if not self._context.execute_async_v3(int(stream)):
            raise SleapExportError(f"TensorRT failed to run {self.path.name} (see its message above).")
        wanted = [host[name] for name in self.spec.output_names]
        for name in self.spec.output_names:
            pointer = self._buffers.allocations[name][1]
            _checked(cudart.cudaMemcpyAsync(host[name].ctypes.data, pointer, host[name].nbytes, to_host, stream))
        _checked(cudart.cudaStreamSynchronize(stream))
        return wanted

    def deactivate_impl(self) -> None:
        if self._buffers is not None:
            self._buffers.free()
            self._buffers.cudart.cudaStreamDestroy(self._stream)
        self._context = self._engine = self._stream = self._buffers = None
