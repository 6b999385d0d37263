"""The CLI end to end, and its one-line errors on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio
import torch

from conftest import DATA, MODELS

CENTROID = MODELS / "minimal_instance_centroid"


def cli(*args, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "sleap_export", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check_rc is not None:
        assert result.returncode == check_rc, result.stdout + result.stderr
    return result


def assert_one_line_error(result, pattern: str, rc: int = 2):
    assert result.returncode == rc, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and pattern in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_export_predict_inspect(tmp_path, assets):
    model = tmp_path / "centroid.onnx"
    cli("onnx", CENTROID / "best.ckpt", "-o", model)
    output = tmp_path / "pred.slp"
    cli("predict", model, DATA / "centered_pair_small.mp4", "-o", output, "--frames", "0-9,20-", "--quiet")
    labels = sio.load_slp(str(output))
    assert len(labels.labeled_frames) == 10 + 1080
    spec = json.loads(cli("inspect", model, "--json").stdout)
    assert spec["model_type"] == "centroid" and spec["stages"][0]["checkpoint_sha256"]
    assert "centroid" in cli("inspect", model).stdout


def test_torchscript_export_and_predict_on_labels(tmp_path, assets):
    model = tmp_path / "single.pt"
    cli("torchscript", MODELS / "minimal_instance_single_instance", "-o", model, "--max-instances", "1")
    output = tmp_path / "pred.slp"
    cli("predict", model, DATA / "small_robot_minimal.slp", "-o", output)
    labels = sio.load_slp(str(output))
    assert len(labels.labeled_frames) == 2
    assert [e for e in labels.skeletons[0].edge_inds] == [(0, 1)]


def test_many_inputs_give_one_video_each(tmp_path, assets, artifact):
    model = artifact(["minimal_instance_centroid"], ".onnx")
    output = tmp_path / "all.slp"
    video = DATA / "centered_pair_small.mp4"
    cli("predict", model, video, DATA / "minimal_instance.pkg.slp", "-o", output, "--frames", "0-3", "-q")
    labels = sio.load_slp(str(output))
    assert len(labels.videos) == 2


@pytest.fixture
def broken_runs(tmp_path, assets) -> dict[str, Path]:
    """Run folders with one thing wrong each."""
    runs = {}

    def run_folder(name: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(CENTROID / "training_config.yaml", folder)
        return folder

    runs["no_config"] = tmp_path / "no_config"
    runs["no_config"].mkdir()
    runs["no_checkpoint"] = run_folder("no_checkpoint")
    runs["empty_checkpoint"] = run_folder("empty_checkpoint")
    (runs["empty_checkpoint"] / "best.ckpt").write_bytes(b"")
    runs["corrupt_checkpoint"] = run_folder("corrupt_checkpoint")
    (runs["corrupt_checkpoint"] / "best.ckpt").write_bytes((CENTROID / "best.ckpt").read_bytes()[:5000])
    runs["pickle_payload"] = run_folder("pickle_payload")
    torch.save({"state_dict": {}, "payload": os.system}, runs["pickle_payload"] / "best.ckpt")
    runs["unsupported_type"] = run_folder("unsupported_type")
    config = (CENTROID / "training_config.yaml").read_text()
    config = config.replace("    centroid:\n      confmaps:", "    segmentation:\n      confmaps:")
    (runs["unsupported_type"] / "training_config.yaml").write_text(config)
    shutil.copy(CENTROID / "best.ckpt", runs["unsupported_type"])
    return runs


@pytest.mark.parametrize(
    "case, message",
    [
        ("no_config", "not a sleap-nn training run"),
        ("no_checkpoint", "best.ckpt"),
        ("empty_checkpoint", "is empty"),
        ("corrupt_checkpoint", "not a readable PyTorch checkpoint"),
        ("pickle_payload", "refusing to unpickle"),
        ("unsupported_type", "supported: single_instance, centroid"),
    ],
)
def test_bad_run_folders(case, message, broken_runs, tmp_path):
    output = tmp_path / "out.onnx"
    assert_one_line_error(cli("onnx", broken_runs[case], "-o", output, check_rc=None), message)
    assert not output.exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_bad_outputs_and_inputs(tmp_path, artifact, assets):
    missing_folder = tmp_path / "nope" / "m.onnx"
    assert_one_line_error(cli("onnx", CENTROID, "-o", missing_folder, check_rc=None), "does not exist")
    existing = tmp_path / "exists.onnx"
    existing.write_bytes(b"keep")
    assert_one_line_error(cli("onnx", CENTROID, "-o", existing, check_rc=None), "--overwrite")
    assert existing.read_bytes() == b"keep"
    assert_one_line_error(cli("onnx", CENTROID, "-o", tmp_path / "m.bin", check_rc=None), "suffix")
    assert_one_line_error(cli("onnx", tmp_path / "missing_run", "-o", tmp_path / "m.onnx", check_rc=None), "does not exist")

    model = artifact(["minimal_instance_centroid"], ".onnx")
    not_a_video = tmp_path / "clip.mp4"
    not_a_video.write_bytes(b"this is not a video")
    assert_one_line_error(
        cli("predict", model, not_a_video, "-o", tmp_path / "p.slp", check_rc=None), "could not be opened"
    )
    assert not (tmp_path / "p.slp").exists()

    import onnx

    foreign = tmp_path / "foreign.onnx"
    proto = onnx.load(str(model))
    del proto.metadata_props[:]
    onnx.save(proto, str(foreign))
    assert_one_line_error(cli("inspect", foreign, check_rc=None), "not written by sleap-export", rc=1)


def test_wrong_channel_frames_from_python(artifact):
    from sleap_export import load
    from sleap_export.errors import InputError

    runner = load(artifact(["minimal_instance_centroid"], ".onnx"))
    with pytest.raises(InputError, match="channels"):
        runner.predict(np.zeros((2, 384, 384, 4), np.uint8))
    # RGB into a grayscale model is unambiguous: converted, not refused.
    assert len(runner.predict(np.zeros((2, 384, 384, 3), np.uint8))) == 2
