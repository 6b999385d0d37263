"""Box-scaled crops (sleap-nn's ``crop_mode: bbox``): each detected box resized to the crop.

Reference: ``sleap_nn/data/instance_cropping.py`` (``bbox_crop_windows``,
``crop_windows``, ``letterbox_crops``, ``points_from_crop``). A window is the
box padded on every side by ``padding`` times its longest side (square and
letterbox: the square on that side), at least ``min_size`` pixels, centered on
the box; the crop samples it bilinearly at each output pixel's center with the
frame's edge pixels repeated, fades where the window leaves the frame, and is
rounded to whole numbers as sleap-nn's uint8 crops are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sleap_export.core.spec import BoxCropSpec
from sleap_export.exporting.graph.shapes import shape_of


def box_crop_windows(boxes: torch.Tensor, crop_size: int, rule: BoxCropSpec):
    """``(windows (n, 4), scales (n, 2), keep_half (n, 2))`` for ``(n, 4)`` xyxy boxes: the edge-coordinate
    windows, the frame -> crop scale per axis, and the half extent (crop pixels) of the padded box."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    width = (x2 - x1).clamp(min=0)
    height = (y2 - y1).clamp(min=0)
    margin = 2.0 * float(rule.padding) * torch.maximum(width, height)
    padded = torch.stack([width + margin, height + margin], dim=-1)
    if rule.aspect == "stretch":
        sides = padded
    else:
        sides = padded.max(dim=-1, keepdim=True).values.expand(-1, 2)
    sides = sides.clamp(min=max(float(rule.min_size or 0.0), 1.0))
    center = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2], dim=-1) + 0.5
    windows = torch.cat([center - sides / 2, center + sides / 2], dim=-1)
    scales = float(crop_size) / sides
    keep_half = torch.minimum(padded * scales, sides * scales) / 2
    return windows, scales, keep_half


def edge_coverage(low: torch.Tensor, high: torch.Tensor, n: int, extent: torch.Tensor, exact_inside: bool = False) -> torch.Tensor:
    """``(m, n)``: the fraction of each output pixel's footprint inside ``[0, extent]``; ``exact_inside``: 1
    for a footprint wholly inside (as Skia draws it), not ``(end - start) / step``, which rounds to 1 - 2e-5
    (as sleap-nn's box crops compute it)."""
    step = (high - low) / n
    start = low[:, None] + torch.arange(n, dtype=torch.float32)[None, :] * step[:, None]
    end = start + step[:, None]
    extent = extent.to(torch.float32)
    inside = (torch.minimum(end, extent) - start.clamp(min=0.0)).clamp(min=0.0)
    coverage = (inside / step[:, None]).clamp(max=1.0)
    return torch.where((start >= 0.0) & (end <= extent), 1.0, coverage) if exact_inside else coverage


def box_crops(images: torch.Tensor, windows: torch.Tensor, keep_half: torch.Tensor, sample_index: torch.Tensor,
              crop_size: int, letterbox: bool) -> torch.Tensor:
    """``(n, C, crop, crop)`` whole-number crops of the ``(B, C, H, W)`` images in ``windows``."""
    shape = shape_of(images)
    height, width = shape[2], shape[3]
    n = shape_of(windows)[0]
    centers = torch.arange(crop_size, dtype=torch.float32) + 0.5
    step = (windows[:, 2:] - windows[:, :2]) / crop_size
    xs = windows[:, 0:1] + centers[None, :] * step[:, 0:1]
    ys = windows[:, 1:2] + centers[None, :] * step[:, 1:2]
    grid = torch.stack(
        [
            (2 * xs / width.to(torch.float32) - 1)[:, None, :].expand(n, crop_size, crop_size),
            (2 * ys / height.to(torch.float32) - 1)[:, :, None].expand(n, crop_size, crop_size),
        ],
        dim=-1,
    )
    # One frame per crop: each output pixel is sampled alone, so this equals sleap-nn's per-frame stacking.
    frames = torch.index_select(images, 0, sample_index)
    crops = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    cover_x = edge_coverage(windows[:, 0], windows[:, 2], crop_size, width)
    cover_y = edge_coverage(windows[:, 1], windows[:, 3], crop_size, height)
    crops = crops * (cover_y[:, None, :, None] * cover_x[:, None, None, :])
    if letterbox:
        offsets = torch.arange(crop_size, dtype=torch.float32) + 0.5 - crop_size / 2
        keep_x = offsets.abs()[None, :] <= keep_half[:, 0:1]
        keep_y = offsets.abs()[None, :] <= keep_half[:, 1:2]
        crops = crops * (keep_y[:, :, None] & keep_x[:, None, :])[:, None].to(crops.dtype)
    return crops.round().clamp(0, 255)


def points_from_crop(points: torch.Tensor, windows: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``(n, N, 2)`` crop pixels -> the frame the windows were cut from."""
    return (points + 0.5) / scales[:, None, :] + windows[:, None, :2] - 0.5


def resampled_crops(images: torch.Tensor, windows: torch.Tensor, sample_index: torch.Tensor, crop_size: int) -> torch.Tensor:
    """``(n, C, crop, crop)`` whole-number crops of the ``(B, C, H, W)`` images in the ``(n, 4)`` windows, as
    sleap-nn's Skia crop makes them: each output pixel's center mapped into the frame in float32 pixel
    coordinates (not through a normalized grid, whose extra rounding moves ~3 of 9,216 pixels a grey level),
    bilinear with the edge pixels repeated, faded where the window leaves the frame, rounded."""
    shape = shape_of(images)
    channels, height, width = shape[1], shape[2], shape[3]
    centers = torch.arange(crop_size, dtype=torch.float32) + 0.5
    # A product, not a quotient: runtimes divide by a broadcast divisor differently (torch via its reciprocal).
    step = (windows[:, 2:] - windows[:, :2]) / float(crop_size)  # frame pixels per crop pixel, (n, 2)
    xs = centers[None, :] * step[:, 0:1] + windows[:, 0:1] - 0.5
    ys = centers[None, :] * step[:, 1:2] + windows[:, 1:2] - 0.5
    x0, y0 = torch.floor(xs), torch.floor(ys)
    fx, fy = (xs - x0)[:, None, None, :], (ys - y0)[:, None, :, None]
    # Flat indices into the batch: no per-crop copy of its frame.
    flat = images.reshape(-1)
    plane = (sample_index[:, None] * channels + torch.arange(channels)[None, :]) * height  # (n, C)

    def column(x):
        return x.to(torch.int64).clamp(min=0).minimum(width - 1)[:, None, None, :]

    def row(y):
        return (plane[:, :, None] + y.to(torch.int64).clamp(min=0).minimum(height - 1)[:, None, :])[..., None] * width

    def at(r, c):
        return torch.index_select(flat, 0, (r + c).reshape(-1)).reshape(shape_of(r)[0], channels, crop_size, crop_size)

    top_row, bottom_row, left, right = row(y0), row(y0 + 1), column(x0), column(x0 + 1)
    top = at(top_row, left) + (at(top_row, right) - at(top_row, left)) * fx
    bottom = at(bottom_row, left) + (at(bottom_row, right) - at(bottom_row, left)) * fx
    crops = top + (bottom - top) * fy
    cover_x = edge_coverage(windows[:, 0], windows[:, 2], crop_size, width, exact_inside=True)
    cover_y = edge_coverage(windows[:, 1], windows[:, 3], crop_size, height, exact_inside=True)
    crops = crops * (cover_y[:, None, :, None] * cover_x[:, None, None, :])
    return crops.round().clamp(0, 255)
