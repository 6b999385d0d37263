"""Closed loop (`sleap_export.runtime.drivers.live`): simulated cameras, iterators, drops, hooks,
forward prediction and ``sleap-export live``. No timed assertions: speed is for
scripts/live_bench.py."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from conftest import DATA, cached
from test_cli import installed
from sleap_export.core.errors import InputError
from sleap_export.runtime.drivers.forecast import ConstantVelocity, Kalman
from sleap_export.runtime.artifacts.formats import read_spec
from sleap_export.runtime.drivers.live import (FrameTimes, LatestFrame, LiveRecording, LiveRunner, Waiting, _Captured, load_processor,
                                       read_times)
from sleap_export.runtime.sources.live_sources import IteratorSource, SimulatedCamera
from sleap_export.runtime.decoding.outputs import Outputs
from sleap_export.runtime.backends.runner import Runner, WarmRun
from sleap_export.runtime import load

CLIP_FRAMES = 24
SINGLE = ["minimal_instance_single_instance"]
# Every model type that poses camera frames on its own, with the video it was trained on.
LIVE_MODELS = {
    "single_instance": (SINGLE, "small_robot.mp4"),
    "centroid": (["minimal_instance_centroid"], "centered_pair_small.mp4"),
    "topdown": (["minimal_instance_centroid", "minimal_instance_centered_instance"], "centered_pair_small.mp4"),
    "multi_class_topdown": (
        ["minimal_instance_centroid", "minimal_instance_multiclass_centered_instance"], "centered_pair_small.mp4"
    ),
    "bottomup": (["minimal_instance_bottomup"], "centered_pair_small.mp4"),
    "multi_class_bottomup": (["minimal_instance_multiclass_bottomup"], "centered_pair_small.mp4"),
}


@pytest.fixture(scope="session")
def clip(assets, session_cache):
    """``clip(video name) -> path``: its first CLIP_FRAMES frames as an .mp4 (a simulated camera's file)."""

    def make(name: str) -> Path:
        def produce(path: Path) -> None:
            import cv2

            source = sio.load_video(str(DATA / name))
            height, width = source.shape[1:3]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (width, height))
            for i in range(CLIP_FRAMES):
                frame = source[i]
                writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR if frame.shape[-1] == 1 else cv2.COLOR_RGB2BGR))
            writer.release()

        return cached(session_cache, f"clip-{Path(name).stem}.mp4", produce)

    return make


def lockstep(frames, posed: threading.Event):
    """Frames handed out one at a time, each after the previous one's hook: nothing can be dropped."""
    for i, frame in enumerate(frames):
        if i:
            assert posed.wait(timeout=60), "the previous frame was never posed"
            posed.clear()
        yield frame


class Recorder:
    """A hook that records what it saw, on which thread, and may signal each frame done."""

    def __init__(self, done: threading.Event | None = None):
        self.seen: list[tuple[int, object]] = []
        self.threads: set[int] = set()
        self.done = done
        self.closed = False

    def process(self, outputs, timestamps):
        self.threads.add(threading.get_ident())
        self.seen.append((timestamps.index, timestamps))
        if self.done is not None:
            self.done.set()

    def close(self):
        self.closed = True


@pytest.mark.parametrize("model_type", sorted(LIVE_MODELS))
def test_every_model_type_runs_on_a_simulated_camera(model_type, artifact, clip, tmp_path):
    """Posed frames equal the artifact's poses of the same frames; identities become tracks."""
    models, video = LIVE_MODELS[model_type]
    path = artifact(models, ".onnx")
    source = clip(video)
    live = LiveRunner(path, SimulatedCamera(source, fps=60.0))
    recording = LiveRecording(live, path)
    posed = {}
    for frame in live:
        recording.add(frame)
        posed[frame.times.index] = frame.outputs.pred_keypoints.copy(), frame.outputs.class_ids
    summary = live.summary()
    assert live.runner.spec.model_type == model_type
    assert summary.captured == CLIP_FRAMES and summary.posed + summary.dropped == CLIP_FRAMES
    assert CLIP_FRAMES - 1 in posed  # the newest frame is always posed
    expected = load(path)
    frames = sio.load_video(str(source))
    for index, (keypoints, class_ids) in posed.items():
        [reference] = expected.predict(frames[index])
        np.testing.assert_allclose(keypoints, reference.pred_keypoints, atol=1e-4, equal_nan=True)
        if reference.class_ids is not None:
            np.testing.assert_array_equal(class_ids, reference.class_ids)
    labels = recording.labels()
    assert [lf.frame_idx for lf in labels.labeled_frames] == sorted(posed)
    assert labels.video.filename == str(source)
    if model_type.startswith("multi_class"):
        assert {t.name for t in labels.tracks} == set(live.runner.spec.class_names)
    if model_type == "multi_class_bottomup":  # (the multi-class top-down model finds no one on video frames)
        assert any(i.track is not None for lf in labels.labeled_frames for i in lf.instances)


