"""A lab's day (issue 33): nothing lost on a crash, batch use that fits, and messages that
name the real fix; through the installed command and the Python API."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from sleap_export.core.comparison import compare_poses, poses_by_frame
from sleap_export.core.errors import InputError
from conftest import DATA, MODELS
from test_cli import assert_one_line_error, installed

CENTROID = "minimal_instance_centroid"
VIDEO = DATA / "centered_pair_small.mp4"


@pytest.fixture
def model(artifact) -> Path:
    return artifact([CENTROID], ".onnx")


def _journal(output: Path) -> Path:
    return output.with_name(output.name + ".journal")


def test_kill_9_loses_at_most_the_batches_in_flight_and_resume_finishes(tmp_path, model):
    """Killed outright mid-video: the journal holds the finished batches; a plain rerun is refused
    (it would discard them); --resume predicts only the rest and equals one uninterrupted run."""
    output = tmp_path / "p.slp"
    command = [str(Path(sys.executable).parent / "sleap-export"), "predict", str(model), str(VIDEO), "-o", str(output),
               "--frames", "0-399", "-q"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    # Killed once a few batches are on disk (the header and two batches are well under 4 kB).
    while time.monotonic() < deadline and (not _journal(output).exists() or _journal(output).stat().st_size < 4000):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not output.exists() and _journal(output).exists()
    # A record cut off mid-write (as a kill during one leaves it) is dropped on reading.
    with open(_journal(output), "ab") as journal:
        journal.write(b"SXJ1\x00\x10\x00\x00\x00\x00\x00\x00partial")

    refused = installed("predict", model, VIDEO, "-o", output, "--frames", "0-399")
    assert_one_line_error(refused, "pass --resume to finish it, or --overwrite")  # "journal-left"
    resumed = installed("predict", model, VIDEO, "-o", output, "--frames", "0-399", "--resume", check_rc=0)
    predicted = int(re.search(r"(\d+) predicted at", resumed.stdout).group(1))
    assert 0 < predicted < 400, resumed.stdout
    assert not _journal(output).exists() and not output.with_name(output.name + ".lock").exists()

    whole = tmp_path / "whole.slp"
    installed("predict", model, VIDEO, "-o", whole, "--frames", "0-399", "-q", check_rc=0)
    got, expected = sio.load_slp(str(output)), sio.load_slp(str(whole))
    assert [lf.frame_idx for lf in got.labeled_frames] == list(range(400))
    assert compare_poses(poses_by_frame(got), poses_by_frame(expected), tolerance_px=1e-4, percentile=100)


def test_the_journal_is_the_only_copy_while_predicting(tmp_path, model):
    """From Python: frames reach the journal batch by batch; the .slp comes from it at the end,
    and the journal goes."""
    from sleap_export import Predictor

    seen = []
    output = tmp_path / "p.slp"

    def progress(done: int, total: int) -> None:
        if done:
            seen.append((done, total, _journal(output).stat().st_size, output.exists()))

    labels = Predictor.from_model_paths([model], batch_size=4).predict(str(VIDEO), frames="0-15", output=output, progress=progress)
    assert [(done, total) for done, total, _, _ in seen] == [(4, 16), (8, 16), (12, 16), (16, 16)]
    sizes = [size for _, _, size, _ in seen]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] and not any(exists for *_, exists in seen)
    assert output.exists() and not _journal(output).exists() and len(labels.labeled_frames) == 16


def test_frames_and_videos_are_never_predicted_twice(tmp_path, model):
    output = tmp_path / "p.slp"
    installed("predict", model, VIDEO, "-o", output, "--frames", "0-9,5-14", "-q", check_rc=0)
    assert [lf.frame_idx for lf in sio.load_slp(str(output)).labeled_frames] == list(range(15))  # "frames-overlap"
    twice = installed("predict", model, VIDEO, VIDEO, "-o", tmp_path / "twice.slp", "--frames", "0-3")
    assert_one_line_error(twice, "is given twice; pass each video once")  # "video-twice"
    assert not (tmp_path / "twice.slp").exists()

    from sleap_export import Predictor

    with pytest.raises(InputError, match="given twice"):
        Predictor.from_model_paths([model]).predict([str(VIDEO), str(VIDEO)], frames="0-3")


def test_outputs_name_their_videos_by_absolute_paths(tmp_path, model):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip.mp4").symlink_to(VIDEO)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "sleap-export"), "predict", str(model), "videos/clip.mp4", "-o", "p.slp",
         "--frames", "0-3", "-q"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = "import sleap_io as sio; v = sio.load_slp('../p.slp').videos[0]; print(v.filename, v.exists())"
    found = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, capture_output=True, text=True)
    assert found.stdout.split() == [str(tmp_path / "videos" / "clip.mp4"), "True"], found.stderr
    # Resumed from another folder, with the video named another way, it is the same video.
    resumed = installed("predict", model, tmp_path / "videos" / "clip.mp4", "-o", tmp_path / "p.slp", "--frames", "0-7",
                        "--resume", "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert len(sio.load_slp(str(tmp_path / "p.slp")).labeled_frames) == 8


def test_folders_and_globs_give_one_slp_per_video(tmp_path, model):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (videos / name).symlink_to(VIDEO)
    (videos / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    out.mkdir()
    done = installed("predict", model, videos, "-o", out, "--frames", "0-3", check_rc=0)
    assert sorted(p.name for p in out.iterdir()) == ["a.slp", "b.slp"], done.stderr
    assert "wrote" in done.stdout and done.stdout.count("wrote") == 2
    for name in ("a", "b"):
        labels = sio.load_slp(str(out / f"{name}.slp"))
        assert Path(labels.videos[0].filename).name == f"{name}.mp4" and len(labels.labeled_frames) == 4
    # A glob no shell expanded (quoted): its matches, into one file.
    one = tmp_path / "all.slp"
    installed("predict", model, f"{videos}/*.mp4", "-o", one, "--frames", "0-1", "-q", check_rc=0)
    assert len(sio.load_slp(str(one)).videos) == 2

    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(installed("predict", model, empty, "-o", one), "a folder with no videos")  # "folder-no-videos"
    assert_one_line_error(installed("predict", model, f"{videos}/*.avi", "-o", one), "No file matches")  # "glob-no-match"
    nowhere = installed("predict", model, videos, "-o", tmp_path / "nowhere")
    assert_one_line_error(nowhere, "neither a .slp file nor an existing folder")  # "output-neither"
    (videos / "a.slp").write_bytes(b"")
    collide = installed("predict", model, videos / "a.mp4", videos / "a.slp", "-o", out, "--overwrite")
    assert_one_line_error(collide, "would both be written to")  # "output-stems-collide"
    assert sorted(p.name for p in out.iterdir()) == ["a.slp", "b.slp"]


def test_artifacts_are_recognised_by_their_content(tmp_path, model):
    """Renamed (.onnx as .pt), upper-case suffix, or none: predicted as what they hold."""
    expected = None
    for name in ("renamed.pt", "Model.ONNX", "no_suffix"):
        copy = tmp_path / name
        copy.write_bytes(model.read_bytes())
        output = tmp_path / f"{name}.slp"
        installed("predict", copy, VIDEO, "-o", output, "--frames", "0-3", "-q", check_rc=0)
        poses = poses_by_frame(sio.load_slp(str(output)))
        expected = expected or poses
        assert compare_poses(poses, expected, tolerance_px=0, percentile=100)  # "renamed-artifact"
        assert "onnx" in installed("inspect", copy, check_rc=0).stdout


def test_argument_checks_come_before_the_model_loads(tmp_path, model):
    """Checks that need no model run say what is wrong even when the model would not load."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "training_config.yaml").write_text((MODELS / CENTROID / "training_config.yaml").read_text())
    (broken / "best.ckpt").write_bytes(b"not a checkpoint")
    result = installed("onnx", broken, "-o", tmp_path / "m.onnx", "--precision", "int8")
    assert_one_line_error(result, "int8 needs real frames to calibrate on and gate against fp32: pass --calibration")  # "no-calibration"
    result = installed("onnx", broken, "-o", tmp_path / "m.onnx", "--precision", "fp16", "--calibration", tmp_path / "none.mp4")
    assert_one_line_error(result, "Calibration data")
    result = installed("predict", model, VIDEO, "-o", tmp_path / "p.slp", "--precision", "fp16")
    assert_one_line_error(result, "--precision fp16 is chosen at export, not at run time")  # "run-time-fp16"
    assert not list(tmp_path.glob("*.slp")) and not list(tmp_path.glob("*.onnx"))


