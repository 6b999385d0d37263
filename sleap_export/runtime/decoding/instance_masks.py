"""Bottom-up instance masks from the graph's maps, as sleap-nn groups them (torch-free).

Reference: ``sleap_nn/inference/segmentation.py`` (``find_center_peaks``,
``group_instances_from_offsets``, ``_clean_instance_mask``) as
``layers/segmentation.py``'s ``SegmentationLayer.postprocess`` calls it. The graph gives, per
frame and at the heads' output stride ``(h, w)``: the foreground mask (uint8, probability >
``fg_threshold``), the instance-center candidates (uint8: the heatmap equals its window's maximum
and exceeds ``peak_threshold``), the center heatmap (float32) and the center offsets (float32
``(2, h, w)``, dx then dy, in input pixels). Here: each tied plateau of candidates collapses to
one center, the strongest ``max_instances`` centers are kept in ``torch.topk``'s order, every
foreground pixel votes for the center nearest to where its offset points (float32 arithmetic as
torch does it, so ties resolve to the same center), an optional distance gate drops strays,
masks are optionally cleaned, then optionally merged (`fragment_merging`).

Deviation, by construction: the distance gate's radius takes a float32 square root, which torch
computes with MKL's vsSqrt (``VML_HA``: within 1 ulp, not correctly rounded; 1 ulp off for about
a fifth of the areas 0..200000, and MKL picks its code path per CPU, so torch need not agree with
itself across machines). Here it is numpy's, correctly rounded. A pixel's gate decision can only
differ when its squared vote distance lies within a few ulp of the squared radius (measured: none
of 321,360 gate decisions on the real model's maps fell within 1 ulp of the radius).
"""

from __future__ import annotations

import math
from typing import Optional

import attrs
import numpy as np
from scipy import ndimage

from sleap_export.core.mask_options import MaskOptions
from sleap_export.runtime.decoding.fragment_merging import merge_fragments
from sleap_export.runtime.decoding.topk_order import topk_order

# sleap-nn re-estimates the distance gate's radii this many times (`distance_gate_iters`; not a predict option).
DISTANCE_GATE_ITERATIONS = 3


@attrs.frozen(eq=False)
class InstanceMask:
    """One instance at the output stride: its pixels on the whole ``(h, w)`` grid, its center's
    heatmap value (the score) and the center in input pixels ``(x, y)`` (cell center: ``grid *
    stride + stride / 2``)."""

    mask: np.ndarray
    score: float
    center: tuple[float, float]