def test_a_centered_instance_artifact_is_refused(artifact):
    path = artifact(["minimal_instance_centered_instance"], ".onnx")
    with pytest.raises(InputError, match="crops around centroids it is given"):
        LiveRunner(path, np.zeros((1, 8, 8, 1), np.uint8))


@pytest.mark.parametrize("spin", [True, False], ids=["polling", "sleeping"])
def test_in_lockstep_every_frame_is_posed_in_order_on_the_iterating_thread(artifact, spin):
    frames = sio.load_video(str(DATA / "small_robot.mp4"))
    done = threading.Event()
    hook = Recorder(done)
    live = LiveRunner(artifact(SINGLE, ".onnx"), lockstep((frames[i] for i in range(6)), done), processor=hook,
                      waiting=Waiting(spin=spin))
    assert live.waiting.spin is spin
    order = []
    for frame in live:
        order.append(frame.times.index)
        assert hook.seen[-1][0] == frame.times.index  # the hook ran before the frame was yielded
        assert hook.seen[-1][1].hook_done_ns is None and frame.times.hook_done_ns is not None
    assert order == [i for i, _ in hook.seen] == list(range(6))
    assert hook.threads == {threading.get_ident()} and hook.closed
    assert live.summary().dropped == 0
    times = [frame for _, frame in hook.seen]
    for t in live.times:
        assert t.capture_ns <= t.taken_ns <= t.pose_ready_ns <= t.hook_done_ns
    assert all(a.capture_ns < b.capture_ns for a, b in zip(times, times[1:]))
    assert live.pool.allocated <= 3  # buffers made once, reused


@pytest.mark.parametrize("spin", [True, False], ids=["polling", "sleeping"])
def test_the_handoff_gives_the_newest_frame_to_a_waiting_taker_then_none_once_closed(spin):
    handoff = LatestFrame()
    taken = []
    taker = threading.Thread(target=lambda: taken.extend([handoff.take(spin=spin), handoff.take(spin=spin)]))
    taker.start()
    time.sleep(0.05)  # the taker is waiting (polling or asleep) before anything is put
    assert not taken
    handoff.put(_Captured(0, 1, np.zeros(1, np.uint8)))
    time.sleep(0.05)
    handoff.close()
    taker.join(timeout=10)
    assert not taker.is_alive()
    assert [t.index if t is not None else None for t in taken] == [0, None] and handoff.dropped == 0


@pytest.mark.parametrize("spin", [True, False], ids=["polling", "sleeping"])
def test_waiting_until_a_deadline_ends_at_it_or_when_a_frame_comes(spin):
    handoff = LatestFrame()
    started = time.perf_counter_ns()
    assert handoff.wait_until(started + 20_000_000, spin=spin) is False
    assert time.perf_counter_ns() - started >= 20_000_000
    threading.Timer(0.02, lambda: handoff.put(_Captured(0, 1, np.zeros(1, np.uint8)))).start()
    assert handoff.wait_until(time.perf_counter_ns() + 60_000_000_000, spin=spin) is True
    assert handoff.take().index == 0
    handoff.close()
    assert handoff.wait_until(time.perf_counter_ns() + 60_000_000_000, spin=spin) is True


def test_a_slow_hook_drops_frames_and_counts_them(fake_runner):
    """Frames captured while the hook of frame 0 runs replace one another: only the newest is posed."""
    hook_started, five_published = threading.Event(), threading.Event()

    def frames():
        for i in range(7):
            if i == 1:
                hook_started.wait(timeout=60)  # frame 0 is being processed
            if i == 6:
                five_published.set()  # asking for frame 6: frames 1-5 are handed over
                return
            yield np.full((16, 16, 1), i, np.uint8)

    class SlowHook(Recorder):
        def process(self, outputs, timestamps):
            super().process(outputs, timestamps)
            if timestamps.index == 0:
                hook_started.set()
                assert five_published.wait(timeout=60)

    hook = SlowHook()
    live = LiveRunner(fake_runner, IteratorSource(frames()), processor=hook)
    assert [frame.times.index for frame in live] == [0, 5]
    summary = live.summary()
    assert (summary.captured, summary.posed, summary.dropped) == (6, 2, 4)
    assert [t.dropped for _, t in hook.seen] == [0, 4]


def test_an_array_source_always_poses_its_last_frame(artifact):
    frames = np.stack([np.asarray(sio.load_video(str(DATA / "small_robot.mp4"))[i]) for i in range(8)])
    live = LiveRunner(artifact(SINGLE, ".onnx"), frames)
    indices = [frame.times.index for frame in live]
    summary = live.summary()
    assert indices[-1] == 7 and indices == sorted(set(indices))
    assert summary.captured == 8 and summary.posed + summary.dropped == 8
    assert set(summary.pose_ms) == {"p50", "p90", "p99", "max"}


