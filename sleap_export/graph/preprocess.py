"""Frame preprocessing inside the graph, in sleap-nn's order.

uint8 frames ``(B, H, W, C)`` -> size matching to the training ``max_height`` /
``max_width`` (resize keeping aspect ratio, pad bottom-right) -> input scaling
-> pad bottom-right to the max stride -> float in [0, 1]. Sizes are computed
from the input's shape as tensors, so the traced graph stays dynamic. Images
between steps are float64 holding whole numbers 0-255, exactly as sleap-nn's
uint8 tensors.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from sleap_export.graph.resize import resize_uint8_antialias
from sleap_export.graph.shapes import shape_of


def _size(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = shape_of(images)
    return shape[2], shape[3]


def pad_bottom_right(images: torch.Tensor, height, width) -> torch.Tensor:
    """Zero-pad ``(B, C, h, w)`` images to ``(height, width)``."""
    h, w = _size(images)
    return F.pad(images, (0, width - w, 0, height - h))


def frames_to_images(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, H, W, C)`` -> float64 ``(B, C, H, W)`` of the same values."""
    return frames.permute(0, 3, 1, 2).to(torch.float64)


class SizeMatch(torch.nn.Module):
    """Fit frames into the training ``(max_height, max_width)`` as sleap-nn does."""

    def __init__(self, max_height: Optional[int], max_width: Optional[int]):
        super().__init__()
        self.max_height = max_height
        self.max_width = max_width

    def forward(self, images: torch.Tensor):
        """Return ``(images, size_scale)``; ``size_scale`` is float32 (1 when unused)."""
        if self.max_height is None and self.max_width is None:
            return images, torch.ones((), dtype=torch.float32)
        height, width = _size(images)
        target_h = height if self.max_height is None else torch.full_like(height, self.max_height)
        target_w = width if self.max_width is None else torch.full_like(width, self.max_width)
        size_scale = torch.minimum(
            target_h.to(torch.float64) / height.to(torch.float64),
            target_w.to(torch.float64) / width.to(torch.float64),
        )
        # round() halves to even, as Python's round() in sleap-nn does.
        fit_h = torch.round(height.to(torch.float64) * size_scale).to(torch.int64)
        fit_w = torch.round(width.to(torch.float64) * size_scale).to(torch.int64)
        # sleap-nn resizes only frames whose size differs from the target. A traced graph
        # has no branches, so the batch goes to the resize (all frames) or around it (none)
        # by splitting it at 0 or B: frames already at the training size skip its cost.
        resize = ((fit_h != height) | (fit_w != width)).to(torch.int64)
        batch = shape_of(images)[0]
        split = batch * resize
        resized = resize_uint8_antialias(torch.index_select(images, 0, torch.arange(split)), fit_h, fit_w)
        kept = torch.index_select(images, 0, torch.arange(split, batch))
        images = torch.cat([pad_bottom_right(resized, target_h, target_w), pad_bottom_right(kept, target_h, target_w)])
        return images, size_scale.to(torch.float32)


class ScaleAndPad(torch.nn.Module):
    """Input scaling, padding to the max stride and normalization to [0, 1]."""

    def __init__(self, input_scale: float, max_stride: int):
        super().__init__()
        self.input_scale = float(input_scale)
        self.max_stride = int(max_stride)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = _size(images)
        if self.input_scale != 1.0:
            # int() truncation of size * scale, as sleap-nn's resize_image.
            height = torch.floor(height.to(torch.float64) * self.input_scale).to(torch.int64)
            width = torch.floor(width.to(torch.float64) * self.input_scale).to(torch.int64)
            images = resize_uint8_antialias(images, height, width)
        if self.max_stride > 1:
            stride = self.max_stride
            images = pad_bottom_right(
                images,
                height + (stride - height % stride) % stride,
                width + (stride - width % stride) % stride,
            )
        return images.to(torch.float32) / 255.0
