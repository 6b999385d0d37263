"""predict --ray on a real local Ray cluster (a head on localhost, two workers):
identity with local predict, a killed worker, a corrupt video, --resume, and Ray
imported only when asked for."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from test_cli import command_imports

SLEAP_EXPORT = str(Path(sys.executable).with_name("sleap-export"))
RAY = str(Path(sys.executable).with_name("ray"))
# Two short clips, several chunks each.
FRAMES = "0-59"
CHUNK = 20
VIDEOS = ("small_robot.mp4", "centered_pair_small.mp4")


def ray_environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # The raylet gives its agents 15 s to start by default, too little on a busy 2-core machine.
    env["RAY_agent_register_timeout_ms"] = "180000"
    return env


def every_core() -> None:
    """The cluster runs on every core, not on the one conftest gives this test worker:
    two Ray workers and Ray's own daemons on one core can miss Ray's start-up timeout."""
    os.sched_setaffinity(0, range(os.cpu_count() or 1))


def start_head() -> tuple[int, str, str] | str:
    """A Ray head on a free localhost port with 2 CPUs: ``(its process group, HOST:PORT, temp dir)``,
    or why it did not start. ``ray start`` returns once the node is up; its daemons keep its process group."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A short path: Ray's unix sockets live under it (108-byte limit).
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    head = subprocess.Popen(
        [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2", "--num-gpus=0",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
         "--object-store-memory=200000000"],
        env=ray_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=every_core,
    )
    _, stderr = head.communicate(timeout=180)
    if head.returncode:
        stop_head(head.pid, temp_dir)
        return stderr.decode()[-300:]
    return head.pid, f"127.0.0.1:{port}", temp_dir


