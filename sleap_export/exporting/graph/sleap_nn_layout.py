"""Our graph behind sleap-nn's export contract (``sleap-export onnx --layout sleap-nn``).

sleap-nn's exported layers (``sleap_nn/inference/layers/exported.py``) feed a
uint8 ``(B, C, H, W)`` "image" and read fixed-shape outputs by name: points in
frame pixels (bottom-up: times the input scale, which they divide out), empty
slots zero-filled and flagged, class logits they put through a softmax. This
wrapper gives them exactly that from our graph, which keeps its own size
matching, refinement and crops, so the folder is exact at any frame size.
"""

from __future__ import annotations

import torch

from sleap_export.exporting.graph.peaks import nan_to_zero
from sleap_export.runtime.artifacts.sleap_nn_export_folder import INPUT_NAME, LAYOUT_TYPES

# Our model type -> sleap-nn's name for it in export_metadata.json.
LAYOUT_NAMES = {kind.ours: name for name, kind in LAYOUT_TYPES.items()}


class SleapNnLayoutGraph(torch.nn.Module):
    """``graph`` (a `PoseGraph`) with sleap-nn's input layout and output names."""

    input_names = (INPUT_NAME,)

    def __init__(self, graph: torch.nn.Module, model_type: str, input_scale: float, paf_edges=()):
        super().__init__()
        self.graph = graph
        self.layout_name = LAYOUT_NAMES[model_type]
        self.model_type = model_type
        self.output_names = LAYOUT_TYPES[self.layout_name].outputs
        self.input_scale = float(input_scale)
        self.paf_edges = tuple(tuple(e) for e in paf_edges)

    def forward(self, image: torch.Tensor):
        out = dict(zip(self.graph.output_names, self.graph(image.permute(0, 2, 3, 1))))
        if self.model_type == "single_instance":
            return out["pred_keypoints"][:, 0], out["pred_peak_values"][:, 0]
        if self.model_type in ("bottomup", "multi_class_bottomup"):
            valid = out["pred_peak_valid"]
            peaks = nan_to_zero(out["pred_peaks"] * self.input_scale)
            values = nan_to_zero(out["pred_peak_values"])
            if self.model_type == "multi_class_bottomup":
                return peaks, values, valid, nan_to_zero(out["pred_class_probs"])
            scores = out["pred_line_scores"]  # (B, E, K, K)
            candidates = torch.stack(
                [valid[:, src][:, :, None] & valid[:, dst][:, None, :] for src, dst in self.paf_edges], dim=1
            )
            batch, edges, k = scores.shape[0], scores.shape[1], scores.shape[2]
            scores = torch.where(candidates, scores, torch.zeros_like(scores))
            return peaks, values, valid, scores.reshape(batch, edges, k * k), candidates.reshape(batch, edges, k * k)
        valid = out["instance_valid"]
        layout = {
            "centroids": nan_to_zero(out["pred_centroids"]),
            "centroid_vals": nan_to_zero(out["pred_centroid_values"]),
            "instance_valid": valid,
        }
        if self.model_type != "centroid":
            layout["peaks"] = out["pred_keypoints"]  # NaN for nodes below threshold, as sleap-nn's
            layout["peak_vals"] = out["pred_peak_values"]
        if self.model_type == "multi_class_topdown":
            # Our class vectors are sleap-nn's softmax probabilities; their logarithm is a logit
            # vector whose softmax (what sleap-nn's reader applies) gives them back.
            probabilities = torch.where(valid[..., None], out["pred_class_vectors"], torch.ones_like(out["pred_class_vectors"]))
            layout["class_logits"] = torch.log(probabilities)
        return tuple(layout[name] for name in self.output_names)
