"""Closed loop: poses from a live source within milliseconds, and a hook to act on them.

A capture thread reads the source (`runtime.live_sources`) and keeps only the
newest frame in a one-slot handoff; the thread that iterates a `LiveRunner`
takes it, runs the artifact at batch 1, optionally forecasts each keypoint
(`runtime.forecast`), calls the processor's ``process(outputs, timestamps)``
and yields the frame. When inference (or the hook) falls behind, the waiting
frame is replaced by the newer one and counted as dropped: frames are never
queued, so latency stays bounded. Times are `time.perf_counter_ns`.
"""

from __future__ import annotations

import array
import importlib
import importlib.util
import os
import sys
import threading
import time
import traceback
import warnings
from collections import deque
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol

import attrs
import numpy as np
import sleap_io as sio

from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.core.model_types import MODEL_TYPES
from sleap_export.runtime.backends.runner import Runner, require_poses, usable_cores
from sleap_export.runtime.decoding.outputs import Outputs
from sleap_export.runtime.drivers.forecast import FORECASTERS, Forecaster
from sleap_export.runtime.open_model import ModelOptions, model_name, open_model
from sleap_export.runtime.sources.live_sources import FramePool, LiveSource, open_source
from sleap_export.runtime.tracking.tracking_options import TrackingOptions
from sleap_export.runtime.tracking.tracking_stage import TrackingStage, refuse_untrackable
from sleap_export.runtime.writing.labels_writer import LabelsWriter, output_skeleton

# The provenance key of a live .slp's per-frame times.
TIMES_KEY = "sleap_export.live"
PERCENTILES = (50, 90, 99)
# Give the core (and the GIL) to any thread waiting for it; Windows has no sched_yield.
_yield_core = getattr(os, "sched_yield", lambda: time.sleep(0))
# Per-frame arrays in a live .slp's provenance.
TIME_FIELDS = ("frame_idx", "capture_ns", "taken_ns", "pose_ready_ns", "hook_done_ns")


@attrs.frozen
class FrameTimes:
    """When one live frame was captured and posed (ns, `time.perf_counter_ns`).

    ``index``: the frame's number in the source (dropped frames are counted, so
    gaps show drops); ``taken_ns``: when inference took it from the handoff
    (capture to taken: the wait for the previous frame's inference and hook);
    ``dropped``: frames dropped so far in the run;
    ``forecast_ns``: the time ``outputs.pred_forecast_keypoints`` are for;
    ``hook_done_ns``: set once the processor has returned (None inside it).
    """

    index: int
    capture_ns: int
    taken_ns: int
    pose_ready_ns: int
    dropped: int = 0
    forecast_ns: Optional[int] = None
    hook_done_ns: Optional[int] = None

    @property
    def latency_ms(self) -> float:
        """Capture to pose-ready."""
        return (self.pose_ready_ns - self.capture_ns) / 1e6


class TimesLog:
    """Every posed frame's `FrameTimes`, packed (56 bytes a frame), for runs that last hours."""

    FIELDS = ("index", "capture_ns", "taken_ns", "pose_ready_ns", "dropped", "forecast_ns", "hook_done_ns")
    NONE = -1  # forecast_ns of a frame without a forecast

    def __init__(self):
        self._columns = {name: array.array("q") for name in self.FIELDS}

    def append(self, times: FrameTimes) -> None:
        for name, column in self._columns.items():
            value = getattr(times, name)
            column.append(self.NONE if value is None else value)

    def __len__(self) -> int:
        return len(self._columns["index"])

    def __getitem__(self, i: int) -> FrameTimes:
        values = {name: column[i] for name, column in self._columns.items()}
        if values["forecast_ns"] == self.NONE:
            values["forecast_ns"] = None
        return FrameTimes(**values)

    def __iter__(self) -> Iterator[FrameTimes]:
        return (self[i] for i in range(len(self)))

    def column(self, name: str) -> np.ndarray:
        """One field of every frame, as int64."""
        return np.array(self._columns[name], np.int64)