def test_a_looped_file_plays_on_past_its_end(fake_runner, clip):
    camera = SimulatedCamera(clip("small_robot.mp4"), fps=500.0, loop=True)
    live = LiveRunner(fake_runner, camera, max_frames=CLIP_FRAMES + 10)
    posed = {frame.times.index: float(frame.outputs.pred_keypoints[0, 0, 0]) for frame in live}
    assert live.summary().captured == CLIP_FRAMES + 10 and CLIP_FRAMES + 9 in posed
    for index in set(posed) & {i + CLIP_FRAMES for i in posed}:  # frame k is the file's k % length
        assert posed[index] == posed[index - CLIP_FRAMES]
    assert camera.video().filename == f"{camera.path} (looped)"


def test_errors_in_the_source_reach_the_iterating_thread(fake_runner):
    def frames():
        yield np.zeros((8, 8, 1), np.uint8)
        yield np.zeros((8, 8, 1), np.float32)

    with pytest.raises(InputError, match="Frames must be uint8"):
        list(LiveRunner(fake_runner, frames()))


class FakeRunner(Runner):
    """A runner double for the handoff tests: each frame's mean intensity as its one keypoint."""

    def activate_impl(self):
        pass

    def infer_impl(self, inputs):
        raise AssertionError("predict is replaced; nothing runs a graph")

    def predict(self, frames, frame_indices=None, video_idx=None, keep_images=True, centroids=None):
        value = float(np.asarray(frames).mean())
        return [Outputs(pred_keypoints=np.full((1, 1, 2), value, np.float32), instance_valid=np.ones(1, bool),
                        frame_idx=None if frame_indices is None else frame_indices[0])]


@pytest.fixture
def fake_runner(artifact):
    return FakeRunner(read_spec(artifact(SINGLE, ".onnx")))


class SlowRunner(FakeRunner):
    """`FakeRunner` taking ``seconds`` a call, recording each call: (frame value, posed: frame index
    given; warm runs, through `infer`, are not posed)."""

    def __init__(self, spec, seconds: float):
        super().__init__(spec)
        self.seconds = seconds
        self.calls: list[tuple[float, bool]] = []

    def predict(self, frames, frame_indices=None, *args, **kwargs):
        self.calls.append((float(np.asarray(frames).mean()), frame_indices is not None))
        time.sleep(self.seconds)
        return super().predict(frames, frame_indices, *args, **kwargs)

    def infer_impl(self, inputs):
        self.calls.append((float(inputs[0].mean()), False))
        time.sleep(self.seconds)
        return []


class _StoppableSleep(WarmRun):
    """A warm run of `StoppableRunner`: sleeps its ``warm_seconds`` unless stopped first."""

    def __init__(self, runner, frames):
        super().__init__(runner, frames)
        self.stopped = threading.Event()

    def run_impl(self):
        self.runner.warm_runs.append(self)
        self.ran_to_end = not self.stopped.wait(self.runner.warm_seconds)
        return self.ran_to_end

    def stop_impl(self):
        self.stopped.set()


class StoppableRunner(FakeRunner):
    """Poses take ``seconds``; warm runs ``warm_seconds`` (far longer) unless a frame stops them."""

    warm_run_type = _StoppableSleep

    def __init__(self, spec, seconds: float, warm_seconds: float):
        super().__init__(spec)
        self.seconds, self.warm_seconds = seconds, warm_seconds
        self.warm_runs: list[_StoppableSleep] = []

    def predict(self, *args, **kwargs):
        time.sleep(self.seconds)
        return super().predict(*args, **kwargs)


def test_warming_ahead_runs_the_network_on_the_last_frame_between_frames(artifact):
    runner = SlowRunner(read_spec(artifact(SINGLE, ".onnx")), 0.002)
    frames = (np.full((8, 8, 1), i, np.uint8) for i in range(1, 31))
    live = LiveRunner(runner, IteratorSource(frames, fps=50), waiting=Waiting(spin=True, warm_ahead=True))
    summary = live.run()
    assert summary.posed == 30 and summary.dropped == 0
    assert [value for value, posed in runner.calls if posed] == list(range(1, 31))  # every frame posed once, in order
    # Two warm-up runs on a blank frame; then (once the frames' rate is known, from the fourth frame on)
    # at most one warm run between two frames, on the frame just posed.
    assert runner.calls[:2] == [(0, False), (0, False)]
    warm = [i for i, (_, posed) in enumerate(runner.calls) if not posed][2:]
    assert len(warm) == live.warm_ahead.runs >= 10  # a 2 ms network leaves room in a 20 ms interval
    assert all(runner.calls[i - 1] == (runner.calls[i][0], True) for i in warm)


