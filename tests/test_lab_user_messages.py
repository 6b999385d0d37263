"""What a new lab user met (issue 46): each message names the fix, through the installed command where it is one."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnxruntime
import pytest

from conftest import DATA, MODELS
from test_cli import assert_one_line_error, installed
from test_sleap_nn_layout import layout_folder  # noqa: F401 (the session fixture, shared)

BIN = Path(sys.executable).parent
CENTROID = "minimal_instance_centroid"
VIDEO = DATA / "centered_pair_small.mp4"


def run_installed(*args, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """The installed command with ``env`` added to this environment."""
    return subprocess.run(
        [str(BIN / "sleap-export"), *map(str, args)], capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
    )


@pytest.mark.skipif("CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="this ONNX Runtime has CUDA")
def test_cuda_without_the_cuda_provider_is_a_usage_error(artifact, tmp_path):
    """docs/bad-inputs.md: "cuda-no-provider"."""
    output = tmp_path / "p.slp"
    done = installed("predict", artifact([CENTROID], ".onnx"), VIDEO, "-o", output, "--frames", "0-3", "--device", "cuda")
    assert_one_line_error(done, "install onnxruntime-gpu (on a machine with an NVIDIA GPU), or run on the CPU (--device cpu / device='cpu')")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_extra_is_named_with_both_install_forms(assets, tmp_path):
    """docs/bad-inputs.md: "missing-extra". Without the export extra (torch made unimportable), exporting
    says which extra to install."""
    shim = tmp_path / "no_torch"
    shim.mkdir()
    (shim / "torch.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    output = tmp_path / "centroid.onnx"
    done = run_installed("onnx", MODELS / CENTROID, "-o", output, env={"PYTHONPATH": str(shim)})
    assert_one_line_error(
        done, "This needs torch, part of sleap-export's export extra, which is not installed here; "
        "pip install 'sleap-export[export]' (from a source checkout: pip install -e '.[export]')."
    )
    assert not output.exists()


def test_predict_refuses_an_artifact_modified_after_export(artifact, tmp_path):
    """docs/bad-inputs.md: "tampered-predict"."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(artifact([CENTROID], ".onnx")))
    weights = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    changed = numpy_helper.to_array(weights).copy()
    changed.flat[0] += 1.0
    weights.CopyFrom(numpy_helper.from_array(changed, weights.name))
    tampered = tmp_path / "tampered.onnx"
    tampered.write_bytes(model.SerializeToString())
    output = tmp_path / "p.slp"
    done = installed("predict", tampered, VIDEO, "-o", output, "--frames", "0-3")
    assert_one_line_error(done, "tampered.onnx was modified after export (payload sha256", rc=1)
    assert "re-export it from the training run" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tampered.onnx"]


def test_the_quick_payload_digest_is_the_digest(artifact):
    """Opening reads the ONNX digest from the file's bytes; it equals the one onnx computes (and export recorded)."""
    from sleap_export.runtime.artifacts import integrity
    from sleap_export.runtime.artifacts.formats import read_spec

    path = artifact([CENTROID], ".onnx")
    spec = read_spec(path)
    spec_text = integrity.spec_digest_text(spec)
    assert integrity.onnx_bytes_payload_sha256(path, spec_text) == spec.payload_sha256
    assert integrity.onnx_file_payload_sha256(path, spec_text) == spec.payload_sha256


def test_runner_predict_on_a_video_names_the_ways_to_predict_it(artifact):
    """docs/bad-inputs.md: "runner-video"."""
    import sleap_io as sio

    from sleap_export.core.errors import InputError
    from sleap_export.runtime.open_model import open_model

    runner = open_model(artifact([CENTROID], ".onnx"))
    video = sio.load_video(str(VIDEO))
    with pytest.raises(InputError, match=re.escape(
        "got a Video; predict a whole video with Predictor.from_model_paths(MODEL).predict(video), "
        "or pass some of its frames: runner.predict(video[0:100])."
    )):
        runner.predict(video)
    assert len(runner.predict(video[0:2])) == 2  # the fix it names works


def test_inspect_describes_a_folder_read_from_its_metadata(layout_folder, tmp_path):  # noqa: F811
    """A top-down folder whose spec comes from export_metadata.json (as sleap-nn's own exports do; here our
    folder with our embedded spec taken out): each stage's own run and stride, "not recorded" for the rest."""
    import onnx

    from sleap_export.runtime.artifacts.sleap_nn_export_folder import LAYOUT_SPEC_KEY, MODEL_FILE

    folder = shutil.copytree(layout_folder("topdown"), tmp_path / "topdown")
    model = onnx.load(str(folder / MODEL_FILE))
    kept = [p for p in model.metadata_props if p.key != LAYOUT_SPEC_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    (folder / MODEL_FILE).write_bytes(model.SerializeToString())
    done = run_installed("inspect", folder, env={"COLUMNS": "400"}, timeout=120)
    assert done.returncode == 0, done.stderr
    stages = [line for line in done.stdout.splitlines() if "│ stage " in line]
    assert len(stages) == 2, done.stdout
    assert "output stride 4" in stages[0] and f"{CENTROID}/best.ckpt (sleap-nn)" in stages[0]
    assert "output stride 2" in stages[1] and "minimal_instance_centered_instance/best.ckpt (sleap-nn)" in stages[1]
    for stage in stages:
        assert "size not recorded" in stage and "weights sha256 not recorded" in stage, stage
    assert "refinement none" in done.stdout and "None" not in done.stdout
    assert re.search(r"│ export +│ not recorded", done.stdout), done.stdout


def test_counts_of_one_frame_are_singular():
    from sleap_export.runtime.drivers.progress import LogProgress

    stream = io.StringIO()
    log = LogProgress(stream=stream)
    log.start(total=1, done=0)
    log.advance(1)
    assert stream.getvalue().splitlines()[0] == "0/1 frame"
    assert stream.getvalue().splitlines()[1].startswith("1/1 frame, ")


def test_ctrl_c_message_gets_its_own_line_under_a_progress_bar(artifact, tmp_path):
    """On a terminal, Ctrl-C's message is printed above the bar (its line erased first), not after it."""
    output = tmp_path / "p.slp"
    pid, terminal = pty.fork()
    if pid == 0:
        command = str(BIN / "sleap-export")
        os.execv(command, [command, "predict", str(artifact([CENTROID], ".onnx")), str(VIDEO), "-o", str(output)])
    seen, interrupted, deadline = b"", False, time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([terminal], [], [], 0.1)[0]:
            try:
                chunk = os.read(terminal, 65536)
            except OSError:  # the command ended
                break
            if not chunk:
                break
            seen += chunk
        if not interrupted and re.search(rb" +[1-9]\d*/1100", seen):  # the bar shows frames done
            os.kill(pid, signal.SIGINT)
            interrupted = True
    _, status = os.waitpid(pid, 0)
    text = seen.decode(errors="replace")
    assert interrupted and os.waitstatus_to_exitcode(status) == 130, text[-2000:]
    message = re.search(r"(.{0,8})interrupted after \d+ of 1100 frames; saved them to", text, re.S)
    assert message and message.group(1).endswith(("\x1b[2K", "\n")), text[-2000:]
