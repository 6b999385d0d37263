"""Re-joining the fragments of one animal, as sleap-nn's ``merge_instances`` does (torch-free).

Reference: ``sleap_nn/inference/segmentation.py`` (``merge_instances`` and its region adjacency
graph, greedy and multicut agglomeration). Masks whose dilations touch get an edge; its affinity
is the contact (saturating at 5% of the smaller mask) times a blend of two signals: how high the
center heatmap stays on the line between the two centers (a valley means two animals) and how
close the centers the two masks' pixels vote for are. Greedy: in each threshold phase, contract
the strongest edge (mean affinity over the contracted pairs) while it reaches the threshold.
Multicut: contract while some summed log-odds cost is positive. Ties go to the first edge in
sleap-nn's order (pairs ``i < j`` by first index, then as contractions re-key them), and every
sum and mean is taken in sleap-nn's order with numpy's reductions, so affinities and decisions
are bit-identical.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence

import attrs
import numpy as np
from scipy import ndimage

from sleap_export.core.mask_options import MaskOptions

# A pair counts as touching above this contact fraction; the contact gate saturates at CONTACT_FULL.
CONTACT_FLOOR = 1e-3
CONTACT_FULL = 0.05
# The ridge is sampled at this many points of the center line, keeping the inner 70%.
RIDGE_SAMPLES = 48
RIDGE_FIRST, RIDGE_STOP = int(0.15 * RIDGE_SAMPLES), int(0.85 * RIDGE_SAMPLES)
# Multicut: affinities above this are attractive (sleap-nn's join_bias; not a predict option).
JOIN_BIAS = 0.5
LOGIT_CLAMP = 1e-4


def merge_fragments(instances: Sequence, heatmap: np.ndarray, offsets: np.ndarray, output_stride: int,
                    options: MaskOptions) -> list:
    """``InstanceMask``es merged into groups, ordered by each group's first member: a group's mask
    is its members' union, its score and center its strongest member's (the first of equals).

    ``heatmap`` ``(h, w)`` and ``offsets`` ``(2, h, w)`` are the float32 maps the masks were voted with.
    """
    if len(instances) < 2:
        return list(instances)
    affinities = fragment_affinities(instances, heatmap, offsets, output_stride, options)
    if options.merge_method == "greedy":
        owners = greedy_groups(len(instances), affinities, options.merge_thresholds)
    else:
        owners = multicut_groups(len(instances), affinities)
    groups: dict[int, list[int]] = {}
    for index, owner in enumerate(owners):
        groups.setdefault(owner, []).append(index)
    merged = []
    for members in groups.values():
        strongest = max(members, key=lambda k: instances[k].score)
        mask = np.logical_or.reduce([instances[k].mask for k in members])
        merged.append(attrs.evolve(instances[strongest], mask=mask))
    return merged


def fragment_affinities(instances: Sequence, heatmap: np.ndarray, offsets: np.ndarray, output_stride: int,
                        options: MaskOptions) -> dict[tuple[int, int], float]:
    """The region adjacency graph: ``(i, j) -> affinity`` for touching pairs, ``i < j`` in order."""
    dilated = [ndimage.binary_dilation(inst.mask, iterations=max(1, options.merge_dilate)) for inst in instances]
    areas = [int(inst.mask.sum()) for inst in instances]
    votes = [pointed_centers(inst.mask, offsets, output_stride) for inst in instances]
    total_weight = options.merge_w_valley + options.merge_w_offset
    affinities = {}
    for i, j in combinations(range(len(instances)), 2):
        first, second = instances[i], instances[j]
        touching = int((dilated[i] & second.mask).sum() + (first.mask & dilated[j]).sum())
        contact = touching / max(1, min(areas[i], areas[j]))
        if contact <= CONTACT_FLOOR:
            continue
        gate = min(1.0, contact / CONTACT_FULL)
        if total_weight <= 0:
            affinities[(i, j)] = gate
            continue
        ridge = center_ridge(heatmap, first, second, output_stride)
        agreement = vote_agreement(votes[i], votes[j], output_stride)
        blend = (options.merge_w_valley * ridge + options.merge_w_offset * agreement) / total_weight
        affinities[(i, j)] = float(gate * blend)
    return affinities


def pointed_centers(mask: np.ndarray, offsets: np.ndarray, output_stride: int) -> np.ndarray:
    """Where each of the mask's pixels (raster order) points: ``(M, 2)`` float64 input pixels."""
    rows, cols = np.nonzero(mask)
    x = cols.astype(np.float64) * output_stride + output_stride / 2.0
    y = rows.astype(np.float64) * output_stride + output_stride / 2.0
    return np.stack([x + offsets[0, rows, cols], y + offsets[1, rows, cols]], axis=1)


