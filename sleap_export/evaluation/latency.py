"""Live latency against the artifact's bare batch-1 time, on a simulated camera.

Used by ``sleap-export bench --latency`` and ``scripts/live_bench.py``. The
bare time is `Runner.predict` on one decoded frame after another (the graph,
its fused pre- and post-processing, and the host's decoding into `Outputs`),
the least a frame can cost; the live time is capture to pose-ready through
`LiveRunner` on the same runner, with the video played at its frame rate.
Between paced frames the cores go idle, and a network woken from idle runs
slower than one run back to back, whatever carries the frames (see the README's
figures); so the same `Runner.predict` calls are
also timed paced at the camera's rate, one thread and nothing else, to tell
the live path's own cost from pacing's.

A shared host's speed drifts by tens of percent from one minute to the next,
more than the 10% a comparison has to resolve, so the three are timed in
interleaved rounds (bare, live, paced, again and again) and pooled: drift
weighs on all three alike, and each round's own live-over-bare ratio shows the
spread.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import attrs
import numpy as np

from sleap_export.core.errors import InputError
from sleap_export.evaluation.throughput import predicted_kind
from sleap_export.runtime.backends.runner import Runner
from sleap_export.runtime.drivers.live import LatencySummary, LiveRunner, TimesLog, Waiting, refuse_unless_live
from sleap_export.runtime.open_model import ModelOptions, check_models, model_name, open_model
from sleap_export.runtime.sources.live_sources import SimulatedCamera
from sleap_export.runtime.sources.video_inputs import open_video


def percentiles_ms(values_ms) -> dict[str, float]:
    values = np.asarray(values_ms, np.float64)
    return {"p50": float(np.percentile(values, 50)), "p90": float(np.percentile(values, 90)),
            "p99": float(np.percentile(values, 99)), "max": float(values.max())}


def decoded_frames(video: Path, count: int) -> np.ndarray:
    """Up to ``count`` first frames of ``video``, as `predict` reads them."""
    source = open_video(Path(video))
    return np.stack([np.asarray(source[i]) for i in range(min(count, source.shape[0]))])


def bare_latency_ms(runner: Runner, frames: np.ndarray, count: int, fps: Optional[float] = None) -> list[float]:
    """Milliseconds of `Runner.predict` per frame at batch 1, frames in memory, back to back
    (or, with ``fps``, each call started on the next tick of that rate, as a camera would)."""
    runner.predict(frames[0], keep_images=False)
    times = []
    started_all = time.perf_counter()
    for i in range(count):
        if fps:
            wait = started_all + i / fps - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        started = time.perf_counter_ns()
        runner.predict(frames[i % len(frames)], keep_images=False)
        times.append((time.perf_counter_ns() - started) / 1e6)
    return times


def live_run(runner: Runner, video: Path, seconds: Optional[float] = None, fps: Optional[float] = None,
             frames: Optional[int] = None, waiting: Optional[Waiting] = None) -> LiveRunner:
    """``video`` played (looped) at its frame rate or ``fps`` through a `LiveRunner` for ``seconds``
    or ``frames``, done (``waiting``: as `LiveRunner` takes it)."""
    live = LiveRunner(runner, SimulatedCamera(video, fps=fps, loop=True), duration_s=seconds, max_frames=frames, waiting=waiting)
    live.run()
    return live


def live_split_ms(*lives: LiveRunner) -> dict[str, dict[str, float]]:
    """Capture to pose-ready in its two parts, pooled over the runs: ``handoff`` (capture to
    taken by the inference thread, over the frames that found it idle: the live path's own
    cost) and ``inference`` (taken to pose-ready: the same `Runner.predict` call the bare rows time)."""
    handoff, inference = [], []
    for live in lives:
        times = live.times
        capture, taken, pose, hook = (times.column(n) for n in ("capture_ns", "taken_ns", "pose_ready_ns", "hook_done_ns"))
        idle = np.concatenate([[True], capture[1:] > hook[:-1]])
        handoff.append((taken - capture)[idle] / 1e6)
        inference.append((pose - taken) / 1e6)
    return {"handoff": percentiles_ms(np.concatenate(handoff)), "inference": percentiles_ms(np.concatenate(inference))}


def pooled_summary(lives: list[LiveRunner]) -> LatencySummary:
    """One `LatencySummary` of several live runs: their frames together, their seconds added."""
    pooled = TimesLog()
    for live in lives:
        for times in live.times:
            pooled.append(times)
    summaries = [live.summary() for live in lives]
    figures = LatencySummary.of(pooled, sum(s.captured for s in summaries), sum(s.dropped for s in summaries))
    return attrs.evolve(figures, seconds=sum(s.seconds for s in summaries))


@attrs.frozen
class InterleavedTimes:
    """`interleaved_latency`'s timings: bare and paced ms per call, and the live runs of each
    `Waiting` (``lives[arm][round]``), round by round."""

    bare_ms: list[list[float]]
    paced_ms: list[list[float]]
    lives: list[list[LiveRunner]]

    def p50_overhead_by_round(self, arm: int = 0) -> list[float]:
        """Each round's live p50 over its own bare p50, minus 1 (paired: the same minute's host)."""
        return self._p50_over(self.bare_ms, arm)

    def p50_overhead_paced_by_round(self, arm: int = 0) -> list[float]:
        """Each round's live p50 over its own paced bare p50, minus 1."""
        return self._p50_over(self.paced_ms, arm)

    def _p50_over(self, baseline_ms: list[list[float]], arm: int) -> list[float]:
        return [live.summary().pose_ms["p50"] / float(np.percentile(base, 50)) - 1
                for base, live in zip(baseline_ms, self.lives[arm])]