def stop_head(group: int, temp_dir: str) -> None:
    """End the processes ``ray start`` left in its process group, nothing else."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        time.sleep(2)
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    """``HOST:PORT`` of a Ray head on localhost with 2 CPUs, ended after the module; or of a
    running cluster with 2 or more CPUs given as $SLEAP_EXPORT_TEST_RAY_ADDRESS (left running)."""
    if os.environ.get("SLEAP_EXPORT_TEST_RAY_ADDRESS"):
        yield os.environ["SLEAP_EXPORT_TEST_RAY_ADDRESS"]
        return
    # Ray gives a starting node a fixed 30 s to register, which a loaded machine can miss: try again.
    failures = []
    for _ in range(3):
        started = start_head()
        if not isinstance(started, str):
            break
        failures.append(started)
    else:
        pytest.fail(f"the Ray head did not start in 3 tries: {failures[-1]}")
    group, address, temp_dir = started
    yield address
    stop_head(group, temp_dir)


@pytest.fixture(scope="module")
def model(artifact):
    return artifact(["minimal_instance_single_instance"], ".onnx")


@pytest.fixture(scope="module")
def videos(assets):
    return [assets / "data" / name for name in VIDEOS]


@pytest.fixture(scope="module")
def local(model, videos, tmp_path_factory):
    """Local predict of both clips into one file, the reference for every Ray run."""
    out = tmp_path_factory.mktemp("local") / "local.slp"
    run_cli("predict", model, *videos, "--frames", FRAMES, "-o", out, "-q")
    return sio.load_slp(str(out))


def run_cli(*args, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([SLEAP_EXPORT, *map(str, args)], capture_output=True, text=True, env=ray_environment())
    assert done.returncode == expect, done.stderr[-3000:]
    return done


def frames_of(labels: sio.Labels, video_name: str | None = None) -> dict:
    """``(video file name, frame) -> instances`` (points, scores, track, tracking score), NaN-safe."""
    found = {}
    for lf in labels.labeled_frames:
        name = Path(lf.video.filename).name
        if video_name is not None and name != video_name:
            continue
        key = (name, lf.frame_idx)
        assert key not in found, f"frame {key} twice"
        found[key] = [
            (i.numpy(scores=True), float(i.score), i.track.name if i.track else None, i.tracking_score)
            for i in lf.instances
        ]
    return found


def assert_same_frames(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for key, instances in expected.items():
        assert len(got[key]) == len(instances), key
        for (points, score, track, tracking), (points2, score2, track2, tracking2) in zip(got[key], instances):
            assert np.array_equal(points, points2, equal_nan=True), key
            assert (score, track) == (score2, track2), key
            assert np.array_equal(tracking, tracking2, equal_nan=True), key


def provenance_without_paths(labels: sio.Labels) -> dict:
    return {k: v for k, v in labels.provenance.items() if k not in ("filename", "sleap_export.artifact")}


def test_one_file_and_one_per_video_match_local_predict(cluster, model, videos, local, tmp_path):
    out = tmp_path / "all.slp"
    quiet = run_cli("predict", model, *videos, "--frames", FRAMES, "-o", out, "--ray", cluster, "--workers", 2,
                    "--chunk-size", CHUNK, "-q")
    assert (quiet.stdout, quiet.stderr) == ("", "")
    together = sio.load_slp(str(out))
    assert [Path(v.filename).name for v in together.videos] == list(VIDEOS)
    assert_same_frames(frames_of(together), frames_of(local))
    assert provenance_without_paths(together) == provenance_without_paths(local)
    assert not (tmp_path / "all.slp.parts").exists()

    folder = tmp_path / "per-video"
    folder.mkdir()
    done = run_cli("predict", model, *videos, "--frames", FRAMES, "-o", folder, "--ray", cluster, "--workers", 2,
                   "--chunk-size", CHUNK)
    # Off a terminal: progress lines over both videos, then what was written.
    assert "0/120 frames" in done.stderr and "120/120 frames" in done.stderr
    assert "120 predicted at" in done.stdout and "on 2 Ray workers" in done.stdout
    for video in VIDEOS:
        alone = sio.load_slp(str(folder / f"{Path(video).stem}.slp"))
        assert [Path(v.filename).name for v in alone.videos] == [video]
        assert_same_frames(frames_of(alone), frames_of(local, video))
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{Path(v).stem}.slp" for v in VIDEOS)


class KillWorkerAfterFirstChunk:
    """A progress sink that SIGKILLs one worker's process when the first chunk is in:
    the worker is then busy with its next chunk (each has two in flight)."""

    def __init__(self, job):
        self.job, self.killed = job, None

    def start(self, total: int, done: int) -> None:
        self.total = total

    def advance(self, frames: int) -> None:
        if self.killed is None:
            self.killed = self.job.worker_pids[0]
            os.kill(self.killed, signal.SIGKILL)


def test_killed_worker_chunks_are_retried_once_each(cluster, model, videos, local, tmp_path):
    from sleap_export.runtime.drivers.ray_cluster import RayCluster, RayPrediction

    out = tmp_path / "all.slp"
    job = RayPrediction(model, videos, out, RayCluster(address=cluster, workers=2, chunk_size=CHUNK), frames=FRAMES)
    killer = KillWorkerAfterFirstChunk(job)
    report = job.run(killer)
    assert killer.killed is not None and report.retried >= 1
    assert not report.failed and report.predicted == killer.total == 120
    assert_same_frames(frames_of(sio.load_slp(str(out))), frames_of(local))


def test_corrupt_video_fails_alone_with_a_summary(cluster, model, videos, local, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    folder = tmp_path / "out"
    folder.mkdir()
    done = run_cli("predict", model, videos[0], corrupt, "--frames", FRAMES, "-o", folder, "--ray", cluster,
                   "--workers", 2, "--chunk-size", CHUNK, expect=1)
    table = done.stderr.splitlines()
    assert any("corrupt.mp4" in line and "failed:" in line and "could not be opened as a video" in line for line in table)
    assert any(VIDEOS[0] in line and "wrote" in line for line in table)
    assert table[-1].startswith("error: 1 of 2 videos failed")
    written = sio.load_slp(str(folder / "small_robot.slp"))
    assert_same_frames(frames_of(written), frames_of(local, VIDEOS[0]))
    assert not (folder / "corrupt.slp").exists()


def test_resume_after_an_interrupted_job_predicts_only_missing_chunks(cluster, model, videos, local, artifact, tmp_path):
    out = tmp_path / "all.slp"
    parts = tmp_path / "all.slp.parts"
    command = [SLEAP_EXPORT, "predict", model, *videos, "--frames", FRAMES, "-o", out, "--ray", cluster,
               "--workers", 2, "--chunk-size", CHUNK]
    job = subprocess.Popen(list(map(str, command)), env=ray_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    deadline = time.monotonic() + 120
    while not list(parts.glob("*.npz")):
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[1][-2000:]
        time.sleep(0.1)
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 130, stderr[-2000:]
    assert "rerun with --resume" in stderr
    kept = len(list(parts.glob("*.npz")))
    assert kept >= 1 and not out.exists()

    refused = run_cli(*command[1:], "--chunk-size", 30, "--resume", expect=2)
    assert "another chunk_size" in refused.stderr
    # Another artifact of the same checkpoint (fewer instance slots) may not finish these parts.
    other = artifact(["minimal_instance_single_instance"], ".onnx", max_instances=1)
    refused = run_cli(command[1], other, *command[3:], "--resume", expect=2)
    assert "another artifact_sha256" in refused.stderr

    done = run_cli(*command[1:], "--resume")
    predicted = int(done.stdout.strip().splitlines()[-1].split()[0])
    assert predicted <= 120 - kept * CHUNK
    assert_same_frames(frames_of(sio.load_slp(str(out))), frames_of(local))
    assert not parts.exists()


def test_help_and_local_predict_do_not_import_ray(model, videos, tmp_path):
    for args in (["predict", "--help"], ["predict", str(model), str(videos[0]), "--frames", "0-3", "-o", str(tmp_path / "p.slp"), "-q"]):
        assert not command_imports("ray", *args), args


def test_ray_options_are_refused_in_one_line_before_connecting(model, videos, tmp_path):
    done = run_cli("predict", model, videos[0], "-o", tmp_path / "p.slp", "--workers", 2, expect=2)
    assert "apply with --ray" in done.stderr
    # No cluster at this address: the output is refused before Ray is reached.
    done = run_cli("predict", model, videos[0], "-o", tmp_path / "missing", "--ray", "127.0.0.1:1", expect=2)
    assert "neither a .slp file nor an existing folder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_detector_boxes_over_ray_equal_local_predict(cluster, artifact, assets, tmp_path):
    """A box-driven top-down pair's chunks carry their boxes, poses and box -> instance links through
    the object store and the parts (a detector alone packs its boxes the same way)."""
    model = artifact(["new_bbox_ssd", "new_centered_instance_bbox"], ".onnx")
    video = assets / "data" / "centered_pair_small.mp4"
    local, remote = tmp_path / "local.slp", tmp_path / "ray.slp"
    run_cli("predict", model, video, "--frames", FRAMES, "-o", local, "-q")
    run_cli("predict", model, video, "--frames", FRAMES, "-o", remote, "--ray", cluster, "--workers", 2, "--chunk-size", CHUNK, "-q")

    def boxes(path) -> dict:
        frames = {}
        for lf in sio.load_slp(str(path)).labeled_frames:
            index = {id(instance): i for i, instance in enumerate(lf.instances)}
            linked = [index.get(id(b.instance), -1) for b in lf.bboxes]
            poses = [np.nan_to_num(i.numpy(), nan=-1.0).tolist() for i in lf.instances]  # NaN != NaN in lists
            frames[lf.frame_idx] = ([(b.x1, b.y1, b.x2, b.y2, b.score) for b in lf.bboxes], linked, poses)
        return frames

    expected = boxes(local)
    assert len(expected) == 60 and sum(len(b) for b, _, _ in expected.values()) > 60
    assert sum(i >= 0 for _, links, _ in expected.values() for i in links) > 60
    assert boxes(remote) == expected