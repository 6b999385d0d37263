"""`Predictor`: videos, labels or arrays in, `sio.Labels` out.

Frames come from `runtime.sources` and flow through `runtime.pipeline`:
decoded on a background thread, run several batches at once where the runner
allows (`Runner.parallel_batches`), results kept in order.
"""

from __future__ import annotations

import collections
import contextlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence

import attrs
import numpy as np
import sleap_io as sio

from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.core.stage_clock import StageClock
from sleap_export.runtime.backends.runner import Runner, require_poses
from sleap_export.runtime.drivers.batch_pipeline import Batch, background, decode_batches, in_order
from sleap_export.runtime.drivers.embedding_carriers import embedded_detections
from sleap_export.runtime.drivers.progress import ProgressArgument, counted, progress_sink
from sleap_export.runtime.open_model import ModelOptions, model_name, open_model
from sleap_export.runtime.sources.frame_arrays import as_batch
from sleap_export.runtime.sources.video_inputs import (
    FrameSource, UnreadableFrame, frame_ranges, frame_sources, refuse_repeated_videos,
)
from sleap_export.runtime.writing.destination import refuse_replacing
from sleap_export.runtime.writing.labels_writer import LabelsWriter
from sleap_export.runtime.writing.overlay_video import FALLBACK_FPS, OverlayVideos, check_overlay, overlay_paths

