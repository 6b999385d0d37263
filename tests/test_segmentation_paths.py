"""Segmentation artifacts (issue 35) through check, bench, inspect, OpenVINO and the TensorRT graph checks.

The artifacts are exported with non-default baked settings, the same as test_segmentation's
(so a session exports them once): check must carry them to sleap-nn, inspect must show them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from conftest import DATA, model_dir
from test_cli import installed
from test_tensorrt import TENSORRT_PARSER_OPS, ops_of, tensorrt_type_problems

VIDEO = DATA / "centered_pair_small.mp4"
SEMANTIC = ["new_semantic_segmentation"]
BOTTOM_UP = ["new_bottomup_segmentation"]
TOP_DOWN = ["minimal_instance_centroid", "new_centered_instance_segmentation"]
# (runs, baked export settings): test_segmentation's "fg0.3-area2000", "kernel5-merge-area" and
# "fg0.7-centroids0.4" exports.
MODELS = {
    "semantic": (SEMANTIC, {"fg_threshold": 0.3}),
    "bottomup": (BOTTOM_UP, {"center_nms_kernel": 5, "peak_threshold": 0.3}),
    "topdown": (TOP_DOWN, {"fg_threshold": 0.7, "peak_threshold": 0.4}),
}
KINDS = sorted(MODELS)


def exported(artifact, kind: str) -> Path:
    runs, settings = MODELS[kind]
    return artifact(runs, ".onnx", **settings)


def references(kind: str) -> list[Path]:
    return [model_dir(run) for run in MODELS[kind][0]]


def wide(*args) -> subprocess.CompletedProcess:
    """The installed command with a 200-column console, so rich tables keep each cell on one line."""
    command = Path(sys.executable).parent / "sleap-export"
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(command), *map(str, args)], capture_output=True, text=True, timeout=600, env=env)


# check


def test_check_command_passes_and_reports_mask_iou(artifact, tmp_path):
    """Bottom-up masks with a 5x5 center window and center threshold 0.3 baked in: sleap-nn runs with both."""
    report_path = tmp_path / "report.json"
    refs = [arg for run in references("bottomup") for arg in ("-r", run)]
    result = wide("check", exported(artifact, "bottomup"), *refs, "-d", VIDEO, "-n", "2", "--json", report_path)
    assert result.returncode == 0, result.stderr
    for line in ("PASS", "masks per frame", "artifact", "sleap-nn", "mask counts agree on 100.0% (0 differ)",
                 "identical (100.00%), 0 differ, worst IoU -", "score difference max"):
        assert line in result.stdout, result.stdout
    report = json.loads(report_path.read_text())
    assert report["passed"] and report["compared"] == "masks" and report["model_type"] == "bottomup_segmentation"
    assert report["frames"] == 2 and report["count_agreement"] == 1.0
    assert report["matched_masks"] > 0 and report["identical_share"] == 1.0 and report["worst_iou"] is None
    assert report["masks_per_frame_artifact"] == report["masks_per_frame_reference"]
    assert report["max_score_difference"] <= 1e-5


@pytest.mark.parametrize("kind", ["semantic", "topdown"])
def test_check_holds_the_baked_thresholds_to_sleap_nn(kind, artifact):
    """fg_threshold 0.3 (semantic), fg_threshold 0.7 and centroid threshold 0.4 (top-down) reach sleap-nn."""
    from sleap_export.evaluation.parity_check import MaskCheckReport, check_artifact

    report = check_artifact(exported(artifact, kind), references(kind), VIDEO, frames=2)
    assert isinstance(report, MaskCheckReport)
    assert report, report.failures
    assert report.comparison.matched > 0 and report.comparison.identical == report.comparison.matched
    assert report.counts_artifact == report.counts_reference


def test_check_fails_masks_sleap_nn_thresholds_otherwise(artifact, monkeypatch, capsys):
    """The semantic artifact's foreground threshold is 0.3; sleap-nn forced to its default 0.5 finds
    other masks (measured on 4 frames: none identical, worst IoU 0.976), and check exits 1."""
    import sleap_export.evaluation.parity_check as parity_check
    from sleap_export import cli as command_line

    real = parity_check._reference_settings
    monkeypatch.setattr(parity_check, "_reference_settings", lambda spec, masks=None: {**real(spec, masks), "fg_threshold": 0.5})
    argv = ["sleap-export", "check", str(exported(artifact, "semantic")), "-r", str(references("semantic")[0]),
            "-d", str(VIDEO), "-n", "2", "-q"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        command_line.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("check failed: ") and "matched masks differ in more than 0 pixel(s) beyond ties" in err, err


def test_check_refuses_a_keypoint_tolerance_for_masks(artifact):
    from sleap_export.core.errors import InputError
    from sleap_export.evaluation.parity_check import check_artifact

    with pytest.raises(InputError, match="--max-deviation is a keypoint tolerance and semantic_segmentation models predict masks"):
        check_artifact(exported(artifact, "semantic"), references("semantic"), VIDEO, frames=2, max_deviation=1.0)


# bench


def test_bench_command_times_masks(artifact, tmp_path):
    """fps end to end with the masks decoded on the host and written as Labels, as for poses."""
    figures_path = tmp_path / "bench.json"
    result = wide("bench", exported(artifact, "semantic"), "-d", VIDEO, "-n", "2", "-b", "2", "--json", figures_path)
    assert result.returncode == 0, result.stderr
    assert "latency at batch 1 (frame in, masks out)" in result.stdout, result.stdout
    figures = json.loads(figures_path.read_text())
    assert figures["model_type"] == "semantic_segmentation" and figures["predicts"] == "masks"
    assert figures["frames"] == 2 and figures["batches"][0]["end_to_end_fps"] > 0
    assert figures["batches"][0]["split_ms"]["host post"] > 0  # the masks' decoding is timed


def test_bench_tracking_refuses_masks(artifact):
    result = installed("bench", exported(artifact, "semantic"), "-d", VIDEO, "--tracking")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "bench --tracking times pose tracking and a semantic_segmentation model predicts masks" in result.stderr


# inspect


@pytest.mark.parametrize(
    "kind, shown",
    [
        ("semantic", ["one foreground mask per frame", "fg_threshold 0.3"]),
        ("bottomup", ["fg_threshold 0.5", "peak_threshold 0.3", "center_nms_kernel 5", "pred_center_candidates"]),
        ("topdown", ["fg_threshold 0.7", "centroids: peak_threshold 0.4", "pred_crop_masks", "stage 1"]),
    ],
)
def test_inspect_shows_the_segmentation_settings(kind, shown, artifact):
    model = exported(artifact, kind)
    result = wide("inspect", model)
    assert result.returncode == 0, result.stderr
    model_type = {"semantic": "semantic_segmentation", "bottomup": "bottomup_segmentation", "topdown": "topdown_segmentation"}[kind]
    assert f"{model.name}: {model_type}" in result.stdout
    for text in ["predicts", "decoding", "outputs", "not predicted", *shown]:
        assert text in result.stdout, result.stdout


# OpenVINO


@pytest.mark.parametrize("kind", KINDS)
def test_openvino_masks_equal_onnx_runtimes(kind, artifact):
    """10 frames: identical masks (pixels, scale, offset) and counts; scores within 1e-5 (measured:
    every mask identical; the uint8 maps the graphs output equal; scores within 4e-6)."""
    from sleap_export.core.mask_comparison import compare_masks, masks_by_frame
    from sleap_export.runtime.drivers.predictor import Predictor
    from sleap_export.runtime.open_model import ModelOptions, open_model

    model = exported(artifact, kind)
    predicted = {
        runtime: Predictor(open_model(model, ModelOptions(runtime=runtime)), batch_size=4).predict(
            str(VIDEO), frames=list(range(10)), progress=None
        )
        for runtime in ("onnxruntime", "openvino")
    }
    comparison = compare_masks(
        masks_by_frame(predicted["openvino"]), masks_by_frame(predicted["onnxruntime"]), (384, 384), min_identical_share=1.0
    )
    assert comparison and comparison.matched >= 10, comparison.summary()
    assert comparison.max_score_difference <= 1e-5, comparison.summary()


# TensorRT, without a GPU


@pytest.mark.parametrize("kind", KINDS)
def test_segmentation_graphs_use_only_ops_the_tensorrt_parser_imports(kind, artifact):
    from sleap_export.exporting.writers.tensorrt_writer import engine_graph
    from sleap_export.runtime.artifacts.formats import read_spec

    model = exported(artifact, kind)
    used = ops_of(engine_graph(onnx.load(str(model)), read_spec(model)).graph)
    assert {"Sigmoid", "MaxPool", "ReduceSum", "Cast"} <= used
    assert used <= TENSORRT_PARSER_OPS, f"check onnx-tensorrt's operator matrix for {sorted(used - TENSORRT_PARSER_OPS)}"


@pytest.mark.parametrize("kind", KINDS)
def test_segmentation_graphs_use_tensor_types_tensorrt_takes(kind, artifact):
    from sleap_export.exporting.writers.tensorrt_writer import engine_graph
    from sleap_export.runtime.artifacts.formats import read_spec

    model = exported(artifact, kind)
    problems = tensorrt_type_problems(engine_graph(onnx.load(str(model)), read_spec(model)))
    assert not problems, f"TensorRT refuses these tensor types: {problems}"
