"""The ``sleap-export`` command line (also ``python -m sleap_export``).

Heavy imports (torch, sleap-nn, onnx) happen inside the commands that need
them, so ``--help`` and ONNX prediction start fast and torch-free.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import time
import warnings
from inspect import Parameter, signature as signature_of
from pathlib import Path
from typing import List, Optional

import attrs
import typer

from sleap_export.errors import InputError, SleapExportError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    help="Export trained sleap-nn models to ONNX / TorchScript and run them.",
)
_state = {"debug": False, "quiet": False, "interrupt_reported": False, "terminated": False}
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


# Every command takes it too, so it works before or after the command name.
_QUIET = typer.Option(
    False, "--quiet", "-q",
    help="Print nothing but errors: no progress, summaries or reports (asked-for output, --json files and the exit status stay).",
)


def _quiet(flag: bool = False) -> bool:
    """Whether to print nothing but errors (``flag``: this command's -q)."""
    if flag and not _state["quiet"]:
        _state["quiet"] = True
        warnings.simplefilter("ignore")  # warnings are not errors
    return _state["quiet"]


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors (also after the command)."),
    quiet: bool = _QUIET,
    version: bool = typer.Option(
        False, "--version", callback=_print_versions, is_eager=True, help="Print the versions of sleap-export and its runtimes."
    ),
):
    _state["debug"] = _state["debug"] or debug
    _quiet(quiet)


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


def _option(default, *declarations, **settings):
    """An `ExportFlags` field whose metadata carries its typer option."""
    return attrs.field(default=default, metadata={"option": typer.Option(default, *declarations, **settings)})


@attrs.frozen
class ExportFlags:
    """The options onnx, torchscript and trt share, declared once (`takes_export_flags`)."""

    preset: Optional[Path] = _option(None, "--preset", help="YAML file of export options (see configs/).")
    max_instances: Optional[int] = _option(None, help="Instance slots per frame (default 20).")
    peak_threshold: Optional[float] = _option(None, help="Minimum confidence of a peak (default 0.2).")
    refinement: Optional[bool] = _option(None, "--refinement/--no-refinement", help="Integral sub-pixel refinement (default on).")
    grouping: Optional[str] = _option(None, "--grouping", help="Bottom-up: host (exact, default) or graph (approximate, no host work).")
    check: Optional[Path] = _option(None, "--check", help="Video or .slp: run `check` on the new artifact; remove it and exit 1 if it fails.")
    check_frames: int = _option(50, "--check-frames", min=1, help="Frames `--check` compares.")
    precision: str = _option("fp32", "--precision", help="fp32; fp16 (the networks in half precision, for GPUs); int8 (their convolutions quantized; symmetric for TensorRT).")
    calibration: Optional[Path] = _option(None, "--calibration", help="fp16/int8: video or .slp (labeled frames first) to calibrate on (int8) and gate against fp32.")
    calibration_frames: int = _option(64, "--calibration-frames", help="fp16/int8: frames to calibrate on (and as many to gate on).")
    max_deviation: Optional[float] = _option(None, "--max-deviation", min=0.0, help="fp16/int8: the gate's p99 deviation from fp32 (px; default: check's tolerance for the precision).")
    calibration_method: Optional[str] = _option(None, "--calibration-method", help="int8: minmax (default), entropy or percentile activation ranges.")
    keep_inaccurate: bool = _option(False, "--keep-inaccurate", help="fp16/int8: write the artifact even when it fails its accuracy gate (its spec says so).")
    overwrite: bool = _option(False, "--overwrite", help="Replace an existing artifact.")
    quiet: bool = attrs.field(default=False, metadata={"option": _QUIET})

    def export_options(self, raw_heads: bool = False, engine=None):
        """The `ExportOptions` these flags ask for: the preset's fields, then the flags given."""
        from sleap_export.build import ExportOptions

        fields = _read_preset(self.preset)
        given = dict(max_instances=self.max_instances, peak_threshold=self.peak_threshold, grouping=self.grouping)
        fields.update({k: v for k, v in given.items() if v is not None})
        if self.refinement is not None:
            fields["refinement"] = "integral" if self.refinement else None
        if raw_heads:
            fields["raw_heads"] = True
        if self.precision != "fp32":
            fields.update(
                precision=self.precision,
                calibration_frames=self.calibration_frames,
                max_deviation=self.max_deviation,
                keep_inaccurate=self.keep_inaccurate,
            )
            if self.calibration_method is not None:
                fields["calibration_method"] = self.calibration_method
            fields["calibration"] = None if self.calibration is None else str(self.calibration)
        if engine is not None:
            fields["tensorrt"] = engine
        return ExportOptions.from_fields(**fields)


