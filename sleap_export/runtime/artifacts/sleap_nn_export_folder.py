"""sleap-nn export folders (``model.onnx`` + ``export_metadata.json``), read without sleap-nn.

``sleap-nn export`` writes them and ``sleap-nn predict -m FOLDER`` runs them;
``sleap-export onnx RUN -o FOLDER --layout sleap-nn`` writes the same layout
around our graph. This module reads either: the metadata, a `ModelSpec` for the
runtime (ours embed theirs in ``model.onnx``; theirs are described from the
metadata and the training configs beside it), and the translation of the
graph's outputs, named as sleap-nn's exported layers read them
(``sleap_nn/inference/layers/exported.py``), into `Outputs` fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import attrs
import numpy as np
import yaml

from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.core.spec import ModelSpec, PostprocessSpec, SkeletonSpec, StageSpec

METADATA_FILE = "export_metadata.json"
MODEL_FILE = "model.onnx"
ENGINE_FILE = "model.trt"
# Where our folders keep our spec inside model.onnx (not the artifact key: the graph's names differ).
LAYOUT_SPEC_KEY = "sleap_export.sleap_nn_layout_spec"
INPUT_NAME = "image"
# The versions entry that marks a spec read from sleap-nn's own export.
WRITTEN_BY = "written by"


@attrs.frozen
class LayoutType:
    """One model type of sleap-nn's export layout: our model type, the graph's outputs as
    sleap-nn names them, and the `Outputs` fields they become."""

    ours: str
    outputs: tuple[str, ...]
    fields: tuple[str, ...]


# sleap-nn's ``export_metadata.json`` model_type -> how it maps onto ours.
LAYOUT_TYPES: dict[str, LayoutType] = {
    "single_instance": LayoutType("single_instance", ("peaks", "peak_vals"), ("pred_keypoints", "pred_peak_values")),
    "centroid": LayoutType(
        "centroid",
        ("centroids", "centroid_vals", "instance_valid"),
        ("pred_centroids", "pred_centroid_values", "instance_valid"),
    ),
    "topdown": LayoutType(
        "topdown",
        ("centroids", "centroid_vals", "peaks", "peak_vals", "instance_valid"),
        ("pred_centroids", "pred_centroid_values", "pred_keypoints", "pred_peak_values", "instance_valid"),
    ),
    "multi_class_topdown_combined": LayoutType(
        "multi_class_topdown",
        ("centroids", "centroid_vals", "peaks", "peak_vals", "class_logits", "instance_valid"),
        ("pred_centroids", "pred_centroid_values", "pred_keypoints", "pred_peak_values", "pred_class_vectors", "instance_valid"),
    ),
    "bottomup": LayoutType(
        "bottomup",
        ("peaks", "peak_vals", "peak_mask", "line_scores", "candidate_mask"),
        ("pred_peaks", "pred_peak_values", "pred_peak_valid", "pred_line_scores"),
    ),
    "multi_class_bottomup": LayoutType(
        "multi_class_bottomup",
        ("peaks", "peak_vals", "peak_mask", "class_probs"),
        ("pred_peaks", "pred_peak_values", "pred_peak_valid", "pred_class_probs"),
    ),
}
# Types sleap-nn's layout has whose graphs do not give a frame's poses, and what to do instead.
NOT_FRAME_MODELS = {
    "centered_instance": "its graph takes crops, not frames; export it together with its centroid run (a top-down pair)",
    "multi_class_topdown": "its graph takes crops, not frames; export it together with its centroid run (a top-down pair)",
    "embedding": "re-ID embedding models are not supported yet",
    "bbox_centernet": "box detectors are not supported yet",
    "bbox_ssd": "box detectors are not supported yet",
}


def is_sleap_nn_export_folder(path: str | Path) -> bool:
    """A folder holding sleap-nn's ``export_metadata.json`` (what ``sleap-nn predict -m`` runs)."""
    path = Path(path)
    return path.is_dir() and (path / METADATA_FILE).is_file()


def read_metadata(folder: Path) -> dict:
    """The folder's ``export_metadata.json``, with one-line errors for what cannot run."""
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{folder / METADATA_FILE} is not readable JSON ({err}); re-export the folder.") from None
    if not isinstance(metadata, dict):
        raise InputError(f"{folder / METADATA_FILE} is not an export_metadata.json (not a JSON object); re-export the folder.")
    model_type = metadata.get("model_type")
    if model_type in NOT_FRAME_MODELS:
        raise InputError(f"{folder} is a sleap-nn {model_type} export: {NOT_FRAME_MODELS[model_type]}.")
    if model_type not in LAYOUT_TYPES:
        raise InputError(
            f"{folder / METADATA_FILE} names model type {model_type!r}, which sleap-export does not know; "
            f"known: {', '.join(LAYOUT_TYPES)}. Export the training run with sleap-export instead."
        )
    if not (folder / MODEL_FILE).is_file():
        engine = " (it holds only a TensorRT engine, model.trt)" if (folder / ENGINE_FILE).exists() else ""
        raise InputError(
            f"{folder} has no {MODEL_FILE}{engine}; sleap-export runs the ONNX model: re-export with "
            "`sleap-nn export --format onnx` or `sleap-export onnx RUN -o FOLDER --layout sleap-nn`."
        )
    return metadata


