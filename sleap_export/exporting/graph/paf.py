"""Part-affinity-field line scores for every candidate pair of peaks, in the graph.

Reference: ``sleap_nn/inference/ops/paf.py`` (``make_line_subs``,
``score_paf_lines``). Sample points are rounded to the nearest PAF pixel (not
interpolated bilinearly), with sleap-nn's interpolation arithmetic, distance
penalty and max-edge-length rule.
"""

from __future__ import annotations

from typing import Sequence

import torch

from sleap_export.exporting.graph.shapes import shape_of

_EPS = float(torch.finfo(torch.float32).eps)


def paf_line_scores(
    pafs: torch.Tensor,
    points: torch.Tensor,
    valid: torch.Tensor,
    edges: Sequence[tuple[int, int]],
    paf_stride: int,
    n_line_points: int,
    max_edge_length_ratio: float,
    dist_penalty_weight: float,
) -> torch.Tensor:
    """Scores ``(B, E, K, K)`` of every (source peak, destination peak) pair per edge.

    ``pafs``: ``(B, 2E, H, W)`` with x then y per edge. ``points``: ``(B, N, K, 2)``
    peaks in model-input pixels. Pairs with an invalid peak score NaN.
    """
    shape = shape_of(pafs)
    channels, height, width = shape[1], shape[2], shape[3]
    # sleap-nn takes the max over its (H, W, 2E) PAF tensor's dims.
    longest = torch.maximum(torch.maximum(channels, height), width).to(torch.float32)
    max_edge_length = max_edge_length_ratio * longest * paf_stride
    batch = points.shape[0]
    # Empty slots hold NaN; give them a harmless position (their scores are masked).
    points = torch.where(valid.unsqueeze(-1), points, torch.zeros_like(points))
    flat_pafs = pafs.reshape(batch, channels * height * width)
    t = torch.linspace(0, 1, n_line_points, dtype=torch.float32)
    scores = []
    for edge, (src_node, dst_node) in enumerate(edges):
        src = points[:, src_node][:, :, None, :]  # (B, K, 1, 2)
        dst = points[:, dst_node][:, None, :, :]  # (B, 1, K, 2)
        # sleap-nn's interp1d: src + (dst - src) / (1 + eps) * t.
        slope = (dst - src) / (_EPS + 1.0)
        line = src[..., None, :] + slope[..., None, :] * t[:, None]  # (B, K, K, n, 2)
        pixel = torch.round(line / paf_stride).to(torch.int64)
        col = torch.minimum(pixel[..., 0].clamp(min=0), width - 1)
        row = torch.minimum(pixel[..., 1].clamp(min=0), height - 1)
        base = row * width + col
        n_pairs = src.shape[1] * dst.shape[2] * n_line_points
        index_x = (base + (2 * edge) * height * width).reshape(batch, n_pairs)
        index_y = (base + (2 * edge + 1) * height * width).reshape(batch, n_pairs)
        paf_x = torch.gather(flat_pafs, 1, index_x).reshape(line.shape[:-1])
        paf_y = torch.gather(flat_pafs, 1, index_y).reshape(line.shape[:-1])
        vector = dst - src
        length = torch.sqrt(vector[..., 0] ** 2 + vector[..., 1] ** 2)  # (B, K, K)
        unit_x = vector[..., 0] / length
        unit_y = vector[..., 1] / length
        along = paf_x * unit_x[..., None] + paf_y * unit_y[..., None]
        penalty = torch.clamp(max_edge_length / length - 1, max=0.0) * dist_penalty_weight
        score = along.mean(dim=-1) + penalty
        pair_valid = valid[:, src_node][:, :, None] & valid[:, dst_node][:, None, :]
        scores.append(torch.where(pair_valid, score, torch.full_like(score, float("nan"))))
    return torch.stack(scores, dim=1)
