"""`Outputs`: one frame's predictions, as every runner returns them."""

from __future__ import annotations

from typing import Any, Optional

import attrs
import numpy as np

ARRAY_FIELDS = (
    "original_image",
    "processed_image",
    "pred_keypoints",
    "pred_raw_keypoints",
    "pred_peak_values",
    "pred_confmaps",
    "pred_pafs",
    "pred_centroids",
    "pred_raw_centroids",
    "pred_centroid_values",
    "instance_scores",
    "instance_valid",
    "pred_class_vectors",
    "pred_peaks",
    "pred_peak_valid",
    "pred_line_scores",
    "pred_class_probs",
    "class_ids",
    "instance_tracking_scores",
    "pred_forecast_keypoints",
    "pred_embeddings",
    "pred_foreground",
    "pred_center_candidates",
    "pred_center_heatmap",
    "pred_center_offsets",
    "pred_mask_scores",
    "pred_crop_masks",
    "pred_crop_origins",
    "pred_size_scale",
)


@attrs.define(repr=False)
class Outputs:
    """Predictions for one frame.

    Keypoints are ``(instances, nodes, 2)`` ``(x, y)`` in original-frame pixels
    (``pred_raw_*``: in the model-input image, after resizing and padding);
    missing points are NaN. Centroids are ``(instances, 2)``.
    ``instance_valid`` marks the slots that hold an instance. Multi-class
    models add ``pred_class_vectors`` (class probabilities per instance),
    ``class_ids`` (the identity assigned per frame, -1 for none) and
    ``instance_tracking_scores`` (the assigned class's probability).
    """

    original_image: Optional[Any] = None
    processed_image: Optional[Any] = None
    pred_keypoints: Optional[Any] = None
    pred_raw_keypoints: Optional[Any] = None
    pred_peak_values: Optional[Any] = None
    pred_confmaps: Optional[Any] = None
    pred_pafs: Optional[Any] = None
    pred_centroids: Optional[Any] = None
    pred_raw_centroids: Optional[Any] = None
    pred_centroid_values: Optional[Any] = None
    instance_scores: Optional[Any] = None
    instance_valid: Optional[Any] = None
    pred_class_vectors: Optional[Any] = None
    # Bottom-up, before grouping: peaks per node (N, K, 2), validity, PAF line
    # scores per edge (E, K, K) and class probabilities per peak (N, K, classes).
    pred_peaks: Optional[Any] = None
    pred_peak_valid: Optional[Any] = None
    pred_line_scores: Optional[Any] = None
    pred_class_probs: Optional[Any] = None
    class_ids: Optional[Any] = None
    # Box detectors: xyxy frame-pixel boxes (K, 4), scores, category indices, the slots that hold a
    # detection; before completion also the model-input boxes and NMS candidates.
    pred_bboxes: Optional[Any] = None
    pred_bbox_scores: Optional[Any] = None
    pred_bbox_classes: Optional[Any] = None
    pred_bbox_valid: Optional[Any] = None
    pred_bbox_input_boxes: Optional[Any] = None
    pred_bbox_candidates: Optional[Any] = None
    # Box-driven top-down: the instance slot each box seeded (its crop's pose), per box.
    pred_bbox_instance: Optional[Any] = None
    instance_tracking_scores: Optional[Any] = None
    # Embedding (re-ID) models: each instance's appearance vector (instances, dim), unit length.
    pred_embeddings: Optional[Any] = None
    # Segmentation, before completion (output-stride grids): the foreground mask (h, w) uint8 and its
    # scores (semantic: (1,); top-down: per slot); bottom-up's instance-center candidates (h, w),
    # heatmap (h, w) and offsets (2, h, w); top-down's crop masks (slots, h, w) and their first pixels
    # (slots, 2) on the size-matched frame; the size matching's scale.
    pred_foreground: Optional[Any] = None
    pred_center_candidates: Optional[Any] = None
    pred_center_heatmap: Optional[Any] = None
    pred_center_offsets: Optional[Any] = None
    pred_mask_scores: Optional[Any] = None
    pred_crop_masks: Optional[Any] = None
    pred_crop_origins: Optional[Any] = None
    pred_size_scale: Optional[Any] = None
    # Completed segmentation: `sio.PredictedSegmentationMask`s (run-length coded, with the scale and
    # offset that place them on the frame) and, for mask_output polygon/both, their `sio.PredictedROI`s.
    masks: tuple = ()
    rois: tuple = ()
    # The frame's (height, width): where masks are cropped back to the frame.
    frame_size: tuple = ()
    # Live forward prediction (`runtime.live`): where each keypoint will be at the
    # frame's ``forecast_ns``, (instances, nodes, 2) like ``pred_keypoints``.
    pred_forecast_keypoints: Optional[Any] = None
    node_names: tuple[str, ...] = ()
    edges: tuple[tuple[int, int], ...] = ()
    device: str = "cpu"
    frame_idx: Optional[int] = None
    video_idx: Optional[int] = None

    def __repr__(self) -> str:
        """Shapes and dtypes, not array contents (a frame's maps run to megabytes)."""
        where = [f"{k}={getattr(self, k)}" for k in ("frame_idx", "video_idx") if getattr(self, k) is not None]
        arrays = [
            f"{name}={tuple(value.shape)} {getattr(value.dtype, 'name', value.dtype)}"
            for name in ARRAY_FIELDS
            if (value := getattr(self, name)) is not None
        ]
        nodes = [f"nodes=({', '.join(self.node_names)})"] if self.node_names else []
        shapes = [f"{name}={len(getattr(self, name))}" for name in ("masks", "rois") if getattr(self, name)]
        return f"Outputs({', '.join(where + arrays + shapes + nodes + [f'device={self.device!r}'])})"

    def as_dict(self) -> dict[str, Any]:
        """The fields that are set."""
        return {k: v for k, v in attrs.asdict(self, recurse=False).items() if v is not None}

    def numpy(self) -> "Outputs":
        """A copy whose array fields are numpy arrays on the host."""
        changes = {}
        for name in ARRAY_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, np.ndarray):
                changes[name] = value.detach().cpu().numpy()
        return attrs.evolve(self, device="cpu", **changes)

    def to(self, device: str) -> "Outputs":
        """A copy whose array fields are torch tensors on ``device`` (needs torch)."""
        import torch

        changes = {}
        for name in ARRAY_FIELDS:
            value = getattr(self, name)
            if value is not None:
                changes[name] = torch.as_tensor(value).to(device)
        return attrs.evolve(self, device=str(device), **changes)

    def plot(self, ground_truth: Optional[np.ndarray] = None, ax=None, title: Optional[str] = None):
        """Draw the predictions (and ``(instances, nodes, 2)`` ground truth) over the frame.

        Each valid instance gets a colour and its index (or class id) at its first
        keypoint; the first instance's keypoints are labelled with the node names.
        Returns the matplotlib ``Axes`` drawn on (``ax``, or a new figure's).
        """
        import matplotlib.pyplot as plt

        plain = self.numpy()
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 6))
        if plain.original_image is not None:
            image = plain.original_image
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray")
        if ground_truth is not None:
            for instance in np.asarray(ground_truth):
                ax.plot(instance[:, 0], instance[:, 1], "x", color="white", markersize=8, label="ground truth")
        keypoints = plain.pred_keypoints
        if keypoints is None and plain.pred_centroids is not None:
            keypoints = plain.pred_centroids[:, None, :]
        if keypoints is not None:
            valid = plain.instance_valid if plain.instance_valid is not None else np.ones(len(keypoints), bool)
            colors = plt.cm.tab10.colors
            class_ids = plain.class_ids[valid] if plain.class_ids is not None else None
            for i, instance in enumerate(keypoints[valid]):
                color = colors[i % len(colors)]
                for a, b in self.edges:
                    ax.plot(instance[[a, b], 0], instance[[a, b], 1], "-", color=color, linewidth=2)
                ax.plot(instance[:, 0], instance[:, 1], "o", color=color, markersize=4)
                shown = np.flatnonzero(~np.isnan(instance[:, 0]))
                if shown.size:
                    name = f"class {class_ids[i]}" if class_ids is not None else f"instance {i}"
                    x, y = instance[shown[0]]
                    ax.annotate(name, (x, y), xytext=(4, -8), textcoords="offset points", color=color, fontsize=8)
                if i == 0:
                    for node in shown:
                        if node < len(self.node_names):
                            x, y = instance[node]
                            ax.annotate(self.node_names[node], (x, y), xytext=(4, 4), textcoords="offset points",
                                        color="white", fontsize=7)
        ax.set_title(title or f"frame {self.frame_idx}" if self.frame_idx is not None else (title or ""))
        ax.axis("off")
        return ax
