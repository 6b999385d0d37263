"""``sleap-export check``: prove an artifact predicts what its trained model predicts.

The artifact and sleap-nn's own checkpoint inference (`sleap_export.evaluation.sleap_nn_reference`)
run on the same frames; the report holds instance-count agreement, matched
keypoint deviation per node, score deviation and track agreement, and, for
labels with ground truth, both sides' error against it. The report is truthy
when within tolerance (Polygraphy's comparator style).

Segmentation models are held to their masks instead (`MaskCheckReport`): equal
mask counts on every frame and every matched mask identical to sleap-nn's
(pixels, scale and offset; `core.mask_comparison`) but for ties and
``mask_tolerance`` pixels. A tie is a pixel whose value in sleap-nn's own maps
sits within `MASK_TIE_MARGINS` of a decision (the foreground threshold; bottom-up:
the boundary between two centres' votes), which another runtime's float32
rounding may take either way; ties are counted and reported, not judged. The IoU
of masks that differ and the largest score difference are reported beside.

A lone embedding model is held to its vectors (`EmbeddingCheckReport`): both sides
embed the detections of the same labels, so equal counts on every frame and every
paired vector element within `EMBEDDING_TOLERANCE` (or ``--max-deviation``).
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import attrs
import numpy as np

from sleap_export.core.comparison import (
    BOX_CORNERS,
    Comparison,
    box_scores_by_frame,
    boxes_by_frame,
    compare_poses,
    poses_by_frame,
    scores_by_frame,
    tracks_by_frame,
)
from sleap_export.core.embedding_comparison import EmbeddingComparison, compare_embeddings, embeddings_by_frame
from sleap_export.core.mask_comparison import MaskComparison, TiePixels, compare_masks
from sleap_export.core.model_types import BOX_HEAD_TYPES, MODEL_TYPES
from sleap_export.core.errors import InputError, SleapExportError, install_extra
from sleap_export.core.tolerances import MASK_TIE_MARGINS, MaskTieMargins, Tolerance, tolerance_for
from sleap_export.core.training_runs import weights_file
from sleap_export.core.spec import PostprocessSpec
from sleap_export.evaluation.peak_ties import PeakTies, checked_frames, count_peak_ties
from sleap_export.runtime.artifacts.formats import SLEAP_NN_FOLDER, TENSORRT, format_of, read_spec, verify_payload
from sleap_export.runtime.artifacts.sleap_nn_export_folder import written_by_sleap_nn
from sleap_export.runtime.drivers.predictor import LabelsEmbeddingPredictor, Predictor
from sleap_export.runtime.drivers.progress import phase
from sleap_export.runtime.open_model import ModelOptions, check_models, is_artifact, model_name, open_model


@attrs.frozen
class GroundTruthError:
    """Both sides against the labels' user instances."""

    labeled_frames: int
    mean_px_artifact: float
    mean_px_reference: float
    oks_map_artifact: Optional[float]
    oks_map_reference: Optional[float]


def _stats(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"n": 0}
    quantiles = np.percentile(values, [50, 99, 99.9])
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "p50": float(quantiles[0]),
        "p99": float(quantiles[1]),
        "p99.9": float(quantiles[2]),
        "max": float(values.max()),
    }


