"""Comparing two sets of pose predictions frame by frame, in pixels.

Used by the parity tests and by anything that must prove an artifact predicts
what the trained model predicts. The result is truthy when within tolerance
and carries the statistics either way (Polygraphy's comparator style).
"""

from __future__ import annotations

from typing import Mapping

import attrs
import numpy as np
import sleap_io as sio
from scipy.optimize import linear_sum_assignment

FramePoses = Mapping[tuple[int, int], np.ndarray]  # (video, frame) -> (instances, nodes, 2)


def poses_by_frame(labels: sio.Labels) -> dict[tuple[int, int], np.ndarray]:
    """``(video index, frame index) -> (instances, nodes, 2)`` of predicted instances."""
    video_index = {id(v): i for i, v in enumerate(labels.videos)}
    n_nodes = len(labels.skeletons[0].nodes) if labels.skeletons else 0
    poses = {}
    for lf in labels.labeled_frames:
        points = [inst.numpy() for inst in lf.instances]
        shape = (0, n_nodes, 2) if not points else None
        poses[(video_index[id(lf.video)], lf.frame_idx)] = (
            np.stack(points).astype(np.float64) if points else np.zeros(shape)
        )
    return poses


def scores_by_frame(labels: sio.Labels) -> dict[tuple[int, int], np.ndarray]:
    """``(video index, frame index) -> (instances,)`` instance scores (NaN for user instances)."""
    video_index = {id(v): i for i, v in enumerate(labels.videos)}
    return {
        (video_index[id(lf.video)], lf.frame_idx): np.array(
            [float(getattr(inst, "score", np.nan)) for inst in lf.instances], np.float64
        )
        for lf in labels.labeled_frames
    }


# A box compared as a two-point pose: its corners.
BOX_CORNERS = ("top-left", "bottom-right")


def boxes_by_frame(labels: sio.Labels) -> dict[tuple[int, int], np.ndarray]:
    """``(video index, frame index) -> (boxes, 2, 2)``: each box's two corners, as `poses_by_frame`
    gives instances, so boxes compare (matched, counted, in pixels) as poses do."""
    video_index = {id(v): i for i, v in enumerate(labels.videos)}
    return {
        (video_index[id(lf.video)], lf.frame_idx): np.array(
            [[[b.x1, b.y1], [b.x2, b.y2]] for b in lf.bboxes], np.float64
        ).reshape(-1, 2, 2)
        for lf in labels.labeled_frames
    }


def box_scores_by_frame(labels: sio.Labels) -> dict[tuple[int, int], np.ndarray]:
    """``(video index, frame index) -> (boxes,)`` detection scores."""
    video_index = {id(v): i for i, v in enumerate(labels.videos)}
    return {
        (video_index[id(lf.video)], lf.frame_idx): np.array([float(b.score) for b in lf.bboxes], np.float64)
        for lf in labels.labeled_frames
    }


def tracks_by_frame(labels: sio.Labels) -> dict[tuple[int, int], list]:
    """``(video index, frame index) -> [track name or None per instance]``."""
    video_index = {id(v): i for i, v in enumerate(labels.videos)}
    return {
        (video_index[id(lf.video)], lf.frame_idx): [
            inst.track.name if inst.track is not None else None for inst in lf.instances
        ]
        for lf in labels.labeled_frames
    }


