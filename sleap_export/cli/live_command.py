"""``live``: pose a camera or stream as frames come, run the hook, write and summarize."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import List, Optional

import typer

from sleap_export.cli import predict_command
from sleap_export.cli.common import DEVICE, MODEL_HELP, QUIET, RUNTIME, RUNTIME_PRECISION, SPIN, WARM_AHEAD, model_options, quiet, waiting
from sleap_export.core.errors import InputError


def _with_predicts_options(command):
    """``command`` taking predict's tracking and segmentation-mask options (its TRACKING and MASKS
    help panels, declared once, in predict_command) after its own, and called with
    ``tracking_options`` (a `TrackingOptions` or None) and ``mask_options`` (a `MaskOptions`) made of
    them as predict makes its own."""
    predict_parameters = inspect.signature(predict_command.predict).parameters
    panels = (predict_command.TRACKING, predict_command.MASKS)
    names = [name for name, parameter in predict_parameters.items()
             if getattr(parameter.default, "rich_help_panel", None) in panels]
    made = ("tracking_options", "mask_options")
    own = [parameter for name, parameter in inspect.signature(command).parameters.items() if name not in made]

    @functools.wraps(command)
    def with_options(**given):
        chosen = {name: given.pop(name) for name in names}
        fields = {name: value for name, value in chosen.items() if name in predict_command._TRACKING_FIELDS}
        given["tracking_options"] = predict_command._tracking_options(chosen["tracking"], chosen["tracker"], fields)
        given["mask_options"] = predict_command._mask_options({name: chosen[name] for name in predict_command._MASK_FIELDS})
        return command(**given)

    with_options.__signature__ = inspect.Signature([*own, *(predict_parameters[name] for name in names)])
    with_options.__annotations__ = {
        **{p.name: command.__annotations__[p.name] for p in own},
        **{name: predict_command.predict.__annotations__[name] for name in names},
    }
    return with_options


@_with_predicts_options
def live(
    models: List[Path] = typer.Argument(
        ..., help=MODEL_HELP + " Any model type but a lone centered-instance model; two runs: a centroid + centered-instance pair."
    ),
    source: str = typer.Option(
        ..., "--source", "-s",
        help="Camera index (0), device path (/dev/video0), stream URL (rtsp://...), or a video file played at its frame rate (a simulated camera).",
    ),
    processor: Optional[str] = typer.Option(
        None, "--processor", help="module:Class or file.py:Class whose process(outputs, timestamps) runs on each frame's poses."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Poses file to write: .slp, .analysis.h5 (or .h5), .nwb or .csv; .slp and .analysis.h5 "
        "also keep each frame's capture, pose-ready and hook-done times."
    ),
    output_format: Optional[str] = typer.Option(
        None, "--format", metavar="slp|analysis.h5|nwb|csv", help="Format of -o; it must match the suffix."
    ),
    duration: Optional[float] = typer.Option(None, "--duration", min=0.0, help="Seconds to capture (default: until the source ends, or Ctrl-C)."),
    show: bool = typer.Option(False, "--show", help="Show the frames and poses in a window (needs a display; q or Esc stops)."),
    overlay: Optional[Path] = typer.Option(
        None, "--overlay", help="Also draw each posed frame with its poses into this video (.mp4, .avi, .mkv, .mov) "
        "at the source's frame rate; a folder: STEM.overlay.mp4 in it.",
    ),
    forecast: str = typer.Option("none", "--forecast", help="Forward prediction per keypoint: none, velocity (constant velocity) or kalman."),
    forecast_lead_ms: float = typer.Option(
        0.0, "--forecast-lead-ms", min=0.0, help="Forecast this many ms past pose-ready (e.g. the actuator's delay)."
    ),
    fps: Optional[float] = typer.Option(
        None, "--fps", min=0.1, help="Video files: play at this rate (default: the video's); cameras: the rate to ask for."
    ),
    loop: bool = typer.Option(False, "--loop", help="Video files: start again at the end (stop with --duration or Ctrl-C)."),
    device: Optional[str] = DEVICE,
    runtime: Optional[str] = RUNTIME,
    precision: Optional[str] = RUNTIME_PRECISION,
    spin: Optional[bool] = SPIN,
    warm_ahead: bool = WARM_AHEAD,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    keep_going: bool = typer.Option(
        False, "--keep-going", help="When the --processor hook raises: report it in one warning line, keep the frame and go on "
        "(default: stop, write the frames posed so far with -o, exit 1)."
    ),
    quiet_flag: bool = QUIET,
    tracking_options=None,
    mask_options=None,
):
    """Poses from a camera, stream or simulated camera as frames come, for closed-loop experiments.

    Batch 1, newest frame first: when inference (or the hook) falls behind, the
    waiting frame is replaced by the next and counted as dropped, never queued.
    The processor's process() runs on the inference thread after each frame's
    poses. Ctrl-C ends the run: the poses so far are written and the latency
    summary (capture to pose-ready and to hook done) is printed. A hook that
    raises ends it too (exit 1), the poses so far written, unless --keep-going.

    --tracking (predict's tracking options) tracks each frame's instances as
    they are posed: the hook sees each instance's track in outputs.class_ids
    (docs/live.md), and -o keeps the tracks.

    A segmentation model's masks (predict's mask options) reach the hook in
    outputs.masks (run-length coded; outputs.rois with --mask-output polygon or
    both), and -o (a .slp) keeps them.
    """
    from sleap_export.runtime.drivers.live import HookFailed, LiveRecording, LiveRunner, PoseWindow, load_processor
    from sleap_export.runtime.open_model import check_models, model_name
    from sleap_export.runtime.drivers.progress import counted
    from sleap_export.runtime.sources.live_sources import open_source
    from sleap_export.runtime.writing.destination import check_destination
    from sleap_export.runtime.writing.overlay_video import OverlayVideo

    is_quiet = quiet(quiet_flag)
    models = check_models(models)
    options = model_options(device, runtime, precision, masks=mask_options)
    options.check_applies_to(models[0])
    frames_from = open_source(source, fps=fps, loop=loop)
    if output is None and output_format is not None:
        raise InputError("--format is the format of -o; add -o poses.slp (or .analysis.h5, .nwb, .csv), or leave out --format.")
    if output is not None:
        found = check_destination(output, [*models, getattr(frames_from, "path", None)], output_format)
        if output.exists() and not overwrite:
            raise InputError(f"{output} already exists; pass --overwrite to replace it.")
    if overlay is not None:
        overlay = _overlay_path(overlay, models, frames_from, overwrite)
    hook = None if processor is None else load_processor(processor)
    window = PoseWindow() if show else None
    runner = LiveRunner(
        models, frames_from, processor=hook, processor_name=processor, forecast=forecast,
        forecast_lead_s=forecast_lead_ms / 1000, duration_s=duration, waiting=waiting(spin, warm_ahead),
        keep_going=keep_going, options=options, tracking=tracking_options,
    )
    name = model_name(models)
    recording = LiveRecording(runner, name) if output is not None else None
    if recording is not None:
        # Once the model is known (not yet run): a format that cannot keep what it predicts (masks in a CSV).
        recording.writer.check_destination(output, [getattr(frames_from, "path", None)], output_format)
    drawn = None if overlay is None else OverlayVideo(overlay)
    ended = False
    try:
        for frame in runner:
            if len(runner.times) == 1 and not is_quiet:
                typer.echo(f"live: posing {frames_from.name} with {' + '.join(m.name for m in models)}; Ctrl-C stops", err=True)
            if recording is not None:
                recording.add(frame)
            if drawn is not None:
                if not drawn.frames:
                    drawn.fps = frames_from.fps  # known once the source is open; None: measured from the frames
                drawn.add(frame.outputs.original_image, frame.outputs, frame.times.capture_ns)
            if window is not None and not window.show(frame):
                break
        ended = True
    except KeyboardInterrupt:
        ended = True  # how a camera run ends: keep what was posed
    except HookFailed as failure:
        # The runtime's line names hook, frame and exception; it ends with where the poses are.
        if recording is None:
            failure.kept = "nothing was written because no -o was given (pass -o poses.slp to keep the poses)"
        else:
            recording.add(failure.frame)  # posed before its hook ran: kept with the others
            failure.kept = (f"the {len(recording.frames)} frames posed up to and including frame "
                            f"{failure.frame_index} are in {output}")
        raise
    finally:
        runner.close()
        if window is not None:
            window.close()
        if drawn is not None:
            drawn.close()  # like the poses: the frames drawn so far, however the run ended
        # Whatever ended the run, what was posed is written (a run that failed before posing leaves no file).
        if recording is not None and (ended or recording.frames):
            recording.save(output)
    if not is_quiet:
        for line in runner.summary().lines():
            typer.echo(line)
        if recording is not None:
            typer.echo(f"wrote {output}: {counted(len(recording.frames), 'frame')}" + (" with their times" if found.keeps_provenance else ""))
        if drawn is not None and drawn.frames:
            typer.echo(f"wrote {overlay}: {drawn.frames} frames drawn with their poses at {drawn.fps:.1f} fps")


def _overlay_path(overlay: Path, models, frames_from, overwrite: bool) -> Path:
    """--overlay's video, refused before the model loads (as -o is): see `overlay_video.check_overlay`."""
    from sleap_export.runtime.writing.overlay_video import check_overlay, overlay_paths

    source_file = getattr(frames_from, "path", None)
    check_overlay(overlay, [*models, source_file])
    (path,) = overlay_paths(overlay, [str(source_file or "live")])
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; pass --overwrite to replace it, or name another --overlay.")
    return path