@attrs.frozen
class CheckReport:
    """The outcome of one check; truthy when every figure is within tolerance."""

    artifact: str
    references: tuple[str, ...]
    data: str
    precision: str
    tolerance: Tolerance
    node_names: tuple[str, ...]
    comparison: Comparison
    ground_truth: Optional[GroundTruthError] = None
    # What the deviations measure: "keypoints", or a detector's "box corners".
    points: str = "keypoints"
    # The checked frames' local peaks that sit on a tie (None: the model searches none).
    peak_ties: Optional[PeakTies] = None

    @property
    def counted(self) -> str:
        """What is counted per frame: instance(s), or a detector's box(es)."""
        return "box" if self.points == "box corners" else "instance"

    @property
    def track_agreement(self) -> float:
        return 1.0 - self.comparison.track_mismatches / max(self.comparison.matched_instances, 1)

    @property
    def deviation_px(self) -> float:
        return self.comparison.deviation_at(self.tolerance.percentile)

    @property
    def failures(self) -> list[str]:
        """What is out of tolerance, one phrase each."""
        found = []
        tolerance, comparison = self.tolerance, self.comparison
        if comparison.frames == 0:
            found.append("no frames were compared")
        if comparison.count_agreement < tolerance.min_agreement:
            found.append(f"{self.counted} counts agree on {comparison.count_agreement:.1%} of frames (< {tolerance.min_agreement:.0%})")
        if self.deviation_px > tolerance.max_deviation_px:
            found.append(
                f"p{tolerance.percentile:g} {self.points[:-1]} deviation {self.deviation_px:.3g} px (> {tolerance.max_deviation_px:g} px)"
            )
        if self.track_agreement < tolerance.min_agreement:
            found.append(f"tracks agree on {self.track_agreement:.1%} of matched instances")
        return found

    def __bool__(self) -> bool:
        return not self.failures

    def per_node(self) -> dict[str, dict[str, float]]:
        comparison = self.comparison
        return {
            name: _stats(comparison.deviations[comparison.deviation_nodes == i]) for i, name in enumerate(self.node_names)
        }

    def as_dict(self) -> dict:
        comparison = self.comparison
        return {
            **_report_head(self),
            # The vector cosine is the export gate's (fp32 twins); check holds poses to sleap-nn's.
            "tolerance": attrs.asdict(self.tolerance, filter=lambda field, _: field.name != "min_vector_cosine"),
            "matched_instances": comparison.matched_instances,
            "keypoint_deviation_px": _stats(comparison.deviations),
            "keypoint_deviation_px_per_node": self.per_node(),
            "visibility_mismatches": comparison.visibility_mismatches,
            "score_deviation": _stats(comparison.score_deviations),
            "track_agreement": self.track_agreement,
            "ground_truth": None if self.ground_truth is None else attrs.asdict(self.ground_truth),
            "peak_ties": None if self.peak_ties is None else attrs.asdict(self.peak_ties),
        }

    def render(self) -> "object":
        """A rich table of the report."""
        from rich.table import Table

        verdict = "PASS" if self else "FAIL: " + "; ".join(self.failures)
        name = " + ".join(Path(part).name for part in self.artifact.split(" + "))
        table = Table(title=f"check {name} ({self.precision}): {verdict}")
        for column in (self.points, "n", "mean px", "p50", "p99", "p99.9", "max"):
            table.add_column(column, justify="left" if column == self.points else "right")
        rows = {f"all {self.points}": _stats(self.comparison.deviations), **self.per_node()}
        for name, stats in rows.items():
            cells = [f"{stats[k]:.2e}" for k in ("mean", "p50", "p99", "p99.9", "max")] if stats["n"] else ["-"] * 5
            table.add_row(name, str(stats["n"]), *cells)
        table.caption = "\n".join(self.caption_lines())
        return table

    def caption_lines(self) -> list[str]:
        """The lines under the table: frames, counts and scores, the tolerance, ground truth."""
        comparison = self.comparison
        scores = _stats(comparison.score_deviations)
        identities = "" if self.counted == "box" else f", tracks agree on {self.track_agreement:.1%}"
        caption = [
            f"{comparison.frames} frames of {Path(self.data).name}; {self.counted} counts agree on "
            f"{comparison.count_agreement:.1%}; {comparison.matched_instances} matched {'boxes' if self.counted == 'box' else 'instances'}{identities}; "
            f"score deviation max {scores.get('max', 0.0):.2e}",
            f"tolerance: p{self.tolerance.percentile:g} <= {self.tolerance.max_deviation_px:g} px, "
            f"agreement >= {self.tolerance.min_agreement:.0%}",
        ]
        truth = self.ground_truth
        if truth is not None:
            maps = ""
            if truth.oks_map_artifact is not None:
                maps = f"; OKS mAP artifact {truth.oks_map_artifact:.3f}, sleap-nn {truth.oks_map_reference:.3f}"
            caption.append(
                f"ground truth ({truth.labeled_frames} labeled frames): mean error artifact "
                f"{truth.mean_px_artifact:.2f} px, sleap-nn {truth.mean_px_reference:.2f} px{maps}"
            )
        if self.peak_ties is not None:
            caption.append(f"ties: {self.peak_ties.describe()}")
        return caption


def _report_head(report) -> dict:
    """What every check report (poses, masks, vectors) states first: verdict, inputs, frames and counts."""
    comparison = report.comparison
    return {
        "passed": bool(report),
        "failures": report.failures,
        "artifact": report.artifact,
        "references": list(report.references),
        "data": report.data,
        "precision": report.precision,
        "frames": comparison.frames,
        "count_agreement": comparison.count_agreement,
        "count_mismatch_frames": [list(k) for k in comparison.count_mismatches],
    }


def _count_stats(counts: Sequence[int]) -> dict[str, float]:
    values = np.asarray(counts, np.float64)
    if values.size == 0:
        return {"total": 0, "min": 0, "mean": 0.0, "max": 0}
    return {"total": int(values.sum()), "min": int(values.min()), "mean": float(values.mean()), "max": int(values.max())}


