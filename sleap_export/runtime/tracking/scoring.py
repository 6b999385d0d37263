"""Features of a pose (keypoints, centroid, box), the similarity of two features, and the
reduction of a track's similarities to one score, with sleap-nn's arithmetic (same dtypes,
same operation order) so that matching sees the same numbers."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def pose_feature(points: np.ndarray, features: str):
    """The feature ``features`` names of one pose ``points`` (nodes, 2; NaN where unseen)."""
    if features == "keypoints":
        return points
    if features == "centroids":
        return np.nanmedian(points, axis=0)
    return np.concatenate([np.nanmin(points, axis=0), np.nanmax(points, axis=0)])  # x0, y0, x1, y1


def visible_points(points: np.ndarray) -> int:
    return int((~np.isnan(points).any(axis=1)).sum())


def oks(current: np.ndarray, candidates: np.ndarray, stddev: float) -> np.ndarray:
    """Object keypoint similarity of each of ``candidates`` (k, nodes, 2) to ``current`` (nodes, 2),
    scaled by ``current``'s box area (COCO's normalization, as sleap-nn's compute_oks with
    use_cocoeval; the same operations per pair, so the same numbers)."""
    area = np.prod(np.nanmax(current, axis=0) - np.nanmin(current, axis=0))
    normalization = np.full(len(current), (2 * stddev) ** 2) * (2 * (area + np.spacing(1)))
    distance = ((current - candidates) ** 2).sum(axis=-1)
    distance[np.isnan(candidates).any(axis=-1)] = np.inf
    similarity = np.exp(-(distance / normalization))
    unseen = np.isnan(current).any(axis=-1)
    similarity = np.where(unseen, 0.0, similarity)
    return np.sum(similarity, axis=-1) / np.sum((~unseen).astype("float32"))


def iou(a, b) -> float:
    """Box IoU with sleap-nn's +1 pixel convention, in Python scalars as it computes it."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a, b
    overlap = max(0, min(ax1, bx1) - max(ax0, bx0) + 1) * max(0, min(ay1, by1) - max(ay0, by0) + 1)
    union = (ax1 - ax0 + 1) * (ay1 - ay0 + 1) + (bx1 - bx0 + 1) * (by1 - by0 + 1) - overlap
    return overlap / union


def negative_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Minus the Euclidean distance (a similarity); NaN when not finite."""
    if a.dtype == np.float64 and b.dtype == np.float64 and a.ndim == 1:
        d = a - b
        distance = math.sqrt(d.dot(d))
    else:
        distance = float(np.linalg.norm(np.asarray(a, np.float64).ravel() - np.asarray(b, np.float64).ravel()))
    return np.nan if not np.isfinite(distance) else -float(distance)


def similarity_function(scoring_method: str, oks_stddev: float) -> Callable:
    """``(current feature, [candidate features]) -> similarities``, one per candidate."""
    if scoring_method == "oks":
        return lambda current, candidates: oks(current, np.array(candidates), oks_stddev) if candidates else []
    pair = {"iou": iou, "euclidean_dist": negative_distance}[scoring_method]
    return lambda current, candidates: [pair(current, candidate) for candidate in candidates]


def reduction_function(scoring_reduction: str, robust_best_instance: float) -> Callable:
    """A track's similarities to one score; NaN for none (np.nanmax cannot take an empty list)."""
    if scoring_reduction == "robust_quantile":
        reduce = lambda values: np.nanquantile(values, q=robust_best_instance)
    else:
        reduce = {"mean": np.nanmean, "max": np.nanmax}[scoring_reduction]
    return lambda values: np.nan if len(values) == 0 else reduce(values)
