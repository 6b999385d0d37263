"""OpenVINO's CPU plugin on our ONNX artifacts: fp32 parity with ONNX Runtime on every
model type, dynamic batch and size, bf16 networks with fp32 decoding, int8 QDQ, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import attrs
import numpy as np
import pytest
import sleap_io as sio

from sleap_export.core.tolerances import tolerance_for
from sleap_export.core.comparison import compare_poses
from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.runtime.artifacts.formats import read_spec
from sleap_export.runtime.backends.openvino_runner import CACHE_FOLDER
from sleap_export.runtime import load
from conftest import DATA
from parity import our_predictions
from test_cli import command_imports, installed

CENTROID = "minimal_instance_centroid"
VIDEO = DATA / "centered_pair_small.mp4"
LABELS = DATA / "minimal_instance.pkg.slp"
# Every model type: its runs, the data it predicts on, export options (as tests/test_parity.py exports them).
MODEL_TYPES = {
    "single_instance": (["minimal_instance_single_instance"], DATA / "small_robot.mp4", {}),
    "centroid": ([CENTROID], VIDEO, {}),
    "centered_instance": (["minimal_instance_centered_instance"], LABELS, {}),
    "multi_class_centered_instance": (
        ["minimal_instance_multiclass_centered_instance"], LABELS, {"instance_peak_threshold": 0.01}
    ),
    "topdown": ([CENTROID, "minimal_instance_centered_instance"], VIDEO, {}),
    "multi_class_topdown": (
        [CENTROID, "minimal_instance_multiclass_centered_instance"], VIDEO, {"instance_peak_threshold": 0.01}
    ),
    "bottomup": (["minimal_instance_bottomup"], VIDEO, {}),
    "multi_class_bottomup": (["minimal_instance_multiclass_bottomup"], VIDEO, {}),
}
# A few frames of the video; batches of 3 give a last batch of 2 (dynamic batch).
FRAMES = list(range(0, 160, 20))
# fp32 rounding, as test_parity.py holds ONNX Runtime to sleap-nn: peak refinement amplifies
# differences in summation order (measured here: at most 2.5e-4 px on poses, 1.6e-3 px on raw centroids).
FP32_PX = 0.01


def _cpu_has_bf16() -> bool:
    import openvino

    from sleap_export.runtime.backends.openvino_runner import supports_bf16

    return supports_bf16(openvino.Core())


def _refuses_bf16_without_instructions(path) -> bool:
    """On a CPU without bf16: whether bf16 is refused in one line (then there is nothing else to test)."""
    if _cpu_has_bf16():
        return False
    with pytest.raises(SleapExportError, match="no bf16 instructions"):
        load(path, runtime="openvino", precision="bf16").activate()
    return True


def _predictions(runner, source):
    return our_predictions(runner, str(source), frames=None if source.suffix == ".slp" else FRAMES, batch_size=3)


@pytest.mark.parametrize("model_type", sorted(MODEL_TYPES))
def test_openvino_fp32_matches_onnx_runtime_on_every_model_type(model_type, artifact):
    models, source, options = MODEL_TYPES[model_type]
    path = artifact(models, ".onnx", **options)
    assert read_spec(path).model_type == model_type
    ours = _predictions(load(path, runtime="openvino"), source)
    onnxruntime = _predictions(load(path), source)
    comparison = compare_poses(
        ours.poses, onnxruntime.poses, tolerance_px=FP32_PX, percentile=100.0,
        ours_tracks=ours.tracks, reference_tracks=onnxruntime.tracks,
    )
    assert comparison.matched_instances > 0, "no instances to compare"
    assert comparison.count_agreement == 1.0 and comparison.track_mismatches == 0
    assert comparison.max_deviation <= FP32_PX, comparison.summary()


def test_openvino_takes_any_batch_and_frame_size(artifact):
    path = artifact([CENTROID], ".onnx")
    video = sio.load_video(str(VIDEO))
    frames = np.stack([video[i] for i in range(5)])
    padded = np.zeros((5, 413, 397, frames.shape[-1]), np.uint8)
    padded[:, : frames.shape[1], : frames.shape[2]] = frames[:, :413, :397]
    openvino, onnxruntime = load(path, runtime="openvino"), load(path)
    with openvino, onnxruntime:
        for batch in (frames[:1], frames, frames[:3, :250, :301], padded):
            ours, theirs = openvino.infer(batch), onnxruntime.infer(batch)
            for name, value in theirs.items():
                assert ours[name].shape == value.shape, name
                if value.dtype.kind == "f":
                    np.testing.assert_allclose(ours[name], value, atol=FP32_PX, rtol=0, equal_nan=True, err_msg=name)
                else:
                    np.testing.assert_array_equal(ours[name], value, err_msg=name)
    # The compiled model was cached beside the artifact for the next load.
    assert any((path.parent / CACHE_FOLDER).iterdir())


@pytest.mark.parametrize("model_type", ["topdown", "multi_class_topdown"])
def test_top_down_batches_without_any_animal_run_under_both_runtimes(model_type, artifact):
    """No centroid in the batch: the graph runs one placeholder crop (OpenVINO cannot run zero)
    and reports no instance; a batch with animals beside it is unaffected."""
    runs, video, options = MODEL_TYPES[model_type]
    path = artifact(runs, ".onnx", **options)
    frame = sio.load_video(str(video))[0]
    blank = np.zeros((3, *frame.shape), np.uint8)
    openvino, onnxruntime = load(path, runtime="openvino"), load(path)
    with openvino, onnxruntime:
        for runner in (openvino, onnxruntime):
            for batch in (blank[:1], blank):
                outputs = runner.infer(batch)
                assert not outputs["instance_valid"].any() and np.isnan(outputs["pred_keypoints"]).all()
        mixed = np.concatenate([blank[:1], frame[None]])
        ours, theirs = openvino.infer(mixed), onnxruntime.infer(mixed)
        assert theirs["instance_valid"][1].any() and not theirs["instance_valid"][0].any()
        np.testing.assert_array_equal(ours["instance_valid"], theirs["instance_valid"])
        np.testing.assert_allclose(ours["pred_keypoints"], theirs["pred_keypoints"], atol=FP32_PX, rtol=0, equal_nan=True)


def test_bf16_lowers_the_networks_only(artifact):
    """Against fp32: keypoints move by the networks' rounding only. OpenVINO's own hint, which
    lowers the decoding too, fails the same bound (so this test can fail)."""
    import openvino

    models, source, _ = MODEL_TYPES["single_instance"]
    path = artifact(models, ".onnx")
    if _refuses_bf16_without_instructions(path):
        return
    fp32 = _predictions(load(path, runtime="openvino"), source).poses
    bf16 = _predictions(load(path, runtime="openvino", precision="bf16"), source).poses
    whole_graph = load(path, runtime="openvino")
    core = openvino.Core()
    whole_graph.compile = lambda: core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    lowered_decoding = _predictions(whole_graph, source).poses
    # Measured on these 8 frames: median 0.05 px (bf16 networks), 156 px (the whole graph in bf16).
    assert np.median(compare_poses(bf16, fp32).deviations) < 0.5
    assert np.median(compare_poses(lowered_decoding, fp32).deviations) > 5


def test_bf16_topdown_passes_the_reduced_precision_tolerance(artifact):
    models, source, _ = MODEL_TYPES["topdown"]
    path = artifact(models, ".onnx")
    if _refuses_bf16_without_instructions(path):
        return
    tolerance = tolerance_for("bf16")
    fp32 = _predictions(load(path), source).poses
    bf16 = _predictions(load(path, runtime="openvino", precision="bf16"), source).poses
    comparison = compare_poses(bf16, fp32, tolerance_px=tolerance.max_deviation_px, percentile=tolerance.percentile)
    assert comparison.count_agreement >= tolerance.min_agreement
    assert comparison.deviation_at(tolerance.percentile) <= tolerance.max_deviation_px, comparison.summary()


def test_check_holds_bf16_networks_to_the_reduced_precision_tolerance(tmp_path, artifact):
    """The report is bf16's, against bf16's tolerance; whether the shared centroid model meets it is
    the measurement (on 8 frames: 7 of 8 frames with sleap-nn's count, so no)."""
    import json

    from conftest import model_dir

    path = artifact([CENTROID], ".onnx")
    if _refuses_bf16_without_instructions(path):
        return
    report = tmp_path / "check.json"
    done = installed(
        "check", path, "-r", model_dir(CENTROID), "-d", VIDEO, "-n", 8, "--runtime", "openvino", "--precision", "bf16",
        "--json", report, "-q",
    )
    figures = json.loads(report.read_text())
    # The export gate's vector cosine is left out of check's JSON (check holds poses to sleap-nn's).
    pose_tolerance = attrs.asdict(tolerance_for("bf16"), filter=lambda field, _: field.name != "min_vector_cosine")
    assert figures["precision"] == "bf16" and figures["tolerance"] == pose_tolerance
    assert done.returncode == (0 if figures["passed"] else 1), done.stderr
    assert figures["keypoint_deviation_px"]["p50"] < 0.5


def test_int8_qdq_artifact_runs_under_openvino_and_refuses_bf16(artifact):
    with pytest.warns(UserWarning, match="on 8 frames"):
        # This tests OpenVINO on int8 graphs, not int8's accuracy: kept whatever its gate says.
        path = artifact(
            [CENTROID], ".onnx", precision="int8", calibration=str(VIDEO), calibration_frames=8, keep_inaccurate=True
        )
    ours = _predictions(load(path, runtime="openvino"), VIDEO)
    onnxruntime = _predictions(load(path), VIDEO)
    tolerance = tolerance_for("int8")
    comparison = compare_poses(ours.poses, onnxruntime.poses, tolerance_px=tolerance.max_deviation_px, percentile=99.0)
    assert comparison.matched_instances > 0 and comparison.count_agreement >= tolerance.min_agreement
    assert comparison.deviation_at(99.0) <= tolerance.max_deviation_px, comparison.summary()
    with pytest.raises(InputError, match="already int8"):
        load(path, runtime="openvino", precision="bf16")


def test_predict_runtime_openvino_through_the_installed_command(tmp_path, artifact):
    model = artifact([CENTROID], ".onnx")
    output = tmp_path / "p.slp"
    installed("predict", model, VIDEO, "--frames", "0-3", "-o", output, "--runtime", "openvino", "-q", check_rc=0)
    assert len(sio.load_slp(str(output)).labeled_frames) == 4
    for args, message in (
        (["--precision", "bf16"], "add --runtime openvino"),
        (["--runtime", "tensorflow"], "run with onnxruntime or openvino, not 'tensorflow'"),
        (["--runtime", "openvino", "--precision", "fp8"], "choose one of fp32, bf16"),
    ):
        done = installed("predict", model, VIDEO, "--frames", "0-3", "-o", tmp_path / "x.slp", *args, check_rc=2)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not (tmp_path / "x.slp").exists()


def _installed_with(tmp_path, stand_in: dict[str, str], *args) -> subprocess.CompletedProcess:
    """The installed command with ``stand_in`` modules ({dotted name: source}) ahead on its path."""
    folder = tmp_path / f"stand-in-{len(list(tmp_path.glob('stand-in-*')))}"
    for name, source in stand_in.items():
        file = folder / (name.replace(".", "/") + ".py")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(source)
    command = [str(Path(sys.executable).parent / "sleap-export"), *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(folder)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_openvino_failures_are_one_line_and_leave_no_output(tmp_path, artifact):
    model = artifact([CENTROID], ".onnx")
    output = tmp_path / "p.slp"
    predict = ("predict", model, VIDEO, "--frames", "0-1", "-o", output, "--runtime", "openvino", "-q")
    # OpenVINO runs but refuses the graph, as its CPU plugin does on a CPU it cannot serve.
    refusal = (
        "import openvino\n"
        "def refuse(*args, **kwargs):\n"
        "    raise RuntimeError('Exception from src/inference/src/cpp/core.cpp:117:\\n'\n"
        "                       'Exception from src/plugins/intel_cpu/src/plugin.cpp:1:\\n'\n"
        "                       'Unsupported CPU: no AVX2\\n')\n"
        "openvino.Core.compile_model = refuse\n"
    )
    done = _installed_with(tmp_path, {"sitecustomize": refusal}, *predict)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        f"error: OpenVINO could not compile {model.name} (Unsupported CPU: no AVX2); run it with --runtime onnxruntime."
    )
    assert not output.exists()
    # OpenVINO not installed: a package of that name that fails to import stands in for it.
    done = _installed_with(tmp_path, {"openvino.__init__": "raise ImportError('simulated')\n"}, *predict)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        "error: OpenVINO is not installed; install it with pip install 'sleap-export[openvino]' "
        "(from a source checkout: pip install -e '.[openvino]'), or use --runtime onnxruntime."
    )
    assert not output.exists()


