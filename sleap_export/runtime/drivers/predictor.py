"""`Predictor`: videos, labels or arrays in, `sio.Labels` out.

Frames come from `runtime.sources` and flow through `runtime.pipeline`:
decoded on a background thread, run several batches at once where the runner
allows (`Runner.parallel_batches`), results kept in order.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Optional, Protocol, Sequence

import attrs
import sleap_io as sio

from sleap_export.core.errors import InputError
from sleap_export.core.stage_clock import StageClock
from sleap_export.runtime.backends.runner import Runner, require_poses
from sleap_export.runtime.drivers.batch_pipeline import Batch, background, decode_batches, in_order
from sleap_export.runtime.open_model import ModelOptions, model_name, open_model
from sleap_export.runtime.sources.video_inputs import frame_sources
from sleap_export.runtime.writing.labels_writer import LabelsWriter

# Artifact type -> its `Predictor` subclass (filled by `_predicts`).
PREDICTORS: dict[str, type["Predictor"]] = {}


class Predictor:
    """Runs a runner over videos and builds `sio.Labels` (or returns `Outputs`).

    ``Predictor.from_model_paths(paths)`` picks the subclass of the model type;
    a subclass (``SingleInstancePredictor``, ``TopDownPredictor``, ...) refuses
    an artifact of another type in one line.
    """

    # The artifact types this class runs; empty on the base class (any).
    model_types: tuple[str, ...] = ()

    def __init__(self, runner: Runner, batch_size: int = 4, artifact: Optional[str] = None):
        if batch_size < 1:
            raise InputError(f"Batch size must be at least 1, got {batch_size}.")
        if self.model_types and runner.spec.model_type not in self.model_types:
            right = PREDICTORS.get(runner.spec.model_type)
            instead = f"use {right.__name__} or Predictor" if right else "use Predictor"
            raise InputError(
                f"{type(self).__name__} runs {' or '.join(self.model_types)} models and "
                f"{artifact or 'this model'} is {runner.spec.model_type}; {instead}."
            )
        require_poses(runner.spec)
        self.runner = runner
        self.batch_size = batch_size
        self.artifact = artifact
        self.writer = LabelsWriter(runner.spec, artifact)
        # "decode" (background thread, overlapped) and "labels"; the runner keeps its own.
        self.clock = StageClock()

    @classmethod
    def from_model_paths(
        cls,
        paths: str | Path | Sequence[str | Path],
        device: Optional[str] = None,
        batch_size: int = 4,
        options: Optional[ModelOptions] = None,
        **runner_options,
    ) -> "Predictor":
        """The predictor of the model's type for one artifact (.onnx, .pt, .engine), or one or two
        training runs (folders, their best.ckpt, SLEAP 1.x folders; a centroid + centered-instance
        pair) run eagerly by PyTorch (needs the ``export`` extra). ``options`` (a `ModelOptions`), or
        ``device`` and its fields as keywords, open the model (`open_model`), set up for throughput."""
        if options is None:
            options = ModelOptions(device=device, **runner_options)
        elif device is not None or runner_options:
            raise InputError("Pass the model options either as options= or as keywords, not both.")
        paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        runner = open_model(paths, attrs.evolve(options, throughput=True))
        return cls._for(runner)(runner, batch_size=batch_size, artifact=model_name(paths))

    # One artifact: the same as `from_model_paths`.
    from_artifact = from_model_paths

    @classmethod
    def _for(cls, runner: Runner) -> type["Predictor"]:
        """This class, or on the base class the subclass of the runner's model type."""
        return PREDICTORS.get(runner.spec.model_type, cls) if cls is Predictor else cls

    def predict(
        self,
        source,
        frames: Optional[Sequence[int]] = None,
        output: Optional[str | Path] = None,
        progress: Optional["ProgressSink"] = None,
        resume: bool = False,
        save_every_s: float = 60.0,
        video_index: Optional[int] = None,
        as_labels: bool = True,
    ):
        """Predict every requested frame; optionally write ``output`` (.slp).

        ``source`` may be a list of inputs: the labels then hold one video each.
        With ``output``, the frames done so far are saved there (atomically, a
        valid .slp) every ``save_every_s`` seconds and on Ctrl-C / SIGTERM;
        ``resume=True`` keeps the frames an earlier run saved in ``output`` and
        predicts only the rest. ``video_index`` picks one video of the inputs.
        ``as_labels=False`` returns the `Outputs` of every frame instead, in order.
        """
        inputs = source if isinstance(source, (list, tuple)) else [source]
        outputs: Optional[list] = None if as_labels else []
        if output is None:
            labels = self._predict(inputs, frames, None, progress, resume, save_every_s, video_index, outputs)
        else:
            output = Path(output)
            self.writer.check_destination(output, inputs)
            with self.writer.locked(output):
                labels = self._predict(inputs, frames, output, progress, resume, save_every_s, video_index, outputs)
        return labels if as_labels else outputs

    def _predict(self, inputs, frames, output, progress, resume, save_every_s, video_index, outputs) -> sio.Labels:
        sources = [s for item in inputs for s in frame_sources(item, frames)]
        if video_index is not None:
            if not 0 <= video_index < len(sources):
                raise InputError(f"--video-index {video_index} is out of range: the inputs hold {len(sources)} video(s).")
            sources = [sources[video_index]]
        videos = [s.video for s in sources]
        previous = self.writer.previous_frames(output, videos) if resume and output is not None else []
        if previous:
            done = {(id(lf.video), lf.frame_idx) for lf in previous}
            sources = [
                attrs.evolve(s, frame_indices=tuple(i for i in s.frame_indices if (id(s.video), i) not in done))
                for s in sources
            ]
        spec = self.runner.spec
        need_centroids = "centroids" in spec.input_names
        if need_centroids and any(s.centroids is None for s in sources):
            raise InputError(
                f"A {spec.model_type} artifact crops around given centroids; predict on a "
                ".slp with instances, or call runner.predict(frames, centroids=...)."
            )
        anchor_part = spec.stages[-1].anchor_part
        anchor = spec.skeleton.nodes.index(anchor_part) if anchor_part else None
        labeled_frames = list(previous)
        if progress is not None:
            progress.start(total=len(previous) + sum(len(s.frame_indices) for s in sources), done=len(previous))
        last_save = time.monotonic()
        try:
            with self.runner:
                decoded = decode_batches(sources, self.batch_size, anchor, need_centroids, self.clock)

                def run(batch: Batch) -> list:
                    return self.runner.predict(
                        batch.frames, batch.frame_indices, batch.video_index, keep_images=False, centroids=batch.centroids
                    )

                runs = in_order(run, background(decoded, depth=4), self.runner.parallel_batches)
                # Closed on the way out: an interrupt lets the running batches finish
                # and drops the queued ones before the finished frames are saved.
                with contextlib.closing(runs):
                    for batch, results in runs:
                        video = sources[batch.video_index].video
                        with self.clock.section("labels"):
                            labeled_frames.extend(self.writer.frame(o, video) for o in results)
                        if outputs is not None:
                            outputs.extend(results)
                        if progress is not None:
                            progress.advance(len(batch.frame_indices))
                        if output is not None and time.monotonic() - last_save > save_every_s:
                            self.writer.save(self.writer.labels(labeled_frames, videos), output)
                            last_save = time.monotonic()
        except KeyboardInterrupt:
            # Ctrl-C / SIGTERM: keep the finished frames in a valid file, say how far it got.
            if output is not None and labeled_frames:
                self.writer.save(self.writer.labels(labeled_frames, videos), output)
            total = len(previous) + sum(len(s.frame_indices) for s in sources)
            raise PredictionInterrupted(len(labeled_frames), total, output) from None
        labels = self.writer.labels(labeled_frames, videos)
        if output is not None:
            self.writer.save(labels, output)
        return labels


