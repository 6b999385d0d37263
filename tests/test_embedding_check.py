"""`check`, `bench` and `live` of a lone embedding artifact (one embedding run, exported alone), through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, model_dir
from test_cli import assert_one_line_error

BIN = Path(sys.executable).parent
# 2 labeled frames, 4 tracked pose instances: the detections embedded.
LABELS = "minimal_instance6_tracked_val2f.pkg.slp"


def sleap_export(*args) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "sleap-export", *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def embedding(artifact) -> Path:
    return artifact(["new_embedding"], ".onnx")


def check(embedding: Path, data: Path, *extra) -> subprocess.CompletedProcess:
    return sleap_export("check", embedding, "-r", model_dir("new_embedding"), "-d", data, "-n", 2, "-q", *extra)


def test_check_holds_the_vectors_to_sleap_nn(embedding, assets, tmp_path):
    """Both sides embed the same 4 detections; every vector element agrees within 5e-4 (exit 0), and a
    tolerance below the measured deviation fails the check (exit 1)."""
    report = tmp_path / "check.json"
    result = check(embedding, DATA / LABELS, "--json", report)
    assert result.returncode == 0, result.stderr
    figures = json.loads(report.read_text())
    assert figures["passed"] and figures["compared"] == "embeddings"
    assert figures["frames"] == 2 and figures["embedded_artifact"] == figures["embedded_reference"] == figures["paired"] == 4
    deviation = figures["vector_element_deviation"]
    assert deviation["n"] == 4 * 32 and 0 < deviation["max"] <= 1e-4 and figures["tolerance"] == 5e-4

    strict = tmp_path / "strict.json"
    result = check(embedding, DATA / LABELS, "--json", strict, "--max-deviation", deviation["max"] / 2)
    assert result.returncode == 1
    assert "check failed: vector element deviation max" in result.stderr
    figures = json.loads(strict.read_text())
    assert not figures["passed"] and figures["tolerance"] == deviation["max"] / 2


def test_check_refuses_a_video(embedding, assets, tmp_path):
    """"check-embedding-video": a lone embedding run embeds a .slp's detections; no report is written."""
    report = tmp_path / "check.json"
    result = check(embedding, DATA / "centered_pair_small.mp4", "--json", report)
    assert_one_line_error(result, "centered_pair_small.mp4 is not a .slp: a lone embedding model embeds the detections")
    assert "pass -d LABELS.slp, or export the embedding run with a centroid run" in result.stderr
    assert not report.exists()


def test_bench_times_the_embedding_of_labels(embedding, assets, tmp_path):
    """bench -d LABELS.slp: the labels' detections embedded, against sleap-nn's predict_embeddings_to_slp (--vs)."""
    figures_path = tmp_path / "bench.json"
    result = sleap_export(
        "bench", embedding, "-d", DATA / LABELS, "-b", "1,2", "--vs", model_dir("new_embedding"),
        "--json", figures_path, "-q",
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(figures_path.read_text())
    assert figures["model_type"] == "embedding" and figures["predicts"] == "vectors" and figures["frames"] == 2
    assert [b["batch_size"] for b in figures["batches"]] == [1, 2]
    assert all(b["network_fps"] > 0 and b["end_to_end_fps"] > 0 for b in figures["batches"])
    assert figures["reference_fps"] > 0 and figures["speedup_vs_reference"] > 0


def test_bench_refuses_a_video_and_tracking(embedding, assets, tmp_path):
    """"bench-embedding-video" and "bench-embedding-tracking": bench names the fix that works; nothing written."""
    figures_path = tmp_path / "bench.json"
    result = sleap_export("bench", embedding, "-d", DATA / "centered_pair_small.mp4", "--json", figures_path)
    assert_one_line_error(result, "bench times a lone embedding model on the detections of a .slp, not on centered_pair_small.mp4")
    result = sleap_export("bench", embedding, "-d", DATA / LABELS, "--tracking", "--json", figures_path)
    assert_one_line_error(result, "bench --tracking times pose tracking on a video and a lone embedding model")
    assert not figures_path.exists()


def test_live_names_the_export_that_runs_on_frames(embedding, assets):
    """"live-embedding": an embedding artifact is told to export with a centroid run."""
    result = sleap_export("live", embedding, "--source", DATA / "centered_pair_small.mp4")
    assert_one_line_error(
        result,
        "An embedding artifact crops around centroids it is given, so it cannot run on camera frames alone; "
        "export the embedding run with a centroid run",
    )