@attrs.frozen
class LiveFrame:
    """One posed frame: its `Outputs` (``original_image`` valid until the next frame is taken) and times."""

    outputs: Outputs
    times: FrameTimes


class Processor(Protocol):
    """A hook: ``process`` runs on the thread iterating the `LiveRunner`, once per posed frame.

    It runs after the frame's poses (and forecast) and before the next frame is
    taken, so its time adds to the next frame's wait: frames captured meanwhile
    replace each other and are dropped, never queued. ``close()``, if defined,
    runs once on the same thread when the run ends.
    """

    def process(self, outputs: Outputs, timestamps: FrameTimes) -> None: ...


@attrs.define
class _Captured:
    index: int
    capture_ns: int
    image: np.ndarray


class LatestFrame:
    """One-slot handoff from the capture thread: a frame not yet taken is replaced by a newer one (counted)."""

    def __init__(self):
        self._ready = threading.Condition()
        self._waiting: Optional[_Captured] = None
        self._closed = False
        self.dropped = 0
        # Called by `put` after each frame is left (on the capture thread): a warm run's stop.
        self.on_put: Optional[Callable[[], None]] = None

    def put(self, captured: _Captured) -> Optional[_Captured]:
        """Leave ``captured`` for the taker; returns the frame it replaced (dropped), if any."""
        with self._ready:
            replaced, self._waiting = self._waiting, captured
            if replaced is not None:
                self.dropped += 1
            self._ready.notify()
        on_put = self.on_put
        if on_put is not None:
            on_put()
        return replaced

    def take(self, spin: bool = False) -> Optional[_Captured]:
        """The newest frame, waiting for one; None once closed and empty.

        ``spin``: poll for it instead of sleeping (see `Waiting`).
        """
        self.wait_until(None, spin)
        with self._ready:
            taken, self._waiting = self._waiting, None
        return taken

    def wait_until(self, deadline_ns: Optional[int], spin: bool = False) -> bool:
        """Wait until a frame is waiting (or the handoff is closed): True, or ``deadline_ns``
        (None: no deadline) passes: False. ``spin``: poll, each poll yielding the core and the
        GIL so that the capture thread can run, instead of sleeping."""
        while True:
            with self._ready:
                if self._waiting is not None or self._closed:
                    return True
                left_ns = None if deadline_ns is None else deadline_ns - time.perf_counter_ns()
                if left_ns is not None and left_ns <= 0:
                    return False
                if not spin:
                    self._ready.wait(None if left_ns is None else left_ns / 1e9)
                    continue
            _yield_core()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()


@attrs.frozen
class Waiting:
    """How the inference thread spends the time between frames.

    ``spin``: poll for the next frame, keeping its core busy, instead of
    sleeping until it comes (a core woken from sleep runs the next network
    slower). ``warm_ahead``: also run the network once on the last frame, timed
    to end just before the next frame is due, from the frames' own rate (a
    network run a moment ago runs faster than one idle for a frame's interval;
    README, "Closed loop"). It costs one more network run per frame, and is
    skipped where the interval leaves no room for it.
    """

    spin: bool
    warm_ahead: bool = False

    @classmethod
    def default(cls, spin: Optional[bool] = None, warm_ahead: bool = False) -> "Waiting":
        """Polling where there are 2 or more cores, unless ``spin`` says otherwise."""
        return cls(usable_cores() >= 2 if spin is None else spin, warm_ahead)

    def describe(self) -> str:
        how = "polling" if self.spin else "sleeping"
        return f"{how} between frames{', warming the network ahead of each' if self.warm_ahead else ''}"


