"""Box detector decoding in the graph, as sleap-nn's ``inference/bbox.py`` does it.

CenterNet (``decode_centernet``): a 3x3 max-pool keeps the local maxima of the
center heatmap, the highest ``max_detections`` are read with the box size and
sub-cell offset at their cell, boxes are clipped to the model input, then mapped
to the frame (``/ input_scale``, ``/ size-matching scale``) and clipped to it
(``clip_boxes_to_frame``). SSD (``decode_ssd``): class probabilities by softmax
(background dropped), the top (anchor, class) pairs at or above the threshold,
the boxes of their anchors decoded. Class-wise IoU-NMS (SSD's always, CenterNet's
where a model sets one) runs on the host (`runtime.decoding.box_nms`), over these
candidates in score order; a box-driven top-down graph runs it in the graph (`class_wise_nms`).
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
import torch.nn.functional as F

from sleap_export.exporting.graph.shapes import shape_of


def _clip(boxes: torch.Tensor, height: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Corners clamped to ``[0, W - 1] x [0, H - 1]`` (sleap-nn's ``_clip_to_image``)."""
    right = (width - 1).to(boxes.dtype)
    bottom = (height - 1).to(boxes.dtype)
    x1 = torch.minimum(boxes[..., 0].clamp(min=0), right)
    y1 = torch.minimum(boxes[..., 1].clamp(min=0), bottom)
    x2 = torch.minimum(boxes[..., 2].clamp(min=0), right)
    y2 = torch.minimum(boxes[..., 3].clamp(min=0), bottom)
    return torch.stack([x1, y1, x2, y2], dim=-1)


def _has_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])