def interleaved_latency(runner: Runner, video: Path, in_memory: np.ndarray, frames: int, rounds: int,
                        live_seconds: Optional[float] = None, fps: Optional[float] = None,
                        waitings: tuple[Optional[Waiting], ...] = (None,)) -> InterleavedTimes:
    """``frames`` bare calls back to back on ``in_memory``, ``frames`` frames of ``video`` live
    (or ``live_seconds`` a round) once per `Waiting` in ``waitings``, and ``frames`` bare calls
    paced at the camera's rate, shared out over ``rounds`` rounds of them all in turn."""
    bare, paced, lives = [], [], [[] for _ in waitings]
    for share in np.array_split(np.arange(frames), rounds):
        bare.append(bare_latency_ms(runner, in_memory, len(share)))
        for arm, waiting in zip(lives, waitings):
            arm.append(live_run(runner, video, live_seconds, fps=fps, frames=None if live_seconds else len(share), waiting=waiting))
        paced.append(bare_latency_ms(runner, in_memory, len(share), fps=lives[0][-1].source.fps))
    return InterleavedTimes(bare, paced, lives)


def pooled_ms(rounds_ms: list[list[float]]) -> dict[str, float]:
    """Percentiles of every round's times together."""
    return percentiles_ms(np.concatenate(rounds_ms))


