"""``onnx``, ``torchscript`` and ``trt``: parse the flags, call `sleap_export.export`, print."""

from __future__ import annotations

import copy
import functools
import time
from inspect import Parameter
from inspect import signature as signature_of
from pathlib import Path
from typing import List, Optional

import attrs
import typer

from sleap_export.cli.common import QUIET, quiet
from sleap_export.core.errors import InputError


# Where a user chooses a format: `torchscript --help` (see docs/artifacts.md for the measurement).
TORCHSCRIPT_SPEED = (
    "On CPUs, TorchScript artifacts predict 1.3-2.8x slower than the same models exported to ONNX "
    "(top-down, 2 cores; see docs/artifacts.md): export ONNX for speed, TorchScript to match PyTorch "
    "bit for bit."
)
EXPORT_COMMANDS = ("onnx", "torchscript", "trt")
# Reduced precision and its calibration: ONNX and TensorRT (TorchScript artifacts are fp32).
REDUCED_PRECISION_COMMANDS = ("onnx", "trt")


def _option(default, *declarations, commands: tuple[str, ...] = EXPORT_COMMANDS, **settings):
    """An `ExportFlags` field whose metadata carries its typer option and the commands it applies to."""
    return attrs.field(
        default=default, metadata={"option": typer.Option(default, *declarations, **settings), "commands": commands}
    )


@attrs.frozen
class ExportFlags:
    """The options of onnx, torchscript and trt, declared once (`takes_export_flags`); each command
    shows those that apply to it."""

    layout: str = _option(
        "artifact", "--layout", metavar="artifact|sleap-nn", commands=("onnx",),
        help="One self-describing file (default), or sleap-nn's export folder (model.onnx + "
        "export_metadata.json, for sleap-nn predict -m FOLDER and Bonsai.Sleap).",
    )
    preset: Optional[Path] = _option(
        None, "--preset", metavar="NAME|FILE",
        help="Export options: a bundled preset by name (closed-loop, crowded-arena, default) or a YAML file of them.",
    )
    max_instances: Optional[int] = _option(None, help="Instance slots per frame (default 20).")
    peak_threshold: Optional[float] = _option(None, help="Minimum confidence of a peak (default 0.2).")
    refinement: Optional[bool] = _option(None, "--refinement/--no-refinement", help="Integral sub-pixel refinement (default on).")
    grouping: Optional[str] = _option(None, "--grouping", help="Bottom-up: host (exact, default) or graph (approximate, no host work).")
    box_nms_iou: Optional[float] = _option(
        None, "--box-nms-iou", min=0.0, max=1.0,
        help="Box detectors: class-wise IoU-NMS threshold, sleap-nn's --bbox_nms_iou (default: off for CenterNet, 0.45 for SSD; 1 turns it off).",
    )
    fg_threshold: Optional[float] = _option(
        None, "--fg-threshold", "--fg_threshold", min=0.0, max=1.0,
        help="Segmentation: foreground probability a mask pixel exceeds (default 0.5, sleap-nn's).",
    )
    center_nms_kernel: Optional[int] = _option(
        None, "--center-nms-kernel", "--center_nms_kernel", min=1,
        help="Bottom-up segmentation: odd window of the instance-center peak test (default 3; larger merges near centers).",
    )
    check: Optional[Path] = _option(None, "--check", help="Video or .slp: run `check` on the new artifact; remove it and exit 1 if it fails.")
    check_frames: int = _option(50, "--check-frames", min=1, help="Frames `--check` compares.")
    precision: str = _option(
        "fp32", "--precision", commands=REDUCED_PRECISION_COMMANDS,
        help="fp32; fp16 (the networks in half precision, for GPUs); int8 (their convolutions quantized; symmetric for TensorRT).",
    )
    calibration: Optional[Path] = _option(
        None, "--calibration", commands=REDUCED_PRECISION_COMMANDS,
        help="fp16/int8: video or .slp (labeled frames first) to calibrate on (int8) and gate against fp32.",
    )
    calibration_frames: int = _option(
        64, "--calibration-frames", commands=REDUCED_PRECISION_COMMANDS,
        help="fp16/int8: frames to calibrate on (and as many to gate on).",
    )
    max_deviation: Optional[float] = _option(
        None, "--max-deviation", min=0.0, commands=REDUCED_PRECISION_COMMANDS,
        help="fp16/int8: the gate's p99 deviation from fp32 (px; default: check's tolerance for the precision).",
    )
    calibration_method: Optional[str] = _option(
        None, "--calibration-method", commands=REDUCED_PRECISION_COMMANDS,
        help="int8: minmax (default), entropy or percentile activation ranges.",
    )
    keep_inaccurate: bool = _option(
        False, "--keep-inaccurate", commands=REDUCED_PRECISION_COMMANDS,
        help="fp16/int8: write the artifact even when it fails its accuracy gate (its spec says so).",
    )
    overwrite: bool = _option(False, "--overwrite", help="Replace an existing artifact.")
    quiet: bool = attrs.field(default=False, metadata={"option": QUIET})

    def option_fields(self, raw_heads: bool = False, engine=None) -> dict:
        """The export option fields these flags give (a preset's are filled in under them by `export`)."""
        given = dict(
            max_instances=self.max_instances, peak_threshold=self.peak_threshold, grouping=self.grouping,
            box_nms_iou=self.box_nms_iou, fg_threshold=self.fg_threshold, center_nms_kernel=self.center_nms_kernel,
        )
        fields = {k: v for k, v in given.items() if v is not None}
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
        return fields


