"""Every row of docs/bad-inputs.md: one-line error, exit status, nothing half-written.

Test ids match the table's first column.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio
import torch

from sleap_export.core.errors import InputError, SleapExportError
from conftest import DATA, LEGACY_MODELS, MODELS, PROJECT
from test_cli import assert_one_line_error, cli

CENTROID = MODELS / "minimal_instance_centroid"
CENTERED = MODELS / "minimal_instance_centered_instance"
BOTTOMUP = MODELS / "minimal_instance_bottomup"
LEGACY_BOTTOMUP = LEGACY_MODELS / "minimal_instance.UNet.bottomup"
VIDEO = DATA / "centered_pair_small.mp4"


def test_the_table_lists_every_case_tested_here():
    table = (PROJECT / "docs" / "bad-inputs.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", table, re.M))
    tests = [Path(__file__).with_name(name) for name in (
        "test_bad_inputs.py", "test_lab_day.py", "test_live.py", "test_output_formats.py", "test_tracking.py", "test_tracking_mot.py", "test_box_topdown.py",
        "test_embedding.py", "test_embedding_check.py", "test_embedding_precision.py", "test_segmentation.py", "test_segmentation_live.py",
        "test_mask_ties.py", "test_lab_user_inputs.py", "test_lab_user_messages.py", "test_lab_user_formats.py",
    )]
    tested = set(re.findall(r'"([a-z0-9-]+)"', "".join(path.read_text() for path in tests))) & documented
    assert len(documented) >= 20
    assert documented == tested, documented ^ tested


def run_folder(tmp_path: Path, name: str, config_from: Path = CENTROID, checkpoint: bytes | None = None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(config_from / "training_config.yaml", folder)
    if checkpoint is not None:
        (folder / "best.ckpt").write_bytes(checkpoint)
    return folder


def legacy_folder(tmp_path: Path, damage) -> Path:
    folder = tmp_path / "legacy"
    shutil.copytree(LEGACY_BOTTOMUP, folder)
    damage(folder)
    return folder


def broken_export(case: str, tmp_path: Path) -> list:
    """Model folder arguments for an export that must be refused."""
    if case == "missing-run":
        return [tmp_path / "no_such_run"]
    if case == "no-config":
        (tmp_path / "empty").mkdir()
        return [tmp_path / "empty"]
    if case == "no-checkpoint":
        return [run_folder(tmp_path, "run")]
    if case == "empty-checkpoint":
        return [run_folder(tmp_path, "run", checkpoint=b"")]
    if case == "corrupt-checkpoint":
        return [run_folder(tmp_path, "run", checkpoint=(CENTROID / "best.ckpt").read_bytes()[:5000])]
    if case == "pickle-payload":
        folder = run_folder(tmp_path, "run")
        torch.save({"state_dict": {}, "payload": os.system}, folder / "best.ckpt")
        return [folder]
    if case == "wrong-architecture":
        return [run_folder(tmp_path, "run", checkpoint=(BOTTOMUP / "best.ckpt").read_bytes())]
    if case == "unsupported-type":
        folder = run_folder(tmp_path, "run", checkpoint=(CENTROID / "best.ckpt").read_bytes())
        config = (folder / "training_config.yaml").read_text()
        (folder / "training_config.yaml").write_text(config.replace("    centroid:\n      confmaps:", "    segmentation:\n      confmaps:"))
        return [folder]
    if case == "invalid-pair":
        return [BOTTOMUP, CENTROID]
    if case == "legacy-no-weights":
        return [legacy_folder(tmp_path, lambda d: (d / "best_model.h5").unlink())]
    if case == "legacy-not-hdf5":
        return [legacy_folder(tmp_path, lambda d: (d / "best_model.h5").write_bytes(b"not hdf5"))]
    raise KeyError(case)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing-run", "does not exist"),
        ("no-config", "is not a training run"),
        ("no-checkpoint", "best.ckpt is missing"),
        ("empty-checkpoint", "is empty"),
        ("corrupt-checkpoint", "not a readable PyTorch checkpoint"),
        ("pickle-payload", "refusing to unpickle"),
        ("wrong-architecture", "does not fit the architecture"),
        ("unsupported-type", "supported: single_instance, centroid"),
        ("invalid-pair", "do not make one artifact"),
        ("legacy-no-weights", "best_model.h5 is missing"),
        ("legacy-not-hdf5", "not an HDF5 file"),
    ],
)
def test_bad_models_are_refused(case, message, tmp_path, assets):
    output = tmp_path / "out" / "model.onnx"
    output.parent.mkdir()
    assert_one_line_error(cli("onnx", *broken_export(case, tmp_path), "-o", output, check_rc=None), message)
    assert list(output.parent.iterdir()) == []


def test_bad_outputs_are_refused(tmp_path, assets):
    result = cli("onnx", CENTROID, "-o", tmp_path / "nope" / "m.onnx", check_rc=None)
    assert_one_line_error(result, "does not exist; create it first")  # "output-folder-missing"
    existing = tmp_path / "exists.onnx"
    existing.write_bytes(b"keep")
    assert_one_line_error(cli("onnx", CENTROID, "-o", existing, check_rc=None), "--overwrite")  # "output-exists"
    assert existing.read_bytes() == b"keep"
    assert_one_line_error(cli("onnx", CENTROID, "-o", tmp_path / "m.bin", check_rc=None), "suffix")  # "output-suffix"


def test_output_not_writable(tmp_path, monkeypatch, assets):
    """Case "output-not-writable" (in-process: root ignores permission bits)."""
    from sleap_export import export

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.raises(InputError, match="is not writable; choose another"):
        export([CENTROID], tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_leaves_no_partial_file(tmp_path, monkeypatch, assets):
    """Case "disk-full": the write fails half-way; nothing stays behind."""
    from sleap_export import export

    def full_disk(self, data):
        with open(self, "wb") as stream:
            stream.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(SleapExportError, match="No space left on device"):
        export([CENTROID], tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def interrupt_after(seconds: float, *args) -> subprocess.CompletedProcess:
    """Run the CLI, send SIGTERM after ``seconds``, return what it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sleap_export", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(seconds)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_sigterm_during_export(tmp_path, assets):
    """Case "sigterm-export": no artifact and no partial file."""
    output = tmp_path / "model.onnx"
    result = interrupt_after(4.0, "onnx", BOTTOMUP, "-o", output)
    assert result.returncode == 130, "the export was not interrupted: " + result.stdout + result.stderr
    if output.exists():
        # The signal landed in a library's bare `except` (torch's import probes do
        # this) and the export ran to the end: the artifact must then be whole.
        assert "output is complete" in result.stderr
        cli("inspect", output, "--verify")
    else:
        assert result.stderr.strip().splitlines()[-1] == "interrupted; nothing was left half-written"
    assert [p.name for p in tmp_path.iterdir()] in ([], ["model.onnx"])


