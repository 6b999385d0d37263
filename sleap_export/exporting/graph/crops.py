"""Top-down crops: an integer gather of a box around each centroid, as sleap-nn cuts them.

Reference: ``sleap_nn/inference/ops/crops.py`` (``crop_bboxes``) with boxes
from ``make_centered_bboxes``. No interpolation: pixels are copied, zeros
outside the frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sleap_export.exporting.graph.shapes import shape_of


def centered_crops(images: torch.Tensor, centers: torch.Tensor, sample_index: torch.Tensor, crop_size: int):
    """Cut ``crop_size`` squares from ``(B, C, H, W)`` images around ``(n, 2)`` centers.

    Returns ``(crops, top_left)``: ``(n, C, crop, crop)`` crops and the boxes'
    float ``(n, 2)`` top-left ``(x, y)``, which sleap-nn adds back to the
    keypoints (the crop itself starts at that corner truncated to the grid).
    """
    half = crop_size / 2
    half_int = crop_size // 2
    # make_centered_bboxes: corner = center - size / 2, then + 0.5.
    top_left = (centers - half) + 0.5
    start = (top_left + half_int).to(torch.int64) - half_int  # trunc(x + h) - h
    channels = images.shape[1]
    padded = F.pad(images, (crop_size, crop_size, crop_size, crop_size))
    shape = shape_of(padded)
    padded_h, padded_w = shape[2], shape[3]
    grid = torch.arange(crop_size, dtype=torch.int64)
    rows = (start[:, 1, None] + grid[None, :] + crop_size).clamp(min=0)
    cols = (start[:, 0, None] + grid[None, :] + crop_size).clamp(min=0)
    rows = torch.minimum(rows, padded_h - 1)
    cols = torch.minimum(cols, padded_w - 1)
    flat = (
        sample_index[:, None, None] * (padded_h * padded_w)
        + rows[:, :, None] * padded_w
        + cols[:, None, :]
    )  # (n, crop, crop)
    pixels = padded.permute(0, 2, 3, 1).reshape(-1, channels)
    crops = pixels[flat.reshape(-1)].reshape(-1, crop_size, crop_size, channels)
    return crops.permute(0, 3, 1, 2), top_left
