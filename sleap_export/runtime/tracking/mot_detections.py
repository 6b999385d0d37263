"""One frame's poses as the MOT trackers see them (boxes, centroids, scores), and the
per-video calibration sleap-nn's MOT trackers run before tracking: the score normalizer,
the animal's body size and how frame indices count as time steps."""

from __future__ import annotations

from typing import Optional

import attrs
import numpy as np

from sleap_export.runtime.tracking.poses import TrackedPose

# Thin poses get their padded box floored at this fraction of the body size per axis.
MIN_BOX_FRACTION = 0.25
DEFAULT_BODY_SIZE = 50.0
SCORE_NORMALIZER_FLOOR = 1e-6


@attrs.define
class Detections:
    """One frame's poses: ``boxes`` (padded ``xyxy``), ``raw_boxes`` (extent of the visible
    nodes), ``centroids`` (raw-box centers), ``keypoints``, ``scores`` in [0, 1], ``valid``
    (at least one visible node) and ``n_visible``."""

    frame_idx: int
    poses: list[TrackedPose]
    boxes: np.ndarray
    raw_boxes: np.ndarray
    centroids: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    n_visible: np.ndarray

    def __len__(self) -> int:
        return len(self.poses)


def pose_score(pose: TrackedPose) -> float:
    """The mean point score over the visible nodes, else (no point score, or all zero) the
    instance score; 1.0 where not finite."""
    visible = np.isfinite(pose.points).all(axis=1)
    point_scores = pose.point_scores
    if point_scores is not None:
        known = visible & np.isfinite(point_scores)
        values = np.where(known, point_scores, 0.0)
        if known.any() and np.abs(values).sum() > 0:
            return float(values.sum() / known.sum())
    return float(pose.score) if np.isfinite(pose.score) else 1.0


def detections(
    frame_idx: int,
    poses: list[TrackedPose],
    n_nodes: int,
    box_padding: float,
    body_size: Optional[float],
    score_divisor: Optional[float],
) -> Detections:
    """``poses`` as detections. ``body_size`` None (calibrating): degenerate boxes (one
    visible node, or under 1 px on an axis) are floored at 1 px, nothing is widened and
    scores are raw; else degenerate boxes are body-sized squares, every padded box is
    widened to ``MIN_BOX_FRACTION`` of the body, and scores divided by ``score_divisor``."""
    n = len(poses)
    keypoints = np.full((n, n_nodes, 2), np.nan)
    for row, pose in enumerate(poses):
        keypoints[row, : len(pose.points)] = pose.points
    visible = np.isfinite(keypoints).all(axis=-1)
    n_visible = visible.sum(axis=1)
    low = np.where(visible[..., None], keypoints, np.inf).min(axis=1, initial=np.inf)
    high = np.where(visible[..., None], keypoints, -np.inf).max(axis=1, initial=-np.inf)
    raw = np.concatenate([low, high], axis=1).reshape(n, 4)
    valid = n_visible > 0
    raw[~valid] = np.nan
    scores = np.array([pose_score(p) for p in poses], dtype=np.float64)
    scores = np.clip(np.where(np.isfinite(scores), scores, 1.0), 0.0, 1.0)

    size = raw[:, 2:] - raw[:, :2]
    centroids = 0.5 * (raw[:, :2] + raw[:, 2:])
    padding = box_padding * size.max(axis=1, initial=-np.inf) if n else np.zeros(0)
    boxes = raw + padding[:, None] * np.array([-1.0, -1.0, 1.0, 1.0])
    degenerate = valid & ((n_visible == 1) | (size < 1.0).any(axis=1))
    if degenerate.any():
        center = centroids[degenerate]
        if body_size is not None:
            half = np.full_like(center, 0.5 * max(body_size, 1.0))
            raw[degenerate] = np.concatenate([center - half, center + half], axis=1)
            boxes[degenerate] = raw[degenerate]
        else:
            half = 0.5 * np.maximum(size[degenerate], 1.0)
            raw[degenerate] = np.concatenate([center - half, center + half], axis=1)
            pad = box_padding * 2.0 * half.max(axis=1)
            boxes[degenerate] = raw[degenerate] + pad[:, None] * np.array([-1.0, -1.0, 1.0, 1.0])
    if body_size is not None:
        grow = 0.5 * np.maximum(MIN_BOX_FRACTION * body_size - (boxes[:, 2:] - boxes[:, :2]), 0.0)
        grow[~valid] = 0.0
        boxes = boxes + np.concatenate([-grow, grow], axis=1)
        if score_divisor is not None and n:
            scores = np.clip(scores / score_divisor, 0.0, 1.0)
    return Detections(frame_idx, poses, boxes, raw, centroids, keypoints, scores, valid, n_visible)


@attrs.frozen
class Calibration:
    """What a MOT tracker learns from the whole video before tracking it."""

    body_size: float
    score_divisor: Optional[float]
    counts_frames: bool  # time advances by frame index (regular stride), else one step per frame
    frame_step: int

    def steps(self, delta: int) -> int:
        """Time steps between processed frames ``delta`` frame indices apart (at least 1)."""
        if not self.counts_frames:
            return 1
        return int(max(1.0, np.rint(delta / self.frame_step)))


def calibrate(frames: list[Detections], normalize_scores: bool) -> Calibration:
    """From every frame's raw detections: the body size (median extent diagonal of the poses
    with two or more visible nodes; ``DEFAULT_BODY_SIZE`` without any), the score divisor
    (the 95th percentile score, when ``normalize_scores``) and the stride (the most common
    positive frame step, the smallest on ties; regular when it covers half the steps)."""
    raw = np.concatenate([d.raw_boxes[d.valid & (d.n_visible >= 2)] for d in frames] or [np.zeros((0, 4))])
    diagonal = np.hypot(raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1])
    diagonal = diagonal[np.isfinite(diagonal) & (diagonal > 0)]
    body = float(np.median(diagonal)) if diagonal.size else DEFAULT_BODY_SIZE
    scores = np.concatenate([d.scores[d.valid] for d in frames] or [np.zeros(0)])
    scores = scores[np.isfinite(scores)]
    divisor = None
    if normalize_scores and scores.size:
        divisor = max(float(np.quantile(scores, 0.95)), SCORE_NORMALIZER_FLOOR)
    deltas = np.diff([d.frame_idx for d in frames])
    values, counts = np.unique(deltas[deltas > 0], return_counts=True)
    if values.size:
        best = int(np.argmax(counts))  # the first of the most common: the smallest step
        frame_step, regular = int(values[best]), bool(counts[best] >= 0.5 * counts.sum())
    else:
        frame_step, regular = 1, True
    return Calibration(body, divisor, regular, frame_step if regular else 1)