class _WarmAhead:
    """`Waiting.warm_ahead`: one run on the last frame, ending ``LEAD_NS`` before the next is due.

    Timed by the slowest of the recent network runs (poses and warm runs). A
    frame that comes during a warm run stops it where the runtime can end a run
    midway (`runners.WarmRun`: ONNX Runtime; the frame then waits about a node)
    and otherwise waits for its end, so ending early costs little and ending
    late costs that frame.
    """

    LEAD_NS = 500_000
    # Intervals and run times remembered: enough for a steady median, few enough to follow a change of rate.
    KEPT = 16

    def __init__(self, runner: Runner):
        self.runner = runner
        self.run_ns: deque[int] = deque(maxlen=self.KEPT)
        self.intervals_ns: deque[float] = deque(maxlen=self.KEPT)
        self.last: Optional[tuple[int, int]] = None  # (index, capture_ns) of the last frame posed
        self.runs = 0
        # Warm runs a frame stopped midway (counted in ``runs`` too).
        self.stopped = 0

    def posed(self, times: FrameTimes) -> None:
        if self.last is not None and times.index > self.last[0]:
            index, capture_ns = self.last
            self.intervals_ns.append((times.capture_ns - capture_ns) / (times.index - index))
        self.last = (times.index, times.capture_ns)
        self.run_ns.append(times.pose_ready_ns - times.taken_ns)

    def before_next(self, latest: LatestFrame, spin: bool, last_image: np.ndarray) -> None:
        """Wait for the moment to warm, then warm on ``last_image``, unless a frame comes first or
        there is no room. The last frame, not a blank one: a top-down model crops only where it
        finds animals, so only a frame with animals in it runs all of it."""
        if len(self.intervals_ns) < 2:
            return
        due_ns = self.last[1] + float(np.median(self.intervals_ns))
        start_ns = int(due_ns - max(self.run_ns) - self.LEAD_NS)
        if start_ns <= time.perf_counter_ns():
            return
        warm = self.runner.warm_run(last_image)
        # Set before waiting: a frame that comes at any moment from here on stops the run.
        latest.on_put = warm.stop
        try:
            if latest.wait_until(start_ns, spin):
                return
            started = time.perf_counter_ns()
            if warm.run():
                self.run_ns.append(time.perf_counter_ns() - started)
            else:
                self.stopped += 1
            self.runs += 1
        finally:
            latest.on_put = None


@attrs.frozen
class LatencySummary:
    """A run's figures: latency percentiles (ms) and frame counts."""

    captured: int
    posed: int
    dropped: int
    seconds: float
    # {"p50": ..., "p90": ..., "p99": ..., "max": ...}, capture to pose-ready / to hook done.
    pose_ms: dict[str, float]
    hook_ms: dict[str, float]
    # Frames whose hook raised (kept): each one under ``keep_going``, else the one that stopped the run.
    hook_failures: int = 0

    @classmethod
    def of(cls, times: TimesLog, captured: int, dropped: int, hook_failures: int = 0) -> "LatencySummary":
        def percentiles(values: np.ndarray) -> dict[str, float]:
            if not len(values):
                return {}
            figures = {f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES}
            return {**figures, "max": float(values.max())}

        capture, pose, hook = (times.column(name) for name in ("capture_ns", "pose_ready_ns", "hook_done_ns"))
        seconds = (hook[-1] - capture[0]) / 1e9 if len(times) else 0.0
        return cls(captured, len(times), dropped, seconds, percentiles((pose - capture) / 1e6), percentiles((hook - capture) / 1e6),
                   hook_failures)

    def as_dict(self) -> dict:
        return attrs.asdict(self)

    def lines(self) -> list[str]:
        share = f" ({100 * self.dropped / self.captured:.1f}%)" if self.captured else ""
        rate = f" in {self.seconds:.1f} s ({self.posed / self.seconds:.1f} posed/s)" if self.seconds > 0 else ""
        failed = f"; the hook raised on {self.hook_failures} of them" if self.hook_failures else ""
        lines = [f"{self.captured} frames captured, {self.posed} posed, {self.dropped} dropped{share}{rate}{failed}"]
        if self.pose_ms:
            lines.append("latency ms            " + "  ".join(f"{k:>6}" for k in self.pose_ms))
            lines.append("capture -> pose       " + "  ".join(f"{v:6.1f}" for v in self.pose_ms.values()))
            lines.append("capture -> hook done  " + "  ".join(f"{v:6.1f}" for v in self.hook_ms.values()))
        return lines


