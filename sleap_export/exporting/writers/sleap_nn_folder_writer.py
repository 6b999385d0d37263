"""``sleap-export onnx RUN [RUN2] -o FOLDER --layout sleap-nn``: our graph in sleap-nn's export layout.

The folder is what ``sleap-nn export`` writes and ``sleap-nn predict -m FOLDER``
(and Bonsai.Sleap) read: ``model.onnx`` taking a uint8 ``(B, C, H, W)`` image,
``export_metadata.json`` (sleap-nn's own `ExportMetadata`, every field), the
training config(s) beside it. The graph inside is ours (`SleapNnLayoutGraph`):
refinement, size matching and crops as sleap-nn's checkpoint inference does
them, at any frame size. ``model.onnx`` also carries our spec, so sleap-export
reads the folder exactly. The folder is written as a hidden sibling and renamed
into place, so no reader ever sees half of one.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Sequence

import attrs

from sleap_export.core.atomic_files import refuse_inputs_as_output
from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.core.model_types import MODEL_TYPES
from sleap_export.core.spec import ModelSpec
from sleap_export.core.training_runs import resolve_run_dir
from sleap_export.exporting.graph_builder import build_graph
from sleap_export.exporting.options import ExportOptions
from sleap_export.runtime.artifacts import sleap_nn_export_folder as layout

# sleap-nn's default for the TensorRT profile it would build (the ONNX graph's batch is dynamic).
MAX_BATCH_SIZE = 8


def check_folder_output(folder: Path, model_paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse a folder we should not write, before any model loads."""
    refuse_inputs_as_output(folder, model_paths, "the export folder")
    if not folder.parent.is_dir():
        raise InputError(f"Output folder {folder.parent} does not exist; create it first.")
    if not os.access(folder.parent, os.W_OK):
        raise InputError(f"Output folder {folder.parent} is not writable; choose another.")
    if folder.is_file():
        raise InputError(f"{folder} is a file; --layout sleap-nn writes a folder (model.onnx + export_metadata.json), name a new one.")
    if folder.exists():
        if not layout.is_sleap_nn_export_folder(folder):
            if any(folder.iterdir()):
                raise InputError(f"{folder} is a folder holding other files; name a new folder for the export.")
        elif not overwrite:
            raise InputError(f"{folder} already holds an export; pass --overwrite (overwrite=True in Python) to replace it.")


def write_sleap_nn_folder(model_paths: Sequence[str | Path], folder: str | Path, options: ExportOptions, overwrite: bool = False) -> Path:
    """Export run(s) as a sleap-nn export folder; checked against the eager graph, written atomically."""
    folder = Path(folder)
    paths = [Path(p) for p in model_paths]
    if options.precision == "int8":
        raise InputError(
            "--layout sleap-nn writes fp32 or fp16 networks (sleap-nn's export metadata records no int8); "
            "leave out --precision int8, or export an int8 artifact without --layout."
        )
    check_folder_output(folder, paths, overwrite)
    built = build_graph(paths, options)
    if MODEL_TYPES[built.spec.model_type].detects_boxes:
        raise InputError(
            f"sleap-nn's export layout holds a detector as a bare network that sleap-nn decodes itself, and no "
            f"detector + pose pair; export {built.spec.model_type} as a sleap-export artifact (-o model.onnx, no --layout)."
        )
    if MODEL_TYPES[built.spec.model_type].embeds:
        raise InputError(
            f"sleap-nn's export layout holds an embedding model as a bare network on crops it cuts itself, and no "
            f"detector + embedding pair; export {built.spec.model_type} as a sleap-export artifact (-o model.onnx, no --layout)."
        )
    if MODEL_TYPES[built.spec.model_type].segments:
        raise InputError(
            f"sleap-nn's exporter refuses segmentation models, so its export layout has no place for masks; export "
            f"{built.spec.model_type} as a sleap-export artifact (-o model.onnx, no --layout)."
        )
    if built.spec.model_type not in {kind.ours for kind in layout.LAYOUT_TYPES.values()}:
        raise InputError(
            f"A {built.spec.model_type} graph takes crops around given centroids, which sleap-nn's layout cannot "
            "run on frames; export it together with its centroid run (a top-down pair)."
        )
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    fp32 = folder.with_name(f".{folder.name}.fp32-{os.getpid()}")
    try:
        _write_folder(built, paths, partial, options, "fp32")
        if options.precision == "fp16":
            partial.rename(fp32)
            _write_folder(built, paths, partial, options, "fp16")
            _gate(built.spec, fp32, partial, options)
        _replace(partial, folder)
    except OSError as err:
        raise SleapExportError(f"Could not write {folder} ({err.strerror or err}); free space or choose another folder.") from None
    finally:
        for leftover in (partial, fp32):
            shutil.rmtree(leftover, ignore_errors=True)
    return folder