attrs.resolve_types(ExportFlags)


def takes_export_flags(command):
    """``command(..., flags: ExportFlags)`` as a typer command taking every `ExportFlags` option."""
    signature = signature_of(command)
    own = [p for p in signature.parameters.values() if p.name != "flags"]
    shared = [
        Parameter(f.name, Parameter.KEYWORD_ONLY, default=f.metadata["option"], annotation=f.type)
        for f in attrs.fields(ExportFlags)
    ]

    @functools.wraps(command)
    def with_flags(**values):
        flags = ExportFlags(**{f.name: values.pop(f.name) for f in attrs.fields(ExportFlags)})
        _quiet(flags.quiet)
        return command(**values, flags=flags)

    with_flags.__signature__ = signature.replace(parameters=own + shared)
    return with_flags


def _export(format: str, model_dirs: List[Path], output: Path, flags: ExportFlags, raw_heads: bool = False, engine=None):
    from sleap_export.exporters import export
    from sleap_export.runtime.artifact import ONNX, find_format, read_spec

    if flags.check is not None and any(find_format(p) is ONNX for p in model_dirs):
        raise InputError("--check compares with sleap-nn on the run folders; pass those instead of the ONNX artifact.")
    started = time.perf_counter()
    path = export(model_dirs, output, format=format, overwrite=flags.overwrite, options=flags.export_options(raw_heads, engine))
    size = path.stat().st_size / 1e6
    if not _quiet():
        typer.echo(f"wrote {path} ({size:.1f} MB, {format}) in {time.perf_counter() - started:.1f} s")
    gate = read_spec(path).export.accuracy_gate
    if gate is not None and not _quiet():
        typer.echo(f"accuracy gate: {gate}")
    if flags.check is not None:
        try:
            report = _run_check(path, model_dirs, flags.check, flags.check_frames, None, None)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if not report:
            path.unlink()
            raise SleapExportError(f"{path.name} failed its check ({'; '.join(report.failures)}); removed it.")


def _export_command(format: str):
    from sleap_export.runtime.artifact import format_named

    @takes_export_flags
    def command(
        model_dirs: List[Path] = typer.Argument(
            ..., help="sleap-nn training run folder(s) (or their best.ckpt), or SLEAP 1.x model folder(s)."
        ),
        output: Path = typer.Option(..., "--output", "-o", help="Artifact path to write."),
        raw_heads: bool = typer.Option(False, "--raw-heads", help="Output the network's head maps, not poses (debugging, activation checks)."),
        flags: ExportFlags = ExportFlags(),
    ):
        _export(format, model_dirs, output, flags, raw_heads=raw_heads)

    command.__doc__ = f"Export run folder(s) to a {format_named(format).title} artifact, verified against the eager model."
    return command


app.command("onnx")(_export_command("onnx"))
app.command("torchscript")(_export_command("torchscript"))


@app.command("trt")
@takes_export_flags
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
    flags: ExportFlags = ExportFlags(),
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
        show_progress=not _quiet(),
    )
    _export("tensorrt", model_dirs, output, flags, engine=engine)


# What a model argument may be (predict, check, bench).
_MODEL_HELP = (
    "An artifact (.onnx, .pt, .engine), or a training run run eagerly by PyTorch: a sleap-nn run folder, "
    "its best.ckpt, or a SLEAP 1.x model folder."
)
# "\\[" keeps rich (typer's help renderer) from reading "[openvino]" as markup and dropping it.
_RUNTIME = typer.Option(
    None, "--runtime", help="ONNX artifacts: onnxruntime (default) or openvino (pip install 'sleap-export\\[openvino]')."
)
_RUNTIME_PRECISION = typer.Option(
    None, "--precision", help="--runtime openvino: fp32 (default) or bf16 (the networks in bf16; CPUs with bf16 instructions)."
)
_SPIN = typer.Option(
    None, "--spin/--no-spin",
    help="Live: between frames, poll for the next one (a core kept busy: a core woken from sleep runs the network slower) or sleep. Default: poll on 2+ cores.",
)
_WARM_AHEAD = typer.Option(
    False, "--warm-ahead",
    help="Live: run the network once on the last frame just before each frame is due (a network run a moment ago runs faster; one more run per frame).",
)


