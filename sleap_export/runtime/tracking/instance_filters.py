"""The instances sleap-nn's pre-tracking filters keep (its --filter_* options), in its order:
visible node count, then scores, then greedy overlap suppression."""

from __future__ import annotations

from typing import Optional

import numpy as np

# sleap-nn's overlap OKS falloff (its legacy constant).
OVERLAP_OKS_KAPPA = 0.1


def kept_instances(options, points: np.ndarray, scores: np.ndarray, point_scores: Optional[np.ndarray]) -> np.ndarray:
    """Rows of ``points`` (instances, nodes, 2) the filters of ``options`` (`TrackingOptions`) keep."""
    n_nodes = points.shape[1]
    visible = np.isfinite(points).all(axis=-1)
    n_visible = visible.sum(axis=1)
    keep = np.ones(len(points), dtype=bool)
    if options.filter_min_visible_nodes > 0:
        keep &= n_visible >= options.filter_min_visible_nodes
    if options.filter_min_visible_node_fraction > 0:
        keep &= n_visible / max(n_nodes, 1) >= options.filter_min_visible_node_fraction
    if options.filter_min_instance_score > 0:
        keep &= scores >= options.filter_min_instance_score
    if options.filter_min_mean_node_score > 0 and point_scores is not None:
        known = np.isfinite(point_scores)
        mean = np.where(known, point_scores, 0.0).sum(axis=1) / np.maximum(known.sum(axis=1), 1)
        keep &= np.where(known.any(axis=1), mean, 0.0) >= options.filter_min_mean_node_score
    if options.filter_overlapping:
        keep &= _not_overlapping(points, scores, keep, options.filter_overlapping_method, options.filter_overlapping_threshold)
    return np.flatnonzero(keep)


def _not_overlapping(points, scores, keep, method: str, threshold: float) -> np.ndarray:
    """Greedy suppression in descending score: an instance more similar than ``threshold``
    to one kept before it is dropped. OKS on a one-node skeleton falls back to IoU."""
    result = np.ones(len(points), dtype=bool)
    present = keep & np.isfinite(points).all(axis=-1).any(axis=1)
    if present.sum() <= 1:
        return result
    similarity = _oks if method == "oks" and points.shape[1] >= 2 else _box_iou
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if not present[i]:
            continue
        if any(similarity(points[i], points[k]) > threshold for k in kept):
            result[i] = False
        else:
            kept.append(int(i))
    return result


def _extent(points: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
    seen = points[np.isfinite(points).all(axis=1)]
    return (seen.min(axis=0), seen.max(axis=0)) if len(seen) else None


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    box_a, box_b = _extent(a), _extent(b)
    if box_a is None or box_b is None:
        return 0.0
    overlap = np.clip(np.minimum(box_a[1], box_b[1]) - np.maximum(box_a[0], box_b[0]), 0, None)
    inter = float(overlap[0] * overlap[1])
    union = float(np.prod(box_a[1] - box_a[0]) + np.prod(box_b[1] - box_b[0])) - inter
    return inter / union if union > 0 else 0.0


def _oks(a: np.ndarray, b: np.ndarray) -> float:
    """sleap-nn's overlap OKS: the scale is ``a``'s own extent's area."""
    seen_a = np.isfinite(a).all(axis=1)
    both = seen_a & np.isfinite(b).all(axis=1)
    if not both.any() or seen_a.sum() < 2:
        return 0.0
    low, high = a[seen_a].min(axis=0), a[seen_a].max(axis=0)
    area = float((high[0] - low[0]) * (high[1] - low[1]))
    if area <= 0:
        return 0.0
    d2 = ((a[both] - b[both]) ** 2).sum(axis=1)
    return float(np.exp(-d2 / (2 * area * OVERLAP_OKS_KAPPA**2)).mean())
