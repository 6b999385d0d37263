"""An artifact's spec as labelled lines, for people (``sleap-export inspect``, or any caller)."""

from __future__ import annotations

from sleap_export.core.model_types import MODEL_TYPES
from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.artifacts.sleap_nn_export_folder import written_by_sleap_nn

# What the description says where the spec has no value (sleap-nn's own export folders record less).
NOT_RECORDED = "not recorded"


def describe_spec(spec: ModelSpec, verified: bool = False) -> list[tuple[str, str]]:
    """``(topic, text)`` rows: schema, (a segmentation model's) what it predicts, skeleton, each stage's
    contract and source, decoding (for masks: the thresholds and center window baked in, by sleap-nn's
    names), outputs, precision, export record, versions, payload (``verified``: its hash was checked)."""
    skeleton = spec.skeleton
    segments = MODEL_TYPES[spec.model_type].segments
    rows = [("schema", str(spec.schema_version))]
    if segments:
        rows.append(("predicts", _masks_predicted(spec.model_type)))
    # A segmentation run keeps its training labels' skeleton; its frames hold masks, no keypoints.
    unused = " (from the training labels; not predicted)" if segments else ""
    rows += [
        ("nodes", ", ".join(skeleton.nodes) + unused),
        ("edges", (", ".join(f"{skeleton.nodes[a]}->{skeleton.nodes[b]}" for a, b in skeleton.edges) or "-") + unused),
    ]
    by_sleap_nn = written_by_sleap_nn(spec)
    for i, stage in enumerate(spec.stages):
        rows.append((
            f"stage {i}",
            f"{stage.head_type} ({stage.backbone}), {stage.in_channels} ch, scale {stage.input_scale}, "
            f"max stride {stage.max_stride}, output stride {stage.output_stride}, "
            f"{_frame_size(stage, by_sleap_nn)}{_tiles(stage)}; from {stage.source} ({stage.source_format}), "
            f"weights sha256 {stage.checkpoint_sha256[:12] or NOT_RECORDED}",
        ))
    post = spec.postprocess
    rows += [
        ("decoding", _mask_decoding(spec) if segments else
         f"threshold {post.peak_threshold}, refinement {post.refinement or 'none'}, max instances {post.max_instances}"),
        ("outputs", ", ".join(spec.output_names)),
        ("precision", spec.precision),
        ("export", "; ".join(f"{k}: {v}" for k, v in spec.export.describe().items()) or NOT_RECORDED),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(spec.versions.items()))),
    ]
    if spec.payload_sha256:
        rows.append(("payload", f"sha256 {spec.payload_sha256[:16]}" + (" (verified)" if verified else "")))
    elif spec.export.engine is not None:  # no hash of its own, the ONNX payload it was built from is in "export"
        rows.append(("payload", "not hashed (TensorRT engine)"))
    else:
        rows.append(("payload", "not hashed (sleap-nn export folder)"))
    return rows


def _frame_size(stage, by_sleap_nn: bool) -> str:
    """The size frames are matched to: sleap-nn's own exports do not record it; ours without one take any size."""
    if stage.max_height is not None and stage.max_width is not None:
        return f"size {stage.max_height}x{stage.max_width}"
    return f"size {NOT_RECORDED}" if by_sleap_nn else "any size (frames run at their own)"


def _masks_predicted(model_type: str) -> str:
    what = {
        "semantic_segmentation": "one foreground mask per frame",
        "bottomup_segmentation": "instance masks: foreground pixels voted to instance centers on the host",
        "topdown_segmentation": "instance masks: one per centroid, from its centered crop",
    }[model_type]
    return f"{what} (sleap-io masks; predict's mask options apply)"


def _mask_decoding(spec: ModelSpec) -> str:
    """The segmentation settings baked into the graph, by sleap-nn's names."""
    post = spec.postprocess
    foreground = f"fg_threshold {post.fg_threshold} (foreground: sigmoid > it)"
    if spec.model_type == "bottomup_segmentation":
        return (f"{foreground}; instance centers: peak_threshold {post.peak_threshold}, "
                f"center_nms_kernel {post.center_nms_kernel} (a {post.center_nms_kernel}x{post.center_nms_kernel} window)")
    if spec.model_type == "topdown_segmentation":
        return (f"{foreground}; centroids: peak_threshold {post.peak_threshold}, refinement {post.refinement}, "
                f"max instances {post.max_instances}")
    return foreground


def _tiles(stage) -> str:
    """A tiled run's tile geometry (sleap-nn's tiled inference, in the graph)."""
    tiling = stage.tiling
    if tiling is None:
        return ""
    return f", tiled: {tiling.tile_size} px tiles, overlap {tiling.overlap} px, {tiling.blend} blend"
