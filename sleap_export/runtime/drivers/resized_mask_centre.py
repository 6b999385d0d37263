"""Where sleap-nn centres a mask's embedding crop on a frame its size matcher resizes, without torch.

sleap-nn's ``EmbeddingDataset._crop_mask`` reads such a mask at image resolution, cuts it to the frame,
resizes it like the frame (``apply_sizematcher``: torchvision's float resize, i.e. ATen's antialiased
bilinear ``_upsample_bilinear2d_aa`` on CPU, then zero padding bottom/right to the run's size), keeps
the pixels above 0.5 and centres on their centre of mass (or their bounding box's midpoint). The
resize here repeats ATen's float32 arithmetic step for step, so the 0.5 threshold, and the centre,
come out the same bit for bit. The rounding of the second pass's sums is that of torch's AVX2 CPU
kernels (the build torch picks on AVX2 machines); another build may round a sum's last bit otherwise,
which changes the threshold only for a value within an ulp of 0.5.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import sleap_io as sio


def resized_mask_centre(
    mask: sio.SegmentationMask,
    frame_hw: tuple[int, int],
    max_hw: tuple[Optional[int], Optional[int]],
    centering: Optional[str],
) -> np.ndarray:
    """float32 ``(x, y)`` of the crop centre of ``mask`` on a ``frame_hw`` frame size-matched to ``max_hw``
    (``(max_height, max_width)``, a None keeping the frame's own), in the resized frame's pixels: the centre
    of mass of the resized mask's pixels above 0.5, or their bounding box's midpoint when ``centering`` is
    "bbox"; the padded frame's centre when none is left."""
    frame_h, frame_w = (int(v) for v in frame_hw)
    padded_h = frame_h if max_hw[0] is None else int(max_hw[0])
    padded_w = frame_w if max_hw[1] is None else int(max_hw[1])
    if (frame_h, frame_w) == (padded_h, padded_w):
        target_h, target_w = frame_h, frame_w
    else:
        # compute_eff_scale: fit the frame inside the run's size, keeping its aspect.
        ratio = min(padded_h / frame_h, padded_w / frame_w)
        target_h, target_w = round(frame_h * ratio), round(frame_w * ratio)
    rows, cols = _pixels_above_half(mask, frame_h, frame_w, target_h, target_w)
    if rows.size == 0:
        return np.array([padded_w / 2.0, padded_h / 2.0], np.float32)
    if centering == "bbox":
        return np.array(
            [(cols.min() + cols.max()) / 2.0, (rows.min() + rows.max()) / 2.0],
            np.float32,
        )
    # Integer coordinate sums are exact in any order, so one quotient equals numpy's mean of them.
    return np.array([int(cols.sum()) / rows.size, int(rows.sum()) / rows.size], np.float32)


def mask_window_on_frame(
    mask: sio.SegmentationMask, frame_h: int, frame_w: int
) -> Optional[tuple[np.ndarray, int, int]]:
    """The part of the frame holding the mask as sleap-nn's ``decode_mask_to_image_res`` reads it (stored grid
    resampled nearest-neighbour to its image extent, placed at its rounded offset, cut to the frame):
    ``(window, top, left)``, or None when none of it is on the frame. Only the image rows and columns that
    read the stored grid's foreground span are resampled, not the whole frame."""
    grid = np.asarray(mask.data, bool)
    grid_rows, grid_cols = (
        np.flatnonzero(grid.any(axis=1)),
        np.flatnonzero(grid.any(axis=0)),
    )
    if grid_rows.size == 0:
        return None
    if tuple(mask.scale or (1.0, 1.0)) != (1.0, 1.0):
        height, width = grid.shape
        image_h, image_w = (int(v) for v in mask.image_extent)
        # Image row i reads stored row floor(i * height / image_h): a non-decreasing map, so the image rows
        # reading the foreground span are one run.
        row_of = (np.arange(image_h) * height / image_h).astype(int).clip(0, height - 1)
        col_of = (np.arange(image_w) * width / image_w).astype(int).clip(0, width - 1)
        top, bottom = _run_reading(row_of, grid_rows[0], grid_rows[-1])
        left, right = _run_reading(col_of, grid_cols[0], grid_cols[-1])
        window = grid[row_of[top:bottom]][:, col_of[left:right]]
    else:
        top, bottom = grid_rows[0], grid_rows[-1] + 1
        left, right = grid_cols[0], grid_cols[-1] + 1
        window = grid[top:bottom, left:right]
    ox, oy = (round(float(v)) for v in (mask.offset or (0.0, 0.0)))
    top, left = int(top) + oy, int(left) + ox
    # Cut to the frame.
    cut_top, cut_left = max(0, -top), max(0, -left)
    window = window[cut_top : max(0, frame_h - top), cut_left : max(0, frame_w - left)]
    if not window.any():
        return None
    return window, top + cut_top, left + cut_left


def _run_reading(source_of: np.ndarray, first: int, last: int) -> tuple[int, int]:
    """The ``[start, stop)`` run of a non-decreasing index map whose entries lie in ``[first, last]``."""
    return int(np.searchsorted(source_of, first, side="left")), int(np.searchsorted(source_of, last, side="right"))


def _pixels_above_half(
    mask: sio.SegmentationMask, frame_h: int, frame_w: int, target_h: int, target_w: int
) -> tuple[np.ndarray, np.ndarray]:
    """int64 (rows, cols) of the pixels above 0.5 once the mask on the frame is resized to
    ``(target_h, target_w)`` as ATen does: width first, then height, each pass skipped when that size is
    unchanged. Only the outputs whose taps reach the mask's window are computed: the others are exact zeros
    either way, and the zero inputs skipped add exact zeros to the sums computed."""
    placed = mask_window_on_frame(mask, frame_h, frame_w)
    if placed is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    window, top, left = placed
    values = window.astype(np.float32)
    values, left = _resample_axis(values, left, frame_w, target_w, axis=1)
    values, top = _resample_axis(values, top, frame_h, target_h, axis=0)
    rows, cols = np.nonzero(values > 0.5)
    return rows.astype(np.int64) + top, cols.astype(np.int64) + left


def _resample_axis(window: np.ndarray, start: int, in_size: int, out_size: int, axis: int) -> tuple[np.ndarray, int]:
    """One separable pass along ``axis`` of an ``in_size`` signal of which ``window`` holds the (possibly)
    nonzero span beginning at ``start``; returns the outputs that span reaches and where they begin."""
    if out_size == in_size:
        return window, start
    first_tap, tap_count, weights = _antialias_taps(in_size, out_size)
    span = window.shape[axis]
    taps = first_tap[:, None] + np.arange(weights.shape[1]) - start
    reaches = ((taps >= 0) & (taps < span) & (weights != 0)).any(axis=1)
    out0, out1 = int(np.argmax(reaches)), out_size - int(np.argmax(reaches[::-1]))
    # Taps outside the span read an appended zero line.
    taps = np.where((taps >= 0) & (taps < span), taps, span)[out0:out1]
    weights, tap_count = weights[out0:out1], tap_count[out0:out1]
    lines = np.moveaxis(window, axis, 0)
    lines = np.concatenate([lines, np.zeros((1,) + lines.shape[1:], np.float32)])
    expand = (slice(None),) + (None,) * (lines.ndim - 1)
    # ATen's loop is out = x0*w0, then out += xj*wj for j = 1 .. count-1. As compiled (AVX2 build), the
    # steps come in runs of 4 whose products are rounded before each add, and the leftover steps (after the
    # last whole run of 4) are fused multiply-adds. Steps past an output's count add nothing: skipped.
    fused_from = 4 * ((tap_count - 1) // 4)
    out = lines[taps[:, 0]] * weights[:, 0][expand]
    for j in range(1, weights.shape[1]):
        live = j < tap_count
        for step, outputs in (
            (_rounded_multiply_add, live & (j <= fused_from)),
            (_fused_multiply_add, live & (j > fused_from)),
        ):
            outputs = np.flatnonzero(outputs)
            if outputs.size:
                out[outputs] = step(lines[taps[outputs, j]], weights[outputs, j][expand], out[outputs])
    return np.moveaxis(out, 0, axis), out0


def _rounded_multiply_add(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 ``a*b + c``, the product rounded before the add."""
    return a * b + c


def _fused_multiply_add(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 ``a*b + c`` rounded once, as an FMA instruction gives it. The float32 product is exact in
    float64; its float64 sum with ``c`` is taken rounded to odd (nudged off an even last bit when inexact),
    which makes the final rounding to float32 the correct one (no double rounding)."""
    product = a.astype(np.float64) * b.astype(np.float64)
    addend = c.astype(np.float64)
    total = product + addend
    # TwoSum: total + error == product + addend exactly.
    product_part = total - addend
    addend_part = total - product_part
    error = (product - product_part) + (addend - addend_part)
    even = (total.view(np.int64) & 1) == 0
    nudge = (error != 0) & even
    total = np.where(nudge, np.nextafter(total, np.where(error > 0, np.inf, -np.inf)), total)
    return total.astype(np.float32)


def _antialias_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ATen's antialiased triangle-filter taps (``_compute_indices_min_size_weights_aa``, float32): per output
    index its first input index, its tap count and its normalised weights (zero past its count)."""
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    support = scale if scale >= 1.0 else f32(1.0)
    invscale = f32(1.0 / float(scale)) if scale >= 1.0 else f32(1.0)
    max_taps = int(np.ceil(support)) * 2 + 1
    # center is computed in double and stored as float; the bounds add 0.5 in double and truncate.
    center = (np.float64(scale) * (np.arange(out_size) + 0.5)).astype(f32)
    first = np.maximum(np.trunc((center - support).astype(np.float64) + 0.5).astype(np.int64), 0)
    last = np.minimum(np.trunc((center + support).astype(np.float64) + 0.5).astype(np.int64), in_size)
    count = np.clip(last - first, 0, max_taps)
    weights = np.zeros((out_size, max_taps), f32)
    total = np.zeros(out_size, f32)
    for j in range(max_taps):
        offset = (first + j).astype(f32) - center
        x = np.abs(((offset.astype(np.float64) + 0.5) * np.float64(invscale)).astype(f32))
        w = np.where(x < 1.0, (1.0 - x.astype(np.float64)).astype(f32), f32(0.0))
        w = np.where(j < count, w, f32(0.0))
        weights[:, j] = w
        total += w
    nonzero = total != 0
    weights[nonzero] /= total[nonzero, None]
    return first, count, weights
