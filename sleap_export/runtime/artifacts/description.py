"""An artifact's spec as labelled lines, for people (``sleap-export inspect``, or any caller)."""

from __future__ import annotations

from sleap_export.core.spec import ModelSpec


def describe_spec(spec: ModelSpec, verified: bool = False) -> list[tuple[str, str]]:
    """``(topic, text)`` rows: schema, skeleton, each stage's contract and source, decoding,
    outputs, precision, export record, versions, payload (``verified``: its hash was checked)."""
    skeleton = spec.skeleton
    rows = [
        ("schema", str(spec.schema_version)),
        ("nodes", ", ".join(skeleton.nodes)),
        ("edges", ", ".join(f"{skeleton.nodes[a]}->{skeleton.nodes[b]}" for a, b in skeleton.edges) or "-"),
    ]
    for i, stage in enumerate(spec.stages):
        rows.append((
            f"stage {i}",
            f"{stage.head_type} ({stage.backbone}), {stage.in_channels} ch, scale {stage.input_scale}, "
            f"max stride {stage.max_stride}, output stride {stage.output_stride}, "
            f"size {stage.max_height}x{stage.max_width}; from {stage.source} ({stage.source_format}), "
            f"weights sha256 {stage.checkpoint_sha256[:12]}",
        ))
    post = spec.postprocess
    rows += [
        ("decoding", f"threshold {post.peak_threshold}, refinement {post.refinement}, max instances {post.max_instances}"),
        ("outputs", ", ".join(spec.output_names)),
        ("precision", spec.precision),
        ("export", "; ".join(f"{k}: {v}" for k, v in spec.export.describe().items())),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(spec.versions.items()))),
    ]
    if spec.payload_sha256:
        rows.append(("payload", f"sha256 {spec.payload_sha256[:16]}" + (" (verified)" if verified else "")))
    elif spec.export.engine is not None:  # no hash of its own, the ONNX payload it was built from is in "export"
        rows.append(("payload", "not hashed (TensorRT engine)"))
    else:
        rows.append(("payload", "not hashed (sleap-nn export folder)"))
    return rows
