"""Per-model-type completion of `Outputs` from a graph's raw outputs.

Each model type's record (`core.model_types.MODEL_TYPES`) names its completer here;
`complete` runs it. Segmentation models' completers live in `mask_completion`
(they take the predict-time `MaskOptions` too) and are named here as well.

After completion every `Outputs` has ``pred_keypoints`` ``(I, nodes, 2)``,
``pred_peak_values`` ``(I, nodes)``, ``instance_scores`` ``(I,)`` and
``instance_valid`` ``(I,)`` in the artifact's output skeleton, so building
Labels needs no per-type code.
"""

from __future__ import annotations

import warnings

import attrs
import numpy as np

from sleap_export.core.mask_options import MaskOptions
from sleap_export.core.model_types import MODEL_TYPES
from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.decoding.mask_completion import crop_masks, instance_masks, semantic_masks
from sleap_export.runtime.decoding.outputs import Outputs

# Segmentation models' completers (`mask_completion`), named by their model types here with the others'.
MASK_COMPLETERS = (semantic_masks, instance_masks, crop_masks)


def drop_empty_instances(completed: Outputs) -> Outputs:
    """An instance none of whose nodes cleared the threshold is dropped, as sleap-nn does."""
    has_points = ~np.all(np.isnan(completed.pred_keypoints), axis=(1, 2))
    return attrs.evolve(completed, instance_valid=np.asarray(completed.instance_valid) & has_points)


def single_instance(outputs: Outputs, spec: ModelSpec) -> Outputs:
    keypoints = outputs.pred_keypoints
    return attrs.evolve(
        outputs,
        instance_valid=~np.all(np.isnan(keypoints), axis=(1, 2)),
        # sleap-nn scores a single instance by the sum of its node peaks.
        instance_scores=np.nansum(outputs.pred_peak_values, axis=1).astype(np.float32),
    )


def centroid(outputs: Outputs, spec: ModelSpec) -> Outputs:
    centroids = outputs.pred_centroids
    values = outputs.pred_centroid_values
    anchor = spec.stages[0].anchor_part
    n_nodes = len(spec.output_node_names)
    # A centroid fills the anchor node of the full skeleton, or the single
    # "centroid" node when the model has no anchor (as sleap-nn packages it).
    column = spec.skeleton.nodes.index(anchor) if anchor else 0
    keypoints = np.full((len(centroids), n_nodes, 2), np.nan, np.float32)
    keypoints[:, column] = centroids
    peak_values = np.full((len(centroids), n_nodes), np.nan, np.float32)
    peak_values[:, column] = values
    return attrs.evolve(
        outputs,
        pred_keypoints=keypoints,
        pred_peak_values=peak_values,
        instance_scores=np.where(outputs.instance_valid, values, np.nan).astype(np.float32),
    )


def topdown(outputs: Outputs, spec: ModelSpec) -> Outputs:
    # sleap-nn scores a top-down instance by its centroid's confidence.
    return attrs.evolve(
        outputs,
        instance_scores=np.where(outputs.instance_valid, outputs.pred_centroid_values, np.nan).astype(np.float32),
    )


def centered_instance(outputs: Outputs, spec: ModelSpec) -> Outputs:
    # Given centroids carry no confidence; sleap-nn scores them 1 (its GT-centroid path).
    valid = np.asarray(outputs.instance_valid)
    return attrs.evolve(outputs, instance_scores=np.where(valid, 1.0, np.nan).astype(np.float32))


def embedding(outputs: Outputs, spec: ModelSpec) -> Outputs:
    """A lone embedding run: each given centre an instance on its anchor node (else the first node), scored
    1 as given centroids are, with its vector; the instances themselves are the caller's (`EmbeddingPredictor`
    writes the vectors onto them)."""
    centres = np.asarray(outputs.pred_centroids)
    valid = np.asarray(outputs.instance_valid)
    nodes = spec.output_node_names
    anchor = spec.stages[0].anchor_part
    column = nodes.index(anchor) if anchor in nodes else 0
    keypoints = np.full((len(centres), len(nodes), 2), np.nan, np.float32)
    keypoints[:, column] = centres
    peak_values = np.full((len(centres), len(nodes)), np.nan, np.float32)
    peak_values[valid, column] = 1.0
    return attrs.evolve(
        outputs,
        pred_keypoints=keypoints,
        pred_peak_values=peak_values,
        instance_scores=np.where(valid, 1.0, np.nan).astype(np.float32),
    )


def assign_identities(outputs: Outputs) -> Outputs:
    """One Hungarian assignment per frame of instances to classes (sleap-nn's rule).

    Maximizes the summed class probability; instances left over when there are
    more instances than classes get class -1 (no track).
    """
    from scipy.optimize import linear_sum_assignment

    valid = np.flatnonzero(outputs.instance_valid)
    vectors = np.asarray(outputs.pred_class_vectors)
    class_ids = np.full(len(vectors), -1, np.int64)
    scores = np.full(len(vectors), np.nan, np.float32)
    if len(valid):
        rows, cols = linear_sum_assignment(-vectors[valid])
        class_ids[valid[rows]] = cols
        scores[valid[rows]] = vectors[valid[rows], cols]
    return attrs.evolve(outputs, class_ids=class_ids, instance_tracking_scores=scores)