if TYPE_CHECKING:
    from sleap_export.runtime.tracking import TrackingOptions

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
        # The overlay videos the last `predict` wrote.
        self.overlays_written: list[Path] = []
        # "decode" (background thread, overlapped), "labels", "tracking" and "overlay"; the runner keeps its own.
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
        frames: Optional[Sequence[int] | str] = None,
        output: Optional[str | Path] = None,
        progress: ProgressArgument = "auto",
        resume: bool = False,
        video_index: Optional[int] = None,
        as_labels: bool = True,
        overlay: Optional[str | Path] = None,
        tracking: Optional["TrackingOptions"] = None,
        restore_source_videos: bool = False,
        overwrite: bool = False,
    ):
        """Predict every requested frame; optionally write ``output`` (.slp, or the format its suffix
        names: `writing.output_formats`).

        ``source`` may be a list of inputs: the labels then hold one video each
        (a video given twice is refused). ``frames``: indices, or ranges as
        ``"0-999,2000-"``; a frame asked for twice is predicted once.

        With ``output``, every finished batch reaches the disk at once, in
        ``OUTPUT.journal`` (`writing.journal`), and the .slp is written from it
        at the end, or on Ctrl-C / SIGTERM with the frames done so far; a run
        killed outright leaves the journal. ``resume=True`` keeps the frames an
        earlier run left in ``output`` and its journal and predicts only the rest;
        ``overwrite=True`` replaces them; an existing ``output`` or journal is refused
        without one of the two, as the CLI refuses it. ``video_index`` picks one video.

        ``progress``: ``"auto"`` (a bar on a terminal, else nothing), None, a
        callable ``(frames done, total)``, or a `ProgressSink`. A run that finds
        instances on under 5% of at least 10 frames warns (`FewInstancesWarning`).
        ``as_labels=False`` returns the `Outputs` of every frame instead, in order.

        ``overlay``: a video (.mp4, .avi, .mkv, .mov) of each frame predicted, drawn with
        its poses, written as it goes and renamed into place at the end (Ctrl-C too); an
        existing folder holds one ``STEM.overlay.mp4`` per video (docs/overlay.md). With
        ``resume``, it holds the frames predicted in this run only.

        ``tracking``: a `TrackingOptions` (sleap-nn's classic tracker, docs/tracking.md): each
        frame's instances are tracked as it is predicted; culling and connecting single breaks run
        on the kept instances when the labels are built.

        ``restore_source_videos``: the labels name an input .pkg.slp's frames by the video they were
        packed from (where it records one) instead of by the .pkg.slp (sleap-nn predict's option;
        `LabelsWriter.output_video`).

        A frame that cannot be read (a damaged video) stops the run as Ctrl-C does, the frames
        predicted before it saved in ``output``: `DamagedVideoStop`, with what to resume.
        """
        inputs = source if isinstance(source, (list, tuple)) else [source]
        self.writer.restore_source_videos = restore_source_videos
        stage = self._tracking_stage(tracking)
        if overlay is not None:
            overlay = Path(overlay)
            check_overlay(overlay, [*inputs, self.artifact])
        self.overlays_written = []
        outputs: Optional[list] = None if as_labels else []
        sink = progress_sink(progress)
        try:
            if output is None:
                labels = self._predict(inputs, frames, None, sink, resume, video_index, outputs, overlay, stage)
            else:
                output = Path(output)
                found = self.writer.check_destination(output, inputs)
                refuse_replacing(output, found, resume, overwrite)
                with self.writer.locked(output):
                    labels = self._predict(inputs, frames, output, sink, resume, video_index, outputs, overlay, stage)
        finally:
            if progress == "auto" and sink is not None:
                sink.stop()  # the bar made here is taken down here, however the run ends
        return labels if as_labels else outputs

    def _tracking_stage(self, tracking):
        """The stage that tracks this run's instances, or None without ``tracking``."""
        if tracking is None:
            return None
        from sleap_export.runtime.tracking.tracking_stage import TrackingStage, refuse_untrackable

        refuse_untrackable(self.runner.spec)
        return TrackingStage(tracking, len(self.writer.skeleton.nodes))

    def _sources(self, inputs, frames, video_index) -> list[FrameSource]:
        sources = [s for item in inputs for s in frame_sources(item, frames)]
        refuse_repeated_videos([s.video for s in sources])
        if video_index is not None:
            if not 0 <= video_index < len(sources):
                raise InputError(f"--video-index {video_index} is out of range: the inputs hold {len(sources)} video(s).")
            sources = [sources[video_index]]
        spec = self.runner.spec
        if "centroids" in spec.input_names and any(s.centroids is None for s in sources):
            raise InputError(
                f"A {spec.model_type} artifact crops around given centroids; predict on a "
                ".slp with instances, or call runner.predict(frames, centroids=...)."
            )
        return sources

    def _predict(self, inputs, frames, output, progress, resume, video_index, outputs, overlay=None, stage=None) -> sio.Labels:
        sources = self._sources(inputs, frames, video_index)
        videos = [s.video for s in sources]
        journal = None if output is None else self.writer.journal(output, videos)
        previous = []
        if resume and output is not None:
            previous = self.writer.previous_frames(output, videos)
            if stage is not None and previous:
                refuse_culled_tracks(self.writer.resumed_provenance, output)
            if journal.exists():
                previous += self.writer.journal_frames(journal, videos)
        # The earlier run's frames go through the tracker too, in frame order among this run's.
        replay = None if stage is None else EarlierFrames(stage, previous, sources)
        requested = {id(s.video): s for s in sources}  # what a run stopped by a damaged video resumes
        done = {(id(lf.video), lf.frame_idx) for lf in previous}
        sources = [
            attrs.evolve(s, frame_indices=tuple(i for i in s.frame_indices if (id(s.video), i) not in done)) for s in sources
        ]
        if journal is not None and journal.exists():
            if previous:
                # The .slp takes what the journal held; a new journal holds this run's frames only.
                self.writer.save(self.writer.labels(previous, videos), output)
            journal.remove()
        # Without an output, the frames are kept here; with one, they are in the journal.
        kept = list(previous) if journal is None else []
        overlays = None
        if overlay is not None:
            fps = [getattr(video, "fps", None) or FALLBACK_FPS for video in videos]
            overlays = OverlayVideos(overlay_paths(overlay, [video.filename for video in videos]), fps)
            self.overlays_written = overlays.written  # filled as each video's overlay is finished
            if previous:
                warnings.warn(
                    f"the overlay holds only the frames predicted in this run, not the {len(previous)} resumed from "
                    f"{output.name}; predict without --resume for an overlay of every frame",
                    OverlayNotResumedWarning,
                    stacklevel=3,
                )
        found = FramesWithInstances()
        total = len(previous) + sum(len(s.frame_indices) for s in sources)
        if progress is not None:
            progress.start(total=total, done=len(previous))
        try:
            self._run(sources, journal, kept, outputs, found, progress, overlays, stage, replay)
        except KeyboardInterrupt:
            # Ctrl-C / SIGTERM: keep the finished frames in a valid file, say how far it got.
            self._save_finished(journal, previous, found, videos, output, stage, replay)
            raise PredictionInterrupted(len(previous) + found.frames, total, output) from None
        except UnreadableFrame as err:
            # A damaged video: the same, and how to predict the rest without the frame that cannot be read.
            saved = self._save_finished(journal, previous, found, videos, output, stage, replay)
            damaged = requested[id(err.video)]
            rest = [i for i in damaged.frame_indices if i != err.frame_idx]
            raise DamagedVideoStop(
                err, len(previous) + found.frames, total, output if saved else None,
                None if damaged.labeled else frame_ranges(rest, err.video.shape[0]), len(videos),
            ) from err
        found.warn_if_few()
        if replay is not None:
            replay.rest()
        if journal is None:
            labels = self.writer.labels(kept, videos)
            return labels if stage is None else stage.apply(labels)
        return self._finish(journal, previous, videos, output, stage)

    def _save_finished(self, journal, previous, found, videos, output, stage, replay) -> bool:
        """After a stop (Ctrl-C, SIGTERM, a frame that cannot be read): the frames finished so far
        written to ``output`` as a whole run writes them; False when there was nothing to write."""
        if journal is None or not (previous or found.frames):
            return False
        if replay is not None:
            replay.rest()
        self._finish(journal, previous, videos, output, stage)
        return True

    def _run(self, sources, journal, kept, outputs, found, progress, overlays=None, stage=None, replay=None) -> None:
        """Every batch of ``sources`` through the runner, into the journal (or ``kept``), each
        frame drawn into ``overlays`` (`OverlayVideos`) if given and tracked by ``stage`` if given,
        after the earlier frames before it (``replay``, `EarlierFrames`). A frame that cannot be
        read ends the run once every batch decoded before it is finished: `UnreadableFrame`."""
        spec = self.runner.spec
        need_centroids = "centroids" in spec.input_names
        anchor_part = spec.stages[-1].anchor_part
        anchor = spec.skeleton.nodes.index(anchor_part) if anchor_part else None
        with self.runner:
            decoded = decode_batches(sources, self.batch_size, anchor, need_centroids, self.clock)

            def run(batch: Batch) -> list:
                return self.runner.predict(
                    batch.frames, batch.frame_indices, batch.video_index, keep_images=False, centroids=batch.centroids
                )

            unreadable: list[UnreadableFrame] = []
            runs = in_order(run, _until_unreadable(background(decoded, depth=4), unreadable), self.runner.parallel_batches)
            # Closed on the way out: an interrupt lets the running batches finish
            # and drops the queued ones before the finished frames are saved. The
            # overlays close first: finished on an interrupt, removed on an error.
            with contextlib.closing(runs), (overlays or contextlib.nullcontext()):
                for batch, results in runs:
                    with self.clock.section("labels"):
                        if journal is not None:
                            journal.append(batch.video_index, results)
                        else:
                            video = sources[batch.video_index].video
                            kept.extend(self.writer.frame(o, video) for o in results)
                    found.add(results)
                    if stage is not None:
                        with self.clock.section("tracking"):
                            video = sources[batch.video_index].video
                            for image, result in zip(batch.frames, results):
                                replay.until(video, int(result.frame_idx))
                                stage.add(video, result, image)
                    if overlays is not None:
                        with self.clock.section("overlay"):
                            for image, result in zip(batch.frames, results):
                                overlays.add(batch.video_index, image, result)
                    if outputs is not None:
                        outputs.extend(results)
                    if progress is not None:
                        progress.advance(len(batch.frame_indices))
        if unreadable:
            raise unreadable[0]

    def _finish(self, journal, previous, videos, output, stage=None) -> sio.Labels:
        """The .slp of the earlier frames and the journal's (tracked by ``stage`` if given), written;
        the journal then removed."""
        journal.close()
        culled = {}
        if stage is not None and stage.options.tracking_clean_instance_count:
            culled = {CULLED_KEY: stage.options.tracking_clean_instance_count}
        labels = self.writer.labels(previous + self.writer.journal_frames(journal, videos), videos, culled)
        if stage is not None:
            stage.apply(labels)
        self.writer.save(labels, output)
        journal.remove()
        return labels


