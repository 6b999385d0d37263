"""Frame preprocessing inside the graph, in sleap-nn's order.

uint8 frames ``(B, H, W, C)`` -> size matching to the training ``max_height`` /
``max_width`` (resize keeping aspect ratio, pad bottom-right) -> input scaling
-> pad bottom-right to the max stride -> float in [0, 1]. Sizes are computed
from the input's shape as tensors, so the traced graph stays dynamic. Images
between steps are float32 holding whole numbers 0-255, exactly as sleap-nn's
uint8 tensors; scales are float64, as sleap-nn computes them.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from sleap_export.exporting.graph.resize import resize_uint8_antialias
from sleap_export.exporting.graph.shapes import float64_vector, shape_of


def _size(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = shape_of(images)
    return shape[2], shape[3]


def pad_bottom_right(images: torch.Tensor, height, width) -> torch.Tensor:
    """Zero-pad ``(B, C, h, w)`` images to ``(height, width)``."""
    h, w = _size(images)
    return F.pad(images, (0, width - w, 0, height - h))


def frames_to_images(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, H, W, C)`` -> float32 ``(B, C, H, W)`` of the same values."""
    return frames.permute(0, 3, 1, 2).to(torch.float32)


def match_size(images: torch.Tensor, target_h: torch.Tensor, target_w: torch.Tensor):
    """Fit ``(B, C, H, W)`` images into ``(target_h, target_w)`` as sleap-nn's
    ``apply_sizematcher``: returns ``(images, size_scale)``, the scale as float64."""
    height, width = _size(images)
    size_scale = torch.minimum(
        float64_vector(target_h) / float64_vector(height),
        float64_vector(target_w) / float64_vector(width),
    )
    # round() halves to even, as Python's round() in sleap-nn does.
    fit_h = torch.round(float64_vector(height) * size_scale).to(torch.int64).reshape(())
    fit_w = torch.round(float64_vector(width) * size_scale).to(torch.int64).reshape(())
    # sleap-nn resizes only frames whose size differs from the target. A traced graph
    # has no branches, so the batch goes to the resize (all frames) or around it (none)
    # by splitting it at 0 or B: frames already at the training size skip its cost.
    resize = ((fit_h != height) | (fit_w != width)).to(torch.int64)
    batch = shape_of(images)[0]
    split = batch * resize
    # Resize weights cost (output x input) work per axis even for an empty batch: going
    # around, the batch (empty) is resized to 1 x 1, so the weights are single rows.
    around = 1 - resize
    resized = resize_uint8_antialias(
        torch.index_select(images, 0, torch.arange(split)), fit_h * resize + around, fit_w * resize + around
    )
    kept = torch.index_select(images, 0, torch.arange(split, batch))
    images = torch.cat([pad_bottom_right(resized, target_h, target_w), pad_bottom_right(kept, target_h, target_w)])
    return images, size_scale.reshape(())


def resize_by_scale(images: torch.Tensor, input_scale: torch.Tensor) -> torch.Tensor:
    """sleap-nn's ``resize_image`` by a float64 ``input_scale``."""
    height, width = _size(images)
    # int() truncation of size * scale, as sleap-nn's resize_image.
    scale = input_scale.reshape(1)
    height = torch.floor(float64_vector(height) * scale).to(torch.int64).reshape(())
    width = torch.floor(float64_vector(width) * scale).to(torch.int64).reshape(())
    return resize_uint8_antialias(images, height, width)


def pad_to_stride(images: torch.Tensor, max_stride) -> torch.Tensor:
    """sleap-nn's ``apply_pad_to_stride``: zeros bottom-right up to multiples of ``max_stride``."""
    height, width = _size(images)
    return pad_bottom_right(
        images,
        height + (max_stride - height % max_stride) % max_stride,
        width + (max_stride - width % max_stride) % max_stride,
    )


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
        images, size_scale = match_size(images, target_h, target_w)
        return images, size_scale.to(torch.float32)


class ScaleAndPad(torch.nn.Module):
    """Input scaling, padding to the max stride and normalization to [0, 1]."""

    def __init__(self, input_scale: float, max_stride: int):
        super().__init__()
        self.input_scale = float(input_scale)
        self.max_stride = int(max_stride)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_scale != 1.0:
            images = resize_by_scale(images, torch.tensor(self.input_scale, dtype=torch.float64))
        if self.max_stride > 1:
            images = pad_to_stride(images, self.max_stride)
        return images / 255.0