@attrs.frozen
class MaskCheckReport:
    """The outcome of checking a segmentation model: its masks against sleap-nn's, frame by frame.

    Truthy when mask counts agree on every frame (a mask one side lacks that lies wholly on
    ties excused) and every matched mask is placed as sleap-nn's and differs from it in at most
    ``comparison.mask_tolerance`` pixels that are not ties. Ties, the IoU of masks that differ
    and the score differences are reported.
    """

    artifact: str
    references: tuple[str, ...]
    data: str
    precision: str
    model_type: str
    comparison: MaskComparison
    # Masks on each checked frame, in frame order: the model's and sleap-nn's.
    counts_artifact: tuple[int, ...]
    counts_reference: tuple[int, ...]
    # Whether sleap-nn's maps were read for ties (bottom-up and semantic models; not top-down's crops).
    ties_measured: bool = False
    margins: MaskTieMargins = MASK_TIE_MARGINS

    @property
    def beyond_tolerance(self) -> int:
        """Matched masks placed alike that differ in more than the tolerance's pixels outside ties."""
        return sum(1 for n in self.comparison.beyond_ties if n > self.comparison.mask_tolerance)

    @property
    def failures(self) -> list[str]:
        """What is out of tolerance, one phrase each."""
        found = []
        comparison = self.comparison
        if comparison.frames == 0:
            found.append("no frames were compared")
        mismatched = comparison.count_mismatches
        if mismatched:
            video, frame = mismatched[0]
            found.append(
                f"mask counts differ on {len(mismatched)} of {comparison.frames} frames (first: frame {frame}"
                + (f" of video {video}" if video else "") + ")"
            )
        if comparison.misplaced:
            found.append(f"{comparison.misplaced} of {comparison.matched} matched masks placed otherwise (grid, scale or offset)")
        if self.beyond_tolerance:
            found.append(
                f"{self.beyond_tolerance} of {comparison.matched} matched masks differ in more than "
                f"{comparison.mask_tolerance} pixel(s) beyond ties (worst {comparison.worst_beyond_ties})"
            )
        return found

    def __bool__(self) -> bool:
        return not self.failures

    @property
    def worst_iou(self) -> Optional[float]:
        """The lowest IoU among matched masks that are not identical (None: all identical)."""
        return min(self.comparison.differing_ious) if self.comparison.differing_ious else None

    def ties(self) -> dict:
        """The ties met, by kind (one entry per kind of tie check counts)."""
        comparison = self.comparison
        return {
            "measured": self.ties_measured,
            "pixels": comparison.tie_pixels,
            "masks": comparison.masks_with_ties,
            "masks_identical_but_for_ties": comparison.tied,
            "lone_masks_on_ties": comparison.lone_tie_masks,
            "margins": attrs.asdict(self.margins),
        }

    def as_dict(self) -> dict:
        comparison = self.comparison
        return {
            **_report_head(self),
            "model_type": self.model_type,
            "compared": "masks",
            "masks_per_frame_artifact": _count_stats(self.counts_artifact),
            "masks_per_frame_reference": _count_stats(self.counts_reference),
            "matched_masks": comparison.matched,
            "identical_masks": comparison.identical,
            "identical_share": comparison.identical_share,
            "mask_tolerance_px": comparison.mask_tolerance,
            "pixels_beyond_ties": list(comparison.beyond_ties),
            "misplaced_masks": comparison.misplaced,
            "ties": self.ties(),
            "differing_mask_ious": list(comparison.differing_ious),
            "worst_iou": self.worst_iou,
            "max_score_difference": comparison.max_score_difference,
        }

    def caption_lines(self) -> list[str]:
        """The lines under the table: frames and counts, masks, ties, scores, the rule."""
        comparison = self.comparison
        worst = "-" if self.worst_iou is None else f"{self.worst_iou:.4f}"
        margins = self.margins
        if self.ties_measured:
            ties = (
                f"ties (not judged): {comparison.tie_pixels} pixels in {comparison.masks_with_ties} masks "
                f"({comparison.tied} identical but for ties, {comparison.lone_tie_masks} on one side only); a tie: "
                f"foreground probability within {margins.foreground_probability:g} of fg_threshold"
                + (f", or a vote within {margins.vote_distance_px:g} px of two centres" if self.model_type == "bottomup_segmentation" else "")
                + " in sleap-nn's maps"
            )
        else:
            ties = f"ties: not measured for {self.model_type} (every differing pixel is judged)"
        return [
            f"{comparison.frames} frames of {Path(self.data).name}; mask counts agree on {comparison.count_agreement:.1%} "
            f"({len(comparison.count_mismatches)} differ)",
            f"mask IoU: {comparison.matched} matched, {comparison.identical} identical "
            f"({comparison.identical_share:.2%}), {len(comparison.differing_ious)} differ, worst IoU {worst}; "
            f"{len(comparison.beyond_ties)} differ beyond ties (worst {comparison.worst_beyond_ties} px)",
            ties,
            f"score difference max {comparison.max_score_difference:.2e}",
            f"tolerance: equal counts on every frame, every mask placed as sleap-nn's and within "
            f"{comparison.mask_tolerance} pixel(s) of it beyond ties (--mask-tolerance)",
        ]

    def render(self) -> "object":
        """A rich table of the report."""
        from rich.table import Table

        verdict = "PASS" if self else "FAIL: " + "; ".join(self.failures)
        name = " + ".join(Path(part).name for part in self.artifact.split(" + "))
        table = Table(title=f"check {name} ({self.model_type}, {self.precision}): {verdict}", min_width=80)
        for column in ("masks per frame", "total", "min", "mean", "max"):
            table.add_column(column, justify="left" if column == "masks per frame" else "right")
        for side, counts in (("artifact", self.counts_artifact), ("sleap-nn", self.counts_reference)):
            stats = _count_stats(counts)
            table.add_row(side, str(stats["total"]), str(stats["min"]), f"{stats['mean']:.2f}", str(stats["max"]))
        table.caption = "\n".join(self.caption_lines())
        table.caption_justify = "left"
        return table


