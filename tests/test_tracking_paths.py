"""Tracking on every path (issue 36): `--resume` replays the earlier frames through the tracker, `--ray`
tracks each video's chunks on the driver, and `live` tracks as frames are posed (the hook sees the
tracks). Each gives the tracks one uninterrupted local `predict --tracking` gives the same frames.

The model is the two-fly top-down pair on the shared clip (two instances a frame)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio
from conftest import DATA
from test_cli import assert_one_line_error, installed
from test_live import lockstep
from test_ray import cluster, run_cli  # noqa: F401 (cluster: the module's Ray head, a fixture)

from sleap_export.core.errors import InputError
from sleap_export.runtime.tracking import TrackingOptions

VIDEO = DATA / "centered_pair_small.mp4"
TOPDOWN = ["minimal_instance_centroid", "minimal_instance_centered_instance"]
FRAMES = "0-99"
# Settings whose tracks depend on every earlier frame: candidates, optical flow on the frames, a track cap.
RESUMED = {
    "defaults": {},
    "flow-local-queues-pre-cull": {
        "use_flow": True, "max_tracks": 2, "tracking_target_instance_count": 2, "tracking_pre_cull_to_target": 1,
    },
}


@pytest.fixture(scope="module")
def topdown(artifact) -> Path:
    return artifact(TOPDOWN, ".onnx")


@pytest.fixture(scope="module")
def predictor(topdown):
    from sleap_export import Predictor

    return Predictor.from_model_paths([topdown], threads=1)


def tracks_by_pose(labels: sio.Labels) -> dict:
    """``(frame, its points) -> track name`` of every predicted instance (None: untracked)."""
    found = {}
    for lf in labels.labeled_frames:
        for instance in lf.predicted_instances:
            key = (lf.frame_idx, np.nan_to_num(instance.numpy(), nan=-1.0).round(3).tobytes())
            assert key not in found, key
            found[key] = instance.track.name if instance.track is not None else None
    return found


def assert_same_tracks(got: sio.Labels, expected: sio.Labels) -> int:
    """The same instances on the same tracks (one partition, one naming); how many instances."""
    got, expected = tracks_by_pose(got), tracks_by_pose(expected)
    assert got == expected, sorted(set(got.items()) ^ set(expected.items()))[:4]
    assert len({track for track in expected.values()}) >= 2
    return len(expected)


class StopAt:
    """A progress callback that ends the run once ``frames`` are done: by ``error`` (KeyboardInterrupt:
    as Ctrl-C, the frames saved in a tracked .slp; another error: as a kill, they stay in the journal)."""

    def __init__(self, frames: int, error: type[BaseException]):
        self.frames, self.error = frames, error

    def __call__(self, done: int, total: int) -> None:
        if done >= self.frames:
            raise self.error()


class Killed(Exception):
    """Stands for the process dying: nothing of the run's own ending runs."""


@pytest.mark.parametrize("name", sorted(RESUMED))
def test_resumed_runs_track_as_one_uninterrupted_run(name, predictor, tmp_path):
    """Ctrl-C at frame 40 (a tracked .slp), a resume killed at 70 (that .slp and a journal), then a
    resume to the end: the tracks are those of one uninterrupted tracked run."""
    options = TrackingOptions(**RESUMED[name])
    whole = predictor.predict(str(VIDEO), frames=FRAMES, output=tmp_path / "whole.slp", progress=None, tracking=options)
    output = tmp_path / "resumed.slp"
    with pytest.raises(KeyboardInterrupt):
        predictor.predict(str(VIDEO), frames=FRAMES, output=output, progress=StopAt(40, KeyboardInterrupt), tracking=options)
    assert output.exists() and sio.load_slp(str(output)).tracks
    with pytest.raises(Killed):
        predictor.predict(str(VIDEO), frames=FRAMES, output=output, progress=StopAt(70, Killed), resume=True, tracking=options)
    assert output.with_name("resumed.slp.journal").exists()
    predictor.predict(str(VIDEO), frames=FRAMES, output=output, progress=None, resume=True, tracking=options)
    assert assert_same_tracks(sio.load_slp(str(output)), whole) > 150


