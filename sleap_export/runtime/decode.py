"""Per-model-type completion of `Outputs` from a graph's raw outputs.

After completion every `Outputs` has ``pred_keypoints`` ``(I, nodes, 2)``,
``pred_peak_values`` ``(I, nodes)``, ``instance_scores`` ``(I,)`` and
``instance_valid`` ``(I,)`` in the artifact's output skeleton, so building
Labels needs no per-type code.
"""

from __future__ import annotations

from typing import Callable

import attrs
import numpy as np

from sleap_export.runtime.outputs import Outputs
from sleap_export.spec import ModelSpec

COMPLETERS: dict[str, Callable[[Outputs, ModelSpec], Outputs]] = {}


def completer(model_type: str):
    """Decorator registering the completion for one model type."""

    def add(fn):
        COMPLETERS[model_type] = fn
        return fn

    return add


def complete(outputs: Outputs, spec: ModelSpec) -> Outputs:
    return COMPLETERS[spec.model_type](outputs, spec)


@completer("single_instance")
def _single_instance(outputs: Outputs, spec: ModelSpec) -> Outputs:
    keypoints = outputs.pred_keypoints
    return attrs.evolve(
        outputs,
        instance_valid=~np.all(np.isnan(keypoints), axis=(1, 2)),
        # sleap-nn scores a single instance by the sum of its node peaks.
        instance_scores=np.nansum(outputs.pred_peak_values, axis=1).astype(np.float32),
    )


@completer("centroid")
def _centroid(outputs: Outputs, spec: ModelSpec) -> Outputs:
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
