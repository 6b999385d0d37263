"""Antialiased bilinear resize of uint8 images, bit-exact with torch's uint8 kernel.

sleap-nn resizes raw uint8 frames with ``torchvision...resize`` (bilinear,
antialias), which runs PyTorch's Pillow-style uint8 kernel: per axis, float64
triangle-filter weights quantized to int16 with a shared precision, a
horizontal pass rounded to uint8, then a vertical pass. ONNX Resize has a
different antialias convention (it disagrees by up to 6 grey levels), and the
float kernel rounds differently on ~13% of pixels, so the same arithmetic is
written here as the same two passes, each output pixel a weighted sum of its
filter taps (gathered), the weights computed from the (dynamic) input and
output sizes. Every format then preprocesses identically.
"""

from __future__ import annotations

import torch

from sleap_export.exporting.graph.shapes import float64_vector, shape_of

# Pillow/PyTorch keep quantized weights within int16: the largest weight times
# 2**(precision + 1) must stay below 2**15, with the precision capped at 22.
_MAX_PRECISION = 22


def _axis_taps(in_length: torch.Tensor, out_length: torch.Tensor):
    """Each output pixel's taps along one axis: ``(weights, index, unit)``.

    ``weights``: quantized ``(out, taps)`` float64 weights (zero past an output's
    window); ``index``: the ``(out, taps)`` input pixels they weigh; ``unit``: the
    precision unit. Only the taps are computed, not the whole ``(out, in)``
    matrix: an axis costs out x taps work, not out x in. ``in_length``/
    ``out_length`` are int64 scalar tensors, so tracing records them
    dynamically; the scale arithmetic runs on `float64_vector`s.
    """
    in_size = float64_vector(in_length)
    out_size = float64_vector(out_length)
    scale = in_size / out_size
    support = torch.where(scale >= 1.0, scale, torch.ones_like(scale))
    inv_scale = torch.where(scale >= 1.0, 1.0 / scale, torch.ones_like(scale))
    out_index = torch.arange(out_length, dtype=torch.float64)
    center = scale * (out_index + 0.5)
    first = torch.clamp(torch.floor(center - support + 0.5), min=0.0)
    stop = torch.minimum(torch.floor(center + support + 0.5), in_size)
    taps_count = (stop - first).max().to(torch.int64)
    taps = first[:, None] + torch.arange(taps_count, dtype=torch.float64)[None, :]
    inside = taps < stop[:, None]
    distance = (taps - center[:, None] + 0.5) * inv_scale
    weights = torch.clamp(1.0 - distance.abs(), min=0.0) * inside.to(torch.float64)
    total = weights.sum(dim=1, keepdim=True)
    weights = weights / torch.where(total == 0.0, torch.ones_like(total), total)
    candidates = torch.arange(_MAX_PRECISION + 1, dtype=torch.float64)
    overflow = torch.floor(0.5 + weights.max().reshape(1) * torch.pow(2.0, candidates + 1.0)) >= 32768.0
    # The first precision whose next step would overflow; 22 when none does.
    overflow = overflow | (candidates == _MAX_PRECISION)
    precision = torch.argmax(overflow.to(torch.int64)).reshape(1).to(torch.float64)
    unit = torch.pow(2.0, precision)
    index = torch.minimum(taps, in_size - 1.0).to(torch.int64)
    return torch.floor(weights * unit + 0.5), index, unit


# Quantized weights (below 2**15) are split at this power of two, so that each float32
# sum of pixel x weight part is a whole number below 2**24, hence exact: the low parts'
# sums stay below 255 * 127 * 518 (518 taps: downscaling up to ~250x), the high parts'
# below 255 * (2**22 / 128 + taps / 2).
_LOW_PART = 128


def _filter_rows(images: torch.Tensor, weights: torch.Tensor, index: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """One pass down the rows (dim 2) of float32 whole-number images: Pillow's
    ``clamp((sum(pixel * weight) + unit / 2) >> precision, 0, 255)``, exactly.

    Rows are gathered, not columns: whole rows copy fast, single elements do not.
    The sums are taken in float32 over the weights' low and high parts, then
    put together and rounded in int32 (the whole sums reach 2**30).
    """
    batch, channels, _, width = images.shape
    out_length, taps_count = weights.shape
    picked = torch.index_select(images, 2, index.reshape(-1)).reshape(batch, channels, out_length, taps_count, width)
    high = torch.floor(weights / _LOW_PART)
    low = weights - high * _LOW_PART
    high_sums, low_sums = ((picked * part.to(torch.float32)[:, :, None]).sum(dim=3) for part in (high, low))
    sums = high_sums.to(torch.int32) * _LOW_PART + low_sums.to(torch.int32)
    unit = unit.to(torch.int32)
    shifted = torch.div(sums + torch.div(unit, 2, rounding_mode="trunc"), unit, rounding_mode="trunc")
    # Sums are never negative; the weights' rounding can carry them past 255.
    return torch.minimum(shifted, torch.full_like(unit, 255)).to(torch.float32)


def resize_uint8_antialias(
    images: torch.Tensor, out_height: torch.Tensor, out_width: torch.Tensor
) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` images holding uint8 values to the given size.

    Takes and returns float32 tensors of whole numbers in [0, 255]; sizes are
    integer scalar tensors so traced graphs keep them dynamic.
    """
    shape = shape_of(images)
    col_weights, col_index, col_unit = _axis_taps(shape[3], out_width)
    row_weights, row_index, row_unit = _axis_taps(shape[2], out_height)
    # The horizontal pass first, as Pillow: on the transposed images, down their rows.
    columns = _filter_rows(images.transpose(2, 3), col_weights, col_index, col_unit)
    return _filter_rows(columns.transpose(2, 3), row_weights, row_index, row_unit)