def test_a_frame_that_comes_during_a_warm_run_stops_it(artifact):
    # Warm runs would last 0.5 s, ten frame intervals: every one must be cut short by the next frame.
    runner = StoppableRunner(read_spec(artifact(SINGLE, ".onnx")), 0.002, 0.5)
    frames = (np.full((8, 8, 1), i, np.uint8) for i in range(1, 31))
    live = LiveRunner(runner, IteratorSource(frames, fps=20), waiting=Waiting(spin=True, warm_ahead=True))
    summary = live.run()
    assert summary.posed == 30 and summary.dropped == 0
    assert len(runner.warm_runs) == live.warm_ahead.runs == live.warm_ahead.stopped >= 10
    assert not any(warm.ran_to_end for warm in runner.warm_runs)
    # A stopped run does not count as a network time: the next warm runs are still planned from 2 ms poses.
    assert max(live.warm_ahead.run_ns) < 0.1e9


def test_onnx_runtime_stops_a_warm_run_midway_and_poses_as_before(artifact):
    runner = load(artifact(SINGLE, ".onnx"))
    frame = np.asarray(sio.load_video(str(DATA / "small_robot.mp4"))[0])
    # 36 frames' pixels: a run of a second or so here, which a stop 20 ms in must cut short.
    large = np.tile(frame, (6, 6, 1))
    with runner:
        before = runner.predict(frame)[0]
        assert runner.warm_run(frame).run()  # not stopped: runs to its end
        early = runner.warm_run(frame)
        early.stop()
        assert not early.run()  # a stop before the run starts ends it at once
        midway = runner.warm_run(large)
        stop = threading.Timer(0.02, midway.stop)
        stop.start()
        assert not midway.run()
        stop.join()
        after = runner.predict(frame)[0]
    np.testing.assert_array_equal(after.pred_keypoints, before.pred_keypoints)
    np.testing.assert_array_equal(after.pred_peak_values, before.pred_peak_values)


def test_openvino_runs_warm_runs_to_their_end(artifact):
    """OpenVINO's cancel corrupts the compiled model (see `runners.WarmRun`): a stop midway is ignored."""
    runner = load(artifact(SINGLE, ".onnx"), runtime="openvino")
    frame = np.asarray(sio.load_video(str(DATA / "small_robot.mp4"))[0])
    with runner:
        before = runner.predict(frame)[0]
        midway = runner.warm_run(np.tile(frame, (6, 6, 1)))
        stop = threading.Timer(0.02, midway.stop)
        stop.start()
        assert midway.run()
        stop.join()
        after = runner.predict(frame)[0]
    np.testing.assert_array_equal(after.pred_keypoints, before.pred_keypoints)


def test_warming_ahead_is_skipped_when_the_network_leaves_no_room(artifact):
    runner = SlowRunner(read_spec(artifact(SINGLE, ".onnx")), 0.015)
    frames = (np.full((8, 8, 1), i, np.uint8) for i in range(1, 41))
    live = LiveRunner(runner, IteratorSource(frames, fps=100), waiting=Waiting(spin=False, warm_ahead=True))
    summary = live.run()
    assert summary.dropped > 0 and live.warm_ahead.runs == 0 and [posed for _, posed in runner.calls].count(False) == 2


# Forward prediction ----------------------------------------------------------------------------

def linear_track(frames: int, period_ns: int = 33_333_333):
    start = np.array([[10.0, 20.0], [50.0, 60.0]])
    velocity = np.array([[120.0, -40.0], [-75.0, 30.0]])  # px / s
    for i in range(frames):
        t = i * period_ns
        yield t, start + velocity * t / 1e9, lambda at: start + velocity * at / 1e9


def test_constant_velocity_is_exact_on_linear_motion():
    forecaster = ConstantVelocity()
    for i, (t, points, truth) in enumerate(linear_track(10)):
        ahead = t + 25_000_000
        forecast = forecaster.forecast("animal", points, t, ahead)
        if i == 0:
            np.testing.assert_allclose(forecast, points, atol=1e-4)  # no velocity yet
        else:
            np.testing.assert_allclose(forecast, truth(ahead), atol=1e-3)
    t += 33_333_333
    forecast = forecaster.forecast("animal", truth(t) * [[1], [np.nan]], t, t + 10_000_000)
    np.testing.assert_allclose(forecast[0], truth(t + 10_000_000)[0], atol=1e-3)
    assert np.isnan(forecast[1]).all()  # nothing invented for a node not found


