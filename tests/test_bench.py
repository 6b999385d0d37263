"""``sleap-export bench`` and the predict pipeline's reporting (figures, not timings:
speed is measured by `make bench`, never asserted in tests)."""

from __future__ import annotations

import io
import json

from sleap_export.bench import run_bench
from sleap_export.progress import LogProgress
from conftest import DATA, MODELS
from test_cli import cli

VIDEO = DATA / "centered_pair_small.mp4"


def test_bench_cli_reports_every_batch_size(artifact, tmp_path):
    model = artifact(["minimal_instance_centroid"], ".onnx")
    report_path = tmp_path / "bench.json"
    result = cli("bench", model, "-d", VIDEO, "-n", "8", "-b", "1,2", "--json", report_path)
    assert "latency at batch 1" in result.stdout
    report = json.loads(report_path.read_text())
    assert [b["batch_size"] for b in report["batches"]] == [1, 2]
    for batch in report["batches"]:
        assert batch["network_fps"] > 0 and batch["end_to_end_fps"] > 0
        assert {"decode", "host pre", "network", "host post", "labels"} <= set(batch["split_ms"])
    assert set(report["latency_ms"]) == {"p50", "p90", "p99"}
    assert report["peak_rss_mb"] > 0 and report["frames"] == 8


def test_bench_against_sleap_nn_and_other_runners(artifact):
    model = artifact(["minimal_instance_centroid"], ".onnx")
    report = run_bench(
        model, VIDEO, batch_sizes=(2,), frames=8, vs=[MODELS / "minimal_instance_centroid"], runners=("onnx", "eager")
    )
    assert report.reference_fps > 0 and report.speedup_vs_reference > 0
    assert set(report.runner_fps) == {"onnx", "eager"}
    assert json.dumps(report.as_dict())  # JSON-ready for CI


def test_log_progress_prints_done_total_fps_and_eta():
    stream = io.StringIO()
    progress = LogProgress(stream, every_s=0.0)
    progress.start(total=10, done=4)
    progress.advance(3)
    progress.advance(3)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("7/10 frames, ") and "fps, ETA" in lines[0]
    assert lines[-1].startswith("10/10 frames")