@attrs.frozen
class Comparison:
    """Agreement of two prediction sets (``ours`` against ``reference``)."""

    frames: int
    count_mismatches: tuple[tuple[int, int], ...]
    deviations: np.ndarray  # px, one per keypoint present in both matched instances
    deviation_nodes: np.ndarray  # node index of each deviation
    score_deviations: np.ndarray  # |instance score difference| per matched instance (when scores given)
    matched_instances: int
    visibility_mismatches: int
    track_mismatches: int
    tolerance_px: float
    percentile: float
    min_count_agreement: float

    @property
    def count_agreement(self) -> float:
        return 1.0 - len(self.count_mismatches) / max(self.frames, 1)

    def deviation_at(self, q: float) -> float:
        return float(np.percentile(self.deviations, q)) if self.deviations.size else 0.0

    @property
    def share_within_tolerance(self) -> float:
        return float((self.deviations <= self.tolerance_px).mean()) if self.deviations.size else 1.0

    @property
    def max_deviation(self) -> float:
        return float(self.deviations.max()) if self.deviations.size else 0.0

    def __bool__(self) -> bool:
        return (
            self.count_agreement >= self.min_count_agreement
            and self.visibility_mismatches == 0
            and self.track_mismatches == 0
            and self.deviation_at(self.percentile) <= self.tolerance_px
        )

    def summary(self) -> str:
        return (
            f"{self.frames} frames, count agreement {self.count_agreement:.4f} "
            f"({len(self.count_mismatches)} differ), {self.deviations.size} keypoints: "
            f"p{self.percentile:g} {self.deviation_at(self.percentile):.2e} px, "
            f"{self.share_within_tolerance:.2%} within {self.tolerance_px:g} px, max "
            f"{self.max_deviation:.2e} px, visibility mismatches {self.visibility_mismatches}, "
            f"track mismatches {self.track_mismatches}"
        )


def match_instances(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair the ``(Ia, nodes, 2)`` poses ``a`` with ``b`` (Hungarian on the mean distance over the nodes
    both have): ``(rows, cols, (Ia, Ib, nodes) distances)``."""
    distance = np.linalg.norm(a[:, None] - b[None, :], axis=-1)
    # A pair sharing no node costs 1e6 (nansum / count, not nanmean, which warns on every such pair).
    shared = (~np.isnan(distance)).sum(axis=-1)
    cost = np.where(shared > 0, np.nansum(distance, axis=-1) / np.maximum(shared, 1), 1e6)
    rows, cols = linear_sum_assignment(cost)
    return rows, cols, distance


def compare_poses(
    ours: FramePoses,
    reference: FramePoses,
    tolerance_px: float = 0.01,
    percentile: float = 99.9,
    min_count_agreement: float = 1.0,
    ours_tracks: Mapping | None = None,
    reference_tracks: Mapping | None = None,
    ours_scores: Mapping | None = None,
    reference_scores: Mapping | None = None,
) -> Comparison:
    """Match instances per frame (Hungarian on mean keypoint distance) and measure.

    With track names for both sides, matched instances must also share a track;
    with instance scores for both, their differences are recorded.
    """
    deviations = []
    deviation_nodes = []
    score_deviations = []
    count_mismatches = []
    visibility_mismatches = 0
    track_mismatches = 0
    matched_instances = 0
    keys = sorted(set(ours) | set(reference))
    for key in keys:
        a = ours.get(key, np.zeros((0, 0, 2)))
        b = reference.get(key, np.zeros((0, 0, 2)))
        if len(a) != len(b):
            count_mismatches.append(key)
        if len(a) == 0 or len(b) == 0:
            continue
        rows, cols, distance = match_instances(a, b)
        matched_instances += len(rows)
        for i, j in zip(rows, cols):
            present_a, present_b = ~np.isnan(a[i, :, 0]), ~np.isnan(b[j, :, 0])
            visibility_mismatches += int((present_a != present_b).sum())
            deviations.append(distance[i, j][present_a & present_b])
            deviation_nodes.append(np.flatnonzero(present_a & present_b))
            if ours_scores is not None and reference_scores is not None:
                score_deviations.append(abs(ours_scores[key][i] - reference_scores[key][j]))
            if ours_tracks is not None and reference_tracks is not None:
                track_mismatches += int(ours_tracks[key][i] != reference_tracks[key][j])
    return Comparison(
        frames=len(keys),
        count_mismatches=tuple(count_mismatches),
        deviations=np.concatenate(deviations) if deviations else np.zeros(0),
        deviation_nodes=np.concatenate(deviation_nodes) if deviation_nodes else np.zeros(0, np.int64),
        score_deviations=np.array(score_deviations, np.float64),
        matched_instances=matched_instances,
        visibility_mismatches=visibility_mismatches,
        track_mismatches=track_mismatches,
        tolerance_px=tolerance_px,
        percentile=percentile,
        min_count_agreement=min_count_agreement,
    )
