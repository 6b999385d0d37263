"""Optional in-graph grouping of bottom-up peaks (``--grouping graph``).

A fixed-iteration approximation of sleap-nn's host grouping, so that an
engine's outputs are final instances with no host post-processing:

- per edge, a greedy matching (repeatedly take the best remaining pair above
  ``min_line_scores``) instead of the Hungarian optimum;
- assembly along the edges in sleap-nn's order, where an unassigned source
  peak starts a new instance and its matched destination joins it; sleap-nn's
  merge of two partial instances (only possible when the skeleton is not a
  tree) is not performed;
- instances keep sleap-nn's creation order; when there are more than
  ``max_instances``, the best-scoring ones are kept.
"""

from __future__ import annotations

from typing import Sequence

import torch

from sleap_export.exporting.graph.peaks import nan_to_zero


def greedy_matches(scores: torch.Tensor, min_score: float):
    """``(B, K, K)`` pair scores -> for each source peak, its destination (-1: none) and score."""
    batch, slots = scores.shape[0], scores.shape[1]
    # NaN (invalid pairs) compares False, so it becomes -inf here too.
    remaining = torch.where(scores >= min_score, scores, torch.full_like(scores, float("-inf")))
    destination = torch.full((batch, slots), -1, dtype=torch.int64)
    matched_score = torch.zeros((batch, slots), dtype=scores.dtype)
    rows = torch.arange(slots)
    for _ in range(slots):
        best, flat = remaining.reshape(batch, slots * slots).max(dim=1)
        found = best > float("-inf")
        src, dst = flat // slots, flat % slots
        take = found[:, None] & (rows[None, :] == src[:, None])
        destination = torch.where(take, dst[:, None], destination)
        matched_score = torch.where(take, best[:, None], matched_score)
        used_row = rows[None, :, None] == src[:, None, None]
        used_col = rows[None, None, :] == dst[:, None, None]
        remaining = torch.where((used_row | used_col) & found[:, None, None], float("-inf"), remaining)
    return destination, matched_score


def group_in_graph(
    points: torch.Tensor,
    values: torch.Tensor,
    line_scores: torch.Tensor,
    edges: Sequence[tuple[int, int]],
    edge_order: Sequence[int],
    min_line_scores: float,
    max_instances: int,
):
    """Peaks ``(B, N, K, 2)`` and scores ``(B, E, K, K)`` -> instances ``(B, I, N, 2)``,
    their peak values ``(B, I, N)``, scores ``(B, I)`` and validity ``(B, I)``."""
    batch, n_nodes, slots = points.shape[0], points.shape[1], points.shape[2]
    n_ids = max(1, len(edge_order)) * slots
    labels = [torch.full((batch, slots), -1, dtype=torch.int64) for _ in range(n_nodes)]
    id_scores = torch.zeros((batch, n_ids), dtype=points.dtype)
    peak_index = torch.arange(slots)
    for position, edge in enumerate(edge_order):
        src_node, dst_node = edges[edge]
        destination, matched_score = greedy_matches(line_scores[:, edge], min_line_scores)
        matched = destination >= 0
        # An unassigned matched source starts a new instance; ids follow creation order.
        new_ids = position * slots + peak_index[None, :]
        src_labels = torch.where(matched & (labels[src_node] < 0), new_ids, labels[src_node])
        labels[src_node] = src_labels
        joins = matched[:, :, None] & (destination[:, :, None] == peak_index[None, None, :])  # (B, src, dst)
        incoming = torch.where(joins, src_labels[:, :, None], torch.full_like(joins, -1, dtype=torch.int64))
        incoming = incoming.max(dim=1).values
        labels[dst_node] = torch.where(incoming >= 0, incoming, labels[dst_node])
        owner = torch.where(matched, src_labels, torch.zeros_like(src_labels))
        id_scores = id_scores.scatter_add(1, owner, torch.where(matched, matched_score, torch.zeros_like(matched_score)))
    label_stack = torch.stack(labels, dim=1)  # (B, N, K)
    id_range = torch.arange(n_ids)
    present = (label_stack[..., None] == id_range).flatten(1, 2).any(dim=1)  # (B, n_ids)
    ranking = torch.where(present, id_scores, torch.full_like(id_scores, float("-inf")))
    kept = min(max_instances, n_ids)
    top_scores, top_ids = torch.topk(ranking, kept, dim=1)
    valid = top_scores > float("-inf")
    # Back to creation order among the kept instances.
    order_key = torch.where(valid, top_ids, torch.full_like(top_ids, n_ids))
    order_key, order = torch.sort(order_key, dim=1)
    instance_ids = torch.gather(top_ids, 1, order)
    valid = torch.gather(valid, 1, order)
    instance_scores = torch.gather(top_scores, 1, order)
    member = label_stack[:, :, :, None] == instance_ids[:, None, None, :]  # (B, N, K, I)
    member = member & valid[:, None, None, :]
    has = member.any(dim=2)  # (B, N, I)
    weights = member.to(points.dtype)
    safe_points = nan_to_zero(points)
    keypoints = torch.einsum("bnki,bnkc->binc", weights, safe_points)
    peak_values = torch.einsum("bnki,bnk->bin", weights, nan_to_zero(values))
    missing = ~has.permute(0, 2, 1)  # (B, I, N)
    keypoints = torch.where(missing[..., None], torch.full_like(keypoints, float("nan")), keypoints)
    peak_values = torch.where(missing, torch.full_like(peak_values, float("nan")), peak_values)
    instance_scores = torch.where(valid, instance_scores, torch.full_like(instance_scores, float("nan")))
    return keypoints, peak_values, instance_scores, valid