def _waiting(spin: Optional[bool], warm_ahead: bool):
    """The live run's `Waiting` for --spin/--no-spin and --warm-ahead."""
    from sleap_export.runtime.live import Waiting

    return Waiting.default(spin, warm_ahead)


def _runtime_options(runtime: Optional[str], precision: Optional[str]) -> dict:
    """`runtime.runners.load` options for --runtime and --precision."""
    if precision is not None and runtime != "openvino":
        raise InputError(f"--precision {precision} is chosen at run time by OpenVINO; add --runtime openvino.")
    return {name: value for name, value in (("runtime", runtime), ("precision", precision)) if value is not None}


@app.command()
def predict(
    model: Path = typer.Argument(..., help=_MODEL_HELP),
    inputs: List[Path] = typer.Argument(
        ..., help="Video(s) or .slp labels file(s); for a top-down pair of runs, the centered-instance run first."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Predictions .slp to write."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frame ranges, e.g. 0-999,2000-."),
    batch_size: int = typer.Option(4, "--batch-size", "-b", min=1, help="Frames per batch."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda for TensorRT engines, else cpu)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="ONNX Runtime CPU threads in all (default: all cores); with --ray, per worker (default 1)."),
    parallel_batches: Optional[int] = typer.Option(
        None, "--parallel-batches", help="ONNX Runtime batches run at once, sharing the threads (default: 2 on a multi-core CPU)."
    ),
    runtime: Optional[str] = _RUNTIME,
    precision: Optional[str] = _RUNTIME_PRECISION,
    video_index: Optional[int] = typer.Option(
        None, "--video-index", min=0, help="Only this video of the inputs (counted over all inputs' videos, from 0)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    resume: bool = typer.Option(
        False, "--resume", help="Keep the frames an earlier, interrupted run saved in --output; predict the rest."
    ),
    ray_address: Optional[str] = typer.Option(
        None, "--ray", metavar="auto|HOST:PORT|ray://HOST:PORT",
        help="Run on this Ray cluster (needs the ray extra of sleap-export); -o DIR writes one .slp per video.",
    ),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="--ray: workers (default: the cluster's CPUs / --threads)."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", min=0.0, help="--ray: GPUs per worker (TensorRT, CUDA)."),
    chunk_size: Optional[int] = typer.Option(
        None, "--chunk-size", min=1, help="--ray: frames per chunk, the unit of work, retry and --resume (default 500)."
    ),
    quiet: bool = _QUIET,
):
    """Predict poses on videos or labels and write a .slp file (saved as it goes; see --resume).

    With --ray, videos are split into chunks of --chunk-size frames run by
    --workers Ray actors of --threads CPU threads each (default 1).

    The leading paths that are models (an artifact suffix, a .ckpt, a folder
    with a training config) are the model, the rest the inputs:
    predict model.onnx a.mp4 b.slp -o out.slp, or for a top-down pair of runs
    predict CENTROID_RUN INSTANCE_RUN video.mp4 -o out.slp.

    fps, on the progress line and the final line alike: frames predicted in
    this run / wall-clock seconds from the start of prediction (model read,
    inputs opened) to the last frame; the final line also gives the whole time,
    loading the model and writing the .slp included.
    """
    from sleap_export.model_paths import split_models_and_inputs
    from sleap_export.progress import progress_for
    from sleap_export.runtime.output_file import check_destination
    from sleap_export.runtime.predictor import Predictor

    started = time.perf_counter()
    quiet = _quiet(quiet)
    if resume and overwrite:
        raise InputError("--resume keeps the frames in --output and --overwrite replaces them; pass one of the two.")
    models, inputs = split_models_and_inputs([model, *inputs])
    if ray_address is not None:
        if runtime is not None or precision is not None:
            raise InputError("--ray workers run ONNX Runtime (or the artifact's own runtime); leave out --runtime and --precision.")
        return _predict_on_ray(
            models, inputs, output, ray_address, workers, threads or 1, gpus_per_worker, chunk_size, frames,
            batch_size, device, parallel_batches, resume, overwrite, video_index, quiet, started,
        )
    if workers is not None or chunk_size is not None or gpus_per_worker:
        raise InputError("--workers, --gpus-per-worker and --chunk-size apply with --ray; add --ray ADDRESS or leave them out.")
    check_destination(output, [*inputs, *models])
    if output.exists() and not (overwrite or resume):
        raise InputError(f"{output} already exists; pass --overwrite to replace it, or --resume to finish it.")
    options = {name: value for name, value in (("threads", threads), ("parallel_batches", parallel_batches)) if value is not None}
    if options and models[0].suffix != ".onnx":
        raise InputError("--threads and --parallel-batches apply to ONNX artifacts; leave them out for this one.")
    options.update(_runtime_options(runtime, precision))
    predictor = Predictor.from_model_paths(models, device=device, batch_size=batch_size, **options)
    progress = progress_for(quiet)
    with _shown_until_done(progress):
        labels = predictor.predict(
            list(inputs), frames=frames, output=output, progress=progress, resume=resume, video_index=video_index
        )
    if progress is not None:
        n_instances = sum(len(lf.instances) for lf in labels.labeled_frames)
        rate = progress.rate
        typer.echo(
            f"wrote {output}: {len(labels.labeled_frames)} frames, {n_instances} instances; "
            f"{rate.frames} predicted at {rate.fps:.1f} fps; {time.perf_counter() - started:.1f} s in all"
        )