def test_sigterm_during_predict_then_resume(tmp_path, artifact):
    """Case "sigterm-predict": the frames done are saved in a valid .slp, and said
    so; ``--resume`` then predicts the rest, giving what one run gives."""
    from sleap_export.core.comparison import compare_poses, poses_by_frame
    from sleap_export.runtime.drivers.predictor import Predictor
    from sleap_export.runtime import load

    model = artifact(["minimal_instance_bottomup"], ".onnx")
    output = tmp_path / "out.slp"
    result = interrupt_after(6.0, "predict", model, VIDEO, "-o", output, "--frames", "0-299", "-q")
    assert result.returncode == 130, result.stderr
    match = re.search(r"interrupted after (\d+) of 300 frames; saved them to", result.stderr)
    assert match, result.stderr
    labels = sio.load_slp(str(output))
    assert len(labels.labeled_frames) == int(match.group(1)) > 0
    assert [p.name for p in tmp_path.iterdir()] == ["out.slp"]

    cli("predict", model, VIDEO, "-o", output, "--frames", "0-299", "--resume", "-q")
    resumed = poses_by_frame(sio.load_slp(str(output)))
    whole = poses_by_frame(Predictor(load(model)).predict(str(VIDEO), frames="0-299"))
    assert len(resumed) == 300
    assert compare_poses(resumed, whole, tolerance_px=1e-4, percentile=100)