def _replace(partial: Path, folder: Path) -> None:
    """``partial`` renamed onto ``folder``; an old export there is moved aside first, then removed."""
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        folder.rename(old)
    try:
        partial.rename(folder)
    except OSError:
        if old.exists():
            old.rename(folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _layout_graph(built, precision: str):
    import copy

    from sleap_export.exporting.graph.model_graphs import for_reordering_runtimes, with_half_precision_networks
    from sleap_export.exporting.graph.sleap_nn_layout import SleapNnLayoutGraph

    graph = for_reordering_runtimes(built.module)
    if precision == "fp16":
        graph = with_half_precision_networks(copy.deepcopy(graph))
    spec = built.spec
    return SleapNnLayoutGraph(graph, spec.model_type, spec.stages[0].input_scale, spec.stages[0].paf_edges).eval()


def _write_folder(built, model_paths: Sequence[Path], folder: Path, options: ExportOptions, precision: str) -> None:
    import numpy as np
    import onnx
    import onnxslim
    import torch

    from sleap_export.exporting.writers.verification import sample_frames, verify_outputs

    folder.mkdir()
    module = _layout_graph(built, precision)
    spec = attrs.evolve(
        built.spec, input_names=module.input_names, output_names=layout.LAYOUT_TYPES[module.layout_name].fields, precision=precision
    )
    image = torch.from_numpy(np.ascontiguousarray(sample_frames(spec).transpose(0, 3, 1, 2)))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape arithmetic it records dynamically
        torch.onnx.export(
            module, (image,), buffer, dynamo=False, opset_version=options.opset,
            input_names=[layout.INPUT_NAME], output_names=list(module.output_names),
            dynamic_axes={layout.INPUT_NAME: {0: "batch", 2: "height", 3: "width"}},
        )
    model = onnxslim.slim(onnx.load_from_string(buffer.getvalue()), no_shape_infer=True)
    metadata, configs = _metadata(spec, model_paths, module.layout_name, precision)
    for name, text in configs.items():
        (folder / name).write_text(text)
    del model.metadata_props[:]
    model.producer_name, model.producer_version = "sleap-export", spec.versions["sleap-export"]
    # The keys sleap-nn's exporter writes, and our spec for sleap-export's reader.
    entries = {"sleap_nn_metadata": json.dumps(metadata), layout.LAYOUT_SPEC_KEY: spec.to_json()}
    if configs:
        entries["training_config"] = next(iter(configs.values())) if len(configs) == 1 else json.dumps(
            {name.removeprefix("training_config_").removesuffix(".yaml"): text for name, text in configs.items()}
        )
    for key, value in entries.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    (folder / layout.MODEL_FILE).write_bytes(model.SerializeToString())
    (folder / layout.METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    if precision == "fp32":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(folder / layout.MODEL_FILE), providers=["CPUExecutionProvider"])
        actual = session.run(None, {layout.INPUT_NAME: image.numpy()})
        with torch.no_grad():
            expected = [t.numpy() for t in module(image)]
        verify_outputs(attrs.evolve(spec, output_names=module.output_names), expected, actual, "ONNX")


def _metadata(spec: ModelSpec, model_paths: Sequence[Path], layout_name: str, precision: str) -> tuple[dict, dict]:
    """sleap-nn's `ExportMetadata` of this export (built by sleap-nn, so every field is its own),
    and the training configs to copy beside it, by file name."""
    import hashlib

    from sleap_nn.export.metadata import build_base_metadata

    stages, post = spec.stages, spec.postprocess
    run_dirs = {resolve_run_dir(p).resolve().name: resolve_run_dir(p).resolve() for p in model_paths}
    two_stage = len(stages) == 2
    if two_stage:
        configs = {f"training_config_{role}.yaml": s.training_config for role, s in zip(("centroid", "centered_instance"), stages)}
        # sleap-nn's reader takes the skeleton (with its edges) from training_config.yaml.
        configs["training_config.yaml"] = stages[1].training_config
    else:
        configs = {"training_config.yaml": stages[0].training_config}
    configs = {name: text for name, text in configs.items() if text and stages[0].source_format == "sleap-nn"}

    def checkpoint(stage) -> str:
        run = run_dirs.get(stage.source)
        return str(run / "best.ckpt") if run is not None else stage.source

    bottomup = spec.model_type in ("bottomup", "multi_class_bottomup")
    edges = stages[0].paf_edges if spec.model_type == "bottomup" else spec.skeleton.edges
    centroid_stage = stages[0] if spec.model_type in ("centroid", "topdown", "multi_class_topdown") else None
    metadata = build_base_metadata(
        export_format="onnx",
        model_type=layout_name,
        model_name="+".join(s.source for s in stages),
        checkpoint_path=(
            f"centroid:{checkpoint(stages[0])};centered_instance:{checkpoint(stages[1])}" if two_stage else checkpoint(stages[0])
        ),
        backbone=f"centroid:{stages[0].backbone};centered_instance:{stages[1].backbone}" if two_stage else stages[0].backbone,
        n_nodes=len(spec.output_node_names),
        n_edges=len(edges),
        node_names=list(spec.output_node_names),
        edge_inds=[tuple(e) for e in edges],
        input_scale=stages[0].input_scale,
        input_channels=spec.input_channels,
        output_stride=stages[-1].output_stride,
        crop_size=(stages[-1].crop_size, stages[-1].crop_size) if two_stage else None,
        max_instances=post.max_instances if centroid_stage is not None else None,
        max_peaks_per_node=post.peaks_per_node if bottomup else None,
        max_batch_size=MAX_BATCH_SIZE,
        precision=precision,
        training_config_hash=";".join(
            f"{name.removeprefix('training_config_').removesuffix('.yaml')}:{hashlib.sha256(text.encode()).hexdigest()}"
            for name, text in configs.items() if name != "training_config.yaml"
        ) if two_stage else (hashlib.sha256(configs["training_config.yaml"].encode()).hexdigest() if configs else ""),
        training_config_embedded=bool(configs),
        n_classes=len(spec.class_names) or None,
        class_names=list(spec.class_names) or None,
        peak_threshold=post.peak_threshold,
        anchor_part=centroid_stage.anchor_part if centroid_stage is not None else None,
        centroid_method=_centroid_method(centroid_stage),
    )
    return metadata.to_dict(), configs


def _centroid_method(stage) -> str | None:
    """How the centroid model's targets were made, as sleap-nn resolves it from the config."""
    if stage is None or stage.source_format != "sleap-nn" or not stage.training_config:
        return None
    import yaml
    from omegaconf import OmegaConf
    from sleap_nn.export.utils import resolve_centroid_method

    return resolve_centroid_method(OmegaConf.create(yaml.safe_load(stage.training_config)), "centroid")


def _gate(spec: ModelSpec, fp32: Path, fp16: Path, options: ExportOptions) -> None:
    """Hold the fp16 folder to fp32 as the fp16 artifact's gate does (raises when it fails)."""
    from sleap_export.exporting.precision import accuracy_gate, calibration_set
    from sleap_export.runtime.backends.sleap_nn_folder_runner import SleapNnFolderRunner

    frames = calibration_set(options.calibration, options.calibration_frames, "fp16")
    folder_spec = attrs.evolve(spec, precision="fp16")
    gate = accuracy_gate(
        folder_spec, fp32, fp16, frames, options.max_deviation, options.keep_inaccurate,
        open_runner=lambda path: SleapNnFolderRunner(path, layout.folder_spec(path)),
    )
    # The verdict goes into the spec the folder's model.onnx carries (inspect shows it).
    import onnx

    model = onnx.load(str(fp16 / layout.MODEL_FILE))
    entry = next(p for p in model.metadata_props if p.key == layout.LAYOUT_SPEC_KEY)
    spec = ModelSpec.from_json(entry.value)
    entry.value = attrs.evolve(spec, export=attrs.evolve(spec.export, accuracy_gate=gate)).to_json()
    (fp16 / layout.MODEL_FILE).write_bytes(model.SerializeToString())