def _until_unreadable(batches: Iterator[Batch], unreadable: list) -> Iterator[Batch]:
    """``batches`` up to the one with a frame that cannot be read, whose error is put in ``unreadable``:
    the batches decoded before it are still predicted and kept."""
    try:
        yield from batches
    except UnreadableFrame as err:
        unreadable.append(err)


# Provenance of an output whose tracking culled instances (--tracking_clean_instance_count): their tracks cannot be resumed.
CULLED_KEY = "sleap_export.tracking_culled_to"


def refuse_culled_tracks(saved_provenance: dict, output: Path) -> None:
    """Resuming the tracks of ``output`` needs every instance the earlier run tracked; culling removed some."""
    count = (saved_provenance or {}).get(CULLED_KEY)
    if count:
        raise InputError(
            f"{output} was tracked with --tracking_clean_instance_count {count}, which removed instances the next "
            "frames' tracks depend on, so --resume cannot continue them; pass --overwrite to predict and track again."
        )


def track_labeled_frame(stage, lf: sio.LabeledFrame, image: Optional[np.ndarray]) -> None:
    """One labeled frame's predicted instances through ``stage`` (a `TrackingStage`), as `TrackingStage.add`
    tracks the `Outputs` they were written from (the same points, point and instance scores, in slot order)."""
    instances = lf.predicted_instances
    points = np.array([inst.numpy(scores=True) for inst in instances], np.float64).reshape(len(instances), stage.n_nodes, 3)
    scores = np.array([inst.score for inst in instances], np.float64)
    stage.track(lf.video, lf.frame_idx, points[..., :2], scores, image, points[..., 2])


