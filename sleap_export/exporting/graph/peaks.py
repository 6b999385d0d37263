"""Peak finding and integral refinement with sleap-nn's semantics, trace-friendly.

Reference: ``sleap_nn/inference/ops/peaks.py``. Differences in formulation (not
in results): local peaks are gathered into a fixed number of slots per map with
a validity mask instead of a ragged list, and refinement patches are gathered
by flat index instead of cropped box by box.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F

from sleap_export.exporting.graph.shapes import shape_of


def global_peaks(confmaps: torch.Tensor, threshold: float):
    """The maximum of every ``(sample, channel)`` map.

    Returns ``(points, values)``: ``(B, C, 2)`` integer grid ``(x, y)`` (NaN
    below ``threshold``) and ``(B, C)`` values (0 below ``threshold``). Uses
    sleap-nn's two-pass argmax so ties resolve the same way.
    """
    max_rows, _ = torch.max(confmaps, dim=2, keepdim=True)
    max_values, x_index = torch.max(max_rows, dim=3, keepdim=True)
    max_cols, _ = torch.max(confmaps, dim=3, keepdim=True)
    _, y_index = torch.max(max_cols, dim=2, keepdim=True)
    points = torch.cat(
        [x_index.squeeze(3).squeeze(2).unsqueeze(-1), y_index.squeeze(3).squeeze(2).unsqueeze(-1)],
        dim=-1,
    ).to(torch.float32)
    values = max_values.squeeze(-1).squeeze(-1)
    below = values < threshold
    points = torch.where(below.unsqueeze(-1), torch.full_like(points, float("nan")), points)
    values = torch.where(below, torch.zeros_like(values), values)
    return points, values


# A pixel's neighbours before it in raster order (NW, N, NE, W) and after it (E, SW, S, SE), as (row, col).
_BEFORE = ((-1, -1), (-1, 0), (-1, 1), (0, -1))
_AFTER = ((0, 1), (1, -1), (1, 0), (1, 1))

# Called with every map `local_peaks` searches, and its threshold (see `observing_peak_maps`).
_MAP_OBSERVERS: list[Callable[[torch.Tensor, float], None]] = []


@contextlib.contextmanager
def observing_peak_maps(observe: Callable[[torch.Tensor, float], None]):
    """Calls ``observe(confmaps, threshold)`` with every map `local_peaks` searches inside the
    block: how check counts the peaks that sit on a tie, in the graph it runs eagerly."""
    _MAP_OBSERVERS.append(observe)
    try:
        yield
    finally:
        _MAP_OBSERVERS.remove(observe)


def peak_map(confmaps: torch.Tensor, threshold: float, tie_tolerance: float = 0.0):
    """Where sleap-nn 0.3.5's rule finds a local peak, and which pixels after it join its top.

    A pixel above ``threshold`` and greater than its 8 neighbours (``-inf``
    outside the map) is a peak. So is a flat top (sleap-nn's #781): equal pixels
    that fit in a 2x2 block (2 pixels, an L of 3, or 4) with no pixel around them
    as high; it is one peak, at the mean of its pixels' coordinates (so it can be
    fractional; see `top_shift`), marked at its first pixel in raster order and
    with that pixel's value. A wider top, or one beside a pixel as high, gives
    none. With a ``tie_tolerance``, values within that fraction of the top's value
    count as equal, so that a plateau a runtime's rounding spread over a few ulps
    (equal in torch) stays one.

    Returns ``(is_peak, joins)``: bool maps shaped like ``confmaps``; ``joins``
    says, per pixel, whether its E, SW, S and SE neighbours belong to its top.
    """
    padded = F.pad(confmaps, (2, 2, 2, 2), mode="constant", value=float("-inf"))

    def shifted(padded_map: torch.Tensor, row: int, col: int) -> torch.Tensor:
        """The value ``(row, col)`` away from every pixel, of a map padded by two pixels."""
        return padded_map[..., 2 + row : (row - 2) or None, 2 + col : (col - 2) or None]

    # A pixel at or above `level` is as high as the one at hand; above `ceiling`, higher. Only
    # pixels above the threshold (>= 0) can be peaks, so the margin scales the value itself.
    level = confmaps * (1.0 - tie_tolerance) if tie_tolerance else confmaps
    ceiling = confmaps * (1.0 + tie_tolerance) if tie_tolerance else confmaps
    before = torch.maximum(
        torch.maximum(shifted(padded, -1, -1), shifted(padded, -1, 0)),
        torch.maximum(shifted(padded, -1, 1), shifted(padded, 0, -1)),
    )
    after_pixels = [shifted(padded, *offset) for offset in _AFTER]
    after = torch.maximum(torch.maximum(after_pixels[0], after_pixels[1]), torch.maximum(after_pixels[2], after_pixels[3]))
    # The first pixel of its top in raster order: the ones before it are lower, none after it is higher.
    first = (confmaps > threshold) & (before < level) & (after <= ceiling)
    east, south_west, south, south_east = (pixel >= level for pixel in after_pixels)
    fits_2x2 = ~(south_west & (east | south_east))
    # Every neighbour of the first pixel outside its top is lower than it (by the tests above), so
    # the top's rim is the ring two pixels out, the part of it that touches each pixel of the top.
    columns = torch.maximum(torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])
    rows = torch.maximum(torch.maximum(padded[..., :, :-2], padded[..., :, 1:-1]), padded[..., :, 2:])

    def column_of_3(row: int, col: int) -> torch.Tensor:  # max of (row - 1 .. row + 1, col)
        return columns[..., 1 + row : (row - 1) or None, 2 + col : (col - 2) or None]

    def row_of_3(row: int, col: int) -> torch.Tensor:  # max of (row, col - 1 .. col + 1)
        return rows[..., 2 + row : (row - 2) or None, 1 + col : (col - 1) or None]

    rims = (
        (east, column_of_3(0, 2)),
        (south_west, torch.maximum(column_of_3(1, -2), row_of_3(2, -1))),
        (south, row_of_3(2, 0)),
        (south_east, torch.maximum(column_of_3(1, 2), row_of_3(2, 1))),
    )
    beside_top = torch.zeros_like(first)
    for joins, rim in rims:
        beside_top = beside_top | (joins & (rim >= level))
    is_peak = first & fits_2x2 & ~beside_top
    return is_peak, (east, south_west, south, south_east)


def top_shift(joins) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` grid units from a top's first pixel to the mean of its pixels, from `peak_map`'s ``joins``."""
    east, south_west, south, south_east = (joined.to(torch.float32) for joined in joins)
    pixels = 1.0 + east + south_west + south + south_east
    return (east + south_east - south_west) / pixels, (south_west + south + south_east) / pixels


