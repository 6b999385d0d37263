"""``sleap-export bench`` and the predict pipeline's reporting (figures, not timings:
speed is measured by `make bench`, never asserted in tests)."""

from __future__ import annotations

import io
import json
import re

from sleap_export.evaluation.throughput import BatchFigures, BenchReport, run_bench
from sleap_export.runtime.drivers.progress import LogProgress
from conftest import DATA, MODELS
from test_cli import cli, installed

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
    progress = LogProgress(stream, every_s=0.0, label="sleap-nn")
    progress.start(total=10, done=4)
    progress.advance(3)
    progress.advance(3)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "sleap-nn: 4/10 frames"  # at the start, before any fps
    assert lines[1].startswith("sleap-nn: 7/10 frames, ") and "fps, ETA" in lines[1]
    assert lines[-1].startswith("sleap-nn: 10/10 frames")
    assert progress.rate.frames == 6  # the 4 an earlier run did are not this run's


def figures_report(**changes) -> BenchReport:
    """A report with made-up figures (rendering, not timing)."""
    split = {"decode": 3.4, "host pre": 0.01, "network": 190.3, "host post": 0.34, "labels": 0.11}
    values = dict(
        artifact="/models/bottomup_unet_medium_rf.onnx", model_type="bottomup", data="/data/centered_pair_small.mp4",
        frames=200, batches=(BatchFigures(1, 9.6, 8.2, split), BatchFigures(16, 10.7, 10.0, split)),
        latency_ms={"p50": 102.7, "p90": 129.1, "p99": 211.1}, peak_rss_mb=684.0,
        machine={"cpu": "x86_64", "cores": "2", "python": "3.11"}, versions={"onnxruntime": "1.32.0"},
        reference_fps=2.5, reference_batch_size=16, runner_fps={"onnx": 10.7, "eager": 3.1}, parallel_batches=2,
    )
    return BenchReport(**{**values, **changes})


def test_bench_table_reads_at_80_columns_and_defines_its_figures():
    from rich.console import Console

    console = Console(width=80, file=io.StringIO(), color_system=None)
    console.print(figures_report().render())
    text = console.file.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text and "..." not in text
    headers = ("batch", "network fps", "end-to-end fps", "ms/frame", "e2e/network", "decode", "host pre", "host post", "labels")
    for header in headers:
        assert header in text, header
    # Wall-clock ms per frame is 1000 / fps (10.0 fps -> 100.0); the stage split says it is busy time over threads.
    assert re.search(r"│ +16 │ +10\.7 │ +10\.0 │ +100\.0 │", text), text
    assert "busy ms per frame by stage" in text and "2 batches run at once" in text
    assert "1000 / fps" in " ".join(text.split())


def test_bench_runs_a_training_run_eagerly(tmp_path, assets):
    report_path = tmp_path / "bench.json"
    result = installed(
        "bench", MODELS / "minimal_instance_centroid", "-d", VIDEO, "-n", "4", "-b", "2", "--json", report_path, "-q", check_rc=0
    )
    assert result.stdout == result.stderr == ""  # quiet, with the figures in --json
    report = json.loads(report_path.read_text())
    assert report["model_type"] == "centroid" and report["artifact"].endswith("minimal_instance_centroid")
    assert report["parallel_batches"] == 1 and report["batches"][0]["batch_size"] == 2
    figures = report["batches"][0]
    assert abs(figures["wall_ms_per_frame"] * figures["end_to_end_fps"] - 1000) < 1e-6
