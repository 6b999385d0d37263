"""Model types: one record each (spec name, the runs it takes, its graph, its completer).

`MODEL_TYPES` is the one table of model types. The export side builds
``graph`` (a class of `sleap_export.exporting.graph.model_graphs`, or of `segmentation_graphs` for
mask types) from the runs
``runs`` names; the runtime completes the graph's outputs with ``complete``, the
function ``completer`` names in `sleap_export.runtime.decoding.completion`. Both are
named, not imported, so this table depends on neither side (as artifact formats
name their runners).
"""

from __future__ import annotations

import importlib
from typing import Callable, Iterable, Optional

import attrs

# Where the completers live (the runtime's decoding).
COMPLETION_MODULE = "sleap_export.runtime.decoding.completion"
# Head types of sleap-nn training runs (``model_config.head_configs`` keys).
HEAD_TYPES = (
    "single_instance",
    "centroid",
    "centered_instance",
    "bottomup",
    "multi_class_bottomup",
    "multi_class_topdown",
    "bbox_centernet",
    "bbox_ssd",
    "embedding",
    "bottomup_segmentation",
    "centered_instance_segmentation",
    "semantic_segmentation",
)
# Head types whose runs detect boxes rather than keypoints.
BOX_HEAD_TYPES = ("bbox_centernet", "bbox_ssd")
# Head types whose runs predict masks rather than keypoints.
MASK_HEAD_TYPES = ("bottomup_segmentation", "centered_instance_segmentation", "semantic_segmentation")
# Head types whose maps are searched for local peaks (sleap-nn's flat-top rule; check counts their ties).
LOCAL_PEAK_HEAD_TYPES = ("centroid", "bottomup", "multi_class_bottomup")


@attrs.frozen
class ModelType:
    """One kind of artifact."""

    name: str
    # Head types of the training runs it is made of, in stage order (the centroid or detector run first).
    runs: tuple[str, ...] = attrs.field(validator=attrs.validators.deep_iterable(attrs.validators.in_(HEAD_TYPES)))
    # Its graph class in `sleap_export.exporting.graph.model_graphs` (`segmentation_graphs` when it segments);
    # every one is built as ``cls(stages, size_match)``.
    graph: str
    # Its function in `COMPLETION_MODULE`: raw graph outputs of one frame -> completed `Outputs`.
    completer: str

    @property
    def detects_boxes(self) -> bool:
        """A box detector runs first (alone, or seeding a centered-instance stage)."""
        return self.runs[0] in BOX_HEAD_TYPES

    @property
    def embeds(self) -> bool:
        """An embedding run gives each instance an appearance vector."""
        return "embedding" in self.runs

    @property
    def finds_local_peaks(self) -> bool:
        """Its first stage searches a map for local peaks (centroids, bottom-up nodes)."""
        return self.runs[0] in LOCAL_PEAK_HEAD_TYPES

    @property
    def segments(self) -> bool:
        """Its predictions are masks (`Outputs.masks`), not poses."""
        return self.runs[-1] in MASK_HEAD_TYPES

    @property
    def complete(self) -> Callable:
        """``(outputs, spec) -> completed outputs``, imported on first use (the runtime's)."""
        return getattr(importlib.import_module(COMPLETION_MODULE), self.completer)


MODEL_TYPES: dict[str, ModelType] = {
    t.name: t
    for t in (
        ModelType("single_instance", ("single_instance",), "SingleInstanceGraph", "single_instance"),
        ModelType("centroid", ("centroid",), "CentroidGraph", "centroid"),
        ModelType("centered_instance", ("centered_instance",), "CenteredInstanceGraph", "centered_instance"),
        ModelType(
            "multi_class_centered_instance",
            ("multi_class_topdown",),
            "MultiClassCenteredInstanceGraph",
            "multi_class_centered_instance",
        ),
        ModelType("topdown", ("centroid", "centered_instance"), "TopDownGraph", "topdown"),
        ModelType(
            "multi_class_topdown", ("centroid", "multi_class_topdown"), "MultiClassTopDownGraph", "multi_class_topdown"
        ),
        ModelType("bottomup", ("bottomup",), "BottomUpGraph", "bottomup"),
        ModelType("multi_class_bottomup", ("multi_class_bottomup",), "MultiClassBottomUpGraph", "multi_class_bottomup"),
        ModelType("bbox_centernet", ("bbox_centernet",), "CenterNetBoxGraph", "boxes"),
        ModelType("bbox_ssd", ("bbox_ssd",), "SsdBoxGraph", "boxes"),
        # Box-driven top-down: a detector's boxes seed the centered-instance crops (sleap-nn -m DET -m CI).
        ModelType("bbox_centernet_topdown", ("bbox_centernet", "centered_instance"), "CenterNetTopDownGraph", "box_topdown"),
        ModelType("bbox_ssd_topdown", ("bbox_ssd", "centered_instance"), "SsdTopDownGraph", "box_topdown"),
        # Re-ID: an appearance vector per centroid, from the embedding run's crop (sleap-nn -m CENTROID -m EMBEDDING);
        # completed as the detections are, the vectors riding along per slot.
        ModelType("centroid_embedding", ("centroid", "embedding"), "CentroidEmbeddingGraph", "centroid"),
        # Poses and their vectors: the embedding run's crop centred on each pose (sleap-nn -m CENTROID -m CI -m EMBEDDING).
        ModelType(
            "topdown_embedding", ("centroid", "centered_instance", "embedding"), "TopDownEmbeddingGraph", "topdown"
        ),
        # A lone embedding run: the vector of each instance of a frame, its crop centred on the centre the caller
        # gives (sleap-nn's predict_embeddings_to_slp on an existing .slp's instances).
        ModelType("embedding", ("embedding",), "EmbeddingGraph", "embedding"),
        # Masks: sleap-nn's three segmentation heads (graphs in `segmentation_graphs`, completed by
        # `runtime.decoding.mask_completion` through the completers named here).
        ModelType("semantic_segmentation", ("semantic_segmentation",), "SemanticSegmentationGraph", "semantic_masks"),
        ModelType("bottomup_segmentation", ("bottomup_segmentation",), "BottomUpSegmentationGraph", "instance_masks"),
        ModelType(
            "topdown_segmentation", ("centroid", "centered_instance_segmentation"), "TopDownSegmentationGraph", "crop_masks"
        ),
    )
}


def model_type_for_runs(head_types: Iterable[str]) -> Optional[ModelType]:
    """The model type the runs of these head types make together (any order), or None."""
    wanted = sorted(head_types)
    return next((t for t in MODEL_TYPES.values() if sorted(t.runs) == wanted), None)


def valid_run_combinations() -> str:
    """For error messages: which runs make an artifact."""
    pairs = [" + ".join(t.runs) for t in MODEL_TYPES.values() if len(t.runs) > 1]
    singles = [t.runs[0] for t in MODEL_TYPES.values() if len(t.runs) == 1]
    return f"pairs {', '.join(pairs)}; or one run of {', '.join(singles)}"
