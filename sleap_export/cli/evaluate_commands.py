"""``check`` and ``bench``: parse, run `check_artifact` / `run_bench` / `latency_report`, print."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from sleap_export.cli.common import MODEL_HELP, QUIET, RUNTIME, RUNTIME_PRECISION, SPIN, WARM_AHEAD, model_options, quiet, waiting
from sleap_export.core.errors import InputError


def check(
    models: List[Path] = typer.Argument(..., help=MODEL_HELP + " Two runs: a centroid + centered-instance pair."),
    reference: List[Path] = typer.Option(
        [], "--reference", "-r",
        help="Run folder an artifact was exported from (repeat for top-down: -r CENTROID -r INSTANCE); "
        "for training runs, default: those runs.",
    ),
    data: Path = typer.Option(..., "--data", "-d", help="Video, or .slp labels (ground-truth errors are reported too)."),
    frames: int = typer.Option(50, "--frames", "-n", min=1, help="Frames to compare (spread over a video; first labeled frames of a .slp)."),
    max_deviation: Optional[float] = typer.Option(
        None, "--max-deviation", min=0.0,
        help="Max p99 keypoint deviation in px (default by precision: fp32 0.05, fp16 1, int8 3, bf16 3); "
        "a lone embedding model: max vector element deviation (default 5e-4); not for masks (see --mask-tolerance).",
    ),
    mask_tolerance: Optional[int] = typer.Option(
        None, "--mask-tolerance", min=0,
        help="Segmentation models: most pixels (of the mask's stored grid) a mask may differ from sleap-nn's "
        "beyond ties (default 0: identical but for ties).",
    ),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON here."),
    runtime: Optional[str] = RUNTIME,
    precision: Optional[str] = RUNTIME_PRECISION,
    quiet_flag: bool = QUIET,
):
    """Compare a model with sleap-nn's own inference on the same frames; exit 1 when out of tolerance.

    Pose models: instance counts and keypoint deviations. Segmentation models: mask
    counts per frame and every mask identical to sleap-nn's but for ties (pixels
    whose value sat within a rounding margin of the foreground threshold or of a
    vote between two centres, counted, not judged) and --mask-tolerance pixels;
    sleap-nn runs with the thresholds baked into the artifact. A lone
    embedding model: its vectors for the detections of a .slp (-d LABELS.slp)
    against sleap-nn's predict_embeddings_to_slp, element by element.

    The model is an artifact, held to the runs it was exported from (-r), or
    training run(s), whose graph is built and run eagerly by PyTorch and held
    to sleap-nn on the same runs. The report goes to stdout; progress and errors
    to stderr.
    """
    from rich.console import Console

    from sleap_export.core.atomic_files import check_json_destination, write_json_atomically
    from sleap_export.evaluation import parity_check
    from sleap_export.runtime.drivers.progress import progress_for
    from sleap_export.runtime.open_model import check_models, is_artifact

    is_quiet = quiet(quiet_flag)
    models = check_models(models)
    options = model_options(runtime=runtime, precision=precision)
    if is_artifact(models[0]) and not reference:
        raise InputError(
            f"check holds {models[0].name} to sleap-nn on the runs it was exported from; pass them with "
            "-r RUN_DIR (top-down: -r CENTROID -r INSTANCE)."
        )
    if json_path is not None:
        check_json_destination(json_path, [*models, *reference, data])
    report = parity_check.check_artifact(
        models, reference or models, data, frames=frames, max_deviation=max_deviation, options=options,
        progress=None if is_quiet else lambda label: progress_for(False, label), mask_tolerance=mask_tolerance,
    )
    if not is_quiet:
        Console().print(report.render())
    if json_path is not None:
        write_json_atomically(report.as_dict(), json_path)
    if not report:
        typer.echo(f"check failed: {'; '.join(report.failures)}", err=True)
        raise typer.Exit(1)


def bench(
    models: List[Path] = typer.Argument(..., help=MODEL_HELP + " Two runs: a centroid + centered-instance pair."),
    data: Optional[Path] = typer.Option(
        None, "--data", "-d",
        help="Video to read frames from (default: synthetic frames); a lone embedding model: a .slp of detections to embed.",
    ),
    batch_size: str = typer.Option("1,4,16", "--batch-size", "-b", help="Batch sizes to time, comma-separated."),
    frames: int = typer.Option(200, "--frames", "-n", min=1, help="Frames per measurement."),
    vs: List[Path] = typer.Option([], "--vs", help="Run folder(s): also time sleap-nn's checkpoint inference on the same frames."),
    runners: str = typer.Option(
        "", "--runners",
        help="Also time these runners: onnx,openvino,openvino-bf16 (the ONNX artifact), torchscript,eager,compile (built from --vs, or the MODEL runs).",
    ),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="ONNX artifacts: ONNX Runtime CPU threads in all (default: all cores)."),
    latency: bool = typer.Option(
        False, "--latency", help="Instead: capture-to-pose latency percentiles with --data played as a camera (--frames frames), against the bare batch-1 network (timed in interleaved rounds)."
    ),
    tracking: bool = typer.Option(
        False, "--tracking", help="Also: our tracker's frames/s against sleap-nn's on the poses of --frames frames of --data (default options)."
    ),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the figures as JSON here."),
    runtime: Optional[str] = RUNTIME,
    precision: Optional[str] = RUNTIME_PRECISION,
    spin: Optional[bool] = SPIN,
    warm_ahead: bool = WARM_AHEAD,
    quiet_flag: bool = QUIET,
):
    """Throughput per batch size (network only and end to end), latency, time split, memory.

    The model is an artifact, or training run(s) run eagerly by PyTorch.
    ms/frame is end-to-end wall clock (1000 / fps); the stage split is busy
    time, added over the threads that run each stage, so it overlaps. With
    --quiet and --json, the table is left out (the file holds the figures).
    """
    from rich.console import Console

    from sleap_export.core.atomic_files import check_json_destination, write_json_atomically
    from sleap_export.evaluation.throughput import run_bench

    is_quiet = quiet(quiet_flag)
    if json_path is not None:
        check_json_destination(json_path, [*models, data, *vs])
    try:
        sizes = [int(b) for b in batch_size.split(",") if b.strip()]
    except ValueError:
        raise InputError(f"--batch-size takes comma-separated integers, got {batch_size!r}.") from None
    names = [r.strip() for r in runners.split(",") if r.strip()]
    if (spin is not None or warm_ahead) and not latency:
        raise InputError("--spin/--no-spin and --warm-ahead set how the live run waits for frames; pass --latency, or leave them out.")
    options = model_options(runtime=runtime, precision=precision, threads=threads)
    if latency:
        from sleap_export.evaluation.latency import latency_report

        if vs or names:
            raise InputError("--latency times the model alone; leave out --vs and --runners (scripts/live_bench.py compares with sleap-nn).")
        if tracking:
            raise InputError("--latency times the model alone; leave out --tracking (live --tracking tracks before the hook).")
        report = latency_report(models, data, frames, options=options, waiting=waiting(spin, warm_ahead))
    else:
        if tracking and data is None:
            raise InputError("bench --tracking tracks the poses predicted on a video; add --data video.mp4.")
        if tracking:
            _refuse_tracking_without_poses(models)
        report = run_bench(models, data, sizes, frames, vs, names, options)
    speed = None
    if tracking:
        from sleap_export.evaluation.tracking_speed import tracking_speed

        speed = tracking_speed(models, data, frames, options)
    if not (is_quiet and json_path is not None):
        Console().print(report.render())
        if speed is not None:
            typer.echo(speed.line())
    if json_path is not None:
        figures = report.as_dict()
        write_json_atomically(figures if speed is None else {**figures, "tracking": speed.as_dict()}, json_path)


def _refuse_tracking_without_poses(models: List[Path]) -> None:
    """bench --tracking times pose trackers; a segmentation model's frames hold masks, a lone embedding's no poses
    of its own."""
    from sleap_export.core.model_types import MODEL_TYPES
    from sleap_export.evaluation.throughput import model_type_of_models
    from sleap_export.runtime.open_model import check_models

    model_type = model_type_of_models(check_models(models))
    if model_type == "embedding":
        raise InputError(
            "bench --tracking times pose tracking on a video and a lone embedding model embeds a .slp's detections; "
            "leave out --tracking, or bench the embedding run exported with a centroid run."
        )
    if MODEL_TYPES[model_type].segments:
        raise InputError(
            f"bench --tracking times pose tracking and a {model_type} model predicts masks; leave out --tracking."
        )