# Per-element tolerance of a lone embedding's vectors: sleap-nn's Skia crop rounds a few pixels one grey
# level differently from ours (up to 8 in a mask's crop), each moving vectors by up to ~7.3e-5 (measured
# worst 1.7e-4, 4 pixels); where the crops agree, within 1e-6. A crop shifted by a pixel moves them ~1e-2.
EMBEDDING_TOLERANCE = 5e-4


@attrs.frozen
class EmbeddingCheckReport:
    """The outcome of checking a lone embedding model: its vectors against sleap-nn's for the same detections.

    Truthy when both sides embed as many detections on every frame and no element of a paired
    vector deviates by more than ``tolerance``.
    """

    artifact: str
    references: tuple[str, ...]
    data: str
    precision: str
    comparison: EmbeddingComparison
    tolerance: float = EMBEDDING_TOLERANCE

    @property
    def failures(self) -> list[str]:
        """What is out of tolerance, one phrase each."""
        found = []
        comparison = self.comparison
        if comparison.frames == 0:
            found.append("no frames were compared")
        if comparison.embedded != comparison.embedded_reference or comparison.count_mismatches:
            found.append(
                f"{comparison.embedded} detections embedded, sleap-nn {comparison.embedded_reference} "
                f"(counts differ on {len(comparison.count_mismatches)} of {comparison.frames} frames)"
            )
        elif comparison.paired == 0 and comparison.frames:
            found.append("no detection was embedded")
        if comparison.max_deviation > self.tolerance:
            found.append(f"vector element deviation max {comparison.max_deviation:.3g} (> {self.tolerance:g})")
        return found

    def __bool__(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict:
        comparison = self.comparison
        return {
            **_report_head(self),
            "compared": "embeddings",
            "embedded_artifact": comparison.embedded,
            "embedded_reference": comparison.embedded_reference,
            "paired": comparison.paired,
            "vector_element_deviation": _stats(comparison.deviations),
            "tolerance": self.tolerance,
        }

    def render(self) -> "object":
        """A rich table of the report."""
        from rich.table import Table

        verdict = "PASS" if self else "FAIL: " + "; ".join(self.failures)
        comparison = self.comparison
        table = Table(title=f"check {Path(self.artifact).name} (embedding, {self.precision}): {verdict}", min_width=80)
        for column in ("vector elements", "n", "mean", "p50", "p99", "p99.9", "max"):
            table.add_column(column, justify="left" if column == "vector elements" else "right")
        stats = _stats(comparison.deviations)
        cells = [f"{stats[k]:.2e}" for k in ("mean", "p50", "p99", "p99.9", "max")] if stats["n"] else ["-"] * 5
        table.add_row("all elements", str(stats["n"]), *cells)
        table.caption = "\n".join([
            f"{comparison.frames} frames of {Path(self.data).name}; detections embedded: artifact {comparison.embedded}, "
            f"sleap-nn {comparison.embedded_reference}; counts agree on {comparison.count_agreement:.1%} of frames; "
            f"{comparison.paired} vectors paired in order",
            f"tolerance: equal counts on every frame, every element within {self.tolerance:g}",
        ])
        table.caption_justify = "left"
        return table


def _frame_sizes(source) -> dict[int, tuple[int, int]]:
    """``video index -> (height, width)`` of the frames checked."""
    import sleap_io as sio

    videos = source.videos if isinstance(source, sio.Labels) else [source]
    return {i: tuple(int(n) for n in video.shape[1:3]) for i, video in enumerate(videos)}


def _all_masks_by_frame(labels, keys) -> dict[tuple[int, int], list]:
    """Each checked frame's masks (none where a side predicted nothing), keyed as `masks_by_frame` keys them."""
    videos = {id(v): i for i, v in enumerate(labels.videos)}
    found = {key: [] for key in keys}
    for lf in labels.labeled_frames:
        found.setdefault((videos[id(lf.video)], int(lf.frame_idx)), []).extend(lf.masks)
    return found


def checked_frame_keys(source, indices) -> list[tuple[int, int]]:
    """``(video, frame)`` of each checked frame, in the order both sides predict them."""
    if indices is not None:  # frames of a video
        return [(0, int(i)) for i in indices]
    videos = {id(v): i for i, v in enumerate(source.videos)}  # labels: their labeled frames
    return [(videos[id(lf.video)], int(lf.frame_idx)) for lf in source.labeled_frames]


def compare_frame_masks(
    source, indices, ours, theirs, ties: Optional[dict[tuple[int, int], TiePixels]] = None, mask_tolerance: int = 0
) -> tuple[MaskComparison, tuple[int, ...], tuple[int, ...]]:
    """``(comparison, counts of ours, counts of theirs)`` over the checked frames, each video on its own frame
    grid; with ``ties`` (sleap-nn's tie pixels per frame) those pixels are counted apart, the rest held to
    ``mask_tolerance`` pixels a mask, every matched mask to it."""
    keys = checked_frame_keys(source, indices)
    mine, reference = _all_masks_by_frame(ours, keys), _all_masks_by_frame(theirs, keys)
    frames = sorted(set(mine) | set(reference))
    sizes = _frame_sizes(source)
    parts = [
        compare_masks(
            {k: mine.get(k, []) for k in frames if k[0] == video},
            {k: reference.get(k, []) for k in frames if k[0] == video},
            sizes[video],
            min_identical_share=1.0,
            ties=ties,
            mask_tolerance=mask_tolerance,
        )
        for video in sorted({k[0] for k in frames})
    ]
    comparison = MaskComparison.combined(parts)
    return comparison, tuple(len(mine.get(k, [])) for k in frames), tuple(len(reference.get(k, [])) for k in frames)


def _vote_ties(foreground: np.ndarray, peaks: np.ndarray, offsets: np.ndarray, stride: int, margin_px: float) -> np.ndarray:
    """Foreground pixels whose offset points within ``margin_px`` of equidistant between their two nearest
    centres (``peaks``: ``(N, 2)`` grid ``(x, y)``, N >= 2); ``(h, w)`` bool."""
    rows, cols = np.nonzero(foreground)
    half = stride / 2.0
    pointed = np.stack([cols * stride + half + offsets[0, rows, cols], rows * stride + half + offsets[1, rows, cols]], axis=1)
    centres = peaks.astype(np.float64) * stride + half
    distances = np.linalg.norm(pointed[:, None, :].astype(np.float64) - centres[None], axis=-1)
    nearest_two = np.partition(distances, 1, axis=1)[:, :2]
    ties = np.zeros(foreground.shape, bool)
    ties[rows, cols] = nearest_two[:, 1] - nearest_two[:, 0] <= margin_px
    return ties


def _tie_grid(layer, raw_out: dict, b: int, margins: MaskTieMargins) -> np.ndarray:
    """Frame ``b``'s tie pixels at the output stride, from the maps sleap-nn's ``layer`` decodes:
    foreground probabilities within the margin of its threshold; bottom-up, also votes within the
    margin of the boundary between the two nearest of the centres it keeps."""
    import torch
    from sleap_nn.inference.segmentation import find_center_peaks

    probability = raw_out[layer._SEG_KEY][b, 0].detach().cpu()
    ties = np.abs(probability.numpy().astype(np.float64) - layer.fg_threshold) <= margins.foreground_probability
    if layer._CENTER_KEY not in raw_out:  # semantic: the threshold decides alone
        return ties
    peaks, values = find_center_peaks(
        raw_out[layer._CENTER_KEY][b : b + 1].detach().cpu(),
        threshold=layer.postprocess_config.peak_threshold,
        kernel_size=getattr(layer, "center_nms_kernel", 3),
    )
    # The centres sleap-nn keeps: its predict-time cap, else the layer's own.
    cap = getattr(layer.postprocess_config, "max_instances", None) or getattr(layer, "max_instances", None)
    if cap is not None and len(peaks) > int(cap):
        peaks = peaks[torch.topk(values, int(cap)).indices]
    if len(peaks) >= 2:
        foreground = (probability > layer.fg_threshold).numpy()
        offsets = raw_out[layer._OFFSET_KEY][b].detach().cpu().numpy()
        ties |= _vote_ties(foreground, peaks.numpy(), offsets, layer.output_stride, margins.vote_distance_px)
    return ties


@contextlib.contextmanager
def sleap_nn_mask_ties(margins: MaskTieMargins = MASK_TIE_MARGINS) -> Iterator[list[TiePixels]]:
    """While open, sleap-nn's bottom-up and semantic segmentation layers note the tie pixels of each frame
    they decode (`_tie_grid`), placed as the layer places that frame's masks, in the order decoded.
    Top-down crop masks are not read (nothing noted)."""
    from unittest import mock

    from sleap_nn.inference.layers.segmentation import SegmentationLayer, SemanticSegmentationLayer

    noted: list[TiePixels] = []

    def noting(postprocess):
        def postprocess_noting_ties(layer, raw_out, info):
            outputs = postprocess(layer, raw_out, info)
            for b in range(raw_out[layer._SEG_KEY].shape[0]):
                grid = _tie_grid(layer, raw_out, b, margins)
                if getattr(layer, "full_res_masks", False):
                    noted.append(TiePixels(layer._mask_to_original(grid, info, b), (1.0, 1.0), (0.0, 0.0)))
                else:
                    noted.append(TiePixels(*layer._mask_to_stride(grid, info, b)))
            return outputs

        return postprocess_noting_ties

    with mock.patch.object(SegmentationLayer, "postprocess", noting(SegmentationLayer.postprocess)), mock.patch.object(
        SemanticSegmentationLayer, "postprocess", noting(SemanticSegmentationLayer.postprocess)
    ):
        yield noted


def _frames_to_check(data: Path, frames: int):
    """(source, frame indices or None): labels' first labeled frames, or frames spread over a video."""
    import sleap_io as sio

    from sleap_export.runtime.sources.video_inputs import first_labeled_frames, open_input, spread_indices

    source = open_input(data)
    if isinstance(source, sio.Labels):
        return first_labeled_frames(source, frames), None
    return source, list(spread_indices(source.shape[0], frames))


def _user_poses(labels) -> dict:
    """``(video, frame) -> (instances, nodes, 2)`` of the labels' user instances."""
    import sleap_io as sio

    user_only = sio.Labels(
        labeled_frames=[
            sio.LabeledFrame(video=lf.video, frame_idx=lf.frame_idx, instances=list(lf.user_instances))
            for lf in labels.labeled_frames
            if lf.user_instances
        ],
        videos=labels.videos,
        skeletons=labels.skeletons,
    )
    return poses_by_frame(user_only), user_only


def _oks_map(truth, predicted) -> Optional[float]:
    """OKS mAP (sleap-nn's evaluator); None where it cannot score these labels."""
    from sleap_nn.evaluation import Evaluator

    try:
        return float(Evaluator(truth, predicted).voc_metrics(match_score_by="oks")["oks_voc.mAP"])
    except Exception:
        return None


def _ground_truth(source, ours, theirs) -> Optional[GroundTruthError]:
    import sleap_io as sio

    if not isinstance(source, sio.Labels):
        return None
    truth, truth_labels = _user_poses(source)
    if not truth:
        return None

    def mean_error(predicted) -> float:
        found = {k: v for k, v in poses_by_frame(predicted).items() if k in truth}
        deviations = compare_poses(found, truth).deviations
        return float(deviations.mean()) if deviations.size else float("nan")

    return GroundTruthError(
        labeled_frames=len(truth),
        mean_px_artifact=mean_error(ours),
        mean_px_reference=mean_error(theirs),
        oks_map_artifact=_oks_map(truth_labels, ours),
        oks_map_reference=_oks_map(truth_labels, theirs),
    )


def _check_sources(checked: set[str], count: int, references: Sequence[Path], artifact: bool, weights_known: bool = True) -> None:
    """The reference runs must hold the weights checked (sha256, where known), one run per model."""
    from sleap_export.exporting.checkpoints import file_sha256

    if len(references) != count:
        raise InputError(
            f"The artifact holds {count} model(s); pass as many --reference run folders (got {len(references)})."
            if artifact
            else f"{count} training run(s) are checked; pass as many --reference run folders (got {len(references)}), or leave -r out."
        )
    for reference in references:
        weights = weights_file(reference)
        if weights_known and weights.exists() and file_sha256(weights) not in checked:
            raise SleapExportError(
                f"{weights} is not the checkpoint this artifact was exported from (sha256 "
                "differs); pass the run folders it was exported from, or re-export it."
                if artifact
                else f"{weights} is not the checkpoint of the run(s) checked (sha256 differs); leave -r out, or pass the same runs."
            )


def _reference_settings(spec, masks=None) -> dict:
    """How sleap-nn runs the reference: decoding as the artifact's graph does (and, for masks, with the
    model's `MaskOptions`); for a folder written by sleap-nn's own exporter, sleap-nn's checkpoint
    defaults (what its export stands in for) at its threshold."""
    from sleap_export.evaluation.sleap_nn_reference import reference_settings

    if written_by_sleap_nn(spec):
        spec = attrs.evolve(spec, postprocess=PostprocessSpec(peak_threshold=spec.postprocess.peak_threshold))
    return reference_settings(spec, masks=masks)


def _peak_ties(spec, references, source, indices) -> Optional[PeakTies]:
    """How many of the checked frames' local peaks sit on a tie, in the reference runs' graph run eagerly;
    None for models that search no map for local peaks, or checked against runs the graph cannot build."""
    if not MODEL_TYPES[spec.model_type].finds_local_peaks or written_by_sleap_nn(spec):
        return None
    return count_peak_ties(references, checked_frames(source, indices))


def _refuse_pose_settings_for_masks(spec, max_deviation: Optional[float], options: ModelOptions) -> None:
    """A segmentation model's masks are held to identity, not to a keypoint tolerance; and they must be written."""
    if max_deviation is not None:
        raise InputError(
            f"--max-deviation is a keypoint tolerance and {spec.model_type} models predict masks, held to equal "
            "counts and masks identical but for ties; leave it out (--mask-tolerance allows pixels beyond ties)."
        )
    if not options.masks.writes_masks:
        raise InputError(
            f"check compares masks and mask_output={options.masks.mask_output!r} writes none; "
            "leave mask_output at 'mask' (or 'both')."
        )


def _refuse_video_for_embedding(data: Path) -> None:
    """A lone embedding model embeds the detections of a .slp, so it is checked on one."""
    if data.suffix.lower() != ".slp":
        raise InputError(
            f"{data.name} is not a .slp: a lone embedding model embeds the detections of an existing .slp, so check "
            "compares its vectors on one; pass -d LABELS.slp, or export the embedding run with a centroid run "
            "(sleap-export onnx CENTROID_RUN EMBEDDING_RUN) and check that on the video."
        )


def _check_embedding(models, references, data, labels, max_deviation, batch_size, progress, options) -> "EmbeddingCheckReport":
    """Both sides embed the detections of ``labels`` (the checked frames); their vectors, paired in order."""
    from sleap_export.evaluation.sleap_nn_reference import sleap_nn_embed

    videos = {id(v): i for i, v in enumerate(labels.videos)}
    frames = [(videos[id(lf.video)], int(lf.frame_idx)) for lf in labels.labeled_frames]
    with phase(progress, models[0].name, len(frames)) as shown:
        runner = open_model(models, options)
        LabelsEmbeddingPredictor(runner, batch_size=batch_size).predict(labels, progress=shown)
        ours = embeddings_by_frame(labels)
    # sleap-nn embeds the same labels; without our vectors, so that every vector it returns is its own.
    for lf in labels.labeled_frames:
        for detection in [*lf.instances, *(getattr(lf, "masks", None) or [])]:
            detection.identity_embedding = None
    with phase(progress, "sleap-nn", len(frames)) as shown:
        theirs = embeddings_by_frame(sleap_nn_embed(labels, references[0], batch_size=batch_size))
        if shown is not None:
            shown.advance(len(frames))
    return EmbeddingCheckReport(
        artifact=model_name(models),
        references=tuple(str(r) for r in references),
        data=str(data),
        precision=options.precision or runner.spec.precision,
        comparison=compare_embeddings(ours, theirs, frames),
        tolerance=EMBEDDING_TOLERANCE if max_deviation is None else max_deviation,
    )


def check_artifact(
    artifact: str | Path | Sequence[str | Path],
    references: Sequence[str | Path],
    data: str | Path,
    frames: int = 50,
    max_deviation: Optional[float] = None,
    batch_size: int = 4,
    progress: Optional[Callable[[str], object]] = None,
    options: ModelOptions = ModelOptions(),
    mask_tolerance: Optional[int] = None,
) -> CheckReport | MaskCheckReport | EmbeddingCheckReport:
    """Run the artifact and sleap-nn on the same frames of ``data`` and compare them: poses
    (`CheckReport`), a segmentation model's masks (`MaskCheckReport`, ``options.masks`` reaching
    both sides; ``max_deviation`` is refused there, ``mask_tolerance``, default 0, is the most pixels
    beyond ties a mask may differ in, and refused for other models), or a lone embedding model's vectors for the
    detections of the first ``frames`` labeled frames of a .slp (`EmbeddingCheckReport`;
    ``max_deviation`` is the per-element tolerance).

    ``options`` open the artifact (`open_model`; ``ModelOptions(runtime="openvino",
    precision="bf16")``); the tolerance is the precision it runs at.

    ``artifact`` may instead be training run(s) (a folder, its best.ckpt, a top-down
    pair): their graph, run eagerly by PyTorch, is checked. ``progress(label)`` makes
    the progress shown for each side (`runtime.drivers.progress.progress_for`).
    """
    from sleap_export.evaluation.sleap_nn_reference import sleap_nn_predict
    from sleap_export.evaluation.throughput import model_type_of_models
    from sleap_export.exporting.checkpoints import file_sha256

    if frames < 1:
        raise InputError(f"--frames must be at least 1, got {frames}.")
    models = check_models([artifact] if isinstance(artifact, (str, Path)) else artifact)
    data, references = Path(data), [Path(r) for r in references]
    if not data.exists():
        raise InputError(f"{data} does not exist; pass a video or a .slp labels file.")
    options.check_applies_to(models[0])
    spec = None
    if is_artifact(models[0]):
        # Engines carry no payload hash (TensorRT builds are not reproducible), nor do sleap-nn export
        # folders; their parity is what is checked.
        unhashed = format_of(models[0]) in (TENSORRT, SLEAP_NN_FOLDER)
        spec = read_spec(models[0]) if unhashed else verify_payload(models[0])
        # sleap-nn's own exports record no weights hash, only how many runs they hold.
        hashes = {stage.checkpoint_sha256 for stage in spec.stages} - {""}
        _check_sources(hashes, len(spec.stages), references, artifact=True, weights_known=bool(hashes))
        if MODEL_TYPES[spec.model_type].segments:
            _refuse_pose_settings_for_masks(spec, max_deviation, options)
    else:
        weights = [weights_file(m) for m in models]
        _check_sources({file_sha256(w) for w in weights if w.exists()}, len(models), references, artifact=False)
    model_type = spec.model_type if spec else model_type_of_models(models)
    if mask_tolerance is not None and not MODEL_TYPES[model_type].segments:
        raise InputError(f"--mask-tolerance holds a segmentation model's masks and {model_type} models predict none; leave it out.")
    if mask_tolerance is not None and mask_tolerance < 0:
        raise InputError(f"--mask-tolerance is a number of pixels, at least 0; got {mask_tolerance}.")
    lone_embedding = model_type == "embedding"
    if lone_embedding:
        _refuse_video_for_embedding(data)
    # Found, not imported: importing sleap-nn (and torch) takes seconds, shown as the reference's progress.
    if importlib.util.find_spec("sleap_nn") is None:
        raise InputError(f"check runs sleap-nn as the reference; install it: {install_extra('export')}.")

    source, indices = _frames_to_check(data, frames)
    if lone_embedding:
        return _check_embedding(models, references, data, source, max_deviation, batch_size, progress, options)
    total = len(source.labeled_frames) if indices is None else len(indices)
    with phase(progress, models[0].name if spec else "eager graph", total) as shown:
        runner = open_model(models, options)  # training runs: torch and sleap-nn load in this step
        spec = runner.spec
        segments = MODEL_TYPES[spec.model_type].segments
        if segments and not is_artifact(models[0]):  # training runs: known once opened
            _refuse_pose_settings_for_masks(spec, max_deviation, options)
        ours = Predictor(runner, batch_size=batch_size).predict(source, frames=indices, progress=shown)
    with phase(progress, "sleap-nn", total) as shown, (sleap_nn_mask_ties() if segments else contextlib.nullcontext([])) as ties:
        theirs = sleap_nn_predict(
            source, references, frames=indices, batch_size=batch_size,
            advance=None if shown is None else shown.advance,
            **_reference_settings(spec, masks=options.masks if segments else None),
        )
    precision = options.precision or spec.precision
    if segments:
        keys = checked_frame_keys(source, indices)
        # One noted frame per checked frame, in order; otherwise (top-down: none) every pixel is judged.
        ties_by_frame = dict(zip(keys, ties)) if len(ties) == len(keys) else None
        comparison, counts_ours, counts_theirs = compare_frame_masks(
            source, indices, ours, theirs, ties=ties_by_frame, mask_tolerance=mask_tolerance or 0
        )
        return MaskCheckReport(
            artifact=model_name(models),
            references=tuple(str(r) for r in references),
            data=str(data),
            precision=precision,
            model_type=spec.model_type,
            comparison=comparison,
            counts_artifact=counts_ours,
            counts_reference=counts_theirs,
            ties_measured=ties_by_frame is not None,
        )
    tolerance = tolerance_for(precision, max_deviation)
    # A detector's boxes compare as two-corner poses: matched, counted and measured in pixels the same way.
    detector = spec.model_type in BOX_HEAD_TYPES
    points_of, scores_of = (boxes_by_frame, box_scores_by_frame) if detector else (poses_by_frame, scores_by_frame)
    comparison = compare_poses(
        points_of(ours),
        points_of(theirs),
        tolerance_px=tolerance.max_deviation_px,
        percentile=tolerance.percentile,
        min_count_agreement=tolerance.min_agreement,
        ours_tracks=None if detector else tracks_by_frame(ours),
        reference_tracks=None if detector else tracks_by_frame(theirs),
        ours_scores=scores_of(ours),
        reference_scores=scores_of(theirs),
    )
    return CheckReport(
        artifact=model_name(models),
        references=tuple(str(r) for r in references),
        data=str(data),
        precision=precision,
        tolerance=tolerance,
        node_names=BOX_CORNERS if detector else spec.output_node_names,
        comparison=comparison,
        ground_truth=None if detector else _ground_truth(source, ours, theirs),
        points="box corners" if detector else "keypoints",
        peak_ties=_peak_ties(spec, references, source, indices),
    )

