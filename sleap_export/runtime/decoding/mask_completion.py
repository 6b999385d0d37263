"""Completion of the segmentation graphs' outputs: one frame's grids -> sleap-io masks (and polygons).

The graphs (`exporting.graph.segmentation_graphs`) stop at output-stride grids;
here the bottom-up foreground is voted into instances (`instance_masks`), every
mask is placed on the frame (`mask_geometry`) as `MaskOptions` ask, and kept
run-length coded as ``sio.PredictedSegmentationMask`` in ``Outputs.masks``
(``Outputs.rois`` for ``mask_output`` polygon/both). A completed mask frame has
no poses: its instance arrays are empty, so every consumer of poses reads it
as a frame without instances.
"""

from __future__ import annotations

import attrs
import numpy as np

from sleap_export.core.mask_options import MaskOptions
from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.decoding.instance_masks import decode_instance_masks
from sleap_export.runtime.decoding.mask_geometry import (
    FrameGeometry, place_crop_mask, place_masks, predicted_masks, predicted_rois, semantic_mask,
)
from sleap_export.runtime.decoding.outputs import Outputs


def _geometry(outputs: Outputs, spec: ModelSpec) -> FrameGeometry:
    stage = spec.stages[-1]
    return FrameGeometry(
        frame_size=tuple(int(n) for n in outputs.frame_size),
        size_scale=float(np.float32(outputs.pred_size_scale)),
        input_scale=stage.input_scale,
        output_stride=stage.output_stride,
    )


def _completed(outputs: Outputs, spec: ModelSpec, placed, options: MaskOptions) -> Outputs:
    """``outputs`` holding the placed masks as sleap-io masks and polygons, and no poses."""
    masks = predicted_masks(placed)
    nodes = len(spec.output_node_names)
    return attrs.evolve(
        outputs,
        masks=tuple(masks) if options.writes_masks else (),
        rois=tuple(predicted_rois(masks, options.polygon_epsilon)) if options.writes_polygons else (),
        pred_keypoints=np.zeros((0, nodes, 2), np.float32),
        pred_peak_values=np.zeros((0, nodes), np.float32),
        instance_scores=np.zeros(0, np.float32),
        instance_valid=np.zeros(0, bool),
    )


def semantic_masks(outputs: Outputs, spec: ModelSpec, options: MaskOptions) -> Outputs:
    """Semantic segmentation: the frame's foreground as one mask (none when empty or too small)."""
    placed = semantic_mask(outputs.pred_foreground, float(outputs.pred_mask_scores), _geometry(outputs, spec), options)
    return _completed(outputs, spec, placed, options)


def instance_masks(outputs: Outputs, spec: ModelSpec, options: MaskOptions) -> Outputs:
    """Bottom-up segmentation: foreground pixels voted to their instance centers, one mask each."""
    geometry = _geometry(outputs, spec)
    instances = decode_instance_masks(
        outputs.pred_foreground,
        outputs.pred_center_candidates,
        outputs.pred_center_heatmap,
        outputs.pred_center_offsets,
        geometry.output_stride,
        options,
    )
    return _completed(outputs, spec, place_masks(instances, geometry, options), options)


def crop_masks(outputs: Outputs, spec: ModelSpec, options: MaskOptions) -> Outputs:
    """Top-down segmentation: each valid centroid's crop mask, placed where its crop was cut."""
    stage = spec.stages[-1]
    size_scale = float(np.float32(outputs.pred_size_scale))
    placed = [
        place_crop_mask(
            outputs.pred_crop_masks[slot], float(outputs.pred_mask_scores[slot]), outputs.pred_crop_origins[slot],
            size_scale, stage.input_scale, stage.output_stride,
        )
        for slot in np.flatnonzero(np.asarray(outputs.instance_valid))
    ]
    return _completed(outputs, spec, placed, options)
