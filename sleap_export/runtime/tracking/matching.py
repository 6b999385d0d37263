"""Detections to tracks from a cost matrix (rows: this frame's poses, columns: tracks)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def hungarian(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum total cost; infinite costs become a large finite one so every row can still pair."""
    invalid = ~np.isfinite(cost)
    if invalid.any():
        finite = cost[~invalid]
        cost = np.where(invalid, (np.abs(finite).max() * 10 + 1) if finite.size else 1e6, cost)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols)]


def greedy(cost: np.ndarray) -> list[tuple[int, int]]:
    """Cheapest edge first, in np.argsort's order (sleap-nn's, ties included)."""
    rows, cols = np.unravel_index(np.argsort(cost, axis=None), cost.shape)
    used_rows, used_cols, pairs = set(), set(), []
    for row, col in zip(rows.tolist(), cols.tolist()):
        if row not in used_rows and col not in used_cols:
            pairs.append((row, col))
            used_rows.add(row)
            used_cols.add(col)
    return pairs


MATCHERS = {"hungarian": hungarian, "greedy": greedy}