def center_peaks(candidates: np.ndarray, heatmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One center per 4-connected group of candidates: ``(N, 2)`` int64 grid ``(x, y)`` and the
    ``(N,)`` float32 heatmap values.

    Groups are numbered as ``scipy.ndimage.label`` numbers them (raster order of their first
    pixel); a group's center is its strongest pixel, the first in raster order among equals
    (``argmax``).
    """
    labels, count = ndimage.label(np.asarray(candidates, bool))
    if count == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    positions = np.flatnonzero(labels)
    groups = labels.ravel()[positions]
    values = np.asarray(heatmap, np.float32).ravel()[positions]
    # Sorted by group, then strongest first, then raster order: each group's first entry is its center.
    order = np.lexsort((positions, -values, groups))
    _, first = np.unique(groups[order], return_index=True)
    best = positions[order[first]]
    width = labels.shape[1]
    return np.stack([best % width, best // width], axis=1).astype(np.int64), values[order[first]]


def strongest_centers(peaks: np.ndarray, values: np.ndarray, max_instances: Optional[int]):
    """At most ``max_instances`` centers, the strongest in ``torch.topk``'s order (all, in their
    own order, when there are no more than that)."""
    if max_instances is None or len(values) <= max_instances:
        return peaks, values
    keep = topk_order(values, max_instances)
    return peaks[keep], values[keep]


def cell_centers(grid: np.ndarray, output_stride: int) -> np.ndarray:
    """Grid coordinates -> input pixels at the cell centers, in float32 (torch's order of operations)."""
    return grid.astype(np.float32) * np.float32(output_stride) + np.float32(output_stride / 2.0)


def vote(
    foreground: np.ndarray,
    centers: np.ndarray,
    offsets: np.ndarray,
    output_stride: int,
    distance_gate_alpha: Optional[float],
):
    """Each foreground pixel's nearest center (by where its offset points).

    Returns ``(rows, cols, center index, kept)`` over the foreground pixels in raster order;
    ``centers`` are ``(N, 2)`` float32 input pixels.
    """
    rows, cols = np.nonzero(foreground)
    pointed_x = cell_centers(cols, output_stride) + offsets[0, rows, cols]
    pointed_y = cell_centers(rows, output_stride) + offsets[1, rows, cols]
    squared = (pointed_x[:, None] - centers[None, :, 0]) ** 2 + (pointed_y[:, None] - centers[None, :, 1]) ** 2
    nearest = squared.argmin(axis=1)  # of tied centers the first, as torch's argmin
    kept = np.ones(len(rows), bool)
    if distance_gate_alpha is not None:
        distance = squared[np.arange(len(rows)), nearest]
        for _ in range(DISTANCE_GATE_ITERATIONS):
            # R_k = alpha * sqrt(area_k / pi) grid cells, compared squared in input pixels; float32 throughout.
            area = np.bincount(nearest[kept], minlength=len(centers)).astype(np.float32)
            radius = np.float32(distance_gate_alpha) * np.sqrt(area / np.float32(math.pi))
            kept = distance <= ((radius * np.float32(output_stride)) ** 2)[nearest]
    return rows, cols, nearest, kept


def clean_instance_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask_cleanup``: with a radius, an elliptical open then close; then the largest 4-connected
    part (the first of equal sizes) with its holes filled."""
    if radius > 0:
        import cv2  # only this option needs OpenCV

        size = 2 * radius + 1
        ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, ellipse)
        mask = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, ellipse).astype(bool)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(sizes.argmax())
    return ndimage.binary_fill_holes(mask)


def group_instances(
    foreground: np.ndarray,
    candidates: np.ndarray,
    heatmap: np.ndarray,
    offsets: np.ndarray,
    output_stride: int,
    options: MaskOptions,
) -> list[InstanceMask]:
    """sleap-nn's ``group_instances_from_offsets``: one mask per center that wins a pixel, in
    center order (empty after cleanup: dropped)."""
    foreground = np.asarray(foreground) != 0
    if not foreground.any():
        return []
    peaks, values = center_peaks(candidates, heatmap)
    peaks, values = strongest_centers(peaks, values, options.max_instances)
    if len(peaks) == 0:
        return []
    centers = cell_centers(peaks, output_stride)
    rows, cols, nearest, kept = vote(
        foreground, centers, np.asarray(offsets, np.float32), output_stride, options.distance_gate_alpha
    )
    instances = []
    for index in range(len(centers)):
        members = kept & (nearest == index)
        if not members.any():
            continue
        mask = np.zeros(foreground.shape, bool)
        mask[rows[members], cols[members]] = True
        if options.mask_cleanup:
            mask = clean_instance_mask(mask, options.mask_cleanup_radius)
            if not mask.any():
                continue
        instances.append(InstanceMask(mask, float(values[index]), (float(centers[index, 0]), float(centers[index, 1]))))
    return instances


def decode_instance_masks(
    foreground: np.ndarray,
    candidates: np.ndarray,
    heatmap: np.ndarray,
    offsets: np.ndarray,
    output_stride: int,
    options: MaskOptions,
) -> list[InstanceMask]:
    """One frame's instance masks at the output stride, as sleap-nn has them before placing them
    on the frame (`mask_geometry.place_masks`): grouped, cleaned, fragments merged.

    Args:
        foreground: ``(h, w)`` uint8 (or bool), the thresholded foreground.
        candidates: ``(h, w)`` uint8 (or bool), the instance-center peak test.
        heatmap: ``(h, w)`` float32 center heatmap.
        offsets: ``(2, h, w)`` float32 center offsets (dx, dy) in input pixels.
        output_stride: the heads' stride.
        options: predict-time settings.
    """
    heatmap, offsets = np.asarray(heatmap, np.float32), np.asarray(offsets, np.float32)
    instances = group_instances(foreground, candidates, heatmap, offsets, output_stride, options)
    if options.merge_fragments and len(instances) > 1:
        instances = merge_fragments(instances, heatmap, offsets, output_stride, options)
    return instances