def layout_type(metadata: dict) -> LayoutType:
    return LAYOUT_TYPES[metadata["model_type"]]


def spec_json(folder: Path) -> str:
    """The folder's `ModelSpec` as JSON (the artifact format's spec reader)."""
    return folder_spec(folder).to_json()


def folder_spec(folder: Path) -> ModelSpec:
    """Ours: the spec embedded in model.onnx. Theirs: described from the metadata and configs."""
    folder = Path(folder)
    metadata = read_metadata(folder)
    embedded = _embedded_spec_json(folder / MODEL_FILE)
    spec = ModelSpec.from_json(embedded) if embedded is not None else _spec_from_metadata(folder, metadata)
    _check_graph_agrees(folder, metadata, spec)
    return spec


def _embedded_spec_json(model: Path) -> Optional[str]:
    import onnx

    try:
        # The graph itself is not needed: only the metadata in front of it.
        proto = onnx.load(str(model), load_external_data=False)
    except Exception:
        raise InputError(f"{model} is not a readable ONNX model; re-export the folder.") from None
    return next((p.value for p in proto.metadata_props if p.key == LAYOUT_SPEC_KEY), None)


def _check_graph_agrees(folder: Path, metadata: dict, spec: ModelSpec) -> None:
    """The graph's inputs and outputs are what the metadata's model type says (one line if not)."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(folder / MODEL_FILE), providers=["CPUExecutionProvider"])
    except Exception as err:
        raise InputError(f"{folder / MODEL_FILE} is not a runnable ONNX model ({str(err).splitlines()[0]}); re-export the folder.") from None
    expected = set(layout_type(metadata).outputs)
    outputs = {o.name for o in session.get_outputs()}
    if not expected <= outputs:
        raise InputError(
            f"{folder}: export_metadata.json says {metadata['model_type']} but model.onnx lacks its outputs "
            f"{', '.join(sorted(expected - outputs))} (it has {', '.join(sorted(outputs))}); the metadata and the "
            "graph come from different exports, re-export the folder."
        )
    inputs = session.get_inputs()
    channels = inputs[0].shape[1] if len(inputs) == 1 and len(inputs[0].shape) == 4 else None
    if len(inputs) != 1 or (isinstance(channels, int) and channels != spec.input_channels):
        raise InputError(
            f"{folder}: model.onnx takes {', '.join(f'{i.name} {i.shape}' for i in inputs)}, not the one "
            f"(batch, {spec.input_channels}, height, width) image export_metadata.json describes; re-export the folder."
        )


def _training_config(folder: Path, stage: Optional[str]) -> dict:
    """The training config sleap-nn copies beside the graph (per stage for top-down), or {}."""
    names = ([f"training_config_{stage}.yaml"] if stage else []) + ["training_config.yaml"]
    for name in names:
        path = folder / name
        if path.is_file():
            try:
                return yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError:
                return {}
    return {}


def _max_stride(config: dict) -> int:
    backbones = (config.get("model_config") or {}).get("backbone_config") or {}
    strides = [b.get("max_stride") for b in backbones.values() if isinstance(b, dict) and b.get("max_stride")]
    return int(strides[0]) if strides else 1


def _config_output_stride(config: dict) -> Optional[int]:
    """The confidence maps' output stride a training config sets, or None."""
    heads = (config.get("model_config") or {}).get("head_configs") or {}
    strides = [
        head["confmaps"]["output_stride"] for head in heads.values()
        if isinstance(head, dict) and isinstance(head.get("confmaps"), dict) and head["confmaps"].get("output_stride")
    ]
    return int(strides[0]) if strides else None


def _config_input_scale(config: dict) -> Optional[float]:
    """The input scale a training config sets, or None."""
    scale = ((config.get("data_config") or {}).get("preprocessing") or {}).get("scale")
    return float(scale) if isinstance(scale, (int, float)) else None


def _stage_entry(value, stage: Optional[str]) -> Optional[str]:
    """A metadata value for one stage: a top-down pair's are ``centroid:A;centered_instance:B``; a value
    without stage names is every stage's."""
    if not value:
        return None
    entries = dict(part.split(":", 1) for part in str(value).split(";") if ":" in part) if stage else {}
    return entries.get(stage) if entries else str(value)