def center_ridge(heatmap: np.ndarray, first, second, output_stride: int) -> float:
    """The heatmap's lowest value on the inner part of the line between two centers, relative to
    the weaker center's value, in [0, 1] (nearest grid cells, numpy's round half to even)."""
    half = output_stride / 2.0
    (ax, ay), (bx, by) = (((x - half) / output_stride, (y - half) / output_stride)
                          for x, y in (first.center, second.center))
    t = np.linspace(0.0, 1.0, RIDGE_SAMPLES)
    xs = (ax + (bx - ax) * t)[RIDGE_FIRST:RIDGE_STOP]
    ys = (ay + (by - ay) * t)[RIDGE_FIRST:RIDGE_STOP]
    height, width = heatmap.shape
    cols = np.clip(np.round(xs).astype(int), 0, width - 1)
    rows = np.clip(np.round(ys).astype(int), 0, height - 1)
    weaker = max(1e-6, min(first.score, second.score))
    return float(np.clip(heatmap[rows, cols].min() / weaker, 0.0, 1.0))


def vote_agreement(first: np.ndarray, second: np.ndarray, output_stride: int) -> float:
    """Near 1 when two masks' pixels point at one center, near 0 a body apart: a Gaussian of the
    distance between their mean votes, its width twice their mean spread (at least a stride)."""
    separation = float(np.hypot(*(first.mean(0) - second.mean(0))))
    spread = float(0.5 * (first.std(0).mean() + second.std(0).mean()))
    width = max(spread, float(output_stride))
    return float(np.exp(-(separation**2) / (2.0 * (2.0 * width) ** 2)))


def greedy_groups(count: int, affinities: dict[tuple[int, int], float], thresholds: Sequence[float]) -> list[int]:
    """Each instance's group (its lowest member) after the decreasing-threshold phases."""
    owners = list(range(count))
    links = {pair: [value] for pair, value in affinities.items()}
    for threshold in thresholds:
        while links:
            means = {pair: float(np.mean(values)) for pair, values in links.items()}
            best = max(means, key=means.__getitem__)
            if means[best] < threshold:
                break
            links = _contract(links, owners, best, lambda merged, values: (merged or []) + values)
    return owners


def multicut_groups(count: int, affinities: dict[tuple[int, int], float]) -> list[int]:
    """Each instance's group (its lowest member) after greedy additive edge contraction."""
    owners = list(range(count))
    costs = {pair: _logit(value) - _logit(JOIN_BIAS) for pair, value in affinities.items()}
    while costs:
        best = max(costs, key=costs.__getitem__)
        if not costs[best] > 0.0:
            break
        costs = _contract(costs, owners, best, lambda merged, cost: (0.0 if merged is None else merged) + cost)
    return owners


def _contract(links: dict, owners: list[int], pair: tuple[int, int], combine) -> dict:
    """Join ``pair``'s groups into the lower one; re-key every link by its groups (in the links'
    order, dropping the contracted one), combining links that now join the same two groups."""
    kept, absorbed = pair
    for index, owner in enumerate(owners):
        if owner == absorbed:
            owners[index] = kept
    rekeyed: dict = {}
    for (a, b), value in links.items():
        a, b = owners[a], owners[b]
        if a != b:
            key = (min(a, b), max(a, b))
            rekeyed[key] = combine(rekeyed.get(key), value)
    return rekeyed


def _logit(p: float) -> float:
    p = min(max(p, LOGIT_CLAMP), 1 - LOGIT_CLAMP)
    return math.log(p / (1 - p))
