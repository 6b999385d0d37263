"""Antialiased bilinear resize of uint8 images, bit-exact with torch's uint8 kernel.

sleap-nn resizes raw uint8 frames with ``torchvision...resize`` (bilinear,
antialias), which runs PyTorch's Pillow-style uint8 kernel: per axis, float64
triangle-filter weights quantized to int16 with a shared precision, a
horizontal pass rounded to uint8, then a vertical pass. ONNX Resize has a
different antialias convention (it disagrees by up to 6 grey levels), and the
float kernel rounds differently on ~13% of pixels, so the same arithmetic is
written here as two matrix products whose weights are computed from the
(dynamic) input and output sizes. Every format then preprocesses identically.
"""

from __future__ import annotations

import torch

from sleap_export.graph.shapes import float64_vector, shape_of

# Pillow/PyTorch keep quantized weights within int16: the largest weight times
# 2**(precision + 1) must stay below 2**15, with the precision capped at 22.
_MAX_PRECISION = 22


def _axis_weights(in_length: torch.Tensor, out_length: torch.Tensor):
    """Quantized ``(out, in)`` weight matrix for one axis and its precision unit.

    ``in_length``/``out_length`` are int64 scalar tensors, so tracing records them
    dynamically; the scale arithmetic runs on `float64_vector`s.
    """
    in_size = float64_vector(in_length)
    out_size = float64_vector(out_length)
    scale = in_size / out_size
    support = torch.where(scale >= 1.0, scale, torch.ones_like(scale))
    inv_scale = torch.where(scale >= 1.0, 1.0 / scale, torch.ones_like(scale))
    out_index = torch.arange(out_length, dtype=torch.float64)
    in_index = torch.arange(in_length, dtype=torch.float64)
    center = scale * (out_index + 0.5)
    first = torch.clamp(torch.floor(center - support + 0.5), min=0.0)
    stop = torch.minimum(torch.floor(center + support + 0.5), in_size)
    inside = (in_index[None, :] >= first[:, None]) & (in_index[None, :] < stop[:, None])
    distance = (in_index[None, :] - center[:, None] + 0.5) * inv_scale
    weights = torch.clamp(1.0 - distance.abs(), min=0.0) * inside.to(torch.float64)
    total = weights.sum(dim=1, keepdim=True)
    weights = weights / torch.where(total == 0.0, torch.ones_like(total), total)
    candidates = torch.arange(_MAX_PRECISION + 1, dtype=torch.float64)
    overflow = torch.floor(0.5 + weights.max().reshape(1) * torch.pow(2.0, candidates + 1.0)) >= 32768.0
    # The first precision whose next step would overflow; 22 when none does.
    overflow = overflow | (candidates == _MAX_PRECISION)
    precision = torch.argmax(overflow.to(torch.int64)).reshape(1).to(torch.float64)
    unit = torch.pow(2.0, precision)
    return torch.floor(weights * unit + 0.5), unit


def _round_shift(accumulated: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """Pillow's ``(acc + unit / 2) >> precision`` clamped to uint8, in float64."""
    return torch.clamp(torch.floor((accumulated + unit * 0.5) / unit), 0.0, 255.0)


def resize_uint8_antialias(
    images: torch.Tensor, out_height: torch.Tensor, out_width: torch.Tensor
) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` images holding uint8 values to the given size.

    Takes and returns float64 tensors of whole numbers in [0, 255]; sizes are
    integer scalar tensors so traced graphs keep them dynamic.
    """
    shape = shape_of(images)
    height, width = shape[2], shape[3]
    col_weights, col_unit = _axis_weights(width, out_width)
    row_weights, row_unit = _axis_weights(height, out_height)
    horizontal = _round_shift(torch.matmul(images, col_weights.t()), col_unit)
    return _round_shift(torch.matmul(row_weights, horizontal), row_unit)