def test_help_and_onnx_runtime_predict_do_not_import_openvino(tmp_path, artifact):
    model = artifact([CENTROID], ".onnx")
    for args in (["predict", "--help"], ["predict", str(model), str(VIDEO), "--frames", "0-1", "-o", str(tmp_path / "p.slp"), "-q"]):
        assert not command_imports("openvino", *args), args


def test_every_runtime_a_format_names_is_a_runner():
    from sleap_export.runtime.artifacts.formats import FORMATS
    from sleap_export.runtime.backends.runner import Runner

    for fmt in FORMATS:
        for runtime in (None, fmt.default_runtime, *fmt.runtimes):
            assert issubclass(fmt.runner_class(runtime), Runner), (fmt.name, runtime)
        with pytest.raises(InputError, match=f"{fmt.title} artifacts run with {fmt.default_runtime}"):
            fmt.runner_class("no-such-runtime")


def test_bf16_is_refused_in_one_line_on_a_cpu_without_it(monkeypatch, artifact):
    from sleap_export.runtime.backends import openvino_runner as runner_module

    monkeypatch.setattr(runner_module, "supports_bf16", lambda core: False)
    runner = load(artifact([CENTROID], ".onnx"), runtime="openvino", precision="bf16")
    with pytest.raises(SleapExportError, match="^This CPU has no bf16 instructions") as refused:
        runner.activate()
    assert "\n" not in str(refused.value)
