"""``sleap-export check`` on every model type, and on an artifact it must fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sleap_export.evaluation.parity_check import check_artifact
from conftest import DATA, MODELS, model_dir
from test_cli import cli, installed

LEGACY = "minimal_instance.UNet."
VIDEO = DATA / "centered_pair_small.mp4"
LABELED = DATA / "minimal_instance.pkg.slp"

# (models, data, export options): 8 frames spread over a video, or the labeled frame.
CHECKED = {
    "single_instance": (["minimal_instance_single_instance"], DATA / "small_robot.mp4", {}),
    "centroid": (["minimal_instance_centroid"], VIDEO, {}),
    "topdown": (["minimal_instance_centroid", "minimal_instance_centered_instance"], VIDEO, {}),
    # Two flies, one kept: sleap-nn's reference is capped as the graph is.
    "topdown_max_instances_1": (["minimal_instance_centroid", "minimal_instance_centered_instance"], VIDEO, {"max_instances": 1}),
    "multi_class_topdown": (
        ["minimal_instance_centroid", "minimal_instance_multiclass_centered_instance"],
        LABELED,
        {"instance_peak_threshold": 0.01},  # the shared model's maps peak near 0.017
    ),
    "centered_instance": (["minimal_instance_centered_instance"], LABELED, {}),
    "multi_class_centered_instance": (
        ["minimal_instance_multiclass_centered_instance"],
        LABELED,
        {"instance_peak_threshold": 0.01},
    ),
    "bottomup": (["minimal_instance_bottomup"], VIDEO, {}),
    "multi_class_bottomup": (["minimal_instance_multiclass_bottomup"], LABELED, {}),
    "legacy_topdown": ([LEGACY + "centroid", LEGACY + "centered_instance"], VIDEO, {}),
    "legacy_bottomup": ([LEGACY + "bottomup"], VIDEO, {}),
}


@pytest.mark.parametrize("name", sorted(CHECKED))
def test_check_passes_on_every_model_type(name, artifact):
    models, data, options = CHECKED[name]
    report = check_artifact(artifact(models, ".onnx", **options), [model_dir(m) for m in models], data, frames=8)
    assert report, report.failures
    assert report.comparison.frames == (1 if data == LABELED else 8)
    assert report.comparison.matched_instances > 0
    if data == LABELED:
        truth = report.ground_truth
        assert truth is not None and truth.labeled_frames == 1
        assert abs(truth.mean_px_artifact - truth.mean_px_reference) < 0.05


@pytest.fixture(scope="session")
def half_scale_centroid(tmp_path_factory) -> Path:
    """The centroid run with input scale 0.5 in its config: an artifact exported
    from it has the wrong input scale baked in (same weights, same checksum)."""
    folder = tmp_path_factory.mktemp("half_scale") / "minimal_instance_centroid"
    folder.mkdir()
    shutil.copy(MODELS / "minimal_instance_centroid" / "best.ckpt", folder)
    config = (MODELS / "minimal_instance_centroid" / "training_config.yaml").read_text()
    assert "    scale: 1.0\n" in config
    (folder / "training_config.yaml").write_text(config.replace("    scale: 1.0\n", "    scale: 0.5\n", 1))
    return folder


def test_check_fails_an_artifact_with_the_wrong_input_scale(half_scale_centroid, tmp_path):
    broken = tmp_path / "broken.onnx"
    cli("onnx", half_scale_centroid, "-o", broken)
    report_path = tmp_path / "report.json"
    result = cli(
        "check", broken, "-r", MODELS / "minimal_instance_centroid", "-d", VIDEO, "-n", "6", "--json", report_path, "-q", check_rc=1
    )
    # Quiet: no progress and no report table, only the failure's one line (and the JSON asked for).
    assert result.stdout == "" and result.stderr.count("\n") == 1 and result.stderr.startswith("check failed: "), result.stderr
    report = json.loads(report_path.read_text())
    assert report["passed"] is False and report["frames"] == 6
    assert report["keypoint_deviation_px"]["p99"] > 1.0 or report["count_agreement"] < 0.99


def test_export_check_keeps_a_passing_artifact(tmp_path, assets):
    good = tmp_path / "good.onnx"
    result = cli("onnx", MODELS / "minimal_instance_centroid", "-o", good, "--check", VIDEO, "--check-frames", "4")
    assert good.exists() and "PASS" in result.stderr


def test_export_check_removes_a_failing_artifact(tmp_path, monkeypatch, capsys, assets):
    """In-process, with a tolerance no artifact meets (negative deviation), so the
    report fails for real and the export must remove what it wrote."""
    import sleap_export.evaluation.parity_check
    from sleap_export import cli as command_line

    real_check = sleap_export.evaluation.parity_check.check_artifact
    monkeypatch.setattr(sleap_export.evaluation.parity_check, "check_artifact", lambda *a, **k: real_check(*a, **{**k, "max_deviation": -1.0}))
    output = tmp_path / "model.onnx"
    argv = ["sleap-export", "onnx", str(MODELS / "minimal_instance_centroid"), "-o", str(output), "--check", str(VIDEO), "--check-frames", "2"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        command_line.main()
    assert exit_info.value.code == 1
    assert "failed its check" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_check_cli_passes_and_writes_json(artifact, tmp_path):
    model = artifact(["minimal_instance_bottomup"], ".onnx")
    report_path = tmp_path / "report.json"
    result = cli("check", model, "-r", MODELS / "minimal_instance_bottomup", "-d", VIDEO, "-n", "4", "--json", report_path)
    assert "PASS" in result.stdout
    # Progress for each side, off a terminal as log lines: from the start, and when done.
    for side in (model.name, "sleap-nn"):
        assert f"{side}: 0/4 frames\n" in result.stderr and f"{side}: 4/4 frames, " in result.stderr, result.stderr
    report = json.loads(report_path.read_text())
    assert report["passed"] and report["count_agreement"] == 1.0
    assert set(report["keypoint_deviation_px_per_node"]) == {"A", "B"}
    assert report["keypoint_deviation_px"]["max"] < 0.01
    # How many peaks a tie decided (issue 46: a check of 50 spread frames can miss one).
    ties = report["peak_ties"]
    assert ties["peaks"] >= 4 and 0 <= ties["tied"] <= ties["peaks"]
    assert f"ties: {ties['tied']} of {ties['peaks']} local peaks sit on an exact or near tie" in " ".join(result.stdout.split())


def test_check_a_training_run_against_sleap_nn(tmp_path, assets):
    """A run folder as the model: our graph, run eagerly, held to sleap-nn on the same run (no -r needed)."""
    report_path = tmp_path / "report.json"
    result = installed("check", MODELS / "minimal_instance_centroid", "-d", VIDEO, "-n", "2", "--json", report_path, "-q")
    assert result.returncode == 0 and result.stdout == result.stderr == "", result.stderr
    report = json.loads(report_path.read_text())
    assert report["passed"] and report["frames"] == 2 and report["matched_instances"] > 0
    assert report["references"] == [str(MODELS / "minimal_instance_centroid")]