def test_kalman_converges_on_linear_motion():
    # Smooth motion: little acceleration to expect, so the filter may average over many frames.
    exact, noisy = Kalman(), Kalman(measurement_sd_px=2.0, acceleration_sd_px_s2=50.0)
    rng = np.random.default_rng(0)
    errors_exact, errors_noisy = [], []
    for t, points, truth in linear_track(300):
        ahead = t + 25_000_000
        errors_exact.append(np.abs(exact.forecast(0, points, t, ahead) - truth(ahead)).max())
        measured = points + rng.normal(0.0, 2.0, points.shape)
        errors_noisy.append(np.sqrt(np.mean((noisy.forecast(0, measured, t, ahead) - truth(ahead)) ** 2)))
    assert errors_exact[0] > 1.0 and max(errors_exact[-50:]) < 1e-2  # at rest at first, then exact
    # Once the velocity is learned, the forecast is closer to the truth than a single measurement.
    assert np.mean(errors_noisy[-100:]) < 1.0 < 2.0 < np.mean(errors_noisy[1:4])


def test_live_forecasts_follow_the_single_instance(artifact, clip):
    live = LiveRunner(artifact(SINGLE, ".onnx"), SimulatedCamera(clip("small_robot.mp4"), fps=60.0),
                      forecast="velocity", forecast_lead_s=0.01)
    for frame in live:
        outputs, times = frame.outputs, frame.times
        assert times.forecast_ns == times.pose_ready_ns + 10_000_000
        assert outputs.pred_forecast_keypoints.shape == outputs.pred_keypoints.shape
        assert np.isnan(outputs.pred_forecast_keypoints).all() == np.isnan(outputs.pred_keypoints).all()


def test_forecasts_need_identities(artifact):
    with pytest.raises(InputError, match="follows each animal by identity"):
        LiveRunner(artifact(["minimal_instance_bottomup"], ".onnx"), np.zeros((1, 8, 8, 1), np.uint8), forecast="kalman")


# Hooks -----------------------------------------------------------------------------------------

def outputs_with(points, class_ids=None, forecast=None):
    points = np.asarray(points, np.float32)
    return Outputs(pred_keypoints=points, instance_valid=np.ones(len(points), bool), node_names=("A", "B"),
                   class_ids=None if class_ids is None else np.asarray(class_ids), pred_forecast_keypoints=forecast)


def times_of(index):
    return FrameTimes(index, index * 10, index * 10 + 1, index * 10 + 2)


def test_the_region_trigger_logs_entries_and_exits(tmp_path):
    from sleap_export.demo.live_processors import RegionTrigger

    log = tmp_path / "events.csv"
    trigger = RegionTrigger(region=(0, 0, 100, 100), node="B", log=log)
    path = [[[5, 5], [150, 150]], [[5, 5], [50, 50]], [[5, 5], [np.nan, np.nan]], [[5, 5], [120, 50]]]
    for i, points in enumerate(path):
        trigger.process(outputs_with([points], class_ids=[1]), times_of(i))
    # Animal 1 (its identity keys the state) enters at frame 1; a node not found reads as outside.
    # Animal 0 is at (50, 50), inside, but its forecast is not: the forecast is what counts.
    trigger.process(outputs_with([[[5, 5], [50, 50]]], forecast=np.full((1, 2, 2), 500.0, np.float32)), times_of(4))
    trigger.close()
    assert trigger.events == [(1, 10, 1, "enter"), (2, 20, 1, "leave")]
    assert log.read_text().splitlines() == ["1,10,1,enter", "2,20,1,leave"]


def test_the_line_trigger_calls_the_users_function_on_changes_only():
    from sleap_export.demo.live_processors import LineTrigger

    calls = []
    trigger = LineTrigger(condition=lambda o, t: np.nanmax(o.pred_keypoints[:, 0, 0]) > 100, set_line=calls.append)
    for i, x in enumerate([10, 150, 160, 20, 200]):
        trigger.process(outputs_with([[[x, 0], [0, 0]]]), times_of(i))
    assert calls == [True, False, True]
    trigger.close()
    assert calls == [True, False, True, False]  # low again at the end


def test_processors_load_from_modules_and_files(tmp_path, monkeypatch):
    hook_file = tmp_path / "my_hooks.py"
    hook_file.write_text("class Hook:\n    def process(self, outputs, timestamps):\n        pass\n\nclass NoProcess:\n    pass\n")
    assert type(load_processor(f"{hook_file}:Hook")).__name__ == "Hook"
    monkeypatch.chdir(tmp_path)
    assert type(load_processor("my_hooks:Hook")).__name__ == "Hook"
    assert type(load_processor("sleap_export.demo.live_processors:LineTrigger")).__name__ == "LineTrigger"
    for spec, message in [
        ("my_hooks", "takes module:Class"),
        ("no_such_module_here:Hook", "Cannot import 'no_such_module_here'"),
        ("my_hooks:Missing", "my_hooks has no Missing"),
        ("my_hooks:NoProcess", "has no process(outputs, timestamps)"),
        ("missing.py:Hook", "missing.py does not exist"),
    ]:
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_processor(spec)


