"""ONNX exporter: traced graph with dynamic batch/height/width, simplified, spec inside."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import attrs

from sleap_export.core.spec import Calibration
from sleap_export.exporting.graph_builder import BuiltGraph
from sleap_export.exporting.options import ExportOptions
from sleap_export.exporting.writers.verification import sample_inputs, verify_outputs
from sleap_export.runtime.artifacts.embedded_spec import ONNX_SPEC_KEY
from sleap_export.runtime.artifacts.integrity import onnx_payload_sha256


def write_onnx(built: BuiltGraph, path: Path, options: ExportOptions) -> None:
    import onnxruntime
    import torch

    from sleap_export.exporting.graph.model_graphs import for_reordering_runtimes

    # The traced graph is checked against the same graph run by torch.
    module = for_reordering_runtimes(built.module)
    inputs = tuple(torch.from_numpy(a) for a in sample_inputs(built.spec))
    write_model(trace_onnx(module, built.spec, options), built.spec, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = session.run(None, {n: t.numpy() for n, t in zip(built.spec.input_names, inputs)})
    expected = [t.numpy() for t in module(*inputs)]
    verify_outputs(built.spec, expected, actual, "ONNX")
    if options.precision != "fp32":
        write_reduced_precision(built, path, options)


def trace_onnx(module, spec, options: ExportOptions):
    """The traced, simplified ONNX model of ``module`` (dynamic batch and frame size)."""
    import onnx
    import onnxslim
    import torch

    inputs = tuple(torch.from_numpy(a) for a in sample_inputs(spec))
    names = list(spec.input_names)
    dynamic_axes = {"frames": {0: "batch", 1: "height", 2: "width"}}
    dynamic_axes.update({name: {0: "batch", 1: "instances"} for name in names[1:]})
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The tracer warns about shape arithmetic it records dynamically on purpose.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            inputs,
            buffer,
            dynamo=False,
            opset_version=options.opset,
            input_names=names,
            output_names=list(spec.output_names),
            dynamic_axes=dynamic_axes,
        )
    # onnxslim's symbolic shape inference can prove a dynamic resize to be the
    # identity when it is not (it dropped the input-scale resize of a bottom-up
    # graph at scale 0.75), so it folds and fuses without inferring shapes.
    return onnxslim.slim(onnx.load_from_string(buffer.getvalue()), no_shape_infer=True)


def write_model(model, spec, path: Path) -> None:
    """The model with its spec (and the payload hash over both) as metadata, checked, to ``path``."""
    import onnx

    del model.metadata_props[:]
    model.producer_name, model.producer_version = "sleap-export", spec.versions["sleap-export"]
    spec = attrs.evolve(spec, payload_sha256=onnx_payload_sha256(model, spec))
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_SPEC_KEY, spec.to_json()
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def write_reduced_precision(built: BuiltGraph, path: Path, options: ExportOptions) -> None:
    """Replace the verified fp32 model at ``path`` by its fp16 or int8 twin once that passes its gate."""
    import onnx

    from sleap_export.exporting.graph.model_graphs import for_reordering_runtimes, with_half_precision_networks
    from sleap_export.exporting.precision import accuracy_gate, calibration_set, embedding_calibration, quantize_int8

    spec, precision = built.spec, options.precision
    frames = calibration_set(options.calibration, options.calibration_frames, precision)
    reduced_path = path.with_name(f"{path.name}.{precision}")
    exported = spec.export
    try:
        if precision == "fp16":
            half = with_half_precision_networks(for_reordering_runtimes(built.module))
            onnx.save(trace_onnx(half, spec, options), str(reduced_path))
        else:
            # A lone embedding run crops around given detections: it calibrates on the labels' own.
            calibrate, centres = (
                embedding_calibration(spec, frames) if spec.model_type == "embedding" else (frames.calibrate, None)
            )
            # Beside the artifact, keyed by the fp32 payload, the frames and the method: reused by re-exports.
            method, fp32_roles = options.calibration_method, options.int8_fp32_roles
            key = onnx_payload_sha256(onnx.load(str(path)), spec)[:8] + "-" + frames.cache_key(centres)[:8] + "-" + method
            cache = path.parent / f".sleap-export-calibration-{key}.json"
            symmetric = options.int8_target == "tensorrt"
            quantize_int8(path, reduced_path, calibrate, cache, symmetric, method, fp32_roles, centres=centres)
            calibration = Calibration(frames=len(calibrate), source=frames.source, method=method, fp32_roles=fp32_roles)
            exported = attrs.evolve(
                exported, calibration=calibration, int8_activations="int8" if symmetric else "uint8"
            )
        reduced_spec = attrs.evolve(spec, precision=precision)
        gate = accuracy_gate(reduced_spec, path, reduced_path, frames, options.max_deviation, options.keep_inaccurate)
        exported = attrs.evolve(exported, accuracy_gate=gate)
        write_model(onnx.load(str(reduced_path)), attrs.evolve(reduced_spec, export=exported), path)
    finally:
        reduced_path.unlink(missing_ok=True)