attrs.resolve_types(ExportFlags)


def _hidden(option):
    """A copy of a typer option left out of the help."""
    hidden = copy.copy(option)
    hidden.hidden = True
    return hidden


def takes_export_flags(name: str):
    """``command(..., flags: ExportFlags)`` as the typer command ``name``, taking every `ExportFlags`
    option. Those for other commands stay out of its help, and are refused in one line when given."""

    def decorate(command):
        signature = signature_of(command)
        own = [p for p in signature.parameters.values() if p.name != "flags"]
        fields = attrs.fields(ExportFlags)
        elsewhere = [f for f in fields if name not in f.metadata.get("commands", EXPORT_COMMANDS)]
        shared = [
            Parameter(
                f.name, Parameter.KEYWORD_ONLY, annotation=f.type,
                default=_hidden(f.metadata["option"]) if f in elsewhere else f.metadata["option"],
            )
            for f in fields
        ]

        @functools.wraps(command)
        def with_flags(**values):
            flags = ExportFlags(**{f.name: values.pop(f.name) for f in fields})
            quiet(flags.quiet)
            for field in elsewhere:
                if getattr(flags, field.name) != field.default:
                    flag = field.metadata["option"].param_decls[0]
                    commands = " and ".join(field.metadata["commands"])
                    raise InputError(f"{flag} applies to sleap-export {commands}; leave it out for {name}.")
            return command(**values, flags=flags)

        with_flags.__signature__ = signature.replace(parameters=own + shared)
        return with_flags

    return decorate


def _export(format: str, model_dirs: List[Path], output: Path, flags: ExportFlags, raw_heads: bool = False, engine=None):
    from rich.console import Console

    from sleap_export.evaluation.checked_export import export
    from sleap_export.runtime.artifacts.formats import read_spec
    from sleap_export.runtime.drivers.progress import progress_for

    shown = not quiet()
    started = time.perf_counter()
    path = export(
        model_dirs, output, format=format, overwrite=flags.overwrite, preset=flags.preset,
        check=flags.check, check_frames=flags.check_frames,
        check_progress=(lambda label: progress_for(False, label)) if shown else None,
        on_check_report=(lambda report: Console(stderr=True).print(report.render())) if shown else None,
        **flags.option_fields(raw_heads, engine),
        **({"layout": flags.layout} if flags.layout != "artifact" else {}),
    )
    if shown:
        files = list(path.iterdir()) if path.is_dir() else [path]
        size = sum(f.stat().st_size for f in files) / 1e6
        typer.echo(f"wrote {path} ({size:.1f} MB, {format}) in {time.perf_counter() - started:.1f} s")
        gate = read_spec(path).export.accuracy_gate
        if gate is not None:
            typer.echo(f"accuracy gate: {gate}")


def export_command(format: str):
    """The ``onnx`` / ``torchscript`` command."""
    from sleap_export.runtime.artifacts.formats import format_named

    @takes_export_flags(format)
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
    if format == "torchscript":
        command.__doc__ += f"\n\n{TORCHSCRIPT_SPEED}"
    return command


@takes_export_flags("trt")
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
    from sleap_export.exporting.options import AxisRange, EngineOptions

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
        show_progress=not quiet(),
    )
    _export("tensorrt", model_dirs, output, flags, engine=engine)