def test_bad_videos(tmp_path, artifact):
    model = artifact(["minimal_instance_centroid"], ".onnx")
    not_a_video = tmp_path / "clip.mp4"
    not_a_video.write_bytes(b"this is not a video")
    result = cli("predict", model, not_a_video, "-o", tmp_path / "p.slp", check_rc=None)
    assert_one_line_error(result, "could not be opened as a video")  # "not-a-video"
    import imageio_ffmpeg

    empty = tmp_path / "empty.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=64x64", "-frames:v", "0", "-c:v", "libx264", str(empty)],
        check=True,
    )
    result = cli("predict", model, empty, "-o", tmp_path / "p.slp", check_rc=None)
    assert_one_line_error(result, "could not be opened as a video")  # "empty-video"
    existing = tmp_path / "exists.slp"
    existing.write_bytes(b"keep")
    result = cli("predict", model, VIDEO, "-o", existing, "--frames", "0", check_rc=None)
    assert_one_line_error(result, "--overwrite")  # "predict-output-exists"
    assert existing.read_bytes() == b"keep"
    torchscript = artifact(["minimal_instance_centroid"], ".pt")
    result = cli("predict", torchscript, VIDEO, "-o", tmp_path / "p.slp", "--threads", "2", check_rc=None)
    assert_one_line_error(result, "apply to ONNX artifacts")  # "threads-not-onnx"
    result = cli("predict", model, VIDEO, "-o", tmp_path / "p.slp", "--parallel-batches", "0", check_rc=None)
    assert_one_line_error(result, "at least 1")  # "parallel-batches-zero"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "empty.mp4", "exists.slp"]


def test_varying_frame_size_is_predicted_per_size(tmp_path, artifact):
    """Case "varying-frame-size": an image sequence of two sizes runs, each frame as alone."""
    import imageio.v3 as iio

    from sleap_export.core.comparison import compare_poses, poses_by_frame
    from sleap_export.runtime.drivers.predictor import Predictor
    from sleap_export.runtime import load

    source = sio.load_video(str(VIDEO))
    paths = []
    for i, (height, width) in enumerate([(384, 384), (384, 384), (320, 352), (384, 384)]):
        paths.append(tmp_path / f"{i:03d}.png")
        iio.imwrite(paths[-1], source[i][:height, :width, 0])
    runner = load(artifact(["minimal_instance_centroid"], ".onnx"))
    together = poses_by_frame(Predictor(runner, batch_size=4).predict(sio.load_video([str(p) for p in paths])))
    alone = poses_by_frame(Predictor(runner, batch_size=1).predict(sio.load_video([str(p) for p in paths])))
    assert len(together) == 4
    assert compare_poses(together, alone, tolerance_px=1e-4, percentile=100)


def test_bad_frames_from_python(artifact):
    from sleap_export.runtime import load

    runner = load(artifact(["minimal_instance_centroid"], ".onnx"))
    with pytest.raises(InputError, match="4 channels but the model takes 1"):  # "wrong-channels"
        runner.predict(np.zeros((2, 384, 384, 4), np.uint8))
    with pytest.raises(InputError, match=r"uint8 in 0-255, got float32; convert"):  # "not-uint8"
        runner.predict(np.zeros((1, 64, 64, 1), np.float32))
    with pytest.raises(InputError, match="got int16"):
        runner.predict(np.zeros((1, 64, 64, 1), np.int16))
    with pytest.raises(InputError, match="it holds NaN"):  # "nan-frames"
        runner.predict(np.full((1, 64, 64, 1), np.nan, np.float32))


