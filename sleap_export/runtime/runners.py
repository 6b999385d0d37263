"""Runners: one interface over ONNX Runtime, TorchScript and eager PyTorch.

Modelled on Polygraphy's runners: context managers whose public
``activate`` / ``infer`` / ``deactivate`` wrap small ``*_impl`` methods. Each
artifact format's record (`runtime.artifact.FORMATS`) names its runner class, so
`load()` has no branching on formats.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from sleap_export.errors import InputError, SleapExportError
from sleap_export.runtime.artifact import format_of, read_spec
from sleap_export.runtime.frames import as_batch, match_channels
from sleap_export.runtime.model_types import complete
from sleap_export.runtime.outputs import Outputs
from sleap_export.runtime.timing import StageClock
from sleap_export.spec import ModelSpec


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity (taskset, SLURM and Ray
    allocations set it), not every core of the machine."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def require_poses(spec: ModelSpec) -> None:
    """Refuse to decode poses from an artifact that outputs raw head maps."""
    if spec.raw_heads:
        raise InputError(
            "This artifact outputs raw head maps (exported with --raw-heads); read them "
            "with runner.infer(), or re-export without --raw-heads to predict poses."
        )


class WarmRun:
    """One run of the graph whose outputs nobody reads: it keeps the runtime's caches and threads
    warm just before a frame comes (`runtime.live.Waiting`). Another thread may `stop()` it when
    the frame comes early: ONNX Runtime ends it within a node or so; the others run it to its
    end (OpenVINO 2026.4's ``InferRequest.cancel()`` midway through a run of another input
    shape left the compiled model returning that run's outputs afterwards, even from new
    requests, so it is not used).
    """

    def __init__(self, runner: Runner, frames):
        self.runner = runner
        self.frames = frames
        self.stop_requested = False

    def run(self) -> bool:
        """Run it: True when it ran to its end, False when `stop()` ended it (or came first)."""
        if self.stop_requested:
            return False
        self.runner.activate()
        return self.run_impl()

    def stop(self) -> None:
        """End it now (from any thread); after its end, nothing happens."""
        self.stop_requested = True
        self.stop_impl()

    def run_impl(self) -> bool:
        self.runner.infer(self.frames)
        return True

    def stop_impl(self) -> None:
        """A runtime that cannot end a run midway lets it run to its end."""


class Runner(abc.ABC):
    """Runs an exported graph on uint8 frames."""

    name = "runner"
    # What load() gives a runner when no device is asked for.
    default_device = "cpu"
    # Batches that may run at once; the Predictor keeps this many in flight.
    parallel_batches = 1
    # What `warm_run` makes: how this runtime ends a run midway, if it can.
    warm_run_type = WarmRun

    def __init__(self, spec: ModelSpec, device: str = "cpu"):
        self.spec = spec
        self.device = device
        self.is_active = False
        # "host pre" (validation, channels), "network" (the graph), "host post" (decoding).
        self.clock = StageClock()

    @classmethod
    def from_path(cls, path: Path, spec: ModelSpec, device: str = "cpu", **options) -> "Runner":
        """Build the runner for an artifact file (subclasses for file formats)."""
        raise NotImplementedError(f"{cls.__name__} is not loaded from files")

    @classmethod
    def throughput_options(cls, device: str) -> dict:
        """Options that trade single-batch latency for throughput over many batches."""
        return {}

    # Lifecycle ---------------------------------------------------------------
    def activate(self) -> "Runner":
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # Inference ---------------------------------------------------------------
    def infer(self, frames, centroids=None) -> dict[str, np.ndarray]:
        """Raw graph outputs by name for a batch of frames.

        ``centroids`` (``(N, K, 2)`` frame pixels, NaN rows for empty slots) feed
        artifacts that crop around given centroids (standalone centered instance).
        """
        inputs = self.graph_inputs(frames, centroids)
        self.activate()
        with self.clock.section("network"):
            arrays = self.infer_impl(inputs)
        return dict(zip(self.spec.output_names, arrays))

    def graph_inputs(self, frames, centroids=None) -> list[np.ndarray]:
        """The graph's inputs, in ``spec.input_names`` order, for a batch of frames (see `infer`)."""
        with self.clock.section("host pre"):
            batch = match_channels(as_batch(frames), self.spec.input_channels)
            inputs = [batch]
            if "centroids" in self.spec.input_names:
                inputs.extend(_centroid_inputs(centroids, len(batch)))
            elif centroids is not None:
                raise InputError(f"A {self.spec.model_type} artifact finds its own centroids; do not pass centroids.")
        return inputs

    def warm_run(self, frames) -> "WarmRun":
        """A run of the graph on ``frames`` whose outputs nobody reads, which another thread may stop
        (see `WarmRun`); run it with ``.run()``."""
        return self.warm_run_type(self, frames)

    def predict(
        self,
        frames,
        frame_indices: Optional[Sequence[int]] = None,
        video_idx: Optional[int] = None,
        keep_images: bool = True,
        centroids=None,
    ) -> list[Outputs]:
        """One completed `Outputs` per frame."""
        require_poses(self.spec)
        batch = as_batch(frames)
        raw = self.infer(batch, centroids=centroids)
        with self.clock.section("host post"):
            return [self._complete(raw, batch, i, frame_indices, video_idx, keep_images) for i in range(len(batch))]

    def _complete(self, raw, batch, i, frame_indices, video_idx, keep_images) -> Outputs:
        """Frame ``i``'s graph outputs, decoded (grouping, identities) into `Outputs`."""
        outputs = Outputs(
            original_image=batch[i] if keep_images else None,
            node_names=self.spec.output_node_names,
            edges=self.spec.skeleton.edges if self.spec.model_type != "centroid" else (),
            frame_idx=None if frame_indices is None else int(frame_indices[i]),
            video_idx=video_idx,
            **{name: value[i] for name, value in raw.items()},
        )
        return complete(outputs, self.spec)

    @abc.abstractmethod
    def activate_impl(self) -> None: ...

    @abc.abstractmethod
    def infer_impl(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run the graph on its inputs, in ``spec.input_names`` order."""

    def deactivate_impl(self) -> None:
        """Release what activate_impl acquired (nothing by default)."""


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
        if parallel_batches < 1:
            raise InputError(
                f"Parallel batches must be at least 1, got {parallel_batches}; "
                "use 1 for the lowest latency, 2 for throughput."
            )
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

        providers = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider"]}
        if self.device not in providers:
            raise InputError(f"Unknown device {self.device!r} for ONNX Runtime; use cpu or cuda.")
        wanted = providers[self.device][0]
        if wanted not in onnxruntime.get_available_providers():
            raise SleapExportError(
                f"ONNX Runtime has no {wanted} here; install onnxruntime-gpu or use device='cpu'."
            )
        options = onnxruntime.SessionOptions()
        threads = self.threads or usable_cores()
        options.intra_op_num_threads = max(1, threads // self.parallel_batches)
        options.inter_op_num_threads = 1
        if self.parallel_batches > 1:
            # Spinning workers of one run would take the cores the other run needs.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            str(self.path), sess_options=options, providers=providers[self.device]
        )
        if self.session.get_providers()[0] != wanted:
            raise SleapExportError(
                f"ONNX Runtime could not start {wanted}; check the CUDA install or use device='cpu'."
            )

    def infer_impl(self, inputs: list[np.ndarray], run_options=None) -> list[np.ndarray]:
        """``run_options``: ONNX Runtime's `RunOptions` (a warm run's, to stop it)."""
        return self.session.run(None, dict(zip(self.spec.input_names, inputs)), run_options)

    def deactivate_impl(self) -> None:
        self.session = None


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

        from sleap_export.runtime.malloc import keep_large_buffers_mapped

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


def _centroid_inputs(centroids, n_frames: int) -> list[np.ndarray]:
    """``(N, K, 2)`` centroids (NaN = empty slot) -> the graph's centroids and validity."""
    if centroids is None:
        raise InputError(
            "This centered-instance artifact crops around centroids you supply; pass "
            "centroids=(N, K, 2) frame pixels, or predict on a .slp with instances."
        )
    centroids = np.asarray(centroids, dtype=np.float32)
    if centroids.ndim != 3 or centroids.shape[0] != n_frames or centroids.shape[2] != 2:
        raise InputError(f"Centroids must be (frames={n_frames}, K, 2), got shape {centroids.shape}.")
    valid = ~np.isnan(centroids).any(axis=-1)
    return [np.nan_to_num(centroids, nan=0.0), valid]


def load(
    path: str | Path, device: Optional[str] = None, for_throughput: bool = False, runtime: Optional[str] = None, **options
) -> Runner:
    """Open an artifact with the runner of its format, or of another ``runtime`` it has
    (``runtime="openvino"`` for ONNX; see `runtime.artifact.FORMATS`).

    ``device`` defaults to the GPU for TensorRT engines and the CPU otherwise.
    ``for_throughput`` configures the runner for many batches (videos) rather
    than the lowest latency per batch; explicit ``options`` win. Training runs
    are opened above the runtime (`sleap_export.eager`, `Predictor.from_model_paths`).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(
            f"{path} is a folder; load() opens artifacts (.onnx, .pt, .engine). For a training run, use "
            "Predictor.from_model_paths or sleap_export.eager.eager_runner (needs the export extra)."
        )
    spec = read_spec(path)
    runner_cls = format_of(path).runner_class(runtime)
    device = device or runner_cls.default_device
    if for_throughput:
        options = {**runner_cls.throughput_options(device), **options}
    return runner_cls.from_path(path, spec, device=device, **options)