def refuse_unless_live(runner: Runner) -> None:
    """Refuse artifacts that cannot pose camera frames on their own."""
    require_poses(runner.spec)
    if "centroids" in runner.spec.input_names:
        model_type = runner.spec.model_type
        together = (
            "the embedding run with a centroid run (or a centroid and a centered-instance run)"
            if model_type == "embedding"
            else "the centroid and centered-instance runs together (a top-down artifact)"
        )
        raise InputError(
            f"{'An' if model_type[0] in 'aeiou' else 'A'} {model_type} artifact crops around centroids it is given, "
            f"so it cannot run on camera frames alone; export {together}."
        )


def hook_name(processor) -> str:
    """How messages name a hook given from Python: ``module:Class``, as --processor takes it."""
    kind = type(processor)
    return f"{kind.__module__}:{kind.__qualname__}"


def _hook_failure(hook: str, index: int, error: Exception) -> str:
    lines = str(error).strip().splitlines()
    raised = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return f"the --processor hook {hook} raised at frame {index}: {raised}"


class HookFailed(SleapExportError):
    """A processor hook raised and the run stopped (``keep_going=False``); exit status 1.

    ``hook``: the hook as messages name it; ``frame_index``: the source frame it raised on;
    ``frame``: that `LiveFrame`, posed before its hook ran (`LiveRecording.add` it to keep it,
    as ``sleap-export live -o`` does); the hook's own exception is the ``__cause__``.
    ``kept``: where the frames posed so far went, set by whoever saved them; it ends the message.
    """

    def __init__(self, hook: str, frame: LiveFrame, error: Exception):
        super().__init__(_hook_failure(hook, frame.times.index, error))
        self.hook = hook
        self.frame = frame
        self.frame_index = frame.times.index
        self.kept: Optional[str] = None

    def __str__(self) -> str:
        message = super().__str__()
        return message if self.kept is None else f"{message}; {self.kept}"


class HookFailedWarning(UserWarning):
    """A processor hook raised, the frame was kept and the run went on (``keep_going=True``)."""