class EarlierFrames:
    """Frames an earlier run predicted (``--resume``), tracked in frame order among this run's: each
    video's earlier frames before a new one are tracked just before it (`until`), the others at the end
    (`rest`), so the tracks are an uninterrupted run's. Their images (optical flow) are read again."""

    def __init__(self, stage, previous: Sequence[sio.LabeledFrame], sources: Sequence[FrameSource]):
        self.stage = stage
        self.read = {id(source.video): source.read for source in sources}
        self.waiting: dict[int, collections.deque] = {}
        for lf in sorted(previous, key=lambda lf: lf.frame_idx):
            self.waiting.setdefault(id(lf.video), collections.deque()).append(lf)

    def until(self, video: sio.Video, frame_idx: int) -> None:
        waiting = self.waiting.get(id(video))
        while waiting and waiting[0].frame_idx < frame_idx:
            self._track(waiting.popleft())

    def rest(self) -> None:
        for waiting in self.waiting.values():
            while waiting:
                self._track(waiting.popleft())

    def _track(self, lf: sio.LabeledFrame) -> None:
        image = frame_image(self.read[id(lf.video)], lf.frame_idx) if self.stage.options.use_flow else None
        track_labeled_frame(self.stage, lf, image)


def frame_image(read, frame_idx: int) -> np.ndarray:
    """Frame ``frame_idx`` as a predicted batch holds it (``(H, W, C)`` uint8): what optical flow saw."""
    return as_batch(np.asarray(read(frame_idx)))[0]


class OverlayNotResumedWarning(UserWarning):
    """predict(resume=True, overlay=...): the overlay holds this run's frames, not the resumed ones."""


class FewInstancesWarning(UserWarning):
    """A run found instances on almost no frame: the model may not fit the videos."""


class FramesWithInstances:
    """How many predicted frames hold an instance, a box or a mask (for `FewInstancesWarning`)."""

    # Below this share of frames with instances, over at least MIN_FRAMES frames, a run warns.
    SHARE = 0.05
    MIN_FRAMES = 10

    def __init__(self):
        self.frames = self.with_instances = 0

    def add(self, results) -> None:
        self.frames += len(results)
        self.with_instances += sum(
            bool(np.asarray(o.instance_valid).any()) or (o.pred_bboxes is not None and len(o.pred_bboxes) > 0)
            or bool(o.masks or o.rois)
            for o in results
        )

    def warn_if_few(self) -> None:
        if self.frames >= self.MIN_FRAMES and self.with_instances < self.SHARE * self.frames:
            warnings.warn(
                FewInstancesWarning(
                    f"instances were found on {self.with_instances} of {self.frames} frames "
                    f"({100 * self.with_instances / self.frames:.1f}%); check that the model was trained on "
                    "videos like these (animals, scale, lighting), or export with a lower --peak-threshold"
                ),
                stacklevel=4,
            )


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


@_predicts("centroid_embedding", "topdown_embedding")
class EmbeddingPredictor(Predictor):
    """Centroids or top-down poses, each with the appearance vector of the crop around it (re-ID)."""