def rewrite_onnx_spec(source: Path, destination: Path, edit) -> None:
    import onnx

    from sleap_export.runtime.artifacts.embedded_spec import ONNX_SPEC_KEY

    model = onnx.load(str(source))
    for entry in model.metadata_props:
        if entry.key == ONNX_SPEC_KEY:
            spec = json.loads(entry.value)
            edit(spec)
            entry.value = json.dumps(spec, sort_keys=True)
    onnx.save(model, str(destination))


def test_artifacts_that_cannot_be_trusted(tmp_path, artifact):
    import onnx

    model = artifact(["minimal_instance_centroid"], ".onnx")
    cli("inspect", model, "--verify")

    newer = tmp_path / "newer.onnx"
    rewrite_onnx_spec(model, newer, lambda spec: spec.update(schema_version=spec["schema_version"] + 1))
    assert_one_line_error(cli("inspect", newer, check_rc=None), "upgrade sleap-export", rc=1)  # "newer-schema"
    assert_one_line_error(cli("predict", newer, VIDEO, "-o", tmp_path / "p.slp", check_rc=None), "upgrade", rc=1)

    # "tampered": a weight, the graph's spec, and a TorchScript archive entry.
    weights = tmp_path / "weights.onnx"
    proto = onnx.load(str(model))
    initializer = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    raw = bytearray(initializer.raw_data)
    raw[0] ^= 0xFF
    initializer.raw_data = bytes(raw)
    onnx.save(proto, str(weights))
    scaled = tmp_path / "scaled.onnx"
    rewrite_onnx_spec(model, scaled, lambda spec: spec["stages"][0].update(input_scale=0.5))
    scripted = tmp_path / "scripted.pt"
    with zipfile.ZipFile(artifact(["minimal_instance_centroid"], ".pt")) as original, zipfile.ZipFile(scripted, "w") as copy:
        for info in original.infolist():
            data = original.read(info)
            if info.filename.endswith("/data/0"):
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            copy.writestr(info, data)
    for tampered in (weights, scaled, scripted):
        assert_one_line_error(cli("inspect", tampered, "--verify", check_rc=None), "was modified after export", rc=1)

    foreign = tmp_path / "foreign.onnx"
    proto = onnx.load(str(model))
    del proto.metadata_props[:]
    onnx.save(proto, str(foreign))
    assert_one_line_error(cli("inspect", foreign, check_rc=None), "not written by sleap-export", rc=1)  # "foreign-onnx"
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(os.urandom(2000))
    assert_one_line_error(cli("inspect", junk, check_rc=None), "not a readable ONNX model")  # "not-an-artifact"


def test_check_refuses_the_wrong_references(tmp_path, artifact):
    topdown = artifact(["minimal_instance_centroid", "minimal_instance_centered_instance"], ".onnx")
    result = cli("check", topdown, "-r", CENTROID, "-r", BOTTOMUP, "-d", VIDEO, check_rc=None)
    assert_one_line_error(result, "not the checkpoint this artifact was exported from", rc=1)  # "check-wrong-reference"
    result = cli("check", topdown, "-r", CENTROID, "-d", VIDEO, check_rc=None)
    assert_one_line_error(result, "pass as many --reference run folders (got 1)")  # "check-reference-count"


def fake_engine(path: Path, spec) -> Path:
    """Engine-like bytes carrying ``spec`` the way a built engine does (a constant among other bytes)."""
    from sleap_export.runtime.artifacts.embedded_spec import engine_spec_words

    path.write_bytes(b"\x7fplan" + os.urandom(512) + engine_spec_words(spec.to_json()).tobytes() + os.urandom(64))
    return path