def local_peaks(confmaps: torch.Tensor, threshold: float, max_peaks: int, tie_tolerance: float = 0.0):
    """Up to ``max_peaks`` local maxima per ``(sample, channel)`` map, by `peak_map`'s rule.

    When a map has more peaks than slots, the highest are kept (sleap-nn's
    top-k); kept peaks are in raster order, as sleap-nn lists them.

    Returns ``(points, values, valid)``: ``(B, C, K, 2)`` grid ``(x, y)`` (NaN
    where invalid), ``(B, C, K)`` values (NaN where invalid), ``(B, C, K)`` bool.
    """
    for observe in _MAP_OBSERVERS:
        observe(confmaps, threshold)
    is_peak, joins = peak_map(confmaps, threshold, tie_tolerance)
    width = shape_of(confmaps)[3]
    scores = torch.where(is_peak, confmaps, torch.full_like(confmaps, float("-inf"))).flatten(2)
    # Slots past the last pixel, so that a map with fewer pixels than slots still fills them; never valid.
    scores = torch.cat([scores, torch.full_like(scores[..., :1], float("-inf")).expand(-1, -1, max_peaks)], dim=2)
    top_values, top_index = torch.topk(scores, max_peaks, dim=2)
    valid = top_values > float("-inf")
    # Raster order among the kept peaks; invalid slots sort last.
    order_key = torch.where(valid, top_index, torch.full_like(top_index, 2**62))
    order_key, order = torch.sort(order_key, dim=2)
    top_values = torch.gather(top_values, 2, order)
    valid = torch.gather(valid, 2, order)
    pixel = torch.where(valid, order_key, torch.zeros_like(order_key))
    shift_x, shift_y = top_shift([torch.gather(joined.flatten(2), 2, pixel) for joined in joins])
    points = torch.stack(
        [(pixel % width).to(torch.float32) + shift_x, (pixel // width).to(torch.float32) + shift_y], dim=-1
    )
    nan = torch.full_like(points, float("nan"))
    points = torch.where(valid.unsqueeze(-1), points, nan)
    values = torch.where(valid, top_values, torch.full_like(top_values, float("nan")))
    return points, values, valid


def nan_to_zero(values: torch.Tensor) -> torch.Tensor:
    """NaN -> 0. ``torch.nan_to_num`` would also clamp infinities, which exports an
    ONNX IsInf that TensorRT's parser may lack; these values are never infinite."""
    return torch.where(torch.isnan(values), 0.0, values)


def integral_offsets(confmaps: torch.Tensor, points: torch.Tensor, patch_size: int):
    """Sub-pixel offsets: confidence-weighted mean position in a patch per point.

    ``points`` is ``(B, C, K, 2)`` integer grid ``(x, y)`` on map ``C`` (NaN
    allowed; their offsets are meaningless and must be masked by the caller).
    The patch is zero outside the map, as sleap-nn's ``crop_bboxes`` pads it.
    Returns ``(B, C, K, 2)`` offsets in grid units.
    """
    radius = patch_size // 2
    padded = F.pad(confmaps, (radius, radius, radius, radius))
    shape = shape_of(padded)
    padded_width = shape[3]
    # Explicit sizes instead of -1/flatten: ONNX Runtime cannot infer -1 when
    # another dimension is 0 (a frame with no instances gives zero crops).
    batch, channels, slots = points.shape[0], points.shape[1], points.shape[2]
    anchors = nan_to_zero(points).to(torch.int64) + radius
    grid = torch.arange(patch_size, dtype=torch.int64) - radius
    rows = anchors[..., 1, None, None] + grid[:, None]  # (B, C, K, P, 1)
    cols = anchors[..., 0, None, None] + grid[None, :]  # (B, C, K, 1, P)
    flat_index = (rows * padded_width + cols).reshape(batch, channels, slots * patch_size * patch_size)
    flat_maps = padded.reshape(batch, channels, shape[2] * shape[3])
    patches = torch.gather(flat_maps, 2, flat_index)
    patches = patches.reshape(batch, channels, slots, patch_size, patch_size)
    offsets = grid.to(torch.float32) - ((patch_size - 1) / 2 - radius)
    total = patches.sum(dim=(3, 4))
    dx = (patches * offsets[None, None, None, None, :]).sum(dim=(3, 4)) / total
    dy = (patches * offsets[None, None, None, :, None]).sum(dim=(3, 4)) / total
    return torch.stack([dx, dy], dim=-1)
