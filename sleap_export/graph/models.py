"""One traced wrapper per model type: uint8 frames in, decoded predictions out.

Each wrapper is registered under its model type; its ``output_names`` are the
`Outputs` fields its outputs fill, in order, so the runtime needs no per-type
code to read them.
"""

from __future__ import annotations

from typing import Callable

import torch

from sleap_export.graph.peaks import global_peaks, integral_offsets, local_peaks
from sleap_export.graph.preprocess import Preprocess
from sleap_export.spec import PostprocessSpec, StageSpec

GRAPHS: dict[str, type["PoseGraph"]] = {}


def register_graph(model_type: str) -> Callable[[type], type]:
    """Class decorator adding a wrapper to the registry under ``model_type``."""

    def add(cls: type) -> type:
        GRAPHS[model_type] = cls
        cls.model_type = model_type
        return cls

    return add


class PoseGraph(torch.nn.Module):
    """Base: preprocessing + one network + decoding."""

    model_type: str = ""
    output_names: tuple[str, ...] = ()

    def __init__(self, network, head_name: str, stage: StageSpec, post: PostprocessSpec):
        super().__init__()
        self.network = network
        self.head_name = head_name
        self.preprocess = Preprocess(stage)
        self.output_stride = float(stage.output_stride)
        self.input_scale = float(stage.input_scale)
        self.post = post

    def confmaps(self, frames: torch.Tensor):
        """Preprocess and run the network; returns ``(confmaps, size_scale)``."""
        images, size_scale = self.preprocess(frames)
        return self.network(images)[self.head_name], size_scale

    def to_processed_pixels(self, grid_points: torch.Tensor) -> torch.Tensor:
        """Confidence-map grid -> model-input pixels (sleap-nn's undo_stride)."""
        return grid_points * self.output_stride

    def to_frame_pixels(self, processed: torch.Tensor, size_scale: torch.Tensor) -> torch.Tensor:
        """Model-input pixels -> original-frame pixels, in sleap-nn's order."""
        return processed / self.input_scale / size_scale

    def refine(self, confmaps, points, valid=None):
        """Add integral-refinement offsets where the spec asks for them."""
        if self.post.refinement != "integral":
            return points
        offsets = integral_offsets(confmaps, points, self.post.integral_patch_size)
        return points + offsets


@register_graph("single_instance")
class SingleInstanceGraph(PoseGraph):
    """Global peak per node; one instance per frame."""

    output_names = ("pred_keypoints", "pred_peak_values", "pred_raw_keypoints")

    def forward(self, frames: torch.Tensor):
        confmaps, size_scale = self.confmaps(frames)
        points, values = global_peaks(confmaps, self.post.peak_threshold)  # (B, N, 2)
        points = self.refine(confmaps, points.unsqueeze(2)).squeeze(2)
        raw = self.to_processed_pixels(points)
        keypoints = self.to_frame_pixels(raw, size_scale)
        return keypoints.unsqueeze(1), values.unsqueeze(1), raw.unsqueeze(1)


@register_graph("centroid")
class CentroidGraph(PoseGraph):
    """Local peaks of the centroid map, up to ``max_instances`` per frame."""

    output_names = (
        "pred_centroids",
        "pred_centroid_values",
        "instance_valid",
        "pred_raw_centroids",
    )

    def forward(self, frames: torch.Tensor):
        confmaps, size_scale = self.confmaps(frames)
        points, values, valid = local_peaks(
            confmaps, self.post.peak_threshold, self.post.max_instances
        )
        points = self.refine(confmaps, points)
        raw = self.to_processed_pixels(points[:, 0])
        centroids = self.to_frame_pixels(raw, size_scale)
        return centroids, values[:, 0], valid[:, 0], raw
