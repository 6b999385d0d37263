"""A new lab user's first exports (issue 46): bundled presets by name from any folder, each export
command's help listing only its own options, and TorchScript prediction that does not spin its
OpenMP workers on a shared machine. Through the installed command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sleap_io as sio

from conftest import DATA, MODELS
from test_cli import assert_one_line_error

COMMAND = Path(sys.executable).parent / "sleap-export"
ONNX_ONLY = ("--layout", "--precision", "--calibration", "--calibration-frames", "--max-deviation", "--calibration-method", "--keep-inaccurate")


def run_installed(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed ``sleap-export`` run in ``cwd``, with ``env`` over this process's environment."""
    return subprocess.run(
        [str(COMMAND), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def crowded_centroid(assets, tmp_path_factory) -> Path:
    """The centroid run exported to TorchScript from a folder that holds no presets, with ``--preset crowded-arena``."""
    folder = tmp_path_factory.mktemp("elsewhere")
    result = run_installed("torchscript", MODELS / "minimal_instance_centroid", "-o", "centroid.pt", "--preset", "crowded-arena", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder / "centroid.pt"


def test_a_bundled_preset_by_name_from_any_folder(crowded_centroid, tmp_path):
    """A name that is neither a file nor a bundled preset: one line naming them (docs/bad-inputs.md: "unknown-preset")."""
    from sleap_export.runtime.artifacts.formats import read_spec

    assert read_spec(crowded_centroid).postprocess.max_instances == 64  # crowded-arena's, not the default 20
    unknown = run_installed("onnx", MODELS / "minimal_instance_centroid", "-o", "m.onnx", "--preset", "crowded", cwd=tmp_path)
    assert_one_line_error(unknown, "Preset crowded does not exist; pass a YAML file of export options or a bundled preset: closed-loop, crowded-arena, default.")
    assert not list(tmp_path.iterdir())


def test_each_export_command_lists_only_its_own_options(tmp_path):
    """torchscript --help leaves out ONNX/TensorRT's options and says how much slower it predicts; given
    anyway, one is refused in one line (docs/bad-inputs.md: "option-of-another-format")."""
    torchscript = run_installed("torchscript", "--help", cwd=tmp_path).stdout
    onnx = run_installed("onnx", "--help", cwd=tmp_path).stdout
    trt = run_installed("trt", "--help", cwd=tmp_path).stdout
    assert not [flag for flag in ONNX_ONLY if f"{flag} " in torchscript], torchscript
    assert all(f"{flag} " in onnx for flag in ONNX_ONLY), onnx
    assert all(f"{flag} " in trt for flag in ONNX_ONLY if flag != "--layout") and "--layout " not in trt, trt
    assert "slower than the same models exported to ONNX" in " ".join(torchscript.split())
    refused = run_installed("torchscript", MODELS / "minimal_instance_centroid", "-o", "m.pt", "--precision", "fp16", cwd=tmp_path)
    assert_one_line_error(refused, "--precision applies to sleap-export onnx and trt; leave it out for torchscript.")
    assert not list(tmp_path.iterdir())


def test_torchscript_workers_sleep_while_they_wait(crowded_centroid, tmp_path):
    """Spinning OpenMP workers made TorchScript ~8x slower than ONNX on a busy machine (2.3 vs 20 fps,
    see docs/artifacts.md); libgomp prints its settings as torch loads it (OMP_DISPLAY_ENV)."""
    clip = DATA / "centered_pair_small.mp4"
    shown = {"OMP_DISPLAY_ENV": "VERBOSE"}
    ours = run_installed("predict", crowded_centroid, clip, "--frames", "0-3", "-o", "ours.slp", cwd=tmp_path, env=shown)
    assert ours.returncode == 0, ours.stderr
    assert "GOMP_SPINCOUNT = '0'" in ours.stderr, ours.stderr
    # A user's own policy wins, and the poses are the same bit for bit.
    theirs = run_installed(
        "predict", crowded_centroid, clip, "--frames", "0-3", "-o", "theirs.slp", cwd=tmp_path,
        env={**shown, "OMP_WAIT_POLICY": "ACTIVE"},
    )
    assert theirs.returncode == 0, theirs.stderr
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in theirs.stderr, theirs.stderr
    poses = [[i.numpy().tobytes() for frame in sio.load_slp(str(tmp_path / name)) for i in frame.instances] for name in ("ours.slp", "theirs.slp")]
    assert poses[0] and poses[0] == poses[1]