# The command -----------------------------------------------------------------------------------

def test_live_command_writes_poses_with_their_times(artifact, clip, tmp_path):
    hook_file = tmp_path / "thread_hook.py"
    record = tmp_path / "hook.txt"
    hook_file.write_text(
        "import threading\n"
        "class Hook:\n"
        "    def __init__(self):\n        self.frames = 0\n"
        "    def process(self, outputs, timestamps):\n        self.frames += 1\n"
        f"    def close(self):\n        open({str(record)!r}, 'w').write(f'{{threading.current_thread().name}} {{self.frames}}')\n"
    )
    output = tmp_path / "poses.slp"
    source = clip("small_robot.mp4")
    result = installed("live", artifact(SINGLE, ".onnx"), "--source", source, "--processor", f"{hook_file}:Hook",
                       "-o", output, "--fps", "60", "--forecast", "kalman", check_rc=0)
    assert f"{CLIP_FRAMES} frames captured" in result.stdout and "dropped" in result.stdout
    assert "p50" in result.stdout and "p99" in result.stdout and "max" in result.stdout
    labels = sio.load_slp(str(output))
    times = read_times(labels)
    assert list(times["frame_idx"]) == [lf.frame_idx for lf in labels.labeled_frames]
    assert (times["capture_ns"] <= times["pose_ready_ns"]).all() and (times["pose_ready_ns"] <= times["hook_done_ns"]).all()
    recorded = labels.provenance["sleap_export.live"]
    assert recorded["frames_captured"] == CLIP_FRAMES
    assert recorded["frames_dropped"] == CLIP_FRAMES - len(labels.labeled_frames)
    thread, frames = record.read_text().split()
    assert thread == "MainThread" and int(frames) == len(labels.labeled_frames)
    again = installed("live", artifact(SINGLE, ".onnx"), "--source", source, "-o", output, "--overwrite", "-q",
                      "--duration", "0.2", "--no-spin", check_rc=0)
    assert again.stdout == "" and sio.load_slp(str(output)).provenance["sleap_export.live"]["frames_captured"] < CLIP_FRAMES


def test_bench_latency_reports_percentiles_against_the_bare_network(artifact, clip, tmp_path):
    report = tmp_path / "latency.json"
    result = installed("bench", artifact(SINGLE, ".onnx"), "--latency", "--data", clip("small_robot.mp4"), "-n", "21",
                       "--json", report, check_rc=0)
    assert "capture -> pose ready" in result.stdout and "dropped" in result.stdout
    figures = json.loads(report.read_text())
    assert set(figures["bare_ms"]) == set(figures["paced_ms"]) == set(figures["live"]["pose_ms"]) == {"p50", "p90", "p99", "max"}
    # 21 frames: two interleaved rounds of bare, live and paced (11 + 10 frames), pooled.
    assert figures["live"]["captured"] == 21 and figures["fps"] == 15.0
    assert figures["live"]["posed"] + figures["live"]["dropped"] == 21
    assert len(figures["p50_overhead_by_round"]) == 2 and "in 2 interleaved rounds" in " ".join(result.stdout.split())


def test_interleaved_rounds_pool_every_runs_frames_and_seconds(fake_runner):
    """`bench --latency` and scripts/live_bench.py pool the live runs of their rounds."""
    from sleap_export.evaluation.latency import live_split_ms, pooled_summary

    runs = [LiveRunner(fake_runner, np.full((count, 8, 8, 1), count, np.uint8)) for count in (3, 5)]
    summaries = [live.run() for live in runs]
    pooled = pooled_summary(runs)
    assert pooled.captured == 8 and pooled.posed == sum(s.posed for s in summaries)
    assert pooled.dropped == sum(s.dropped for s in summaries)
    assert pooled.seconds == pytest.approx(sum(s.seconds for s in summaries))
    assert pooled.pose_ms["max"] == max(s.pose_ms["max"] for s in summaries)
    inference_ms = [(live.times.column("pose_ready_ns") - live.times.column("taken_ns")) / 1e6 for live in runs]
    assert live_split_ms(*runs)["inference"]["max"] == pytest.approx(max(values.max() for values in inference_ms))