class LiveRunner:
    """Poses from a live source, one frame at a time, newest frame first.

    ``model``: an artifact or training run(s), as `open_model` takes them
    (opened for the lowest latency: one batch on all threads), or a `Runner`. ``source``: anything `open_source` takes.
    ``processor``: a `Processor`. ``forecast``: ``"velocity"``, ``"kalman"`` or
    a `Forecaster`, predicting each keypoint ``forecast_lead_s`` past pose-ready
    (needs a single-instance or multi-class model: animals are followed by
    identity). ``duration_s``: stop capturing after this long; ``max_frames``:
    after this many frames. ``waiting``: a `Waiting`, how the inference thread
    spends the time between frames (default `Waiting.default()`: polling on 2
    or more cores, no warming ahead). A hook that raises stops the run: iterating
    raises `HookFailed` (the frame it raised on is its ``frame``); with
    ``keep_going``, each failure is a `HookFailedWarning` (the `warnings`
    module), the frame is yielded as any other, the run goes on, and
    ``summary().hook_failures`` counts them. ``processor_name``: how messages
    name the hook (default ``module:Class`` of its type; the CLI passes
    --processor as given). ``options`` (a `ModelOptions`), or
    ``device`` and its fields as keywords, open the model (``runtime="openvino"``).
    ``tracking``: a `TrackingOptions` (sleap-nn's classic tracker): each frame's instances are
    tracked as soon as they are posed, before the forecast and the hook, and ``outputs.class_ids``
    holds each slot's track (0, 1, ...; -1 for a slot the tracker left untracked or dropped) and
    ``outputs.instance_tracking_scores`` its tracking score, as a multi-class model's identities are
    given; the forecast then follows each animal by its track.
    A segmentation model's frames hold masks, not poses: ``outputs.masks`` (run-length coded
    ``sio.PredictedSegmentationMask``es, placed on the frame) and, for ``mask_output`` polygon or
    both, ``outputs.rois``, decoded as ``options.masks`` (a `MaskOptions`) asks; its instance
    arrays are empty (no tracking, no forecast).

    Iterate it (on any one thread; the hook runs there) for `LiveFrame` objects,
    or call `run()`; ``summary()`` gives the latency figures.
    """

    def __init__(self, model, source, processor: Optional[Processor] = None, forecast=None,
                 forecast_lead_s: float = 0.0, duration_s: Optional[float] = None, max_frames: Optional[int] = None,
                 device: Optional[str] = None, waiting: Optional[Waiting] = None, keep_going: bool = False,
                 processor_name: Optional[str] = None, options: Optional[ModelOptions] = None,
                 tracking: Optional[TrackingOptions] = None, **option_fields):
        # A runner we open, we also release at the end; a caller's stays theirs.
        self._owns_runner = not isinstance(model, Runner)
        if self._owns_runner:
            if options is None:
                options = ModelOptions(device=device, **option_fields)
            elif device is not None or option_fields:
                raise InputError("Pass the model options either as options= or as keywords, not both.")
        self.runner = open_model(model, options) if self._owns_runner else model
        refuse_unless_live(self.runner)
        self.source: LiveSource = open_source(source)
        # The video the frames' indices refer to (the tracker's and a recording's).
        self.video = self.source.video()
        self.tracking = self._tracking_stage(tracking)
        self.processor = processor
        self.processor_name = processor_name or (hook_name(processor) if processor is not None else None)
        self.keep_going = keep_going
        self.hook_failures = 0
        self.forecaster = _forecaster(forecast, self.runner, tracked=self.tracking is not None)
        self.lead_ns = round(forecast_lead_s * 1e9)
        self.duration_s = duration_s
        self.max_frames = max_frames
        self.waiting = Waiting.default() if waiting is None else waiting
        self.warm_ahead = _WarmAhead(self.runner) if self.waiting.warm_ahead else None
        self.times = TimesLog()
        self.pool = FramePool()
        self._latest = LatestFrame()
        self._stop = threading.Event()
        self._captured = 0
        self._capture_error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._frames: Optional[Iterator[LiveFrame]] = None

    def _tracking_stage(self, tracking: Optional[TrackingOptions]) -> Optional[TrackingStage]:
        if tracking is None:
            return None
        refuse_untrackable(self.runner.spec)
        if tracking.is_mot:
            raise InputError(
                f"--tracker {tracking.tracker} tracks a whole video once it is predicted, so live cannot give its tracks "
                "as frames come; use --tracker classic (the default)."
            )
        return TrackingStage(tracking, len(output_skeleton(self.runner.spec).nodes))

    # The run -----------------------------------------------------------------
    def __iter__(self) -> Iterator[LiveFrame]:
        if self._frames is None:
            self._frames = self._run()
        return self._frames

    def run(self) -> LatencySummary:
        """Pose every frame until the source ends, ``duration_s`` or ``max_frames`` is reached, or `stop()`."""
        for _ in self:
            pass
        return self.summary()

    def stop(self) -> None:
        """End the run (from any thread, a hook included): capture stops, the frame waiting is still posed."""
        self._stop.set()

    def close(self) -> None:
        """Stop and release the source now, also in the middle of iterating."""
        self.stop()
        if self._frames is not None:
            self._frames.close()

    def __enter__(self) -> "LiveRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def summary(self) -> LatencySummary:
        return LatencySummary.of(self.times, self._captured, self._latest.dropped, self.hook_failures)

    def _run(self) -> Iterator[LiveFrame]:
        shape = self.source.open()
        try:
            self._warm_up(shape)
            self._thread = threading.Thread(target=self._capture, name="sleap-export-capture", daemon=True)
            self._thread.start()
            held: Optional[_Captured] = None
            while True:
                if held is not None:
                    if self.warm_ahead is not None:
                        self.warm_ahead.before_next(self._latest, self.waiting.spin, held.image)
                    self.pool.give_back(held.image)
                held = self._latest.take(spin=self.waiting.spin)
                if held is None:
                    break
                frame = self._pose(held)
                if self.warm_ahead is not None:
                    self.warm_ahead.posed(frame.times)
                yield frame
        finally:
            self._stop.set()
            self._latest.close()
            if self._thread is not None:
                self._thread.join(timeout=5.0)
            else:
                self.source.close()
            if self._owns_runner:
                self.runner.deactivate()
            close = getattr(self.processor, "close", None)
            if close is not None:
                close()
        if self._capture_error is not None:
            raise self._capture_error

    def _warm_up(self, shape) -> None:
        """First runs allocate the runtime's buffers; do them before the first frame is due."""
        blank = np.zeros(shape, np.uint8)
        for _ in range(2):
            self.runner.predict(blank, keep_images=False)

    def _capture(self) -> None:
        deadline = None if self.duration_s is None else time.perf_counter_ns() + round(self.duration_s * 1e9)
        try:
            while not self._stop.is_set() and self._captured != self.max_frames:
                image = self.source.read(self.pool)
                if image is None:
                    break
                capture_ns = time.perf_counter_ns()
                if deadline is not None and capture_ns > deadline:
                    self.pool.give_back(image)
                    break
                replaced = self._latest.put(_Captured(self._captured, capture_ns, image))
                self._captured += 1
                if replaced is not None:
                    self.pool.give_back(replaced.image)
        except BaseException as err:  # re-raised on the iterating thread
            self._capture_error = err
        finally:
            self.source.close()
            self._latest.close()

    def _pose(self, captured: _Captured) -> LiveFrame:
        taken_ns = time.perf_counter_ns()
        outputs = self.runner.predict(captured.image, frame_indices=[captured.index])[0]
        pose_ready_ns = time.perf_counter_ns()
        if self.tracking is not None:
            outputs = self._tracked(outputs, captured.image)
        forecast_ns = None
        if self.forecaster is not None:
            forecast_ns = pose_ready_ns + self.lead_ns
            outputs = attrs.evolve(
                outputs, pred_forecast_keypoints=self._forecast(outputs, captured.capture_ns, forecast_ns)
            )
        times = FrameTimes(captured.index, captured.capture_ns, taken_ns, pose_ready_ns, self._latest.dropped, forecast_ns)
        failure = None
        if self.processor is not None:
            try:
                self.processor.process(outputs, times)
            except Exception as err:  # the user's hook: any failure is reported, with the frame kept
                failure = err
        times = attrs.evolve(times, hook_done_ns=time.perf_counter_ns())
        self.times.append(times)
        frame = LiveFrame(outputs, times)
        if failure is not None:
            self.hook_failures += 1
            if not self.keep_going:
                raise HookFailed(self.processor_name, frame, failure) from failure
            _warn_hook_failed(_hook_failure(self.processor_name, captured.index, failure), failure)
        return frame

    def _tracked(self, outputs: Outputs, image: np.ndarray) -> Outputs:
        """``outputs`` with each slot's track in ``class_ids`` (-1: none) and its score in
        ``instance_tracking_scores`` (NaN: none). Optical flow keeps the image for later frames, so
        it gets a copy: the capture buffer is reused."""
        if self.tracking.options.use_flow:
            image = np.array(image)
        poses = self.tracking.add(self.video, outputs, image)
        slots = np.flatnonzero(np.asarray(outputs.instance_valid))
        tracks = np.full(len(outputs.instance_valid), -1, np.int32)
        scores = np.full(len(outputs.instance_valid), np.nan, np.float32)
        for pose in poses:
            if pose.track is not None:
                tracks[slots[pose.index]] = pose.track
                scores[slots[pose.index]] = pose.tracking_score
        return attrs.evolve(outputs, class_ids=tracks, instance_tracking_scores=scores)

    def _forecast(self, outputs: Outputs, measured_ns: int, at_ns: int) -> np.ndarray:
        keypoints = np.asarray(outputs.pred_keypoints)
        forecast = np.full(keypoints.shape, np.nan, np.float32)
        for slot in np.flatnonzero(np.asarray(outputs.instance_valid)):
            # The single instance is one animal; multi-class (or tracked) slots are followed by identity (track).
            key = 0 if outputs.class_ids is None else int(outputs.class_ids[slot])
            if key >= 0:
                forecast[slot] = self.forecaster.forecast(key, keypoints[slot], measured_ns, at_ns)
        return forecast