def test_python_messages_name_the_python_fix(tmp_path, model):
    from sleap_export import export, open_model

    existing = tmp_path / "m.onnx"
    existing.write_bytes(b"keep")
    with pytest.raises(InputError, match=r"overwrite=True in Python"):  # "python-export-exists"
        export([MODELS / CENTROID], existing)
    assert existing.read_bytes() == b"keep"
    runner = open_model(model)
    frame = np.zeros((384, 384, 1), np.uint8)
    with pytest.raises(InputError, match=r"in \[0, 1\]; scale them: \(frames \* 255\)"):  # "float-frames"
        runner.predict(np.full((2, 384, 384, 1), 0.5, np.float32))
    with pytest.raises(InputError, match=r"channel-first, \(N, C, H, W\) = \(2, 1, 384, 384\).*transpose\(0, 2, 3, 1\)"):  # "channel-first"
        runner.predict(np.zeros((2, 1, 384, 384), np.uint8))
    with pytest.raises(InputError, match=r"channel-first, \(C, H, W\).*transpose\(1, 2, 0\)"):
        runner.predict(np.zeros((3, 384, 384), np.uint8))
    assert len(runner.predict(frame)) == 1  # what the messages ask for works


def test_help_is_readable_at_80_columns():
    """Every option of every command in full at 80 columns: none cut to fit."""
    from sleap_export.cli import app
    import typer

    command = typer.main.get_command(app)
    environment = {**os.environ, "COLUMNS": "80"}
    for name, sub in command.commands.items():
        done = subprocess.run([str(Path(sys.executable).parent / "sleap-export"), name, "--help"], capture_output=True,
                              text=True, env=environment)
        assert done.returncode == 0, done.stderr
        assert "…" not in done.stdout and max(map(len, done.stdout.splitlines())) <= 80, (name, done.stdout)
        for parameter in sub.params:
            for option in parameter.opts:
                if option.startswith("--") and not parameter.hidden:
                    assert option in done.stdout, (name, option)