def test_earlier_frames_after_the_new_ones_are_tracked_in_frame_order(predictor, tmp_path):
    """An earlier untracked run of frames 50-99, resumed over 0-99 with tracking through the command:
    the earlier frames are tracked after the new frames 0-49, as one run tracks them."""
    options = TrackingOptions(max_tracks=2)
    whole = predictor.predict(str(VIDEO), frames=FRAMES, output=tmp_path / "whole.slp", progress=None, tracking=options)
    output = tmp_path / "resumed.slp"
    predictor.predict(str(VIDEO), frames="50-99", output=output, progress=None)
    done = installed("predict", predictor.artifact, VIDEO, "-o", output, "--frames", FRAMES, "--resume", "--tracking",
                     "--max_tracks", "2", "--threads", "1", check_rc=0)
    assert "50 predicted at" in done.stdout and ", 2 tracks;" in done.stdout
    assert assert_same_tracks(sio.load_slp(str(output)), whole) > 150


def test_resume_refuses_tracks_a_cull_removed_instances_from(predictor, tmp_path):
    """--tracking_clean_instance_count removed instances the later frames' tracks depend on: resuming
    its tracks is refused (the earlier frames are kept as they are)."""
    options = TrackingOptions(tracking_clean_instance_count=1)
    output = tmp_path / "culled.slp"
    with pytest.raises(KeyboardInterrupt):
        predictor.predict(str(VIDEO), frames=FRAMES, output=output, progress=StopAt(20, KeyboardInterrupt), tracking=options)
    before = output.read_bytes()
    with pytest.raises(InputError, match="was tracked with --tracking_clean_instance_count 1, .*pass --overwrite") as refused:
        predictor.predict(str(VIDEO), frames=FRAMES, output=output, progress=None, resume=True, tracking=options)
    assert "\n" not in str(refused.value) and output.read_bytes() == before


def test_ray_tracks_each_video_as_local_predict(cluster, topdown, tmp_path):  # noqa: F811 (the fixture)
    """Chunks of 40 frames on two workers, tracked on the driver with optical flow (the frames read
    there): the tracks of local predict."""
    tracking = ["--tracking", "--use_flow", "--max_tracks", "2"]
    local, on_ray = tmp_path / "local.slp", tmp_path / "ray.slp"
    run_cli("predict", topdown, VIDEO, "--frames", "0-119", "-o", local, "-q", *tracking)
    run_cli("predict", topdown, VIDEO, "--frames", "0-119", "-o", on_ray, "--ray", cluster, "--workers", 2,
            "--chunk-size", 40, "-q", *tracking)
    assert assert_same_tracks(sio.load_slp(str(on_ray)), sio.load_slp(str(local))) > 200


class TrackRecorder:
    """A hook keeping each frame's valid instances as it saw them: (points, track, tracking score)."""

    def __init__(self, posed: threading.Event):
        self.posed = posed
        self.frames: dict[int, list] = {}
        self.forecast_everywhere = True

    def process(self, outputs, timestamps):
        slots = np.flatnonzero(outputs.instance_valid)
        self.frames[timestamps.index] = [
            (np.asarray(outputs.pred_keypoints[s]), int(outputs.class_ids[s]), float(outputs.instance_tracking_scores[s]))
            for s in slots
        ]
        tracked = slots[np.asarray(outputs.class_ids)[slots] >= 0]
        # A tracked animal's visible points are forecast (it is followed by its track).
        visible = ~np.isnan(np.asarray(outputs.pred_keypoints)[tracked])
        self.forecast_everywhere &= bool(np.isfinite(np.asarray(outputs.pred_forecast_keypoints)[tracked][visible]).all())
        self.posed.set()