@contextlib.contextmanager
def _shown_until_done(progress):
    """Stop the progress display however prediction ends; an interruption is
    reported here, once (its partial output is named), and main() exits 130."""
    from sleap_export.runtime.predictor import PredictionInterrupted

    try:
        yield
    except PredictionInterrupted as err:
        typer.echo(str(err), err=True)
        _state["interrupt_reported"] = True
        raise
    finally:
        if progress is not None:
            progress.stop()


def _predict_on_ray(models, inputs, output, address, workers, threads, gpus, chunk_size, frames, batch_size, device,
                    parallel_batches, resume, overwrite, video_index, quiet, started):
    """predict --ray: chunks over a Ray cluster; a failed video is a row of the summary and exit 1."""
    from sleap_export.progress import progress_for

    if len(models) != 1:
        raise InputError("--ray runs one exported artifact; export the runs first (sleap-export onnx RUN... -o model.onnx).")
    if video_index is not None:
        raise InputError("--video-index picks a video for local predict; with --ray, pass only the videos to predict.")
    from importlib.util import find_spec

    if find_spec("ray") is None:
        raise InputError("--ray needs Ray; pip install 'sleap-export[ray]'.")
    from sleap_export.runtime.cluster import DEFAULT_CHUNK_FRAMES, RayPrediction

    job = RayPrediction(
        models[0], inputs, output, address=address, workers=workers, threads=threads, gpus=gpus,
        chunk_size=chunk_size or DEFAULT_CHUNK_FRAMES, frames=frames, batch_size=batch_size, device=device,
        parallel_batches=parallel_batches, resume=resume, overwrite=overwrite,
    )
    progress = progress_for(quiet)
    with _shown_until_done(progress):
        report = job.run(progress)
    if report.failed:
        typer.echo("\n".join(report.summary_lines()), err=True)
        raise SleapExportError(
            f"{len(report.failed)} of {len(report.videos)} videos failed (see the table); the others are written, "
            "and --resume after a fix predicts only what is missing."
        )
    if progress is not None:
        for video in report.videos:
            typer.echo(f"wrote {video.output}: {video.path.name}, {video.frames} frames, {video.instances} instances")
        retried = f", {report.retried} chunk runs retried after a worker died" if report.retried else ""
        typer.echo(
            f"{report.predicted} predicted at {progress.rate.fps:.1f} fps on {report.workers} Ray workers{retried}; "
            f"{time.perf_counter() - started:.1f} s in all"
        )


def _run_check(model, references, data, frames, max_deviation, json_path, runtime_options=None):
    from rich.console import Console

    from sleap_export.check import check_artifact
    from sleap_export.files import write_json_atomically
    from sleap_export.progress import progress_for

    progress = None if _quiet() else lambda label: progress_for(False, label)
    report = check_artifact(
        model, references, data, frames=frames, max_deviation=max_deviation, progress=progress, **(runtime_options or {})
    )
    if not _quiet():
        Console(stderr=True).print(report.render())
    if json_path is not None:
        write_json_atomically(report.as_dict(), json_path)
    return report