def _warn_hook_failed(message: str, error: Exception) -> None:
    """A `HookFailedWarning` pointing at the line that raised.

    A fresh registry each time: under Python's default filter the module's
    registry would keep every message (one per failing frame) for the whole run.
    """
    where = traceback.extract_tb(error.__traceback__)[-1]
    warnings.warn_explicit(HookFailedWarning(f"{message}; frame kept, going on (--keep-going)"), HookFailedWarning,
                           where.filename, where.lineno or 0, registry={})


def _forecaster(forecast, runner: Runner, tracked: bool = False) -> Optional[Forecaster]:
    if forecast is None or forecast == "none":
        return None
    if isinstance(forecast, str):
        if forecast not in FORECASTERS:
            raise InputError(f"Unknown forecast {forecast!r}; use none, {', '.join(FORECASTERS)}.")
        forecast = FORECASTERS[forecast]()
    spec = runner.spec
    if MODEL_TYPES[spec.model_type].segments:
        raise InputError(f"--forecast predicts keypoints and a {spec.model_type} model predicts masks; leave out --forecast.")
    if spec.model_type != "single_instance" and not spec.class_names and not tracked:
        raise InputError(
            f"Forward prediction follows each animal by identity, and a {spec.model_type} artifact gives none; "
            "use a single-instance or multi-class model, add --tracking, or leave the forecast out."
        )
    return forecast


