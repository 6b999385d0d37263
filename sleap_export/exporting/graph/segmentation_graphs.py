"""Mask graphs: sleap-nn's three segmentation heads, decoded as far as a graph can hold them.

Every map leaves at the heads' output stride, as sleap-nn keeps its masks (the
runtime crops them to the frame and packs them, `runtime.decoding.mask_completion`).
In the graph: the foreground threshold (sigmoid > ``fg_threshold``), each mask's
score, the instance-center peak test (a ``center_nms_kernel`` window, ties kept)
and the top-down crops. Left to the runtime: collapsing tied center plateaus
(connected components), voting pixels to centers, cleanup and fragment merging.
References: ``sleap_nn/inference/layers/segmentation.py``,
``layers/topdown_segmentation.py`` and ``inference/segmentation.py``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from sleap_export.exporting.graph.crops import centered_crops
from sleap_export.exporting.graph.model_graphs import (
    PoseGraph, Stage, crop_size_of, crop_slots, find_centroids, into_slots,
)
from sleap_export.exporting.graph.peaks import nan_to_zero
from sleap_export.exporting.graph.preprocess import SizeMatch, frames_to_images
from sleap_export.exporting.graph.shapes import shape_of

FOREGROUND_HEAD = "SegmentationHead"
CENTER_HEAD = "InstanceCenterHead"
OFFSET_HEAD = "CenterOffsetHead"


def foreground_of(probabilities: torch.Tensor, threshold: float):
    """``(N, 1, h, w)`` foreground probabilities -> ``(N, h, w)`` 0/1 float32 mask and ``(N,)`` score.

    The score is sleap-nn's: the mean probability over the mask's pixels (0 for an empty mask).
    """
    probabilities = probabilities[:, 0]
    mask = (probabilities > threshold).to(torch.float32)
    score = (probabilities * mask).sum(dim=(1, 2)) / torch.clamp(mask.sum(dim=(1, 2)), min=1.0)
    return mask, score


def as_uint8(mask: torch.Tensor) -> torch.Tensor:
    """A 0/1 mask as the uint8 output it leaves as; arithmetic stays in float32 up to here, as
    TensorRT takes uint8 at a network's inputs and outputs only."""
    return mask.to(torch.float32).to(torch.uint8)


def batch_scale(size_scale: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """The size matching's scale once per frame, ``(B,)`` float32."""
    return size_scale.reshape(1).expand(shape_of(frames)[0])


class SemanticSegmentationGraph(PoseGraph):
    """One foreground mask per frame and its score."""

    output_names = ("pred_foreground", "pred_mask_scores", "pred_size_scale")

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.stage = stages[0]

    def forward(self, frames: torch.Tensor):
        sized, size_scale = self.size_match(frames_to_images(frames))
        foreground, score = foreground_of(self.stage.heads(sized)[FOREGROUND_HEAD], self.stage.post.fg_threshold)
        return as_uint8(foreground), score, batch_scale(size_scale, frames)


class BottomUpSegmentationGraph(PoseGraph):
    """The foreground mask, the instance-center candidates and what the runtime votes with."""

    output_names = (
        "pred_foreground",
        "pred_center_candidates",
        "pred_center_heatmap",
        "pred_center_offsets",
        "pred_size_scale",
    )

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.stage = stages[0]
        self.kernel = int(self.stage.post.center_nms_kernel)

    def forward(self, frames: torch.Tensor):
        sized, size_scale = self.size_match(frames_to_images(frames))
        heads = self.stage.heads(sized)
        foreground, _ = foreground_of(heads[FOREGROUND_HEAD], self.stage.post.fg_threshold)
        heatmap = heads[CENTER_HEAD]
        # A pixel equal to its window's maximum (plateaus kept; -inf beyond the edges) and above the threshold.
        window_max = F.max_pool2d(heatmap, self.kernel, stride=1, padding=self.kernel // 2)
        candidates = (heatmap >= window_max) & (heatmap > self.stage.post.peak_threshold)
        return (
            as_uint8(foreground),
            as_uint8(candidates[:, 0]),
            heatmap[:, 0],
            heads[OFFSET_HEAD],
            batch_scale(size_scale, frames),
        )


class CroppedMasks(torch.nn.Module):
    """The centered-instance segmentation stage on crops around the valid centroids only."""

    def __init__(self, stage: Stage):
        super().__init__()
        self.stage = stage
        self.crop_size = crop_size_of(stage.spec)

    def forward(self, sized, centroids_sized, valid):
        slots, kept = crop_slots(valid)
        crops, top_left = centered_crops(
            sized, nan_to_zero(centroids_sized[slots[:, 0], slots[:, 1]]), slots[:, 0], self.crop_size
        )
        masks, scores = foreground_of(self.stage.heads(crops)[FOREGROUND_HEAD], self.stage.post.fg_threshold)
        # The crop's first pixel (sized frame), where sleap-nn places its mask: trunc(corner + half) - half.
        half = self.crop_size // 2
        origins = ((top_left + half).to(torch.int64) - half).to(torch.float32)
        masks = masks * kept[:, None, None].to(torch.float32)
        full_masks = torch.zeros((*shape_of(valid), *shape_of(masks)[1:])).index_put_((slots[:, 0], slots[:, 1]), masks)
        return as_uint8(full_masks), into_slots(scores, slots, valid), into_slots(origins, slots, valid)


class TopDownSegmentationGraph(PoseGraph):
    """Centroids, then a mask per centroid crop (sleap-nn -m CENTROID -m CENTERED_INSTANCE_SEGMENTATION)."""

    output_names = (
        "pred_crop_masks",
        "pred_mask_scores",
        "pred_crop_origins",
        "pred_centroids",
        "pred_centroid_values",
        "instance_valid",
        "pred_size_scale",
    )

    n_stages = 2

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.centroid = stages[0]
        self.masks = CroppedMasks(stages[1])

    def forward(self, frames: torch.Tensor):
        sized, size_scale = self.size_match(frames_to_images(frames))
        raw, values, valid = find_centroids(self.centroid, sized, self.centroid.post.max_instances)
        centroids = raw / size_scale
        masks, scores, origins = self.masks(sized, centroids * size_scale, valid)
        return masks, scores, origins, centroids, values, valid, batch_scale(size_scale, frames)