@attrs.frozen
class LatencyReport:
    artifact: str
    video: str
    fps: float
    bare_ms: dict[str, float]
    # The same calls started at the camera's rate (see the module doc).
    paced_ms: dict[str, float]
    live: LatencySummary
    # `live_split_ms` of the live run.
    live_split_ms: dict[str, dict[str, float]]
    runner: str = "onnxruntime"
    # How the live run's inference thread spent the time between frames.
    waiting: Waiting = attrs.field(factory=Waiting.default)
    # Each interleaved round's live p50 over its bare p50, minus 1 (`InterleavedTimes`).
    p50_overhead_by_round: list[float] = attrs.field(factory=list)
    # With warming ahead: the warm runs in the live runs, and how many a frame stopped midway.
    warm_runs: int = 0
    warm_runs_stopped: int = 0
    # What a frame becomes ("poses", "boxes", or a segmentation model's "masks", decoded in `Runner.predict`).
    predicts: str = "poses"

    @property
    def p50_overhead(self) -> float:
        """Live p50 over bare p50, minus 1 (0.05: the live path adds 5%)."""
        return self.live.pose_ms["p50"] / self.bare_ms["p50"] - 1

    @property
    def p99_overhead_ms(self) -> float:
        return self.live.pose_ms["p99"] - self.bare_ms["p99"]

    @property
    def p50_overhead_paced(self) -> float:
        """Live p50 over paced bare p50, minus 1: what the live path adds to pacing."""
        return self.live.pose_ms["p50"] / self.paced_ms["p50"] - 1

    @property
    def p99_overhead_paced_ms(self) -> float:
        return self.live.pose_ms["p99"] - self.paced_ms["p99"]

    def as_dict(self) -> dict:
        values = attrs.asdict(self)
        values.update(
            p50_overhead=self.p50_overhead, p99_overhead_ms=self.p99_overhead_ms,
            p50_overhead_paced=self.p50_overhead_paced, p99_overhead_paced_ms=self.p99_overhead_paced_ms,
        )
        return values

    def render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        name = " + ".join(Path(part).name for part in self.artifact.split(" + "))
        table = Table(title=f"latency of {name} ({self.runner}) on {Path(self.video).name} at {self.fps:g} fps, batch 1 (ms)")
        for column in ("", "p50", "p90", "p99", "max"):
            table.add_column(column, justify="right" if column else "left")
        rows = (("bare: Runner.predict, frames in memory", self.bare_ms),
                (f"bare, calls paced at {self.fps:g} fps", self.paced_ms),
                (f"live: capture -> {'pose' if self.predicts == 'poses' else self.predicts} ready", self.live.pose_ms),
                ("  of which handoff (idle inference thread)", self.live_split_ms["handoff"]),
                ("  of which inference (Runner.predict)", self.live_split_ms["inference"]),
                ("live: capture -> hook done", self.live.hook_ms))
        for name, figures in rows:
            table.add_row(name, *(f"{figures[k]:.2f}" for k in ("p50", "p90", "p99", "max")))
        notes = (
            f"live adds {100 * self.p50_overhead:+.1f}% at p50 and {self.p99_overhead_ms:+.2f} ms at p99 over bare "
            f"({100 * self.p50_overhead_paced:+.1f}% and {self.p99_overhead_paced_ms:+.2f} ms over paced); "
            f"{self.live.captured} frames captured, {self.live.posed} posed, {self.live.dropped} dropped"
            f"{self._rounds_note()}; "
            f"live: inference thread {self.waiting.describe()}"
            + (f" ({self.warm_runs} warm runs, {self.warm_runs_stopped} stopped by a frame)" if self.waiting.warm_ahead else "")
        )
        return Group(table, Text(notes))

    def _rounds_note(self) -> str:
        by_round = self.p50_overhead_by_round
        if len(by_round) < 2:
            return ""
        return (f" in {len(by_round)} interleaved rounds (live over bare at p50 per round: median "
                f"{100 * float(np.median(by_round)):+.0f}%, {100 * min(by_round):+.0f}% to {100 * max(by_round):+.0f}%)")


def runner_label(runner) -> str:
    """"onnxruntime", "openvino bf16", ...: the runtime, and the precision OpenVINO runs the networks in."""
    precision = getattr(runner, "precision", None)
    return runner.name if precision is None else f"{runner.name} {precision}"


def latency_report(models, video: Optional[Path], frames: int = 200, fps: Optional[float] = None,
                   options: ModelOptions = ModelOptions(), waiting: Optional[Waiting] = None,
                   rounds: int = 4) -> LatencyReport:
    """``frames`` bare batch-1 calls, ``frames`` frames of ``video`` as a simulated camera and
    ``frames`` bare calls paced at the camera's rate, in ``rounds`` interleaved rounds (at least
    10 frames each), pooled.

    ``models``: an artifact, or training run(s) run eagerly, opened with ``options`` (`open_model`);
    ``waiting``: the live run's, as `LiveRunner` takes it.
    """
    models = check_models([models] if isinstance(models, (str, Path)) else models)
    if video is None:
        raise InputError("--latency plays a video as a simulated camera; pass one with --data.")
    runner = open_model(models, options)
    refuse_unless_live(runner)
    in_memory = decoded_frames(video, frames)
    with runner:
        timed = interleaved_latency(runner, video, in_memory, frames, max(1, min(rounds, frames // 10)), fps=fps,
                                    waitings=(waiting,))
    name = model_name(models)
    warmed = [live.warm_ahead for live in timed.lives[0] if live.warm_ahead is not None]
    return LatencyReport(name, str(video), timed.lives[0][0].source.fps, pooled_ms(timed.bare_ms), pooled_ms(timed.paced_ms),
                         pooled_summary(timed.lives[0]), live_split_ms(*timed.lives[0]), runner_label(runner),
                         timed.lives[0][0].waiting, timed.p50_overhead_by_round(),
                         sum(w.runs for w in warmed), sum(w.stopped for w in warmed),
                         predicted_kind(runner.spec.model_type))
