"""The CLI end to end, and its one-line errors on bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sleap_io as sio

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
    exported = cli("onnx", CENTROID / "best.ckpt", "-o", model, "-q")
    assert model.exists() and exported.stdout == exported.stderr == ""
    output = tmp_path / "pred.slp"
    predicted = cli("predict", model, DATA / "centered_pair_small.mp4", "-o", output, "--frames", "0-9,20-", "--quiet")
    assert predicted.stdout == predicted.stderr == ""
    labels = sio.load_slp(str(output))
    assert len(labels.labeled_frames) == 10 + 1080
    # Quiet keeps what was asked for: the spec.
    spec = json.loads(cli("-q", "inspect", model, "--json").stdout)
    assert spec["model_type"] == "centroid" and spec["stages"][0]["checkpoint_sha256"]
    assert "centroid" in cli("inspect", model, "-q").stdout


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


_COMMAND_THEN_MODULES = (
    "import sys\n"
    "from sleap_export.cli import main\n"
    "sys.argv = ['sleap-export', *sys.argv[2:]]\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as done:\n"
    "    assert not done.code, done.code\n"
    "print(sys.argv[1] in sys.modules)\n"
)


def command_imports(module: str, *args) -> bool:
    """Whether ``sleap-export ARGS``, run in a fresh process, imported ``module`` (the command must succeed)."""
    done = subprocess.run(
        [sys.executable, "-c", _COMMAND_THEN_MODULES, module, *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1] == "True"


def installed(*args, check_rc: int | None = None) -> subprocess.CompletedProcess:
    """The ``sleap-export`` command as installed (the console script), not ``python -m``."""
    command = Path(sys.executable).parent / "sleap-export"
    result = subprocess.run([str(command), *map(str, args)], capture_output=True, text=True, timeout=600)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stdout + result.stderr
    return result


@pytest.mark.parametrize(
    "args, named",
    [
        (["predict"], "Missing argument 'model'"),
        (["predict", "model.onnx", "clip.mp4", "-o", "p.slp", "-b", "2.5"], "'--batch-size'"),
        (["predict", "model.onnx", "clip.mp4", "-o", "p.slp", "-b", "0"], "'--batch-size'"),
        (["check", "model.onnx", "-r", "run", "-d", "clip.mp4", "-n", "0"], "'--frames'"),
        (["predict", "--bogus"], "No such option: --bogus"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_look_like_the_ecosystems(args, named, tmp_path):
    """Usage line, the argument or option named, exit 2; no Python class names."""
    result = installed(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Usage: sleap-export" in result.stderr and named in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "rerun with --debug" not in result.stderr
    assert not re.search(r"\b[A-Z][a-z]+(Parameter|Option|Error|Usage)\b:", result.stderr), result.stderr


def test_bare_command_shows_help_and_exits_2():
    result = installed()
    assert result.returncode == 2
    assert "Usage: sleap-export" in result.stdout + result.stderr and "predict" in result.stdout + result.stderr


def test_help_version_and_debug_anywhere(tmp_path):
    assert "Usage: sleap-export predict" in installed("predict", "-h", check_rc=0).stdout
    versions = installed("--version", check_rc=0).stdout
    assert "sleap-export 0.1.0" in versions and "onnxruntime " in versions
    missing = tmp_path / "missing.onnx"
    plain = installed("inspect", missing)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debugged = installed("inspect", missing, "--debug")  # after the command, as the advice reads
    assert "Traceback" in debugged.stderr and "No such option" not in debugged.stderr


def test_outputs_repr_shows_shapes_not_arrays():
    import numpy as np

    from sleap_export.runtime.decoding.outputs import Outputs

    outputs = Outputs(
        original_image=np.zeros((384, 384, 1), np.uint8),
        pred_keypoints=np.zeros((2, 6, 2), np.float32),
        node_names=("head", "thorax", "abdomen", "tail", "wingL", "wingR"),
        frame_idx=3,
    )
    text = repr(outputs)
    assert len(text) < 300, text
    assert "pred_keypoints=(2, 6, 2) float32" in text and "original_image=(384, 384, 1) uint8" in text
    assert "frame_idx=3" in text and "head, thorax" in text


def test_every_command_takes_quiet():
    """-q before the command (the root's) or after it (each command's)."""
    import typer

    from sleap_export.cli import app

    group = typer.main.get_command(app)
    assert "--quiet" in {opt for param in group.params for opt in param.opts}
    for name, command in group.commands.items():
        flags = {opt for param in command.params for opt in param.opts}
        assert {"--quiet", "-q"} <= flags, name
    assert set(group.commands) >= {"onnx", "torchscript", "trt", "predict", "check", "bench", "inspect", "demo"}


def test_quiet_before_the_command_and_predict_reporting_one_fps(tmp_path, artifact):
    model = artifact(["minimal_instance_centroid"], ".onnx")
    video = DATA / "centered_pair_small.mp4"
    quiet = installed("-q", "predict", model, video, "-o", tmp_path / "quiet.slp", "--frames", "0-3", check_rc=0)
    assert quiet.stdout == quiet.stderr == "" and (tmp_path / "quiet.slp").exists()
    shown = installed("predict", model, video, "-o", tmp_path / "shown.slp", "--frames", "0-3", check_rc=0)
    # Off a terminal: log lines; the last one and the final line give the same fps.
    last = shown.stderr.splitlines()[-1]
    assert last.startswith("4/4 frames, "), shown.stderr
    fps = re.search(r", ([0-9.]+) fps,", last).group(1)
    assert re.fullmatch(
        rf"wrote .*shown\.slp: 4 frames, \d+ instances; 4 predicted at {re.escape(fps)} fps; [0-9.]+ s in all\n", shown.stdout
    ), shown.stdout


def test_predict_a_top_down_pair_of_runs(tmp_path, artifact):
    """Two training runs, then the input: eager PyTorch, the same poses as the top-down artifact."""
    from sleap_export.core.comparison import compare_poses, poses_by_frame

    centered = MODELS / "minimal_instance_centered_instance"
    video = DATA / "centered_pair_small.mp4"
    eager = tmp_path / "eager.slp"
    installed("predict", CENTROID, centered, video, "-o", eager, "--frames", "0-1", "-q", check_rc=0)
    exported = tmp_path / "exported.slp"
    topdown = artifact(["minimal_instance_centroid", "minimal_instance_centered_instance"], ".onnx")
    installed("predict", topdown, video, "-o", exported, "--frames", "0-1", "-q", check_rc=0)
    ours, theirs = (poses_by_frame(sio.load_slp(str(p))) for p in (eager, exported))
    assert len(ours) == 2
    comparison = compare_poses(ours, theirs)
    assert comparison.count_agreement == 1.0 and comparison.matched_instances > 0 and comparison, comparison.summary()
