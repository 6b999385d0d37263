"""The runner interface every backend implements, and what all of them share.

Modelled on Polygraphy's runners: context managers whose public
``activate`` / ``infer`` / ``deactivate`` wrap small ``*_impl`` methods that
only run the graph. Each artifact format's record
(`runtime.artifacts.formats.FORMATS`) names its backend's runner class, so
`runtime.open_model` has no branching on formats.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from sleap_export.core.errors import InputError
from sleap_export.core.mask_options import MaskOptions
from sleap_export.core.spec import ModelSpec
from sleap_export.core.stage_clock import StageClock
from sleap_export.runtime.decoding.completion import complete
from sleap_export.runtime.decoding.outputs import Outputs
from sleap_export.runtime.sources.frame_arrays import as_batch, match_channels


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity (taskset, SLURM and Ray
    allocations set it), not every core of the machine."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def frames_batch(frames) -> np.ndarray:
    """`as_batch`, with the way to predict a video for videos and their paths: a runner takes decoded frames."""
    if isinstance(frames, (str, Path)) or (not isinstance(frames, np.ndarray) and hasattr(frames, "filename")):
        what = "a path" if isinstance(frames, (str, Path)) else f"a {type(frames).__name__}"
        raise InputError(
            f"A runner takes frames (a numpy uint8 array), got {what}; predict a whole video with "
            "Predictor.from_model_paths(MODEL).predict(video), or pass some of its frames: runner.predict(video[0:100])."
        )
    return as_batch(frames)


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
        # How a segmentation model's masks are decoded and written (`ModelOptions.masks`).
        self.mask_options = MaskOptions()
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
            batch = match_channels(frames_batch(frames), self.spec.input_channels)
            inputs = [batch]
            if "centroids" in self.spec.input_names:
                inputs.extend(_centroid_inputs(centroids, len(batch), self.spec.model_type))
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
        batch = frames_batch(frames)
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
            frame_size=tuple(batch.shape[1:3]),
            **{name: value[i] for name, value in raw.items()},
        )
        return complete(outputs, self.spec, self.mask_options)

    @abc.abstractmethod
    def activate_impl(self) -> None: ...

    @abc.abstractmethod
    def infer_impl(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run the graph on its inputs, in ``spec.input_names`` order."""

    def deactivate_impl(self) -> None:
        """Release what activate_impl acquired (nothing by default)."""


def _centroid_inputs(centroids, n_frames: int, model_type: str = "centered_instance") -> list[np.ndarray]:
    """``(N, K, 2)`` centroids (NaN = empty slot) -> the graph's centroids and validity."""
    if centroids is None:
        if model_type == "embedding":
            raise InputError(
                "This embedding artifact embeds the crops around centres you supply; pass centroids=(N, K, 2) "
                "frame pixels (each instance's crop centre), or predict on a .slp with instances."
            )
        raise InputError(
            "This centered-instance artifact crops around centroids you supply; pass "
            "centroids=(N, K, 2) frame pixels, or predict on a .slp with instances."
        )
    centroids = np.asarray(centroids, dtype=np.float32)
    if centroids.ndim != 3 or centroids.shape[0] != n_frames or centroids.shape[2] != 2:
        raise InputError(f"Centroids must be (frames={n_frames}, K, 2), got shape {centroids.shape}.")
    valid = ~np.isnan(centroids).any(axis=-1)
    return [np.nan_to_num(centroids, nan=0.0), valid]