def test_bench_latency_takes_the_live_runs_wait_and_refuses_it_alone(artifact, clip, tmp_path):
    report = tmp_path / "latency.json"
    result = installed("bench", artifact(SINGLE, ".onnx"), "--latency", "--no-spin", "--data", clip("small_robot.mp4"),
                       "-n", "8", "--json", report, check_rc=0)
    assert "inference thread sleeping between frames" in " ".join(result.stdout.split())
    assert json.loads(report.read_text())["waiting"] == {"spin": False, "warm_ahead": False}
    warmed = installed("bench", artifact(SINGLE, ".onnx"), "--latency", "--warm-ahead", "--data", clip("small_robot.mp4"),
                       "-n", "8", "--json", report, check_rc=0)
    assert "warming the network ahead of each" in " ".join(warmed.stdout.split())
    warmed_report = json.loads(report.read_text())
    assert warmed_report["waiting"]["warm_ahead"] is True
    assert f"({warmed_report['warm_runs']} warm runs, {warmed_report['warm_runs_stopped']} stopped by a frame)" in " ".join(
        warmed.stdout.split())
    assert 0 <= warmed_report["warm_runs_stopped"] <= warmed_report["warm_runs"]
    refused = installed("bench", artifact(SINGLE, ".onnx"), "--no-spin", "--data", clip("small_robot.mp4"),
                        "--json", tmp_path / "other.json", check_rc=2)
    assert "--spin/--no-spin and --warm-ahead set how the live run waits for frames; pass --latency" in refused.stderr
    assert not (tmp_path / "other.json").exists()
    refused = installed("bench", artifact(SINGLE, ".onnx"), "--warm-ahead", "--data", clip("small_robot.mp4"), check_rc=2)
    assert "pass --latency" in refused.stderr


def test_live_and_bench_latency_run_the_artifact_with_openvino(artifact, clip, tmp_path):
    """--runtime openvino: the same poses as predict with ONNX Runtime, frame for frame, and the
    latency report names the runtime."""
    from sleap_export.core.comparison import compare_poses, poses_by_frame

    model, source = artifact(SINGLE, ".onnx"), clip("small_robot.mp4")
    live_output, predicted = tmp_path / "live.slp", tmp_path / "predicted.slp"
    # 10 fps: slow enough that no frame is dropped, so both sides pose every frame.
    installed("live", model, "--source", source, "--runtime", "openvino", "--fps", "10", "-o", live_output, "-q", check_rc=0)
    installed("predict", model, source, "-o", predicted, "-q", check_rc=0)
    live_labels = sio.load_slp(str(live_output))
    assert live_labels.provenance["sleap_export.live"]["frames_dropped"] == 0
    comparison = compare_poses(poses_by_frame(live_labels), poses_by_frame(sio.load_slp(str(predicted))))
    assert comparison.frames == CLIP_FRAMES and comparison.count_agreement == 1.0
    assert comparison.max_deviation <= 0.01, comparison.summary()
    result = installed("bench", model, "--latency", "--data", source, "-n", "8", "--runtime", "openvino", check_rc=0)
    assert "(openvino fp32)" in result.stdout


# A hook that fails -------------------------------------------------------------------------------

RAISING_HOOK = """\
import pathlib


class Raiser:
    # Each frame index the hook was called with, one a line, beside this file.
    seen = pathlib.Path(__file__).with_suffix(".seen")

    def __init__(self):
        self.calls = 0

    def process(self, outputs, timestamps):
        self.calls += 1
        with self.seen.open("a") as log:
            log.write(f"{timestamps.index}\\n")
        if self.calls % FAIL_EVERY == 0:
            raise ValueError("no reward port\\nsecond line")
"""


def raising_hook(folder: Path, fail_every: int) -> tuple[str, Path]:
    """``(--processor spec, log of the frame indices it was called with)``: a hook file whose
    every ``fail_every``-th call raises."""
    hooks = folder / "my_hooks.py"
    hooks.write_text(RAISING_HOOK.replace("FAIL_EVERY", str(fail_every)))
    return f"{hooks}:Raiser", hooks.with_suffix(".seen")


def called_with(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()]


def test_a_hook_that_raises_stops_the_run_and_writes_the_frames_posed(artifact, clip, tmp_path):
    """Stopped at the 5th frame's hook: the 5 frames posed, that one included, are in the .slp, and
    one stderr line names the hook as given, the frame and the exception (exit 1, no traceback)."""
    spec, log = raising_hook(tmp_path, fail_every=5)
    output = tmp_path / "poses.slp"
    result = installed("live", artifact(SINGLE, ".onnx"), "--source", clip("small_robot.mp4"), "--fps", "30",
                       "--processor", spec, "-o", output, "-q")
    posed = called_with(log)
    assert result.returncode == 1 and len(posed) == 5, result.stderr
    assert result.stderr.splitlines() == [  # "live-hook-raises"
        f"error: the --processor hook {spec} raised at frame {posed[-1]}: ValueError: no reward port; "
        f"the 5 frames posed up to and including frame {posed[-1]} are in {output}"
    ]
    labels = sio.load_slp(str(output))
    assert [lf.frame_idx for lf in labels.labeled_frames] == posed
    assert list(read_times(labels)["frame_idx"]) == posed
    assert labels.provenance["sleap_export.live"]["hook_failures"] == 1