def test_tensorrt_refusals(tmp_path, artifact, monkeypatch):
    import attrs
    import onnx

    from sleap_export.exporting.options import EngineOptions
    from sleap_export.exporting.writers.onnx_writer import write_model
    from sleap_export.exporting.writers.tensorrt_writer import build_engine
    from sleap_export.runtime.backends import tensorrt_runner as trt_runtime
    from sleap_export.runtime.artifacts.formats import read_spec
    from sleap_export.core.spec import EngineBuild, EngineTarget
    from sleap_export.runtime import load
    from conftest import gpu_problem

    engine = tmp_path / "model.engine"
    if gpu_problem() is not None:  # "trt-unavailable"
        result = cli("trt", CENTROID, "-o", engine, check_rc=None)
        assert_one_line_error(result, "TensorRT is not installed" if "not installed" in gpu_problem() else "No CUDA GPU", rc=1)
        assert not engine.exists()
    result = cli("trt", CENTROID, "-o", engine, "--batch", "4/2/8", check_rc=None)
    assert_one_line_error(result, "A profile range needs 1 <= min <= opt <= max, got 4/2/8")  # "trt-bad-profile"
    assert_one_line_error(cli("trt", CENTROID, "-o", engine, "--height", "big", check_rc=None), "--height takes MIN/OPT/MAX")

    onnx_path = artifact(["minimal_instance_centroid"], ".onnx")
    spec = read_spec(onnx_path)
    cpu_int8 = tmp_path / "cpu-int8.onnx"  # "trt-from-cpu-int8"
    write_model(onnx.load(str(onnx_path)), attrs.evolve(spec, precision="int8", export=attrs.evolve(spec.export, int8_activations="uint8")), cpu_int8)
    with pytest.raises(InputError, match=r"uint8 activations.*--precision int8 --calibration DATA\.$"):
        build_engine(cpu_int8, engine, EngineOptions())
    assert not engine.exists()

    # "engine-other-machine": refused before TensorRT deserializes anything.
    built = EngineTarget(tensorrt="10.13.3.9", gpu="NVIDIA H100 80GB HBM3", compute_capability="9.0")
    fake_engine(engine, attrs.evolve(spec, export=attrs.evolve(spec.export, engine=EngineBuild(built, {}, spec.payload_sha256))))
    for here, message in (
        (attrs.evolve(built, tensorrt="10.14.1.48"), "built with TensorRT 10.13.3.9 and this machine has TensorRT 10.14.1.48"),
        (attrs.evolve(built, gpu="NVIDIA GeForce RTX 4090", compute_capability="8.9"), "or build it once with --hardware-compatibility"),
    ):
        monkeypatch.setattr(trt_runtime, "local_target", lambda device_index=0, here=here: here)
        with pytest.raises(SleapExportError, match=message):
            load(engine).activate()
    result = cli("predict", engine, VIDEO, "-o", tmp_path / "p.slp", "--device", "cpu", check_rc=None)
    assert_one_line_error(result, "TensorRT engines run on a GPU; pass device 'cuda'")  # "engine-on-cpu"
    assert_one_line_error(cli("inspect", engine, "--verify", check_rc=None), "engines carry no payload hash")  # "engine-verify"
    assert "centroid" in cli("inspect", engine).stdout

    foreign = tmp_path / "foreign.engine"  # "foreign-engine"
    foreign.write_bytes(os.urandom(4096))
    assert_one_line_error(cli("inspect", foreign, check_rc=None), "it was not built by sleap-export", rc=1)


