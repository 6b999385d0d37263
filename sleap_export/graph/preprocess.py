"""Frame preprocessing inside the graph, in sleap-nn's order.

uint8 frames ``(B, H, W, C)`` -> size matching to the training ``max_height`` /
``max_width`` (resize keeping aspect ratio, pad bottom-right) -> input scaling
-> pad bottom-right to the max stride -> float in [0, 1]. Sizes are computed
from the input's shape as tensors, so the traced graph stays dynamic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sleap_export.graph.resize import resize_uint8_antialias
from sleap_export.spec import StageSpec


def _size(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = torch._shape_as_tensor(images)
    return shape[2], shape[3]


def pad_bottom_right(images: torch.Tensor, height, width) -> torch.Tensor:
    """Zero-pad ``(B, C, h, w)`` images to ``(height, width)``."""
    h, w = _size(images)
    return F.pad(images, (0, width - w, 0, height - h))


class Preprocess(torch.nn.Module):
    """One stage's preprocessing contract (see the module docstring)."""

    def __init__(self, stage: StageSpec):
        super().__init__()
        self.max_height = stage.max_height
        self.max_width = stage.max_width
        self.input_scale = float(stage.input_scale)
        self.max_stride = int(stage.max_stride)

    def forward(self, frames: torch.Tensor):
        """Return ``(images, size_scale)``.

        ``images`` is float32 ``(B, C, H', W')`` in [0, 1]; ``size_scale`` is the
        float32 size-matching factor to divide keypoints by (1 when unused).
        """
        images = frames.permute(0, 3, 1, 2).to(torch.float64)
        height, width = _size(images)
        size_scale = torch.ones((), dtype=torch.float64)
        if self.max_height is not None or self.max_width is not None:
            target_h = height if self.max_height is None else torch.full_like(height, self.max_height)
            target_w = width if self.max_width is None else torch.full_like(width, self.max_width)
            size_scale = torch.minimum(
                target_h.to(torch.float64) / height.to(torch.float64),
                target_w.to(torch.float64) / width.to(torch.float64),
            )
            # round() halves to even, as Python's round() in sleap-nn does.
            fit_h = torch.round(height.to(torch.float64) * size_scale).to(torch.int64)
            fit_w = torch.round(width.to(torch.float64) * size_scale).to(torch.int64)
            images = resize_uint8_antialias(images, fit_h, fit_w)
            images = pad_bottom_right(images, target_h, target_w)
            height, width = target_h, target_w
        if self.input_scale != 1.0:
            # int() truncation of size * scale, as sleap-nn's resize_image.
            scaled_h = torch.floor(height.to(torch.float64) * self.input_scale).to(torch.int64)
            scaled_w = torch.floor(width.to(torch.float64) * self.input_scale).to(torch.int64)
            images = resize_uint8_antialias(images, scaled_h, scaled_w)
            height, width = scaled_h, scaled_w
        if self.max_stride > 1:
            stride = self.max_stride
            images = pad_bottom_right(
                images,
                height + (stride - height % stride) % stride,
                width + (stride - width % stride) % stride,
            )
        return images.to(torch.float32) / 255.0, size_scale.to(torch.float32)