def test_a_hook_that_raises_without_output_says_nothing_was_written(artifact, clip, tmp_path):
    spec, log = raising_hook(tmp_path, fail_every=2)
    command = ("live", artifact(SINGLE, ".onnx"), "--source", clip("small_robot.mp4"), "--fps", "30", "--processor", spec)
    result = installed(*command, check_rc=1)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("live: posing")]
    assert errors == [
        f"error: the --processor hook {spec} raised at frame {called_with(log)[-1]}: ValueError: no reward port; "
        "nothing was written because no -o was given (pass -o poses.slp to keep the poses)"
    ], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_hooks.py", "my_hooks.seen"]
    debugged = installed("--debug", *command, check_rc=1)
    assert "Traceback" in debugged.stderr and "ValueError: no reward port" in debugged.stderr


def test_keep_going_reports_each_failure_and_poses_every_frame(artifact, clip, tmp_path):
    spec, log = raising_hook(tmp_path, fail_every=5)
    output = tmp_path / "poses.slp"
    result = installed("live", artifact(SINGLE, ".onnx"), "--source", clip("small_robot.mp4"), "--fps", "30",
                       "--processor", spec, "-o", output, "--keep-going", check_rc=0)
    posed = called_with(log)
    recorded = sio.load_slp(str(output))
    times = recorded.provenance["sleap_export.live"]
    # Every frame captured is posed unless a newer one replaced it: none stopped the run.
    assert times["frames_captured"] == CLIP_FRAMES and len(posed) == CLIP_FRAMES - times["frames_dropped"]
    assert [lf.frame_idx for lf in recorded.labeled_frames] == posed
    failed_at = posed[4::5]
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: the --processor hook {spec} raised at frame {index}: ValueError: no reward port; "
        "frame kept, going on (--keep-going)" for index in failed_at
    ]
    assert times["hook_failures"] == len(failed_at) > 0  # "live-keep-going"
    assert f"the hook raised on {len(failed_at)} of them" in result.stdout


def test_a_hook_that_raises_from_python(artifact, clip):
    """`HookFailed` from iterating: the hook, the frame (kept by adding it) and the cause; with
    keep_going, a `HookFailedWarning` per failure and the run goes on."""
    from sleap_export.runtime.drivers.live import HookFailed, HookFailedWarning

    class Raiser:
        def __init__(self):
            self.seen = []

        def process(self, outputs, timestamps):
            self.seen.append(timestamps.index)
            if len(self.seen) == 3:
                raise RuntimeError("boom")

    hook = Raiser()
    live = LiveRunner(artifact(SINGLE, ".onnx"), SimulatedCamera(clip("small_robot.mp4"), fps=30.0), processor=hook,
                      waiting=Waiting(spin=False, warm_ahead=False))
    recording = LiveRecording(live)
    with pytest.raises(HookFailed) as failed:
        for frame in live:
            recording.add(frame)
    error = failed.value
    assert str(error) == f"the --processor hook {__name__}:{Raiser.__qualname__} raised at frame {hook.seen[-1]}: RuntimeError: boom"
    assert error.frame_index == error.frame.times.index == hook.seen[-1] and error.exit_code == 1
    assert isinstance(error.__cause__, RuntimeError) and live.summary().hook_failures == 1
    recording.add(error.frame)
    assert [lf.frame_idx for lf in recording.labels().labeled_frames] == hook.seen

    going = LiveRunner(artifact(SINGLE, ".onnx"), SimulatedCamera(clip("small_robot.mp4"), fps=30.0), processor=Raiser(),
                       processor_name="lab:Trigger", waiting=Waiting(spin=False, warm_ahead=False), keep_going=True,
                       max_frames=8)
    with pytest.warns(HookFailedWarning, match=r"^the --processor hook lab:Trigger raised at frame \d+: RuntimeError: boom; frame kept"):
        summary = going.run()
    assert summary.hook_failures == 1 and summary.posed == 8 - summary.dropped


def test_live_refuses_a_labels_file_as_its_source(artifact, tmp_path):
    """A .slp (or .pkg.slp) is labels, not a video: one line with the predict command that poses it (exit 2)."""
    from sleap_export.runtime.sources.live_sources import open_source

    package = tmp_path / "labels.pkg.slp"
    package.write_bytes((DATA / "small_robot_minimal.slp").read_bytes())
    with pytest.raises(InputError, match="labels.pkg.slp is a SLEAP labels file, not a video"):
        open_source(package)
    labels = DATA / "small_robot_minimal.slp"
    output = tmp_path / "poses.slp"
    result = installed("live", artifact(SINGLE, ".onnx"), "--source", labels, "-o", output, check_rc=2)
    assert result.stderr.splitlines() == [  # "live-source-labels"
        f"error: {labels} is a SLEAP labels file, not a video; live plays a video file, camera or stream: pass the "
        f"video it labels (sleap-export predict MODEL {labels} -o out.slp predicts on labels)."
    ]
    assert not output.exists()
