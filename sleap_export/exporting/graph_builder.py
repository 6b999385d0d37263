"""From sleap-nn run folders to a traceable graph and the spec that describes it.

This is the door between the checkpoint reader and everything that traces:
exporters and the eager runner both start here, so they run the same module.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Sequence

import attrs

from sleap_export.core.errors import InputError
from sleap_export.core.model_types import BOX_HEAD_TYPES, ModelType, model_type_for_runs, valid_run_combinations
from sleap_export.core.spec import ExportRecord, ModelSpec, PostprocessSpec
from sleap_export.exporting.options import ExportOptions
from sleap_export.runtime.decoding.peak_grouping import paf_edge_order
from sleap_export.runtime.sources.video_inputs import LABELS_SUFFIXES


# sleap-nn's detections per frame when predict is given no max_instances, and SSD's NMS IoU.
BOX_MAX_DETECTIONS = 100
SSD_NMS_IOU = 0.45


@attrs.frozen
class BuiltGraph:
    """A traceable module and its spec (without the artifact's output names)."""

    module: object  # torch.nn.Module taking uint8 (B, H, W, C) frames
    spec: ModelSpec


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def graph_class(model_type: ModelType) -> type:
    """The graph class a model type names: in `model_graphs`, or `segmentation_graphs` for mask types."""
    from sleap_export.exporting.graph import model_graphs, segmentation_graphs

    return getattr(segmentation_graphs if model_type.segments else model_graphs, model_type.graph)


def build_graph(model_paths: Sequence[str | Path], options: ExportOptions = ExportOptions()) -> BuiltGraph:
    """Load the run(s), check they make a valid artifact, and wrap them in its graph."""
    from sleap_export.exporting.checkpoints import load_run, model_type_of, resolve_run_dir
    from sleap_export.exporting.graph import model_graphs as graphs
    from sleap_export.exporting.graph.model_graphs import SizeMatch, Stage

    if not 1 <= len(model_paths) <= 3:
        raise InputError(
            f"Got {len(model_paths)} model folders; pass one run, or a centroid run and "
            f"a centered-instance run. Valid: {valid_run_combinations()}."
        )
    # Check the pairing from the configs before loading any weights.
    head_types = [model_type_of(resolve_run_dir(p)) for p in model_paths]
    model_type = model_type_for_runs(head_types)
    if model_type is None and len(model_paths) == 1:
        load_run(model_paths[0])  # raises its own "not supported" error
    if model_type is None:
        raise InputError(
            f"Runs of types {' + '.join(sorted(head_types))} do not make one artifact; valid: "
            f"{valid_run_combinations()}."
        )
    runs = sorted((load_run(p) for p in model_paths), key=lambda r: model_type.runs.index(r.stage.head_type))
    if len({r.stage.in_channels for r in runs}) > 1:
        raise InputError(
            "The runs take different channel counts (grayscale vs RGB); pair runs "
            "trained on the same kind of frames."
        )
    post = attrs.evolve(options.postprocess, edge_order=paf_edge_order(runs[0].stage.paf_edges))
    defaults = attrs.fields(PostprocessSpec)
    if model_type.detects_boxes and post.max_instances == defaults.max_instances.default:
        post = attrs.evolve(post, max_instances=BOX_MAX_DETECTIONS)
    if model_type.runs[0] == "bbox_ssd" and post.box_nms_iou is None:
        post = attrs.evolve(post, box_nms_iou=SSD_NMS_IOU)  # 1.0 turns it off, as in sleap-nn
    if post.box_nms_iou is not None and not model_type.detects_boxes:
        raise InputError("--box-nms-iou applies to box detectors (bbox_centernet, bbox_ssd) only; leave it out.")
    if post.grouping == "graph" and model_type.name != "bottomup":
        raise InputError("--grouping graph applies to bottom-up (PAF) models only; leave it out.")
    if model_type.segments and options.precision != "fp32":
        raise InputError(
            f"--precision {options.precision}: the accuracy gate of reduced precision holds poses and appearance "
            f"vectors, not masks, so {model_type.name} exports in fp32 only; leave out --precision."
        )
    if model_type.name == "embedding" and options.precision != "fp32" and not str(options.calibration).endswith(LABELS_SUFFIXES):
        raise InputError(
            f"--precision {options.precision}: a lone embedding run embeds the detections of a .slp, so it calibrates "
            "and is gated on one; pass --calibration LABELS.slp (e.g. a pose model's predictions on your video)."
        )
    if not model_type.segments and post.fg_threshold != defaults.fg_threshold.default:
        raise InputError("--fg-threshold applies to segmentation models only; leave it out.")
    if model_type.name != "bottomup_segmentation" and post.center_nms_kernel != defaults.center_nms_kernel.default:
        raise InputError("--center-nms-kernel applies to bottom-up segmentation models only; leave it out.")
    if model_type.runs[0] in ("semantic_segmentation", "bottomup_segmentation") and post.max_instances != defaults.max_instances.default:
        raise InputError(
            f"--max-instances: a {model_type.name} graph keeps every mask; cap bottom-up masks when predicting "
            "(sleap-export predict --max-instances N)."
        )
    if options.raw_heads and len(runs) != 1:
        raise InputError("--raw-heads exports one model's heads; pass a single model folder.")
    instance_post = post
    if post.instance_peak_threshold is not None:
        instance_post = attrs.evolve(post, peak_threshold=post.instance_peak_threshold)
    box_cropped = [r for r in runs if r.stage.box_crop is not None]
    if box_cropped and not model_type.detects_boxes:
        raise InputError(
            f"{box_cropped[0].stage.source} was trained on box-scaled crops (crop_mode: bbox), so its crops come from "
            "a box detector's boxes; pair it with a bbox_centernet or bbox_ssd run."
        )
    stages = [
        Stage(r.network, r.head_names, r.stage, post if r.stage.head_type in ("centroid", *BOX_HEAD_TYPES) else instance_post)
        for r in runs
    ]
    # sleap-nn fits frames to the first run's max size that is set, centroid first; a detector
    # sizes frames to its own (the centered-instance stage sizes them again to its own).
    # An embedding run sizes the frames it crops to its own, too.
    sized_by = runs[:1] if model_type.detects_boxes or model_type.embeds else runs
    if runs[0].stage.tiling is not None:
        sized_by = []  # sleap-nn tiles frames at their own size
    max_height = next((r.stage.max_height for r in sized_by if r.stage.max_height is not None), None)
    max_width = next((r.stage.max_width for r in sized_by if r.stage.max_width is not None), None)
    graph_cls = graphs.RawHeadsGraph if options.raw_heads else graph_class(model_type)
    module = graph_cls(stages, SizeMatch(max_height, max_width))
    module.eval()
    # The run whose instances the artifact outputs (an embedding run only adds vectors to them).
    instance_run = ([r for r in runs if r.stage.head_type != "embedding"] or runs)[-1]  # a lone embedding run: its own
    spec = ModelSpec(
        model_type=model_type.name,
        skeleton=instance_run.skeleton,
        stages=tuple(r.stage for r in runs),
        postprocess=post,
        input_names=module.input_names,
        output_names=module.output_names,
        # A detector's box categories, or the classes of a multi-class run.
        class_names=runs[0].class_names if model_type.detects_boxes else instance_run.class_names,
        versions=versions(),
        raw_heads=options.raw_heads,
        export=ExportRecord(opset=options.opset),
    )
    return BuiltGraph(module=module, spec=spec)


def versions() -> dict[str, str]:
    """Versions of the packages that shape an artifact's numbers."""
    names = ("sleap-export", "sleap-nn", "torch", "onnx", "onnxruntime", "onnxslim")
    found = {name: package_version(name) for name in names}
    found["python"] = platform.python_version()
    return found