def test_live_hook_sees_the_tracks_predict_gives(topdown, predictor, tmp_path):
    """Frames handed over one by one (none dropped): each instance's track in outputs.class_ids, as
    predict --tracking tracks those frames, and the live .slp holds the same tracks."""
    from sleap_export.runtime.drivers.live import LiveRecording, LiveRunner

    video = sio.load_video(str(VIDEO))
    frames = np.stack([video[i] for i in range(40)])
    options = TrackingOptions(max_tracks=2)
    expected = predictor.predict(frames, tracking=options, progress=None)
    posed = threading.Event()
    hook = TrackRecorder(posed)
    live = LiveRunner(topdown, lockstep(iter(frames), posed), processor=hook, tracking=options, forecast="velocity", threads=1)
    recording = LiveRecording(live)
    for frame in live:
        recording.add(frame)
    assert hook.forecast_everywhere
    matched = 0
    for lf in expected.labeled_frames:
        seen = hook.frames[lf.frame_idx]
        assert len(seen) == len(lf.predicted_instances)
        for instance, (points, track, score) in zip(lf.predicted_instances, seen):
            assert np.allclose(instance.numpy(), points, atol=1e-3, equal_nan=True)
            assert (f"track_{track}", score) == (instance.track.name, pytest.approx(instance.tracking_score, abs=1e-6))
            matched += 1
    assert matched > 60
    assert assert_same_tracks(recording.labels(), expected) == matched


def test_live_command_tracks_into_the_hook_and_the_slp(topdown, tmp_path):
    hook_file = tmp_path / "track_hook.py"
    record = tmp_path / "tracks.txt"
    hook_file.write_text(
        "class Hook:\n"
        "    def __init__(self):\n        self.seen = []\n"
        "    def process(self, outputs, timestamps):\n"
        "        self.seen += [int(outputs.class_ids[s]) for s in outputs.instance_valid.nonzero()[0]]\n"
        f"    def close(self):\n        open({str(record)!r}, 'w').write(' '.join(map(str, self.seen)))\n"
    )
    output = tmp_path / "live.slp"
    done = installed("live", topdown, "--source", VIDEO, "--fps", "15", "--duration", "3", "--processor", f"{hook_file}:Hook",
                     "-o", output, "--tracking", "--max_tracks", "2", check_rc=0)
    assert "wrote" in done.stdout
    seen = [int(track) for track in record.read_text().split()]
    labels = sio.load_slp(str(output))
    assert set(seen) == {0, 1} and len(seen) == sum(len(lf.instances) for lf in labels.labeled_frames)
    assert [t.name for t in labels.tracks] == ["track_0", "track_1"]
    assert [i.track.name for lf in labels.labeled_frames for i in lf.instances] == [f"track_{t}" for t in seen]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--use_flow"], "--use-flow is a tracking option; add --tracking"),
        (["--tracking", "--scoring-method", "bogus"], "--scoring_method 'bogus' is not one of"),
    ],
)
def test_live_takes_predicts_tracking_options_and_refusals(args, message):
    done = installed("live", "model.onnx", "--source", VIDEO, *args)
    assert_one_line_error(done, message)


def test_bench_prints_a_well_formed_tracking_line(topdown, tmp_path):
    import json
    import re

    figures = tmp_path / "bench.json"
    done = installed("bench", topdown, "--data", VIDEO, "-b", "1", "-n", "30", "--tracking", "--threads", "1",
                     "--json", figures, check_rc=0)
    line = re.search(r"^tracking \(classic, default options\), 30 frames, (\d+) instances: ours (\d+) frames/s, "
                     r"sleap-nn (\d+) frames/s, (\d+\.\d)x; same tracks$", done.stdout, re.M)
    assert line is not None, done.stdout
    assert int(line.group(1)) > 40 and int(line.group(2)) > 0 and int(line.group(3)) > 0
    tracking = json.loads(figures.read_text())["tracking"]
    assert tracking["frames"] == 30 and tracking["same_tracks"] is True
    assert f"{tracking['ratio']:.1f}" == line.group(4)


def test_bench_tracking_needs_a_video():
    assert_one_line_error(installed("bench", "model.onnx", "--tracking"), "bench --tracking tracks the poses predicted on a video; add --data")


def test_live_refuses_trackers_that_track_a_whole_video_at_its_end(topdown):
    from sleap_export.runtime.drivers.live import LiveRunner

    with pytest.raises(InputError, match="--tracker sort tracks a whole video once it is predicted, .*use --tracker classic"):
        LiveRunner(topdown, np.zeros((1, 64, 64, 1), np.uint8), tracking=TrackingOptions(tracker="sort"))