def test_predict_never_writes_over_its_inputs(tmp_path, artifact):
    from test_cli import installed

    model = artifact(["minimal_instance_centroid"], ".onnx")
    video = tmp_path / "clip.mp4"
    shutil.copy(VIDEO, video)
    labels = tmp_path / "labels.slp"
    shutil.copy(DATA / "minimal_instance.pkg.slp", labels)
    alias = tmp_path / "alias.slp"
    alias.symlink_to(labels)
    before = {p: p.read_bytes() for p in (video, labels)}
    result = installed("predict", model, video, "-o", video, "--overwrite", "--frames", "0")
    assert_one_line_error(result, "is not a .slp file")  # "predict-output-not-slp"
    result = installed("predict", model, video, "-o", tmp_path / "preds.txt", "--frames", "0")
    assert_one_line_error(result, "name it preds.slp")  # "predict-output-not-slp"
    result = installed("predict", model, labels, "-o", labels, "--overwrite")
    assert_one_line_error(result, "is one of the inputs")  # "predict-output-is-input"
    result = installed("predict", model, labels, "-o", alias, "--overwrite")
    assert_one_line_error(result, "is one of the inputs")  # "predict-output-is-input"
    assert {p: p.read_bytes() for p in (video, labels)} == before
    result = installed("predict", model, video, "-o", tmp_path / "p.slp", "--resume", "--overwrite")
    assert_one_line_error(result, "pass one of the two")  # "resume-and-overwrite"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias.slp", "clip.mp4", "labels.slp"]


def test_reports_never_write_over_their_inputs(tmp_path, artifact):
    """bench/check --json naming the artifact, the data or a file in an input run: refused before any work."""
    from test_cli import installed

    model = tmp_path / "model.onnx"
    shutil.copy(artifact(["minimal_instance_centroid"], ".onnx"), model)
    video = tmp_path / "clip.mp4"
    shutil.copy(VIDEO, video)
    run = tmp_path / "run"
    shutil.copytree(MODELS / "minimal_instance_centroid", run)
    checkpoint = next(run.glob("*.ckpt"))
    before = {p: p.read_bytes() for p in (model, video, checkpoint)}
    for target in (model, video):
        result = installed("bench", model, "--data", video, "--json", target)
        assert_one_line_error(result, "is one of the inputs; write the report to another file")  # "report-is-input"
        result = installed("bench", model, "--latency", "--data", video, "--json", target)
        assert_one_line_error(result, "is one of the inputs")  # "report-is-input"
    result = installed("check", model, "-r", run, "--data", video, "--json", checkpoint)
    assert_one_line_error(result, "is one of the inputs")  # "report-is-input"
    result = installed("bench", model, "--data", video, "--json", tmp_path / "missing" / "figures.json")
    assert_one_line_error(result, "does not exist; create it first")  # "report-folder-missing"
    assert {p: p.read_bytes() for p in (model, video, checkpoint)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "model.onnx", "run"]


def test_predict_checks_its_destination_before_the_first_frame(tmp_path, artifact):
    from test_cli import installed

    model = artifact(["minimal_instance_centroid"], ".onnx")
    # /sys refuses new files to every user, root included (chmod would not stop root).
    result = installed("predict", model, VIDEO, "-o", "/sys/p.slp")
    assert_one_line_error(result, "is not writable")  # "predict-read-only-folder"
    result = installed("predict", model, VIDEO, "-o", tmp_path / "p.slp", "--frames", "1090-1200")
    assert_one_line_error(result, "outside the input's 1100 frames (valid: 0-1099)")  # "frames-out-of-range"
    result = installed("predict", model, VIDEO, "-o", tmp_path / "p.slp", "--frames", "5000-6000")
    assert_one_line_error(result, "(valid: 0-1099)")  # "frames-out-of-range"
    assert list(tmp_path.iterdir()) == []


def test_numeric_export_options_outside_their_range(tmp_path):
    from test_cli import installed

    result = installed("onnx", CENTROID, "-o", tmp_path / "m.onnx", "--peak-threshold", "2")
    assert_one_line_error(result, "peak-threshold must be in [0, 1) (a confidence), got 2")  # "option-out-of-range"
    result = installed("onnx", CENTROID, "-o", tmp_path / "m.onnx", "--max-instances", "0")
    assert_one_line_error(result, "max-instances must be at least 1")  # "option-out-of-range"
    result = installed("onnx", CENTROID, "-o", tmp_path / "m.onnx", "--precision", "int9")
    assert_one_line_error(result, "precision must be one of fp32, fp16, int8, got 'int9'")  # "option-out-of-range"
    assert list(tmp_path.iterdir()) == []


