"""The ``sleap-export`` command line (also ``python -m sleap_export``).

Heavy imports (torch, sleap-nn, onnx) happen inside the commands that need
them, so ``--help`` and ONNX prediction start fast and torch-free.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from sleap_export.errors import InputError, SleapExportError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    help="Export trained sleap-nn models to ONNX / TorchScript and run them.",
)
_state = {"debug": False, "interrupt_reported": False, "terminated": False}
# Exit status for Ctrl-C / SIGTERM (typer turns KeyboardInterrupt into this code).
INTERRUPTED = 130


# Packages whose versions decide what an artifact does here (read from metadata, nothing imported).
_VERSION_PACKAGES = ("sleap-export", "onnxruntime", "onnx", "numpy", "sleap-io", "torch", "sleap-nn", "tensorrt")


def _print_versions(value: bool) -> None:
    if not value:
        return
    from importlib import metadata

    for name in _VERSION_PACKAGES:
        try:
            typer.echo(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            typer.echo(f"{name} not installed")
    raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors (also after the command)."),
    version: bool = typer.Option(
        False, "--version", callback=_print_versions, is_eager=True, help="Print the versions of sleap-export and its runtimes."
    ),
):
    _state["debug"] = _state["debug"] or debug


def _read_preset(path: Optional[Path]) -> dict:
    if path is None:
        return {}
    import yaml

    if not path.exists():
        raise InputError(f"Preset {path} does not exist; see the configs/ folder for examples.")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise InputError(f"Preset {path} must be a YAML mapping of export options.")
    return values


_FORMAT_NAMES = {"onnx": "ONNX", "torchscript": "TorchScript", "tensorrt": "TensorRT"}


# Export options shared by the onnx, torchscript and trt commands.
_PRESET = typer.Option(None, "--preset", help="YAML file of export options (see configs/).")
_MAX_INSTANCES = typer.Option(None, help="Instance slots per frame (default 20).")
_PEAK_THRESHOLD = typer.Option(None, help="Minimum confidence of a peak (default 0.2).")
_REFINEMENT = typer.Option(None, "--refinement/--no-refinement", help="Integral sub-pixel refinement (default on).")
_GROUPING = typer.Option(None, "--grouping", help="Bottom-up: host (exact, default) or graph (approximate, no host work).")
_CHECK = typer.Option(None, "--check", help="Video or .slp: run `check` on the new artifact; remove it and exit 1 if it fails.")
_CHECK_FRAMES = typer.Option(50, "--check-frames", min=1, help="Frames `--check` compares.")
_PRECISION = typer.Option("fp32", "--precision", help="fp32; fp16 (the networks in half precision, for GPUs); int8 (their convolutions quantized; symmetric for TensorRT).")
_CALIBRATION = typer.Option(None, "--calibration", help="fp16/int8: video or .slp (labeled frames first) to calibrate on (int8) and gate against fp32.")
_CALIBRATION_FRAMES = typer.Option(64, "--calibration-frames", help="fp16/int8: frames to calibrate on (and as many to gate on).")
_MAX_DEVIATION = typer.Option(None, "--max-deviation", min=0.0, help="fp16/int8: fail the export when p99 deviation from fp32 exceeds this (px).")
_OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing artifact.")


def _export_command(format: str):
    def command(
        model_dirs: List[Path] = typer.Argument(
            ..., help="sleap-nn training run folder(s) (or their best.ckpt), or SLEAP 1.x model folder(s)."
        ),
        output: Path = typer.Option(..., "--output", "-o", help="Artifact path to write."),
        preset: Optional[Path] = _PRESET,
        max_instances: Optional[int] = _MAX_INSTANCES,
        peak_threshold: Optional[float] = _PEAK_THRESHOLD,
        refinement: Optional[bool] = _REFINEMENT,
        grouping: Optional[str] = _GROUPING,
        raw_heads: bool = typer.Option(False, "--raw-heads", help="Output the network's head maps, not poses (debugging, activation checks)."),
        check: Optional[Path] = _CHECK,
        check_frames: int = _CHECK_FRAMES,
        precision: str = _PRECISION,
        calibration: Optional[Path] = _CALIBRATION,
        calibration_frames: int = _CALIBRATION_FRAMES,
        max_deviation: Optional[float] = _MAX_DEVIATION,
        overwrite: bool = _OVERWRITE,
    ):
        _export(
            format, model_dirs, output, preset, max_instances, peak_threshold, refinement, grouping, raw_heads,
            check, check_frames, precision, calibration, calibration_frames, max_deviation, overwrite,
        )

    command.__doc__ = f"Export run folder(s) to a {_FORMAT_NAMES[format]} artifact, verified against the eager model."
    return command


def _export(format, model_dirs, output, preset, max_instances, peak_threshold, refinement, grouping, raw_heads,
            check, check_frames, precision, calibration, calibration_frames, max_deviation, overwrite, engine=None):
    from sleap_export.build import ExportOptions
    from sleap_export.exporters import export

    fields = _read_preset(preset)
    given = dict(max_instances=max_instances, peak_threshold=peak_threshold, grouping=grouping)
    fields.update({k: v for k, v in given.items() if v is not None})
    if refinement is not None:
        fields["refinement"] = "integral" if refinement else None
    if raw_heads:
        fields["raw_heads"] = True
    if precision != "fp32":
        fields.update(precision=precision, calibration_frames=calibration_frames, max_deviation=max_deviation)
        fields["calibration"] = None if calibration is None else str(calibration)
    if engine is not None:
        fields["tensorrt"] = engine
    if check is not None and any(p.suffix == ".onnx" for p in model_dirs):
        raise InputError("--check compares with sleap-nn on the run folders; pass those instead of the ONNX artifact.")
    started = time.perf_counter()
    path = export(model_dirs, output, format=format, overwrite=overwrite, options=ExportOptions.from_fields(**fields))
    size = path.stat().st_size / 1e6
    typer.echo(f"wrote {path} ({size:.1f} MB, {format}) in {time.perf_counter() - started:.1f} s")
    from sleap_export.runtime.artifact import read_spec

    gate = read_spec(path).export_options.get("accuracy gate")
    if gate is not None:
        typer.echo(f"accuracy gate: {gate}")
    if check is not None:
        try:
            report = _run_check(path, model_dirs, check, check_frames, None, None)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if not report:
            path.unlink()
            raise SleapExportError(f"{path.name} failed its check ({'; '.join(report.failures)}); removed it.")


app.command("onnx")(_export_command("onnx"))
app.command("torchscript")(_export_command("torchscript"))


@app.command("trt")
def trt(
    model_dirs: List[Path] = typer.Argument(
        ..., help="Run folder(s) as for `onnx`, or one ONNX artifact of ours (keeps its precision)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Engine path to write (.engine or .plan)."),
    batch: str = typer.Option("1/4/16", "--batch", help="Batch sizes MIN/OPT/MAX (OPT: the batch you predict at), or one size."),
    height: Optional[str] = typer.Option(None, "--height", help="Frame heights MIN/OPT/MAX or one size (default: the training size, else 64/512/2048)."),
    width: Optional[str] = typer.Option(None, "--width", help="Frame widths MIN/OPT/MAX or one size (default: as --height)."),
    workspace_gb: Optional[float] = typer.Option(None, "--workspace-gb", help="Builder memory limit in GiB (default: TensorRT's, all GPU memory)."),
    timing_cache: Optional[Path] = typer.Option(None, "--timing-cache", help="Timing cache file (default: one per TensorRT version and GPU in ~/.cache/sleap-export)."),
    no_timing_cache: bool = typer.Option(False, "--no-timing-cache", help="Time every tactic afresh and keep no cache."),
    hardware_compatibility: bool = typer.Option(False, "--hardware-compatibility", help="Build an engine that runs on any Ampere or newer GPU (somewhat slower)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not show the builder's progress."),
    preset: Optional[Path] = _PRESET,
    max_instances: Optional[int] = _MAX_INSTANCES,
    peak_threshold: Optional[float] = _PEAK_THRESHOLD,
    refinement: Optional[bool] = _REFINEMENT,
    grouping: Optional[str] = _GROUPING,
    check: Optional[Path] = _CHECK,
    check_frames: int = _CHECK_FRAMES,
    precision: str = _PRECISION,
    calibration: Optional[Path] = _CALIBRATION,
    calibration_frames: int = _CALIBRATION_FRAMES,
    max_deviation: Optional[float] = _MAX_DEVIATION,
    overwrite: bool = _OVERWRITE,
):
    """Build a TensorRT engine (spec inside; loadable by trtexec and Triton) on this machine's GPU."""
    from sleap_export.build import AxisRange, EngineOptions

    height_range = None if height is None else AxisRange.parse(height, "height")
    width_range = None if width is None else AxisRange.parse(width, "width")
    engine = EngineOptions(
        batch=AxisRange.parse(batch, "batch"),
        height=height_range,
        width=width_range or height_range,
        workspace_gb=workspace_gb,
        timing_cache=timing_cache,
        use_timing_cache=not no_timing_cache,
        hardware_compatibility=hardware_compatibility,
        show_progress=not quiet,
    )
    _export(
        "tensorrt", model_dirs, output, preset, max_instances, peak_threshold, refinement, grouping, False,
        check, check_frames, precision, calibration, calibration_frames, max_deviation, overwrite, engine=engine,
    )