@_predicts("embedding")
class LabelsEmbeddingPredictor(Predictor):
    """A lone embedding run: the appearance vector of every pose instance (or mask: `embedding_carriers`) of an
    existing .slp, written onto those detections, which keep their points, scores, tracks and skeleton (sleap-nn's
    ``predict_embeddings_to_slp(..., save_embeddings="slp", include_untracked=True)``)."""

    def predict(
        self, source, frames=None, output=None, progress="auto", resume=False, video_index=None, as_labels=True,
        overlay=None, tracking=None, restore_source_videos=False, overwrite=False,
    ):
        """Embed the instances of one .slp (path or `sio.Labels`, changed in place); with ``output``, write them
        (.slp only; its videos named as `LabelsWriter.output_video` names them, ``restore_source_videos`` as in
        `Predictor.predict`; an existing file only with ``overwrite=True``). ``as_labels=False`` returns each embedded frame's `Outputs` instead. ``frames``,
        ``resume``, ``video_index``, ``overlay`` and ``tracking`` are refused: the labels are embedded whole, in
        one pass."""
        inputs = source if isinstance(source, (list, tuple)) else [source]
        self.writer.restore_source_videos = restore_source_videos
        for option, given in (
            ("--frames", frames), ("--resume", resume or None), ("--video-index", video_index), ("--overlay", overlay),
            ("--tracking", tracking),
        ):
            if given is not None:
                raise InputError(
                    f"{option}: a lone embedding model embeds every instance of the .slp it is given, in one pass; "
                    f"leave out {option}."
                )
        if len(inputs) != 1:
            raise InputError(
                f"A lone embedding model embeds one .slp into one output, got {len(inputs)} inputs; pass one .slp "
                "(or -o FOLDER for one output per .slp)."
            )
        item = inputs[0]
        if not isinstance(item, sio.Labels) and not str(item).lower().endswith(".slp"):
            name = Path(item).name if isinstance(item, (str, Path)) else type(item).__name__
            raise InputError(
                f"{name} is not a .slp: a lone embedding model embeds the instances of an existing .slp; pass a .slp "
                "of detections, or export the embedding run with a centroid run to embed a video's."
            )
        if output is not None:
            output = Path(output)
            refuse_replacing(output, self.writer.check_destination(output, inputs), resume, overwrite)
        if isinstance(item, sio.Labels):
            labels = item
        else:
            path = Path(item)
            if not path.is_file():
                raise InputError(f"{path} does not exist; pass a .slp of detections to embed.")
            labels = sio.load_slp(str(path))
        sink = progress_sink(progress)
        try:
            if output is None:
                results = self._embed(labels, item, sink)
            else:
                with self.writer.locked(output):
                    results = self._embed(labels, item, sink)
                    labels.provenance = {**(labels.provenance or {}), **self.writer.provenance}
                    self.writer.name_output_videos(labels)
                    self.writer.save(labels, output)
        finally:
            if progress == "auto" and sink is not None:
                sink.stop()
        return labels if as_labels else results

    def embed_output(self, output: str | Path, progress: ProgressArgument = "auto") -> sio.Labels:
        """Embed the detections of a .slp a detector just wrote (``predict DETECTOR EMBEDDING``) and rewrite it
        atomically with each one's vector; the detector's provenance is kept, this run's recorded beside it."""
        output = Path(output)
        sink = progress_sink(progress)
        try:
            with self.writer.locked(output):
                labels = sio.load_slp(str(output))
                self._embed(labels, output, sink)
                labels.provenance = {**(labels.provenance or {}), "sleap_export.embedding": self.writer.provenance}
                self.writer.save(labels, output)
        finally:
            if progress == "auto" and sink is not None:
                sink.stop()
        return labels

    def _embed(self, labels: sio.Labels, item, sink) -> list:
        """Every detection of the embedded carrier given its vector (in place); the `Outputs` of each frame
        embedded."""
        # As sleap-nn: no detection keeps a vector of an earlier model.
        for lf in labels.labeled_frames:
            for detection in [*lf.instances, *(getattr(lf, "masks", None) or [])]:
                detection.identity_embedding = None
        # (video, frame) -> the detections embedded there, in slot order, and their crop centres.
        owners = embedded_detections(labels, self.runner.spec.stages[0])
        if not owners:
            name = Path(item).name if isinstance(item, (str, Path)) else "The labels"
            raise InputError(
                f"{name} holds no pose instance with a visible node and no non-empty mask to embed; pass a .slp of "
                "detections (a pose or segmentation model's predictions, or labels)."
            )
        sources = [
            attrs.evolve(
                source,
                frame_indices=tuple(i for i in source.frame_indices if (id(source.video), i) in owners),
                centroids=lambda i, anchor, video=id(source.video): owners[(video, i)][1],
            )
            for source in frame_sources(labels)
        ]
        sources = [source for source in sources if source.frame_indices]
        if sink is not None:
            sink.start(total=len(owners), done=0)
        results = []
        with self.runner:
            for batch in decode_batches(sources, self.batch_size, None, True, self.clock):
                video = id(sources[batch.video_index].video)
                outputs = self.runner.predict(
                    batch.frames, batch.frame_indices, batch.video_index, keep_images=False, centroids=batch.centroids
                )
                with self.clock.section("labels"):
                    for result in outputs:
                        detections, _ = owners[(video, int(result.frame_idx))]
                        vectors = np.asarray(result.pred_embeddings, np.float32)
                        for slot, detection in enumerate(detections):
                            # As sleap-nn --save_embeddings slp: the vector in the detection's re-ID slot.
                            detection.identity_embedding = sio.Embedding(vectors[slot])
                results.extend(outputs)
                if sink is not None:
                    sink.advance(len(batch.frame_indices))
        return results


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


