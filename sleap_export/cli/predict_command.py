"""``predict``: parse into a `PredictionRequest`, run its plan here (or as a Ray job), print what was written."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from sleap_export.cli.common import DEVICE, MODEL_HELP, QUIET, RUNTIME, RUNTIME_PRECISION, model_options, quiet, session
from sleap_export.core.errors import InputError, SleapExportError

TRACKING = "Tracking (sleap-nn's classic tracker, its option names; docs/tracking.md)"
MASKS = "Segmentation masks (sleap-nn's option names; docs/segmentation.md)"


def predict(
    model: Path = typer.Argument(..., help=MODEL_HELP),
    inputs: List[Path] = typer.Argument(
        ..., help="Video(s) or .slp labels file(s), after the model; a top-down pair of runs gives both runs first, "
        "in either order."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o",
        help="Predictions file to write, its format from the suffix: .slp, .analysis.h5 (or .h5), .nwb, .csv; "
        "or an existing folder for one file per video.",
    ),
    output_format: Optional[str] = typer.Option(
        None, "--format", metavar="slp|analysis.h5|nwb|csv",
        help="Format of the output: with -o FOLDER, each video's file (default slp); with a file, it must match the suffix.",
    ),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frame ranges, e.g. 0-999,2000-."),
    batch_size: int = typer.Option(4, "--batch-size", "-b", min=1, help="Frames per batch."),
    device: Optional[str] = DEVICE,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="ONNX Runtime CPU threads in all (default: all cores); with --ray, per worker (default 1)."),
    parallel_batches: Optional[int] = typer.Option(
        None, "--parallel-batches", help="ONNX Runtime batches run at once, sharing the threads (default: 2 on a multi-core CPU)."
    ),
    runtime: Optional[str] = RUNTIME,
    precision: Optional[str] = RUNTIME_PRECISION,
    video_index: Optional[int] = typer.Option(
        None, "--video-index", min=0, help="Only this video of the inputs (counted over all inputs' videos, from 0)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    resume: bool = typer.Option(
        False, "--resume", help="Keep the frames an earlier, interrupted run saved in --output; predict the rest."
    ),
    restore_source_videos: bool = typer.Option(
        False, "--restore-source-videos", "--restore_source_videos",
        help="A .pkg.slp input's predictions name the video its frames were packed from (where it records one) "
        "instead of the .pkg.slp, whose frames they otherwise read (sleap-nn predict --restore_source_videos).",
    ),
    overlay: Optional[Path] = typer.Option(
        None, "--overlay", help="Also draw each predicted frame with its poses into this video (.mp4, .avi, .mkv, .mov), "
        "or into one STEM.overlay.mp4 per video in this existing folder.",
    ),
    ray_address: Optional[str] = typer.Option(
        None, "--ray", metavar="auto|HOST:PORT|ray://HOST:PORT",
        help="Run on this Ray cluster (needs the ray extra of sleap-export); -o DIR writes one file per video.",
    ),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="--ray: workers (default: the cluster's CPUs / --threads)."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", min=0.0, help="--ray: GPUs per worker (TensorRT, CUDA)."),
    chunk_size: Optional[int] = typer.Option(
        None, "--chunk-size", min=1, help="--ray: frames per chunk, the unit of work, retry and --resume (default 500)."
    ),
    tracking: bool = typer.Option(False, "--tracking", "-t", help="Track the instances as frames are predicted (sleap-nn predict --tracking).", rich_help_panel=TRACKING),
    tracker: str = typer.Option("classic", "--tracker", help="Tracker: classic, sort or bytetrack (sleap-nn's names).", rich_help_panel=TRACKING),
    tracking_window_size: int = typer.Option(5, "--tracking-window-size", "--tracking_window_size", help="Frames (fixed_window) or poses per track (local_queues) to match against.", rich_help_panel=TRACKING),
    candidates_method: str = typer.Option("fixed_window", "--candidates-method", "--candidates_method", help="fixed_window or local_queues (--max-tracks implies local_queues).", rich_help_panel=TRACKING),
    min_new_track_points: int = typer.Option(0, "--min-new-track-points", "--min_new_track_points", help="A pose starts a track only with more visible points than this.", rich_help_panel=TRACKING),
    min_match_points: int = typer.Option(0, "--min-match-points", "--min_match_points", help="Candidates need more visible points than this.", rich_help_panel=TRACKING),
    features: Optional[str] = typer.Option(None, "--features", help="keypoints, centroids or bboxes (default: keypoints; centroids for a one-node skeleton).", rich_help_panel=TRACKING),
    scoring_method: Optional[str] = typer.Option(None, "--scoring-method", "--scoring_method", help="oks, iou or euclidean_dist (default: oks; euclidean_dist for a one-node skeleton).", rich_help_panel=TRACKING),
    scoring_reduction: str = typer.Option("mean", "--scoring-reduction", "--scoring_reduction", help="mean, max or robust_quantile of a track's candidate scores.", rich_help_panel=TRACKING),
    robust_best_instance: float = typer.Option(1.0, "--robust-best-instance", "--robust_best_instance", help="Quantile for robust_quantile.", rich_help_panel=TRACKING),
    oks_stddev: Optional[float] = typer.Option(None, "--oks-stddev", "--oks_stddev", help="OKS keypoint spread (default: 0.025 classic, 0.1 sort/bytetrack).", rich_help_panel=TRACKING),
    track_matching_method: str = typer.Option("hungarian", "--track-matching-method", "--track_matching_method", help="hungarian or greedy.", rich_help_panel=TRACKING),
    max_tracks: Optional[int] = typer.Option(None, "--max-tracks", "--max_tracks", help="At most this many tracks (local_queues).", rich_help_panel=TRACKING),
    use_flow: bool = typer.Option(False, "--use-flow", "--use_flow", help="Shift candidates onto the frame by optical flow.", rich_help_panel=TRACKING),
    of_img_scale: float = typer.Option(1.0, "--of-img-scale", "--of_img_scale", help="Optical flow: image scale.", rich_help_panel=TRACKING),
    of_window_size: int = typer.Option(21, "--of-window-size", "--of_window_size", help="Optical flow: window size per pyramid level.", rich_help_panel=TRACKING),
    of_max_levels: int = typer.Option(3, "--of-max-levels", "--of_max_levels", help="Optical flow: pyramid levels.", rich_help_panel=TRACKING),
    use_kalman: bool = typer.Option(False, "--use-kalman", "--use_kalman", help="Move each track's last pose by a constant-velocity Kalman filter's prediction (needs --tracking-target-instance-count or --max-tracks).", rich_help_panel=TRACKING),
    kf_track_features: str = typer.Option("centroid", "--kf-track-features", "--kf_track_features", help="Kalman: filter the centroid, or each node (keypoints).", rich_help_panel=TRACKING),
    kf_init_frame_count: int = typer.Option(10, "--kf-init-frame-count", "--kf_init_frame_count", help="Kalman: frames tracked without it before the filters are fit (EM).", rich_help_panel=TRACKING),
    kf_node_indices: Optional[str] = typer.Option(None, "--kf-node-indices", "--kf_node_indices", help="Kalman: comma-separated node indices it follows (default: all).", rich_help_panel=TRACKING),
    kf_reset_gap_size: int = typer.Option(5, "--kf-reset-gap-size", "--kf_reset_gap_size", help="Kalman: a track's filter is dropped after more missed frames than this.", rich_help_panel=TRACKING),
    tracking_target_instance_count: Optional[int] = typer.Option(None, "--tracking-target-instance-count", "--tracking_target_instance_count", help="Instances per frame expected (pre-cull, --post-connect-single-breaks).", rich_help_panel=TRACKING),
    tracking_pre_cull_to_target: int = typer.Option(0, "--tracking-pre-cull-to-target", "--tracking_pre_cull_to_target", help="Non-zero: cull to the target count before tracking.", rich_help_panel=TRACKING),
    tracking_pre_cull_iou_threshold: float = typer.Option(0.0, "--tracking-pre-cull-iou-threshold", "--tracking_pre_cull_iou_threshold", help="Pre-cull: overlap (IoU) removed first.", rich_help_panel=TRACKING),
    tracking_clean_instance_count: int = typer.Option(0, "--tracking-clean-instance-count", "--tracking_clean_instance_count", help="After tracking: at most this many instances per frame, then single breaks connected.", rich_help_panel=TRACKING),
    tracking_clean_iou_threshold: float = typer.Option(0.0, "--tracking-clean-iou-threshold", "--tracking_clean_iou_threshold", help="After-tracking cull: overlap (IoU) removed first.", rich_help_panel=TRACKING),
    post_connect_single_breaks: bool = typer.Option(False, "--post-connect-single-breaks", "--post_connect_single_breaks", help="After tracking: connect single-frame track breaks.", rich_help_panel=TRACKING),
    track_buffer: Optional[int] = typer.Option(None, "--track-buffer", "--track_buffer", help="sort/bytetrack: steps a lost track is kept (default 30).", rich_help_panel=TRACKING),
    min_hits: Optional[int] = typer.Option(None, "--min-hits", "--min_hits", help="sort/bytetrack: matches that confirm a track (default 3 sort, 2 bytetrack).", rich_help_panel=TRACKING),
    track_high_threshold: Optional[float] = typer.Option(None, "--track-high-threshold", "--track_high_threshold", help="sort/bytetrack: high-score detection threshold (default 0.1 sort, 0.5 bytetrack).", rich_help_panel=TRACKING),
    track_low_threshold: Optional[float] = typer.Option(None, "--track-low-threshold", "--track_low_threshold", help="sort/bytetrack: detections at or below are ignored (default 0.1).", rich_help_panel=TRACKING),
    new_track_threshold: Optional[float] = typer.Option(None, "--new-track-threshold", "--new_track_threshold", help="sort/bytetrack: lowest score that starts a track (default 0.1 sort, 0.6 bytetrack).", rich_help_panel=TRACKING),
    min_match_similarity: Optional[float] = typer.Option(None, "--min-match-similarity", "--min_match_similarity", help="sort/bytetrack: lowest similarity of a match (default 0.3 sort, 0.2 bytetrack).", rich_help_panel=TRACKING),
    filter_overlapping: bool = typer.Option(False, "--filter-overlapping", "--filter_overlapping", help="Before tracking: drop the lower-scoring of overlapping instances.", rich_help_panel=TRACKING),
    filter_overlapping_method: str = typer.Option("iou", "--filter-overlapping-method", "--filter_overlapping_method", help="iou (boxes) or oks (poses).", rich_help_panel=TRACKING),
    filter_overlapping_threshold: float = typer.Option(0.8, "--filter-overlapping-threshold", "--filter_overlapping_threshold", help="Overlap above which the lower-scoring instance is dropped.", rich_help_panel=TRACKING),
    filter_min_visible_nodes: int = typer.Option(0, "--filter-min-visible-nodes", "--filter_min_visible_nodes", help="Before tracking: drop instances with fewer visible nodes.", rich_help_panel=TRACKING),
    filter_min_visible_node_fraction: float = typer.Option(0.0, "--filter-min-visible-node-fraction", "--filter_min_visible_node_fraction", help="Before tracking: drop instances with a smaller visible fraction of nodes.", rich_help_panel=TRACKING),
    filter_min_mean_node_score: float = typer.Option(0.0, "--filter-min-mean-node-score", "--filter_min_mean_node_score", help="Before tracking: drop instances with a lower mean node score.", rich_help_panel=TRACKING),
    filter_min_instance_score: float = typer.Option(0.0, "--filter-min-instance-score", "--filter_min_instance_score", help="Before tracking: drop instances with a lower score.", rich_help_panel=TRACKING),
    min_mask_area: int = typer.Option(0, "--min-mask-area", "--min_mask_area", help="Drop masks smaller than this many frame pixels.", rich_help_panel=MASKS),
    max_instances: Optional[int] = typer.Option(None, "--max-instances", "--max_instances", help="Bottom-up segmentation: keep the N strongest instance centers per frame (pose models fix it at export: sleap-export onnx --max-instances).", rich_help_panel=MASKS),
    mask_cleanup: bool = typer.Option(False, "--mask-cleanup", "--mask_cleanup", help="Bottom-up segmentation: keep each mask's largest part and fill its holes.", rich_help_panel=MASKS),
    mask_cleanup_radius: int = typer.Option(0, "--mask-cleanup-radius", "--mask_cleanup_radius", help="Bottom-up segmentation, with --mask-cleanup: open then close with an ellipse of this radius (grid cells) first.", rich_help_panel=MASKS),
    distance_gate_alpha: Optional[float] = typer.Option(None, "--distance-gate-alpha", "--distance_gate_alpha", help="Bottom-up segmentation: drop pixels voting farther than alpha*sqrt(area/pi) from their center.", rich_help_panel=MASKS),
    merge_fragments: bool = typer.Option(False, "--merge-fragments", "--merge_fragments", help="Bottom-up segmentation: re-join fragments of one animal.", rich_help_panel=MASKS),
    merge_method: str = typer.Option("greedy", "--merge-method", "--merge_method", help="Fragment merge: greedy or multicut.", rich_help_panel=MASKS),
    merge_thresholds: str = typer.Option("0.85,0.6,0.4", "--merge-thresholds", "--merge_thresholds", help="Greedy merge: decreasing affinity thresholds, comma-separated.", rich_help_panel=MASKS),
    merge_w_valley: float = typer.Option(1.0, "--merge-w-valley", "--merge_w_valley", help="Fragment merge: weight of the center-valley term.", rich_help_panel=MASKS),
    merge_w_offset: float = typer.Option(0.25, "--merge-w-offset", "--merge_w_offset", help="Fragment merge: weight of the offset-agreement term.", rich_help_panel=MASKS),
    merge_dilate: int = typer.Option(1, "--merge-dilate", "--merge_dilate", help="Fragment merge: dilations of the contact test.", rich_help_panel=MASKS),
    full_res_masks: bool = typer.Option(False, "--full-res-masks", "--full_res_masks", help="Masks at the frame's resolution instead of the heads' stride.", rich_help_panel=MASKS),
    mask_output: str = typer.Option("mask", "--mask-output", "--mask_output", help="mask (run-length masks), polygon (simplified outlines) or both.", rich_help_panel=MASKS),
    polygon_epsilon: float = typer.Option(0.01, "--polygon-epsilon", "--polygon_epsilon", help="Polygons: simplification tolerance, a fraction of each outline's perimeter.", rich_help_panel=MASKS),
    quiet_flag: bool = QUIET,
):
    """Predict poses on videos or labels and write a .slp file, or analysis HDF5, NWB or CSV (see --format;
    saved as it goes; see --resume).

    With --ray, videos are split into chunks of --chunk-size frames run by
    --workers Ray actors of --threads CPU threads each (default 1).

    The leading paths that are models (an artifact suffix, a .ckpt, a folder
    with a training config) are the model, the rest the inputs:
    predict model.onnx a.mp4 b.slp -o out.slp, or for a top-down pair of runs
    predict CENTROID_RUN INSTANCE_RUN video.mp4 -o out.slp. A detector artifact
    followed by a lone embedding artifact predicts, then embeds each detection:
    predict masks.onnx embed.onnx video.mp4 -o out.slp.

    fps, on the progress line and the final line alike: frames predicted in
    this run / wall-clock seconds from the start of prediction (model read,
    inputs opened) to the last frame; the final line also gives the whole time,
    loading the model and writing the output included.
    """
    from sleap_export.runtime.drivers.prediction_request import PredictionRequest
    from sleap_export.runtime.drivers.progress import progress_for

    # FFmpeg's C code prints its decoding errors; a damaged video is reported in one line instead (DamagedVideoStop).
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    started = time.perf_counter()
    is_quiet = quiet(quiet_flag)
    given = locals()
    tracking_options = _tracking_options(tracking, tracker, {name: value for name, value in given.items() if name in _TRACKING_FIELDS})
    masks = _mask_options({name: given[name] for name in _MASK_FIELDS})
    cluster = None
    if ray_address is not None:
        from sleap_export.runtime.drivers.ray_cluster import DEFAULT_CHUNK_FRAMES, RayCluster

        cluster = RayCluster(ray_address, workers, threads or 1, gpus_per_worker, chunk_size or DEFAULT_CHUNK_FRAMES)
        options = model_options(device, runtime, precision, parallel_batches=parallel_batches, masks=masks)
    elif workers is not None or chunk_size is not None or gpus_per_worker:
        raise InputError("--workers, --gpus-per-worker and --chunk-size apply with --ray; add --ray ADDRESS or leave them out.")
    else:
        options = model_options(device, runtime, precision, threads, parallel_batches, masks=masks)
    plan = PredictionRequest(
        paths=[model, *inputs], output=output, output_format=output_format, frames=frames, batch_size=batch_size,
        options=options, video_index=video_index, overwrite=overwrite, resume=resume,
        restore_source_videos=restore_source_videos, overlay=overlay, tracking=tracking_options, cluster=cluster,
    ).plan()
    if cluster is not None:
        return _predict_on_ray(plan, is_quiet, started)
    _predict_here(plan, is_quiet, started)
    for _, output in plan.destinations if plan.embedding is not None else ():
        progress = progress_for(is_quiet)
        with _shown_until_done(progress):
            labels = plan.embed_into(output, progress=progress)
        if progress is not None:
            embedded = sum(
                detection.identity_embedding is not None
                for lf in labels.labeled_frames for detection in [*lf.instances, *lf.masks]
            )
            typer.echo(f"wrote {output}: {embedded} detections embedded by {plan.embedding.name}; {time.perf_counter() - started:.1f} s in all")


# predict's tracking options, by TrackingOptions field (the CLI's window option is sleap-nn's --tracking_window_size).
_TRACKING_FIELDS = {
    "tracking_window_size": "window_size", "candidates_method": "candidates_method", "min_new_track_points": "min_new_track_points",
    "min_match_points": "min_match_points", "features": "features", "scoring_method": "scoring_method",
    "scoring_reduction": "scoring_reduction", "robust_best_instance": "robust_best_instance", "oks_stddev": "oks_stddev",
    "track_matching_method": "track_matching_method", "max_tracks": "max_tracks", "use_flow": "use_flow",
    "of_img_scale": "of_img_scale", "of_window_size": "of_window_size", "of_max_levels": "of_max_levels",
    "tracking_target_instance_count": "tracking_target_instance_count", "tracking_pre_cull_to_target": "tracking_pre_cull_to_target",
    "tracking_pre_cull_iou_threshold": "tracking_pre_cull_iou_threshold",
    "tracking_clean_instance_count": "tracking_clean_instance_count", "tracking_clean_iou_threshold": "tracking_clean_iou_threshold",
    "post_connect_single_breaks": "post_connect_single_breaks",
    **{name: name for name in (
        "use_kalman", "kf_track_features", "kf_init_frame_count", "kf_node_indices", "kf_reset_gap_size",
        "track_buffer", "min_hits", "track_high_threshold", "track_low_threshold", "new_track_threshold", "min_match_similarity",
        "filter_overlapping", "filter_overlapping_method", "filter_overlapping_threshold", "filter_min_visible_nodes",
        "filter_min_visible_node_fraction", "filter_min_mean_node_score", "filter_min_instance_score",
    )},
}


# predict's mask options: `MaskOptions` fields of the same names.
_MASK_FIELDS = (
    "min_mask_area", "max_instances", "mask_cleanup", "mask_cleanup_radius", "distance_gate_alpha", "merge_fragments",
    "merge_method", "merge_thresholds", "merge_w_valley", "merge_w_offset", "merge_dilate", "full_res_masks",
    "mask_output", "polygon_epsilon",
)


def _mask_options(given: dict):
    from sleap_export.core.mask_options import MaskOptions

    return MaskOptions(**given)


def _tracking_options(tracking: bool, tracker: str, given: dict):
    """The `TrackingOptions` of --tracking, or None; tracking options without --tracking refused, and
    options of another tracker family (TrackingOptions checks them)."""
    from sleap_export.runtime.tracking.tracking_options import TrackingOptions

    if not tracking:
        changed = [name for name, value in given.items() if value != getattr(TrackingOptions(), _TRACKING_FIELDS[name])]
        changed += ["tracker"] if tracker != "classic" else []
        if changed:
            raise InputError(f"--{changed[0].replace('_', '-')} is a tracking option; add --tracking, or leave it out.")
        return None
    return TrackingOptions(tracker=tracker, **{_TRACKING_FIELDS[name]: value for name, value in given.items()})


def _predict_here(plan, is_quiet, started):
    from sleap_export.core.model_types import MODEL_TYPES
    from sleap_export.runtime.drivers.predictor import DamagedVideoStop
    from sleap_export.runtime.drivers.progress import counted, progress_for

    for inputs, output in plan.destinations:
        progress = progress_for(is_quiet)
        try:
            with _shown_until_done(progress):
                labels = plan.predict_into(inputs, output, progress)
        except DamagedVideoStop as err:
            raise SleapExportError(f"{err.problem}; {err.fix(_resume_command)}") from None
        if progress is not None:
            n_instances = sum(len(lf.instances) for lf in labels.labeled_frames)
            n_boxes = sum(len(lf.bboxes) for lf in labels.labeled_frames)
            n_masks = sum(len(lf.masks) for lf in labels.labeled_frames)
            n_polygons = sum(len(lf.rois) for lf in labels.labeled_frames)
            segments = MODEL_TYPES[plan.predictor.runner.spec.model_type].segments
            counts = ((n_masks, "masks"), (n_polygons, "polygons")) if segments else ((n_instances, "instances"), (n_boxes, "boxes"))
            found = ", ".join(f"{n} {what}" for n, what in counts if n or what in ("instances", "masks"))
            rate = progress.rate
            typer.echo(
                f"wrote {output}: {counted(len(labels.labeled_frames), 'frame')}, {found}"
                f"{f', {len(labels.tracks)} tracks' if plan.request.tracking else ''}; "
                f"{rate.frames} predicted at {rate.fps:.1f} fps; {time.perf_counter() - started:.1f} s in all"
            )
            for drawn in plan.predictor.overlays_written:
                typer.echo(f"wrote {drawn}: the frames predicted, drawn with their {'masks' if segments else 'poses'}")


def _resume_command(frames: str) -> str:
    """This command line, to finish a run a damaged video stopped: with --resume and ``--frames frames``
    (instead of its own --frames, --overwrite)."""
    arguments, skip_value = [], False
    for argument in sys.argv[1:]:
        if skip_value:
            skip_value = False
        elif argument == "--frames":
            skip_value = True
        elif not (argument.startswith("--frames=") or argument in ("--overwrite", "--resume", "--debug")):
            arguments.append(argument)
    return shlex.join(["sleap-export", *arguments, "--resume", "--frames", frames])


@contextlib.contextmanager
def _shown_until_done(progress):
    """Stop the progress display however prediction ends; an interruption is
    reported here, once (its partial output is named), and main() exits 130."""
    from sleap_export.runtime.drivers.predictor import PredictionInterrupted

    try:
        yield
    except PredictionInterrupted as err:
        typer.echo(str(err), err=True)
        session().interrupt_reported = True
        raise
    finally:
        if progress is not None:
            progress.stop()


def _predict_on_ray(plan, is_quiet, started):
    """predict --ray: chunks over a Ray cluster; a failed video is a row of the summary and exit 1."""
    from sleap_export.core.model_types import MODEL_TYPES
    from sleap_export.runtime.drivers.progress import counted, progress_for

    job = plan.ray_job()
    progress = progress_for(is_quiet)
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
            found = f"{video.instances} instances"
            if MODEL_TYPES[job.spec.model_type].segments:
                found = f"{video.masks} masks" + (f", {video.polygons} polygons" if video.polygons else "")
            typer.echo(f"wrote {video.output}: {video.path.name}, {counted(video.frames, 'frame')}, {found}")
        retried = f", {report.retried} chunk runs retried after a worker died" if report.retried else ""
        typer.echo(
            f"{report.predicted} predicted at {progress.rate.fps:.1f} fps on {report.workers} Ray workers{retried}; "
            f"{time.perf_counter() - started:.1f} s in all"
        )