def multi_class_topdown(outputs: Outputs, spec: ModelSpec) -> Outputs:
    return assign_identities(topdown(outputs, spec))


def multi_class_centered_instance(outputs: Outputs, spec: ModelSpec) -> Outputs:
    return assign_identities(centered_instance(outputs, spec))


def bottomup(outputs: Outputs, spec: ModelSpec) -> Outputs:
    from sleap_export.runtime.decoding.peak_grouping import cap_by_score, group_peaks

    post = spec.postprocess
    if post.grouping == "graph":
        return outputs  # the graph already grouped
    keypoints, peak_values, scores = group_peaks(
        outputs.pred_peaks,
        outputs.pred_peak_values,
        outputs.pred_peak_valid,
        outputs.pred_line_scores,
        spec.stages[0].paf_edges,
        post,
    )
    keypoints, peak_values, scores = cap_by_score(keypoints, peak_values, scores, post.max_instances)
    return attrs.evolve(
        outputs,
        pred_keypoints=keypoints,
        pred_peak_values=peak_values,
        instance_scores=scores,
        instance_valid=np.ones(len(scores), bool),
    )


def multi_class_bottomup(outputs: Outputs, spec: ModelSpec) -> Outputs:
    from sleap_export.runtime.decoding.peak_grouping import classify_peaks

    keypoints, peak_values, probs = classify_peaks(
        outputs.pred_peaks, outputs.pred_peak_values, outputs.pred_peak_valid, outputs.pred_class_probs
    )
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an empty class
        scores = np.nanmean(peak_values, axis=1)
        tracking = np.nanmean(probs, axis=1)
    # Instance c is class c; the cap keeps the best-scoring classes.
    valid = ~np.isnan(scores)
    if valid.sum() > spec.postprocess.max_instances:
        keep = np.argsort(scores)[::-1][: spec.postprocess.max_instances]
        valid = np.isin(np.arange(len(scores)), keep)
    return attrs.evolve(
        outputs,
        pred_keypoints=keypoints,
        pred_peak_values=peak_values,
        instance_scores=scores.astype(np.float32),
        instance_valid=valid,
        class_ids=np.arange(len(scores)),
        instance_tracking_scores=tracking.astype(np.float32),
    )


def _detections(outputs: Outputs, spec: ModelSpec) -> np.ndarray:
    """A detector's slots that hold its detections, in descending score (sleap-nn's order), after
    class-wise NMS where set."""
    from sleap_export.runtime.decoding.box_nms import class_wise_nms

    valid = np.asarray(outputs.pred_bbox_valid, bool)
    iou = spec.postprocess.box_nms_iou
    if iou is None:
        return np.flatnonzero(valid)  # the graph's slots are in descending score already
    candidates = np.flatnonzero(outputs.pred_bbox_candidates)
    kept = candidates[class_wise_nms(
        np.asarray(outputs.pred_bbox_input_boxes)[candidates], np.asarray(outputs.pred_bbox_scores)[candidates],
        np.asarray(outputs.pred_bbox_classes)[candidates], iou,
    )][: spec.postprocess.max_instances]
    return kept[valid[kept]]


def _with_boxes(outputs: Outputs, order: np.ndarray) -> Outputs:
    return attrs.evolve(
        outputs,
        pred_bboxes=np.asarray(outputs.pred_bboxes)[order],
        pred_bbox_scores=np.asarray(outputs.pred_bbox_scores)[order],
        pred_bbox_classes=np.asarray(outputs.pred_bbox_classes)[order],
        pred_bbox_valid=np.ones(len(order), bool),
        pred_bbox_input_boxes=None,
        pred_bbox_candidates=None,
    )


def boxes(outputs: Outputs, spec: ModelSpec) -> Outputs:
    """A detector's boxes; no instances."""
    n_nodes = len(spec.output_node_names)
    return attrs.evolve(
        _with_boxes(outputs, _detections(outputs, spec)),
        pred_keypoints=np.zeros((0, n_nodes, 2), np.float32),
        pred_peak_values=np.zeros((0, n_nodes), np.float32),
        instance_scores=np.zeros(0, np.float32),
        instance_valid=np.zeros(0, bool),
    )


def box_topdown(outputs: Outputs, spec: ModelSpec) -> Outputs:
    """A detector's boxes and the instance posed in each one's crop, box ``i`` seeding instance ``i``;
    sleap-nn scores the instance by its box. The graph made the detections final (NMS included)."""
    order = np.flatnonzero(np.asarray(outputs.pred_bbox_valid, bool))
    return attrs.evolve(
        _with_boxes(outputs, order),
        pred_keypoints=np.asarray(outputs.pred_keypoints)[order],
        pred_peak_values=np.asarray(outputs.pred_peak_values)[order],
        instance_scores=np.asarray(outputs.pred_bbox_scores)[order].astype(np.float32),
        instance_valid=np.ones(len(order), bool),
        pred_bbox_instance=np.arange(len(order)),
    )


def complete(outputs: Outputs, spec: ModelSpec, masks: MaskOptions = MaskOptions()) -> Outputs:
    """One frame's raw graph outputs, completed by the artifact's model type (a segmentation
    model's masks as ``masks`` ask)."""
    model_type = MODEL_TYPES[spec.model_type]
    if model_type.segments:
        return model_type.complete(outputs, spec, masks)
    return drop_empty_instances(model_type.complete(outputs, spec))