def _predict_some(model, output, frames="0-3"):
    from test_cli import installed

    return installed("predict", model, VIDEO, "-o", output, "--frames", frames, "-q")


def test_resume_refuses_another_models_output(tmp_path, artifact):
    centroid = artifact(["minimal_instance_centroid"], ".onnx")
    bottomup = artifact(["minimal_instance_bottomup"], ".onnx")
    output = tmp_path / "p.slp"
    assert _predict_some(centroid, output).returncode == 0
    before = output.read_bytes()
    result = _predict_some(bottomup, output, "0-7")
    assert result.returncode == 2  # exists
    from test_cli import installed

    result = installed("predict", bottomup, VIDEO, "-o", output, "--frames", "0-7", "--resume")
    assert_one_line_error(result, "holds centroid predictions and this artifact is bottomup")  # "resume-other-model"
    foreign = tmp_path / "foreign.slp"
    shutil.copy(DATA / "minimal_instance.pkg.slp", foreign)
    result = installed("predict", centroid, VIDEO, "-o", foreign, "--frames", "0-7", "--resume")
    assert_one_line_error(result, "was not written by sleap-export predict")  # "resume-other-model"
    assert output.read_bytes() == before


def test_a_second_writer_of_the_same_output_is_refused(tmp_path, artifact):
    model = artifact(["minimal_instance_centroid"], ".onnx")
    output = tmp_path / "p.slp"
    lock = tmp_path / "p.slp.lock"
    lock.write_text(str(os.getpid()))  # a live writer: this test process
    result = _predict_some(model, output)
    assert_one_line_error(result, f"Another predict (pid {os.getpid()}) is writing")  # "predict-concurrent-writer"
    assert not output.exists() and lock.read_text() == str(os.getpid())
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(finished.stdout.strip())  # a writer that is gone: its lock is taken over
    assert _predict_some(model, output).returncode == 0
    assert output.exists() and not lock.exists()