def _predicts(*model_types: str):
    """Class decorator: the `Predictor` subclass for these artifact types."""

    def register(cls: type[Predictor]) -> type[Predictor]:
        cls.model_types = model_types
        PREDICTORS.update({t: cls for t in model_types})
        return cls

    return register


@_predicts("single_instance")
class SingleInstancePredictor(Predictor):
    """One instance per frame."""


@_predicts("centroid")
class CentroidPredictor(Predictor):
    """Centroids only (the first top-down stage)."""


@_predicts("centered_instance", "multi_class_centered_instance")
class CenteredInstancePredictor(Predictor):
    """The centered-instance stage on given centroids (a .slp's labeled instances)."""


@_predicts("topdown")
class TopDownPredictor(Predictor):
    """Centroids, then poses in crops around them, in one graph."""


@_predicts("multi_class_topdown")
class MultiClassTopDownPredictor(Predictor):
    """Top-down with identities (one track per class)."""


@_predicts("bottomup")
class BottomUpPredictor(Predictor):
    """Peaks and part affinity fields, grouped into instances."""


@_predicts("multi_class_bottomup")
class MultiClassBottomUpPredictor(Predictor):
    """Bottom-up with identities from class maps."""


class ProgressSink(Protocol):
    """What `Predictor.predict` reports progress to (the CLI's bar or log lines)."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, frames: int) -> None: ...


class PredictionInterrupted(KeyboardInterrupt):
    """Prediction stopped by Ctrl-C or SIGTERM; finished frames were saved where an output was given."""

    def __init__(self, done: int, total: int, output: Optional[str | Path]):
        saved = f"saved them to {output}" if output is not None and done else "nothing was written"
        super().__init__(f"interrupted after {done} of {total} frames; {saved}")
        self.done, self.total, self.output = done, total, output
