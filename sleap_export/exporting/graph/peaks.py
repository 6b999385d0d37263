"""Peak finding and integral refinement with sleap-nn's semantics, trace-friendly.

Reference: ``sleap_nn/inference/ops/peaks.py``. Differences in formulation (not
in results): local peaks are gathered into a fixed number of slots per map with
a validity mask instead of a ragged list, and refinement patches are gathered
by flat index instead of cropped box by box.
"""

from __future__ import annotations

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


def local_peaks(confmaps: torch.Tensor, threshold: float, max_peaks: int, tie_tolerance: float = 0.0):
    """Up to ``max_peaks`` local maxima per ``(sample, channel)`` map.

    A pixel is a peak when it is above ``threshold`` and strictly greater than
    its 8 neighbours (``-inf`` outside the map); with a ``tie_tolerance``, greater
    by more than that fraction of its value, so that values a runtime's rounding
    set a few ulps apart on a plateau (equal in torch) stay ties. When a map has more peaks than
    slots, the highest are kept (sleap-nn's top-k); kept peaks are in raster
    order, as sleap-nn lists them.

    Returns ``(points, values, valid)``: ``(B, C, K, 2)`` grid ``(x, y)`` (NaN
    where invalid), ``(B, C, K)`` values (NaN where invalid), ``(B, C, K)`` bool.
    """
    padded = F.pad(confmaps, (1, 1, 1, 1), mode="constant", value=float("-inf"))
    neighbours = torch.maximum(
        torch.maximum(
            torch.maximum(padded[..., :-2, :-2], padded[..., :-2, 1:-1]),
            torch.maximum(padded[..., :-2, 2:], padded[..., 1:-1, :-2]),
        ),
        torch.maximum(
            torch.maximum(padded[..., 1:-1, 2:], padded[..., 2:, :-2]),
            torch.maximum(padded[..., 2:, 1:-1], padded[..., 2:, 2:]),
        ),
    )
    above = confmaps - tie_tolerance * confmaps.abs() if tie_tolerance else confmaps
    is_peak = (above > neighbours) & (confmaps > threshold)
    width = shape_of(confmaps)[3]
    scores = torch.where(is_peak, confmaps, torch.full_like(confmaps, float("-inf")))
    top_values, top_index = torch.topk(scores.flatten(2), max_peaks, dim=2)
    valid = top_values > float("-inf")
    # Raster order among the kept peaks; invalid slots sort last.
    order_key = torch.where(valid, top_index, torch.full_like(top_index, 2**62))
    order_key, order = torch.sort(order_key, dim=2)
    top_values = torch.gather(top_values, 2, order)
    valid = torch.gather(valid, 2, order)
    points = torch.stack([order_key % width, order_key // width], dim=-1).to(torch.float32)
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