def _spec_from_metadata(folder: Path, metadata: dict) -> ModelSpec:
    """sleap-nn's own export, described for the runtime from what its metadata records."""
    kind = layout_type(metadata)
    nodes = tuple(metadata.get("node_names") or ())
    edges = tuple(tuple(int(i) for i in pair) for pair in metadata.get("edge_inds") or ())
    if not nodes:
        raise InputError(f"{folder / METADATA_FILE} names no nodes (node_names); re-export the folder.")
    two_stage = kind.ours in ("topdown", "multi_class_topdown")
    head_types = ("centroid", "centered_instance" if kind.ours == "topdown" else "multi_class_topdown") if two_stage else (kind.ours,)
    crop = metadata.get("crop_size")
    recorded_scale = float(metadata.get("input_scale") or 1.0)
    recorded_stride = int(metadata.get("output_stride") or 1)
    stages = []
    for i, head_type in enumerate(head_types):
        config_stage = ("centroid" if i == 0 else "centered_instance") if two_stage else None
        config = _training_config(folder, config_stage)
        is_centroid_stage = two_stage and i == 0
        # For top-down, sleap-nn records the centroid stage's scale and the instance stage's stride;
        # each stage's training config gives the other.
        input_scale = recorded_scale if not two_stage or is_centroid_stage else _config_input_scale(config)
        output_stride = _config_output_stride(config) if is_centroid_stage else recorded_stride
        stages.append(StageSpec(
            head_type=head_type,
            backbone=_stage_entry(metadata.get("backbone"), config_stage) or "unknown",
            in_channels=int(metadata.get("input_channels") or 1),
            input_scale=recorded_scale if input_scale is None else input_scale,
            max_stride=_max_stride(config),
            output_stride=output_stride or recorded_stride,
            crop_size=None if is_centroid_stage or not crop else int(crop[0]),
            anchor_part=metadata.get("anchor_part") if (is_centroid_stage or kind.ours == "centroid") else None,
            paf_edges=edges if kind.ours == "bottomup" else (),
            source=_stage_entry(metadata.get("checkpoint_path"), config_stage) or str(folder),
        ))
    from sleap_export.runtime.decoding.peak_grouping import paf_edge_order

    peaks = int(metadata.get("max_peaks_per_node") or 64)
    # sleap-nn's exported bottom-up layer groups without a cap unless predict is given one.
    max_instances = int(metadata.get("max_instances") or peaks * len(nodes))
    post = PostprocessSpec(
        peak_threshold=float(metadata["peak_threshold"]) if metadata.get("peak_threshold") is not None else 0.2,
        # sleap-nn's exported graphs find peaks on the confidence-map grid, without refinement.
        refinement=None,
        max_instances=max_instances,
        peaks_per_node=peaks,
        edge_order=paf_edge_order(edges) if kind.ours == "bottomup" else (),
    )
    return ModelSpec(
        model_type=kind.ours,
        skeleton=SkeletonSpec(nodes=nodes, edges=edges),
        stages=tuple(stages),
        postprocess=post,
        input_names=(INPUT_NAME,),
        output_names=kind.fields,
        class_names=tuple(metadata.get("class_names") or ()),
        precision=str(metadata.get("precision") or "fp32"),
        versions={"sleap-nn": str(metadata.get("sleap_nn_version") or "unknown"), WRITTEN_BY: "sleap-nn export"},
    )


def written_by_sleap_nn(spec: ModelSpec) -> bool:
    """The spec describes a folder sleap-nn's own exporter wrote (not one of ours)."""
    return spec.versions.get(WRITTEN_BY) == "sleap-nn export"


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - np.nanmax(logits, axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def outputs_from_layout(metadata: dict, raw: dict[str, np.ndarray]) -> list[np.ndarray]:
    """A batch's graph outputs (sleap-nn's names) -> our `Outputs` fields, in `LayoutType.fields` order.

    Done as sleap-nn's exported layers do it: empty slots (zero-filled) become NaN, bottom-up
    peaks are divided by the input scale, class logits go through a softmax.
    """
    kind = layout_type(metadata)
    if kind.ours in ("bottomup", "multi_class_bottomup"):
        valid = raw["peak_mask"].astype(bool)
        scale = np.float32(metadata.get("input_scale") or 1.0)
        peaks = np.where(valid[..., None], raw["peaks"] / scale, np.nan).astype(np.float32)
        values = np.where(valid, raw["peak_vals"], np.nan).astype(np.float32)
        if kind.ours == "multi_class_bottomup":
            return [peaks, values, valid, raw["class_probs"]]
        batch, n_edges, pairs = raw["line_scores"].shape
        k = peaks.shape[2]
        if pairs != k * k:
            raise SleapExportError(f"line_scores has {pairs} pairs per edge for {k} peaks per node; re-export the folder.")
        scores = np.where(raw["candidate_mask"].astype(bool), raw["line_scores"], np.nan).astype(np.float32)
        return [peaks, values, valid, scores.reshape(batch, n_edges, k, k)]
    by_name = dict(raw)
    if kind.ours == "single_instance":
        return [by_name["peaks"][:, None], by_name["peak_vals"][:, None]]
    valid = by_name["instance_valid"].astype(bool)
    converted = []
    for name in kind.outputs:
        value = by_name[name]
        if name == "instance_valid":
            value = valid
        else:
            if name == "class_logits":
                value = _softmax(value.astype(np.float32))
            mask = valid.reshape(valid.shape + (1,) * (value.ndim - valid.ndim))
            value = np.where(mask, value, np.nan).astype(np.float32)
        converted.append(value)
    return converted