def test_python_progress_and_a_warning_when_almost_nothing_is_found(tmp_path, artifact):
    from sleap_export import Predictor
    from sleap_export.runtime.drivers.predictor import FewInstancesWarning

    calls = []
    model = artifact([CENTROID], ".onnx")
    Predictor.from_model_paths([model]).predict(str(VIDEO), frames="0-9", progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 10) and calls[-1] == (10, 10)

    blind = artifact([CENTROID], ".onnx", peak_threshold=0.999)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Predictor.from_model_paths([blind]).predict(str(VIDEO), frames="0-15")
    assert [str(w.message) for w in caught if w.category is FewInstancesWarning] == [
        "instances were found on 0 of 16 frames (0.0%); check that the model was trained on videos like these "
        "(animals, scale, lighting), or export with a lower --peak-threshold"
    ]
    done = installed("predict", blind, VIDEO, "-o", tmp_path / "p.slp", "--frames", "0-15", check_rc=0)
    warning_lines = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warning_lines == [  # "few-instances"
        "warning: instances were found on 0 of 16 frames (0.0%); check that the model was trained "
        "on videos like these (animals, scale, lighting), or export with a lower --peak-threshold"
    ]
    quiet = installed("predict", blind, VIDEO, "-o", tmp_path / "q.slp", "--frames", "0-15", "-q", check_rc=0)
    assert quiet.stderr == ""


def test_a_ray_job_that_never_started_leaves_nothing_behind(tmp_path, model):
    out = tmp_path / "out"
    out.mkdir()
    for _ in range(2):  # the second run is refused for the same reason as the first, not for leftovers
        done = installed("predict", model, VIDEO, "-o", out, "--frames", "0-3", "--ray", "ray://127.0.0.1:1", "-q")
        assert_one_line_error(done, "Could not connect to Ray at ray://127.0.0.1:1", rc=1)  # "ray-never-started"
        assert list(out.iterdir()) == []


def test_ray_auto_starts_a_local_ray_when_none_runs(tmp_path, model):
    """``--ray auto`` with no cluster running (none findable from a fresh temp folder): a local
    Ray, as ``ray.init()`` starts one, and the same poses as local predict."""
    import tempfile

    ray_temp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # short: Ray's unix sockets live under it
    environment = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # A new local Ray also writes an auth token under $HOME (~/.ray/auth_token), which every later
    # `ray start` on the machine would then require: kept in the temp folder with everything else.
    environment.update(TMPDIR=ray_temp, HOME=ray_temp, RAY_USAGE_STATS_ENABLED="0", RAY_agent_register_timeout_ms="180000")
    out = tmp_path / "out"
    out.mkdir()
    command = [str(Path(sys.executable).parent / "sleap-export"), "predict", str(model), str(VIDEO), "-o", str(out),
               "--frames", "0-7", "--ray", "auto", "-q"]
    try:
        # Ray gives a starting node a fixed 30 s, which a loaded machine can miss: up to three tries
        # (as the cluster fixture of test_ray.py), on every core, not the one this test worker has.
        for _ in range(3):
            done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600,
                                  preexec_fn=lambda: os.sched_setaffinity(0, range(os.cpu_count() or 1)))
            if "did not start" not in done.stderr:
                break
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    local = tmp_path / "local.slp"
    installed("predict", model, VIDEO, "-o", local, "--frames", "0-7", "-q", check_rc=0)
    on_ray = poses_by_frame(sio.load_slp(str(out / f"{VIDEO.stem}.slp")))
    assert compare_poses(on_ray, poses_by_frame(sio.load_slp(str(local))), tolerance_px=0, percentile=100)