class LiveRecording:
    """Posed frames as `sio.Labels`, each frame's times in the provenance.

    ``labels.provenance["sleap_export.live"]`` holds, per posed frame in the
    order of ``labels.labeled_frames``, ``frame_idx`` and ``capture_ns``,
    ``taken_ns``, ``pose_ready_ns``, ``hook_done_ns`` (ns since ``time_origin_unix_ns``, the
    wall-clock time of the first capture), with the run's counts and latency
    percentiles.
    """

    def __init__(self, live: LiveRunner, artifact=None):
        """``artifact``: the model as the provenance names it (a path, or training runs)."""
        self.live = live
        if artifact is not None and not isinstance(artifact, (str, Path)):
            artifact = model_name([Path(p) for p in artifact])
        self.writer = LabelsWriter(live.runner.spec, artifact)
        self.video = live.video
        self.frames: list[sio.LabeledFrame] = []
        self.times = TimesLog()

    def add(self, frame: LiveFrame) -> None:
        outputs = frame.outputs
        if self.live.tracking is not None:
            # The tracks are the tracker's (`labels`), not a model's classes.
            outputs = attrs.evolve(outputs, class_ids=None, instance_tracking_scores=None)
        self.frames.append(self.writer.frame(outputs, self.video))
        self.times.append(frame.times)

    def labels(self) -> sio.Labels:
        columns = {name: self.times.column(name) for name in TIME_FIELDS[1:]}
        origin = int(columns["capture_ns"][0]) if len(self.times) else 0
        # Both clocks read together: perf_counter is monotonic, the wall clock aligns it with other records.
        unix_offset = time.time_ns() - time.perf_counter_ns()
        summary = self.live.summary()
        recorded = {
            "source": self.live.source.name,
            "fps": self.live.source.fps,
            "time_origin_unix_ns": origin + unix_offset,
            "frame_idx": self.times.column("index").tolist(),
            **{name: (values - origin).tolist() for name, values in columns.items()},
            "frames_captured": summary.captured,
            "frames_dropped": summary.dropped,
            "hook_failures": summary.hook_failures,
            "latency_ms": {"capture_to_pose": summary.pose_ms, "capture_to_hook_done": summary.hook_ms},
        }
        # Posed in capture order: the writer's frame order is theirs.
        if self.live.tracking is None:
            return self.writer.labels(self.frames, [self.video], {TIMES_KEY: recorded})
        # Tracked: the passes over the whole run (culling, connecting breaks) as predict runs them, once
        # the run has ended; on copies of the frames, whose instances the passes may remove.
        frames = [sio.LabeledFrame(video=lf.video, frame_idx=lf.frame_idx, instances=list(lf.instances)) for lf in self.frames]
        return self.live.tracking.apply(self.writer.labels(frames, [self.video], {TIMES_KEY: recorded}))

    def save(self, path: str | Path) -> Path:
        return self.writer.save(self.labels(), path)