@_predicts("bbox_centernet", "bbox_ssd")
class BoxPredictor(Predictor):
    """A box detector: boxes on each labeled frame, no instances."""


@_predicts("bbox_centernet_topdown", "bbox_ssd_topdown")
class BoxTopDownPredictor(Predictor):
    """A detector's boxes, then poses in the crops they seed, in one graph; each box linked to its instance."""


@_predicts("semantic_segmentation", "bottomup_segmentation", "topdown_segmentation")
class SegmentationPredictor(Predictor):
    """Masks: sleap-nn's segmentation models (semantic, bottom-up, top-down)."""


class DamagedVideoStop(SleapExportError):
    """A frame of an input could not be read (``unreadable``: `UnreadableFrame`): prediction stopped there,
    the ``done`` frames predicted before it saved in ``output`` (None: nothing was written).
    ``resume_frames``: that video's requested frames without the unreadable one, as ``--frames`` takes them
    ("" when it was the only one; None for a labels file's frames, which --frames does not select);
    ``videos``: how many videos the run had."""

    def __init__(self, unreadable: UnreadableFrame, done: int, total: int, output: Optional[Path],
                 resume_frames: Optional[str], videos: int):
        self.unreadable, self.done, self.total, self.output = unreadable, done, total, output
        self.resume_frames, self.videos = resume_frames, videos
        again = "predict again with resume=True and " if output is not None else "predict again with "
        super().__init__(f"{self.problem}; {self.fix(lambda frames: f'{again}frames={frames!r}')}")

    @property
    def problem(self) -> str:
        """What could not be read, and what was kept."""
        if self.output is not None:
            kept = f"{self.done} of {self.total} frames were predicted and are saved in {self.output}"
        else:
            kept = f"nothing was saved ({self.done} of {self.total} frames were predicted)"
        return f"{self.unreadable.problem}; {kept}"

    def fix(self, resume: Callable[[str], str]) -> str:
        """How to finish: ``resume(frames left)``, how to resume in the caller's words, or where --frames
        cannot leave the frame out, repairing the file first."""
        if not self.resume_frames:
            return f"repair or re-encode {self.unreadable.filename}, then predict again (--resume keeps the frames saved)"
        every = " (--frames applies to every video of the run)" if self.videos > 1 else ""
        return f"to predict the rest without that frame{every}: {resume(self.resume_frames)}"


class PredictionInterrupted(KeyboardInterrupt):
    """Prediction stopped by Ctrl-C or SIGTERM; finished frames were saved where an output was given."""

    def __init__(self, done: int, total: int, output: Optional[str | Path]):
        saved = f"saved them to {output}" if output is not None and done else "nothing was written"
        super().__init__(f"interrupted after {done} of {counted(total, 'frame')}; {saved}")
        self.done, self.total, self.output = done, total, output