def centernet_detections(
    heatmap: torch.Tensor,
    size: torch.Tensor,
    offset,
    output_stride: int,
    score_threshold: float,
    max_detections: int,
    input_height: torch.Tensor,
    input_width: torch.Tensor,
):
    """``(boxes (B, K, 4), scores (B, K), classes (B, K), kept (B, K))`` in model-input pixels.

    ``heatmap``: ``(B, C, h, w)`` probabilities. The K slots are the top-K max-pool
    peaks in descending score; ``kept`` marks those at or above the threshold whose
    clipped box has an area, which are sleap-nn's detections, in its order.
    """
    shape = shape_of(heatmap)
    batch, channels, height, width = shape[0], shape[1], shape[2], shape[3]
    pooled = F.max_pool2d(heatmap, 3, stride=1, padding=1)
    peaks = heatmap * (pooled == heatmap).to(heatmap.dtype)
    cells = height * width
    flat = peaks.reshape(batch, channels * cells)
    # Zeros after the last cell so a frame with fewer cells than slots still fills K; they are never kept.
    flat = torch.cat([flat, torch.zeros_like(flat[:, :1]).expand(batch, max_detections)], dim=1)
    scores, indices = flat.topk(max_detections, dim=1)
    real = indices < channels * cells
    indices = torch.where(real, indices, torch.zeros_like(indices))
    classes = indices // cells
    cell = indices % cells
    ys = (cell // width).to(heatmap.dtype)
    xs = (cell % width).to(heatmap.dtype)

    def at_peaks(maps: torch.Tensor) -> torch.Tensor:  # (B, 2, h, w) -> (B, K, 2)
        flat_maps = maps.reshape(batch, 2, cells)
        return flat_maps.gather(2, cell[:, None, :].expand(batch, 2, max_detections)).permute(0, 2, 1)

    wh = at_peaks(size).clamp(min=0)
    if offset is not None:
        shift = at_peaks(offset)
        xs, ys = xs + shift[..., 0], ys + shift[..., 1]
    stride = float(output_stride)
    boxes = torch.stack(
        [(xs - wh[..., 0] / 2) * stride, (ys - wh[..., 1] / 2) * stride,
         (xs + wh[..., 0] / 2) * stride, (ys + wh[..., 1] / 2) * stride],
        dim=-1,
    )
    boxes = _clip(boxes, input_height, input_width)
    kept = real & (scores >= score_threshold) & _has_area(boxes)
    return boxes, scores, classes, kept


def boxes_to_frame(boxes, scores, kept, input_scale: float, size_scale, frame_height, frame_width):
    """Model-input boxes -> frame pixels, clipped to the frame; boxes left without area are dropped
    (sleap-nn's coordinate ladder on both corners, then ``clip_boxes_to_frame``)."""
    corners = boxes.reshape(boxes.shape[0], -1, 2)
    if input_scale != 1.0:
        corners = corners / input_scale
    corners = corners / size_scale
    boxes = _clip(corners.reshape(boxes.shape), frame_height, frame_width)
    # Scores are probabilities: finite unless empty (NaN). isnan, as TensorRT's parser has no IsInf.
    kept = kept & _has_area(boxes) & ~torch.isnan(scores)
    return boxes, kept


# SSD: the highest-scoring (anchor, class) pairs that enter NMS (sleap-nn's ``pre_nms_top_k``).
SSD_PRE_NMS_TOP_K = 1000
# sleap-nn clamps the log-size of a decoded box so an untrained head cannot overflow exp().
_LOG_MAX_SIZE = math.log(1000.0)


def ssd_anchors(input_height, input_width, strides, level_shapes) -> torch.Tensor:
    """``(A, 4)`` xyxy anchors of a model input, in the SSD head's output order (sleap-nn's
    ``make_anchors``): level, row, column, anchor shape; centers at ``(index + 0.5) * stride``."""
    levels = []
    for stride, shapes in zip(strides, level_shapes):
        rows = (input_height + stride - 1) // stride
        cols = (input_width + stride - 1) // stride
        cy, cx = torch.meshgrid(
            (torch.arange(rows).to(torch.float32) + 0.5) * stride,
            (torch.arange(cols).to(torch.float32) + 0.5) * stride,
            indexing="ij",
        )
        centers = torch.stack([cx, cy], -1).reshape(-1, 1, 2)
        half = shapes[None] / 2
        levels.append(torch.cat([centers - half, centers + half], dim=-1).reshape(-1, 4))
    return torch.cat(levels, dim=0)


def ssd_detections(raw: torch.Tensor, anchors: torch.Tensor, variances, score_threshold: float, input_height, input_width):
    """``(boxes (B, T, 4), scores, classes, kept)`` in model-input pixels, T = `SSD_PRE_NMS_TOP_K`:
    the highest (anchor, class) probabilities at or above the threshold, in descending score, their
    decoded boxes clipped to the input (``kept``: such a pair with a box of some area)."""
    n_logits = raw.shape[-1] - 4
    probabilities = torch.softmax(raw[..., :n_logits], dim=-1)[..., 1:]  # background dropped
    batch = raw.shape[0]
    n_classes = probabilities.shape[-1]
    flat = probabilities.reshape(batch, -1)  # anchor-major, as sleap-nn flattens
    below = torch.full_like(flat, -1.0)
    candidates = torch.where(flat >= score_threshold, flat, below)
    # Padding so a small input with fewer pairs than slots still fills them; never kept.
    candidates = torch.cat([candidates, below[:, :1].expand(batch, SSD_PRE_NMS_TOP_K)], dim=1)
    scores, indices = candidates.topk(SSD_PRE_NMS_TOP_K, dim=1)
    real = scores >= score_threshold
    indices = torch.where(real, indices, torch.zeros_like(indices))
    anchor = indices // n_classes
    classes = indices % n_classes
    # Only the chosen anchors' boxes are decoded: the decoding is per anchor, so this is the same arithmetic
    # on T anchors instead of all of them.
    deltas = raw.gather(1, anchor[..., None].expand(batch, SSD_PRE_NMS_TOP_K, n_logits + 4))[..., n_logits:]
    chosen = torch.index_select(anchors, 0, anchor.reshape(-1)).reshape(batch, SSD_PRE_NMS_TOP_K, 4)
    anchor_w = chosen[..., 2] - chosen[..., 0]
    anchor_h = chosen[..., 3] - chosen[..., 1]
    anchor_cx = chosen[..., 0] + anchor_w / 2
    anchor_cy = chosen[..., 1] + anchor_h / 2
    cx = anchor_cx + deltas[..., 0] * variances[0] * anchor_w
    cy = anchor_cy + deltas[..., 1] * variances[1] * anchor_h
    box_w = anchor_w * torch.exp((deltas[..., 2] * variances[2]).clamp(max=_LOG_MAX_SIZE))
    box_h = anchor_h * torch.exp((deltas[..., 3] * variances[3]).clamp(max=_LOG_MAX_SIZE))
    boxes = torch.stack([cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2], dim=-1)
    boxes = _clip(boxes, input_height, input_width)
    kept = real & _has_area(boxes)
    return boxes, scores, classes, kept


def _first_survivors(
    boxes: torch.Tensor, classes: torch.Tensor, candidates: torch.Tensor, iou_threshold: float, limit: int
) -> torch.Tensor:
    """Greedy NMS one survivor at a time: each pass takes every frame's first remaining candidate and
    removes the remaining ones of its class it overlaps, so a pass costs O(K), not the O(K^2) of an IoU
    matrix, and it stops after ``limit`` survivors (all any caller keeps). Scripted (`_scripted`), so the
    loop stays a loop in the graph."""
    x1, y1, x2, y2 = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    area = (x2 - x1) * (y2 - y1)
    order = torch.arange(candidates.shape[1])[None, :]
    survivors = torch.zeros_like(candidates)
    remaining = candidates
    found = torch.zeros((), dtype=torch.int64)
    # One tensor condition, not Python's `and`, which would put an If in the loop's body.
    while bool(remaining.any() & (found < limit)):
        first = remaining & (torch.cumsum(remaining.to(torch.int64), dim=1) == 1)
        # A frame with none left reads slot 0: its IoU row can suppress nothing there is left to suppress.
        index = (first.to(torch.int64) * order).sum(dim=1, keepdim=True)
        chosen = boxes.gather(1, index[..., None].expand(-1, -1, 4))
        # The same operand order as `runtime.decoding.box_nms.iou_with`, so the IoU is the same bit for bit.
        width = (torch.minimum(chosen[..., 2], x2) - torch.maximum(chosen[..., 0], x1)).clamp(min=0)
        height = (torch.minimum(chosen[..., 3], y2) - torch.maximum(chosen[..., 1], y1)).clamp(min=0)
        inter = width * height
        iou = inter / (area.gather(1, index) + area - inter)
        overlapped = (iou > iou_threshold) & (classes == classes.gather(1, index))
        survivors = survivors | first
        remaining = remaining & ~first & ~overlapped
        found += 1
    return survivors


def class_wise_nms(boxes: torch.Tensor, classes: torch.Tensor, candidates: torch.Tensor, iou_threshold: float, limit: int):
    """``(B, K)`` the first ``limit`` candidates per frame that survive class-wise greedy IoU-NMS, for ``(B, K)``
    slots in descending score (the IoU as `runtime.decoding.box_nms` computes it on the host)."""
    return _scripted(_first_survivors)(boxes, classes, candidates, float(iou_threshold), int(limit))


@functools.lru_cache(maxsize=None)
def _scripted(function):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notice that scripting is deprecated: tracing keeps loops no other way
        return torch.jit.script(function)