@app.command()
def predict(
    artifact: Path = typer.Argument(..., help="An artifact (.onnx, .pt) or a run folder (eager)."),
    inputs: List[Path] = typer.Argument(..., help="Video(s) or .slp labels file(s)."),
    output: Path = typer.Option(..., "--output", "-o", help="Predictions .slp to write."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frame ranges, e.g. 0-999,2000-."),
    batch_size: int = typer.Option(4, "--batch-size", "-b", min=1, help="Frames per batch."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda for TensorRT engines, else cpu)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="ONNX Runtime CPU threads in all (default: all cores)."),
    parallel_batches: Optional[int] = typer.Option(
        None, "--parallel-batches", help="ONNX Runtime batches run at once, sharing the threads (default: 2 on a multi-core CPU)."
    ),
    video_index: Optional[int] = typer.Option(
        None, "--video-index", min=0, help="Only this video of the inputs (counted over all inputs' videos, from 0)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    resume: bool = typer.Option(
        False, "--resume", help="Keep the frames an earlier, interrupted run saved in --output; predict the rest."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
):
    """Predict poses on videos or labels and write a .slp file (saved as it goes; see --resume)."""
    from sleap_export.progress import progress_for
    from sleap_export.runtime.predictor import PredictionInterrupted, Predictor

    from sleap_export.runtime.output_file import check_destination

    if resume and overwrite:
        raise InputError("--resume keeps the frames in --output and --overwrite replaces them; pass one of the two.")
    check_destination(output, [*inputs, artifact])
    if output.exists() and not (overwrite or resume):
        raise InputError(f"{output} already exists; pass --overwrite to replace it, or --resume to finish it.")
    options = {name: value for name, value in (("threads", threads), ("parallel_batches", parallel_batches)) if value is not None}
    if options and artifact.suffix != ".onnx":
        raise InputError("--threads and --parallel-batches apply to ONNX artifacts; leave them out for this one.")
    predictor = Predictor.from_model_paths([artifact], device=device, batch_size=batch_size, **options)
    started = time.perf_counter()
    progress = progress_for(quiet)
    try:
        labels = predictor.predict(
            list(inputs), frames=frames, output=output, progress=progress, resume=resume, video_index=video_index
        )
    except PredictionInterrupted as err:
        typer.echo(str(err), err=True)
        _state["interrupt_reported"] = True
        raise
    finally:
        if progress is not None:
            progress.stop()
    elapsed = time.perf_counter() - started
    n_instances = sum(len(lf.instances) for lf in labels.labeled_frames)
    if not quiet:
        typer.echo(
            f"wrote {output}: {len(labels.labeled_frames)} frames, {n_instances} instances, "
            f"{len(labels.labeled_frames) / elapsed:.1f} fps"
        )


def _run_check(artifact, references, data, frames, max_deviation, json_path):
    from rich.console import Console

    from sleap_export.check import check_artifact
    from sleap_export.files import write_json_atomically

    report = check_artifact(artifact, references, data, frames=frames, max_deviation=max_deviation)
    Console(stderr=True).print(report.render())
    if json_path is not None:
        write_json_atomically(report.as_dict(), json_path)
    return report


@app.command()
def check(
    artifact: Path = typer.Argument(..., help="An artifact written by sleap-export."),
    reference: List[Path] = typer.Option(
        ..., "--reference", "-r", help="Run folder the artifact was exported from (repeat for top-down: -r CENTROID -r INSTANCE)."
    ),
    data: Path = typer.Option(..., "--data", "-d", help="Video, or .slp labels (ground-truth errors are reported too)."),
    frames: int = typer.Option(50, "--frames", "-n", min=1, help="Frames to compare (spread over a video; first labeled frames of a .slp)."),
    max_deviation: Optional[float] = typer.Option(
        None, "--max-deviation", min=0.0, help="Max p99 keypoint deviation in px (default by precision: fp32 0.05, fp16 1, int8 3)."
    ),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON here."),
):
    """Compare an artifact with sleap-nn's own inference on the same frames; exit 1 when out of tolerance."""
    report = _run_check(artifact, reference, data, frames, max_deviation, json_path)
    if not report:
        typer.echo(f"check failed: {'; '.join(report.failures)}", err=True)
        raise typer.Exit(1)


@app.command()
def bench(
    artifact: Path = typer.Argument(..., help="An artifact written by sleap-export."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Video to read frames from (default: synthetic frames)."),
    batch_size: str = typer.Option("1,4,16", "--batch-size", "-b", help="Batch sizes to time, comma-separated."),
    frames: int = typer.Option(200, "--frames", "-n", min=1, help="Frames per measurement."),
    vs: List[Path] = typer.Option([], "--vs", help="Run folder(s): also time sleap-nn's checkpoint inference on the same frames."),
    runners: str = typer.Option("", "--runners", help="Also time these runners: onnx,torchscript,eager,compile (need --vs)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="ONNX Runtime CPU threads in all (default: all cores)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the figures as JSON here."),
):
    """Throughput per batch size (network only and end to end), latency, time split, memory."""
    from rich.console import Console

    from sleap_export.bench import run_bench
    from sleap_export.files import write_json_atomically

    try:
        sizes = [int(b) for b in batch_size.split(",") if b.strip()]
    except ValueError:
        raise InputError(f"--batch-size takes comma-separated integers, got {batch_size!r}.") from None
    names = [r.strip() for r in runners.split(",") if r.strip()]
    report = run_bench(artifact, data, sizes, frames, vs, names, threads)
    Console().print(report.render())
    if json_path is not None:
        write_json_atomically(report.as_dict(), json_path)


@app.command()
def inspect(
    artifact: Path = typer.Argument(..., help="An artifact written by sleap-export."),
    as_json: bool = typer.Option(False, "--json", help="Print the spec as JSON."),
    verify: bool = typer.Option(False, "--verify", help="Recompute the payload hash; exit 1 if the artifact was modified."),
):
    """Print the spec embedded in an artifact."""
    from sleap_export.runtime.artifact import read_spec
    from sleap_export.runtime.integrity import verify_payload

    spec = verify_payload(artifact) if verify else read_spec(artifact)
    if as_json:
        typer.echo(json.dumps(json.loads(spec.to_json()), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{artifact.name}: {spec.model_type}", show_header=False)
    table.add_row("schema", str(spec.schema_version))
    table.add_row("nodes", ", ".join(spec.skeleton.nodes))
    table.add_row("edges", ", ".join(f"{spec.skeleton.nodes[a]}->{spec.skeleton.nodes[b]}" for a, b in spec.skeleton.edges) or "-")
    for i, stage in enumerate(spec.stages):
        table.add_row(
            f"stage {i}",
            f"{stage.head_type} ({stage.backbone}), {stage.in_channels} ch, scale {stage.input_scale}, "
            f"max stride {stage.max_stride}, output stride {stage.output_stride}, "
            f"size {stage.max_height}x{stage.max_width}; from {stage.source} ({stage.source_format}), "
            f"weights sha256 {stage.checkpoint_sha256[:12]}",
        )
    post = spec.postprocess
    table.add_row("decoding", f"threshold {post.peak_threshold}, refinement {post.refinement}, max instances {post.max_instances}")
    table.add_row("outputs", ", ".join(spec.output_names))
    table.add_row("precision", spec.precision)
    table.add_row("export", "; ".join(f"{k}: {v}" for k, v in sorted(spec.export_options.items())))
    table.add_row("versions", ", ".join(f"{k} {v}" for k, v in sorted(spec.versions.items())))
    if spec.payload_sha256:
        table.add_row("payload", f"sha256 {spec.payload_sha256[:16]}" + (" (verified)" if verify else ""))
    else:  # a TensorRT engine: no hash of its own, the ONNX payload it was built from is in "export"
        table.add_row("payload", "not hashed (TensorRT engine)")
    Console().print(table)


@app.command()
def demo(
    output_dir: Path = typer.Option(Path("demo_output"), "--output-dir", help="Where to write artifacts, demo.slp and the overlay."),
):
    """Export the bundled model, predict on the bundled clip, write demo.slp and an overlay PNG."""
    from sleap_export.demo import run_demo

    run_demo(output_dir)


def _interrupt(signum, frame):
    _state["terminated"] = True
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: one-line errors and exit codes (2 usage, 1 failure, 130 interrupted)."""
    # SIGTERM unwinds like Ctrl-C, so partial files are removed on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    # --debug anywhere on the line: errors advise rerunning with it, after the command too.
    arguments = sys.argv[1:]
    if "--debug" in arguments:
        _state["debug"] = True
        arguments = [a for a in arguments if a != "--debug"]
    try:
        result = app(args=arguments, standalone_mode=False)
    except typer.TyperException as err:
        # Usage errors (typer's own click): the command's usage line, the option named, exit 2.
        err.show()
        sys.exit(err.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        result = INTERRUPTED
    except SleapExportError as err:
        if _state["debug"]:
            raise
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except Exception as err:
        if _state["debug"]:
            raise
        message = str(err).splitlines()[0] if str(err) else ""
        typer.echo(f"error: {type(err).__name__}: {message} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)
    if _state["terminated"] and result != INTERRUPTED:
        # A library swallowed the interrupt (a bare except) and the command finished.
        typer.echo("interrupted after the command had finished; its output is complete", err=True)
        result = INTERRUPTED
    if result == INTERRUPTED:
        if not _state["interrupt_reported"]:
            typer.echo("interrupted; nothing was left half-written", err=True)
        # os._exit: an interrupt that landed inside an import makes CPython re-raise
        # SIGINT at shutdown (status -2) whatever sys.exit says; cleanup already ran.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED)
    if isinstance(result, int) and result:
        sys.exit(result)