def test_labels_and_model_paths_that_are_not_what_they_seem(tmp_path):
    from test_cli import installed

    video = sio.Video(filename=str(tmp_path / "gone.mp4"), open_backend=False)
    skeleton = sio.Skeleton(["A", "B"])
    instance = sio.Instance.from_numpy(np.array([[1.0, 2.0], [3.0, 4.0]]), skeleton=skeleton)
    labels = tmp_path / "labels.slp"
    sio.Labels([sio.LabeledFrame(video=video, frame_idx=0, instances=[instance])], videos=[video], skeletons=[skeleton]).save(str(labels))
    result = installed("predict", CENTROID, labels, "-o", tmp_path / "p.slp")
    assert_one_line_error(result, "gone.mp4, which does not exist")  # "labels-video-missing"
    result = installed("onnx", DATA / "minimal_instance.pkg.slp", "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, "minimal_instance.pkg.slp is a .slp file, not a trained model")  # "labels-as-model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.slp"]


def test_model_paths_that_do_not_combine(tmp_path, assets):
    """predict MODEL [MODEL2] INPUT..., check and bench MODEL [MODEL2]: refused before anything loads."""
    from test_cli import installed

    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    output = tmp_path / "p.slp"
    result = installed("predict", first, second, VIDEO, "-o", output)
    assert_one_line_error(result, "a.onnx and b.onnx are 2 artifacts; pass one")  # "two-artifacts"
    result = installed("bench", first, second)
    assert_one_line_error(result, "a.onnx and b.onnx are 2 artifacts; pass one")  # "two-artifacts"
    result = installed("predict", first, CENTROID, VIDEO, "-o", output)
    assert_one_line_error(result, "a.onnx is an artifact and")  # "artifact-and-run"
    result = installed("check", CENTROID, CENTERED, BOTTOMUP, "-d", VIDEO)
    assert_one_line_error(result, "Got 3 training runs; pass one, or a centroid + centered-instance pair")  # "three-runs"
    result = installed("predict", CENTROID, CENTERED, "-o", output)
    assert_one_line_error(result, "No input after the model(s)")  # "no-input"
    result = installed("predict", VIDEO, first, "-o", output)
    assert_one_line_error(result, "a.onnx is a model but comes after an input; put the model(s) first")  # "model-after-input"
    result = installed("predict", DATA / "minimal_instance.pkg.slp", VIDEO, "-o", output)
    assert_one_line_error(result, "minimal_instance.pkg.slp is not a model; pass an artifact")  # "not-a-model"
    result = installed("predict", tmp_path / "no_such_run", VIDEO, "-o", output)
    assert_one_line_error(result, "no_such_run does not exist; pass an artifact")  # "not-a-model"
    result = installed("check", first, "-d", VIDEO)
    assert_one_line_error(result, "pass them with -r RUN_DIR")  # "check-no-reference"
    result = installed("check", CENTROID, "-r", BOTTOMUP, "-d", VIDEO)
    assert_one_line_error(result, "is not the checkpoint of the run(s) checked", rc=1)  # "check-wrong-reference"
    result = installed("check", CENTROID, CENTERED, "-r", CENTROID, "-d", VIDEO)
    assert_one_line_error(result, "2 training run(s) are checked; pass as many --reference run folders (got 1)")  # "check-reference-count"
    result = installed("bench", CENTROID, "--threads", "2")
    assert_one_line_error(result, "--threads applies to ONNX artifacts")  # "threads-not-onnx"
    assert list(tmp_path.iterdir()) == []


def test_live_refusals(tmp_path, artifact, monkeypatch):
    """sleap-export live: one line, exit 2, before any frame is posed; nothing written."""
    from test_cli import installed

    single = artifact(["minimal_instance_single_instance"], ".onnx")
    robot = DATA / "small_robot.mp4"
    output = tmp_path / "poses.slp"
    result = installed("live", single, "--source", tmp_path / "nope.mp4")
    assert_one_line_error(result, "nope.mp4 does not exist; pass a camera index (0), a device path")  # "live-source-missing"
    result = installed("live", single, "--source", "7")
    assert_one_line_error(result, "Could not read from camera 7; check that it is connected")  # "live-camera-unavailable"
    result = installed("live", artifact([CENTERED.name], ".onnx"), "--source", robot)
    assert_one_line_error(result, "crops around centroids it is given, so it cannot run on camera frames")  # "live-centered-instance"
    for spec, message in [("hooks", "--processor takes module:Class or file.py:Class"),
                          ("no_such_hooks:Trigger", "Cannot import 'no_such_hooks' for --processor")]:
        result = installed("live", single, "--source", robot, "--processor", spec)
        assert_one_line_error(result, message)  # "live-processor-spec"
    result = installed("live", artifact([BOTTOMUP.name], ".onnx"), "--source", VIDEO, "--forecast", "kalman")
    assert_one_line_error(result, "Forward prediction follows each animal by identity")  # "live-forecast-no-identity"
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = installed("live", single, "--source", robot, "--show")
    assert_one_line_error(result, "--show needs a display and none is set")  # "live-no-display"
    result = installed("live", single, "--source", robot, "-o", robot)
    assert_one_line_error(result, "small_robot.mp4 is not a .slp file")  # "predict-output-not-slp"
    assert list(tmp_path.iterdir()) == []
    output.write_bytes(b"keep me")
    result = installed("live", single, "--source", robot, "-o", output)
    assert_one_line_error(result, "poses.slp already exists; pass --overwrite to replace it.")  # "live-output-exists"
    assert output.read_bytes() == b"keep me"
    result = installed("bench", single, "--latency")
    assert_one_line_error(result, "--latency plays a video as a simulated camera; pass one with --data.")  # "bench-latency-usage"
    result = installed("bench", single, "--latency", "--data", robot, "--vs", CENTROID)
    assert_one_line_error(result, "--latency times the model alone; leave out --vs and --runners")  # "bench-latency-usage"