@app.command()
def check(
    models: List[Path] = typer.Argument(..., help=_MODEL_HELP + " Two runs: a centroid + centered-instance pair."),
    reference: List[Path] = typer.Option(
        [], "--reference", "-r",
        help="Run folder an artifact was exported from (repeat for top-down: -r CENTROID -r INSTANCE); "
        "for training runs, default: those runs.",
    ),
    data: Path = typer.Option(..., "--data", "-d", help="Video, or .slp labels (ground-truth errors are reported too)."),
    frames: int = typer.Option(50, "--frames", "-n", min=1, help="Frames to compare (spread over a video; first labeled frames of a .slp)."),
    max_deviation: Optional[float] = typer.Option(
        None, "--max-deviation", min=0.0, help="Max p99 keypoint deviation in px (default by precision: fp32 0.05, fp16 1, int8 3, bf16 3)."
    ),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON here."),
    runtime: Optional[str] = _RUNTIME,
    precision: Optional[str] = _RUNTIME_PRECISION,
    quiet: bool = _QUIET,
):
    """Compare a model with sleap-nn's own inference on the same frames; exit 1 when out of tolerance.

    The model is an artifact, held to the runs it was exported from (-r), or
    training run(s), whose graph is built and run eagerly by PyTorch and held
    to sleap-nn on the same runs.
    """
    from sleap_export.model_paths import check_models, is_artifact

    _quiet(quiet)
    models = check_models(models)
    if is_artifact(models[0]) and not reference:
        raise InputError(
            f"check holds {models[0].name} to sleap-nn on the runs it was exported from; pass them with "
            "-r RUN_DIR (top-down: -r CENTROID -r INSTANCE)."
        )
    if json_path is not None:
        from sleap_export.files import check_json_destination

        check_json_destination(json_path, [*models, *reference, data])
    report = _run_check(
        models, reference or models, data, frames, max_deviation, json_path, _runtime_options(runtime, precision)
    )
    if not report:
        typer.echo(f"check failed: {'; '.join(report.failures)}", err=True)
        raise typer.Exit(1)