def read_times(labels: sio.Labels) -> dict[str, np.ndarray]:
    """A live .slp's per-frame times as arrays (ns since the first capture), by name."""
    recorded = (labels.provenance or {}).get(TIMES_KEY)
    if recorded is None:
        raise InputError("These labels were not written by sleap-export live; they hold no per-frame times.")
    return {name: np.asarray(recorded[name], np.int64) for name in TIME_FIELDS}


def load_processor(spec: str) -> Processor:
    """``module:Class`` (importable, the working folder included) or ``path/to/file.py:Class``,
    constructed without arguments."""
    module_name, _, class_name = spec.rpartition(":")
    if not module_name or not class_name.isidentifier():
        raise InputError(f"--processor takes module:Class or file.py:Class (e.g. my_hooks:Trigger), got {spec!r}.")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise InputError(f"{path} does not exist; --processor takes file.py:Class or module:Class.")
        loader = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` would: hooks beside the experiment
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name is None or not (module_name == err.name or module_name.startswith(err.name + ".")):
                raise  # the hook module itself imports something missing: its own error
            raise InputError(
                f"Cannot import {module_name!r} for --processor; run from its folder, put it on PYTHONPATH, "
                "or pass path/to/file.py:Class."
            ) from None
    processor_class = getattr(module, class_name, None)
    if processor_class is None:
        raise InputError(f"{module_name} has no {class_name}; --processor names a class defined there.")
    processor = processor_class()
    if not callable(getattr(processor, "process", None)):
        raise InputError(f"{module_name}:{class_name} has no process(outputs, timestamps) method; add one.")
    return processor


class PoseWindow:
    """An OpenCV window showing each frame with its poses (forecasts as rings) or masks; q or Esc stops."""

    KEYS_TO_STOP = (ord("q"), 27)

    def __init__(self, title: str = "sleap-export live"):
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise InputError("--show needs a display and none is set (DISPLAY); leave out --show, or run on a desktop.")
        import cv2

        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise InputError("--show needs OpenCV with window support (not opencv-python-headless); leave out --show.") from None

    def show(self, frame: LiveFrame) -> bool:
        """Draw the frame; False once the user asked to stop."""
        import cv2

        outputs = frame.outputs
        image = outputs.original_image
        if outputs.masks or outputs.rois:
            from sleap_export.runtime.writing.overlay_video import draw_masks

            rgb = np.ascontiguousarray(np.broadcast_to(image, image.shape[:2] + (3,)), dtype=np.uint8)
            image = draw_masks(rgb, outputs)
        canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.shape[-1] == 1 else cv2.COLOR_RGB2BGR)
        colours = ((0, 200, 255), (255, 120, 0), (80, 220, 80), (200, 80, 255), (255, 255, 0))
        for slot in np.flatnonzero(np.asarray(outputs.instance_valid)):
            identity = slot if outputs.class_ids is None else max(int(outputs.class_ids[slot]), 0)
            colour = colours[identity % len(colours)]
            points = np.asarray(outputs.pred_keypoints[slot])
            for a, b in outputs.edges:
                if not np.isnan(points[[a, b]]).any():
                    cv2.line(canvas, tuple(int(v) for v in points[a]), tuple(int(v) for v in points[b]), colour, 2)
            for x, y in points[~np.isnan(points).any(axis=-1)]:
                cv2.circle(canvas, (int(x), int(y)), 3, colour, -1)
            if outputs.pred_forecast_keypoints is not None:
                ahead = np.asarray(outputs.pred_forecast_keypoints[slot])
                for x, y in ahead[~np.isnan(ahead).any(axis=-1)]:
                    cv2.circle(canvas, (int(x), int(y)), 6, colour, 1)
        cv2.putText(canvas, f"{frame.times.latency_ms:.1f} ms, {frame.times.dropped} dropped", (8, 20),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
        cv2.imshow(self.title, canvas)
        return (cv2.waitKey(1) & 0xFF) not in self.KEYS_TO_STOP

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)