@app.command()
def bench(
    models: List[Path] = typer.Argument(..., help=_MODEL_HELP + " Two runs: a centroid + centered-instance pair."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Video to read frames from (default: synthetic frames)."),
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
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the figures as JSON here."),
    runtime: Optional[str] = _RUNTIME,
    precision: Optional[str] = _RUNTIME_PRECISION,
    spin: Optional[bool] = _SPIN,
    warm_ahead: bool = _WARM_AHEAD,
    quiet: bool = _QUIET,
):
    """Throughput per batch size (network only and end to end), latency, time split, memory.

    The model is an artifact, or training run(s) run eagerly by PyTorch.
    ms/frame is end-to-end wall clock (1000 / fps); the stage split is busy
    time, added over the threads that run each stage, so it overlaps. With
    --quiet and --json, the table is left out (the file holds the figures).
    """
    from rich.console import Console

    from sleap_export.bench import run_bench
    from sleap_export.files import check_json_destination, write_json_atomically

    quiet = _quiet(quiet)
    if json_path is not None:
        check_json_destination(json_path, [*models, data, *vs])

    try:
        sizes = [int(b) for b in batch_size.split(",") if b.strip()]
    except ValueError:
        raise InputError(f"--batch-size takes comma-separated integers, got {batch_size!r}.") from None
    names = [r.strip() for r in runners.split(",") if r.strip()]
    if (spin is not None or warm_ahead) and not latency:
        raise InputError("--spin/--no-spin and --warm-ahead set how the live run waits for frames; pass --latency, or leave them out.")
    if latency:
        from sleap_export.live_bench import latency_report

        if vs or names:
            raise InputError("--latency times the model alone; leave out --vs and --runners (scripts/live_bench.py compares with sleap-nn).")
        report = latency_report(models, data, frames, threads=threads, waiting=_waiting(spin, warm_ahead),
                                **_runtime_options(runtime, precision))
    else:
        report = run_bench(models, data, sizes, frames, vs, names, threads, _runtime_options(runtime, precision))
    if not (quiet and json_path is not None):
        Console().print(report.render())
    if json_path is not None:
        write_json_atomically(report.as_dict(), json_path)


@app.command()
def inspect(
    artifact: Path = typer.Argument(..., help="An artifact written by sleap-export."),
    as_json: bool = typer.Option(False, "--json", help="Print the spec as JSON."),
    verify: bool = typer.Option(False, "--verify", help="Recompute the payload hash; exit 1 if the artifact was modified."),
    quiet: bool = _QUIET,
):
    """Print the spec embedded in an artifact (also with --quiet: the spec is what was asked for)."""
    _quiet(quiet)
    from sleap_export.runtime.artifact import read_spec, verify_payload

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
    table.add_row("export", "; ".join(f"{k}: {v}" for k, v in spec.export.describe().items()))
    table.add_row("versions", ", ".join(f"{k} {v}" for k, v in sorted(spec.versions.items())))
    if spec.payload_sha256:
        table.add_row("payload", f"sha256 {spec.payload_sha256[:16]}" + (" (verified)" if verify else ""))
    else:  # a TensorRT engine: no hash of its own, the ONNX payload it was built from is in "export"
        table.add_row("payload", "not hashed (TensorRT engine)")
    Console().print(table)


@app.command()
def live(
    artifact: Path = typer.Argument(..., help="An artifact (.onnx, .pt, .engine) of any model type but a lone centered-instance model."),
    source: str = typer.Option(
        ..., "--source", "-s",
        help="Camera index (0), device path (/dev/video0), stream URL (rtsp://...), or a video file played at its frame rate (a simulated camera).",
    ),
    processor: Optional[str] = typer.Option(
        None, "--processor", help="module:Class or file.py:Class whose process(outputs, timestamps) runs on each frame's poses."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Poses .slp to write, with each frame's capture, pose-ready and hook-done times."
    ),
    duration: Optional[float] = typer.Option(None, "--duration", min=0.0, help="Seconds to capture (default: until the source ends, or Ctrl-C)."),
    show: bool = typer.Option(False, "--show", help="Show the frames and poses in a window (needs a display; q or Esc stops)."),
    forecast: str = typer.Option("none", "--forecast", help="Forward prediction per keypoint: none, velocity (constant velocity) or kalman."),
    forecast_lead_ms: float = typer.Option(
        0.0, "--forecast-lead-ms", min=0.0, help="Forecast this many ms past pose-ready (e.g. the actuator's delay)."
    ),
    fps: Optional[float] = typer.Option(
        None, "--fps", min=0.1, help="Video files: play at this rate (default: the video's); cameras: the rate to ask for."
    ),
    loop: bool = typer.Option(False, "--loop", help="Video files: start again at the end (stop with --duration or Ctrl-C)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda for TensorRT engines, else cpu)."),
    runtime: Optional[str] = _RUNTIME,
    precision: Optional[str] = _RUNTIME_PRECISION,
    spin: Optional[bool] = _SPIN,
    warm_ahead: bool = _WARM_AHEAD,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    quiet: bool = _QUIET,
):
    """Poses from a camera, stream or simulated camera as frames come, for closed-loop experiments.

    Batch 1, newest frame first: when inference (or the hook) falls behind, the
    waiting frame is replaced by the next and counted as dropped, never queued.
    The processor's process() runs on the inference thread after each frame's
    poses. Ctrl-C ends the run: the poses so far are written and the latency
    summary (capture to pose-ready and to hook done) is printed.
    """
    from sleap_export.runtime.live import LiveRecording, LiveRunner, PoseWindow, load_processor
    from sleap_export.runtime.live_sources import open_source
    from sleap_export.runtime.output_file import check_destination

    quiet = _quiet(quiet)
    load_options = _runtime_options(runtime, precision)
    frames_from = open_source(source, fps=fps, loop=loop)
    if output is not None:
        check_destination(output, [artifact, getattr(frames_from, "path", None)])
        if output.exists() and not overwrite:
            raise InputError(f"{output} already exists; pass --overwrite to replace it.")
    window = PoseWindow() if show else None
    runner = LiveRunner(
        artifact, frames_from, forecast=forecast, forecast_lead_s=forecast_lead_ms / 1000, duration_s=duration, device=device,
        waiting=_waiting(spin, warm_ahead), **load_options,
    )
    if processor is not None:
        runner.processor = load_processor(processor)
    recording = LiveRecording(runner, artifact) if output is not None else None
    try:
        for frame in runner:
            if len(runner.times) == 1 and not quiet:
                typer.echo(f"live: posing {frames_from.name} with {artifact.name}; Ctrl-C stops", err=True)
            if recording is not None:
                recording.add(frame)
            if window is not None and not window.show(frame):
                break
    except KeyboardInterrupt:
        pass  # how a camera run ends: keep what was posed
    finally:
        runner.close()
        if window is not None:
            window.close()
    if recording is not None:
        recording.save(output)
    if not quiet:
        for line in runner.summary().lines():
            typer.echo(line)
        if recording is not None:
            typer.echo(f"wrote {output}: {len(recording.frames)} frames with their times")


@app.command()
def demo(
    output_dir: Path = typer.Option(Path("demo_output"), "--output-dir", help="Where to write artifacts, demo.slp and the overlay."),
    quiet: bool = _QUIET,
):
    """Export the bundled model, predict on the bundled clip, write demo.slp and an overlay PNG."""
    from sleap_export.demo import run_demo

    run_demo(output_dir, show=not _quiet(quiet))


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
