"""ONNX exporter: traced graph with dynamic batch/height/width, simplified, spec inside."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import attrs

from sleap_export.build import BuiltGraph, ExportOptions
from sleap_export.exporters import register_exporter
from sleap_export.exporters.verify import sample_inputs, verify_outputs
from sleap_export.runtime.artifact import ONNX_SPEC_KEY
from sleap_export.runtime.integrity import onnx_payload_sha256


@register_exporter("onnx", suffixes=(".onnx",))
def write_onnx(built: BuiltGraph, path: Path, options: ExportOptions) -> None:
    import onnx
    import onnxruntime
    import onnxslim
    import torch

    inputs = tuple(torch.from_numpy(a) for a in sample_inputs(built.spec))
    names = list(built.spec.input_names)
    dynamic_axes = {"frames": {0: "batch", 1: "height", 2: "width"}}
    dynamic_axes.update({name: {0: "batch", 1: "instances"} for name in names[1:]})
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The tracer warns about shape arithmetic it records dynamically on purpose.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            built.module,
            inputs,
            buffer,
            dynamo=False,
            opset_version=options.opset,
            input_names=names,
            output_names=list(built.spec.output_names),
            dynamic_axes=dynamic_axes,
        )
    model = onnxslim.slim(onnx.load_from_string(buffer.getvalue()))
    write_model(model, built.spec, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
    expected = [t.numpy() for t in built.module(*inputs)]
    verify_outputs(built.spec, expected, actual, "ONNX")
    if options.precision == "int8":
        write_int8(built.spec, path, options)


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


def write_int8(spec, path: Path, options: ExportOptions) -> None:
    """Replace the fp32 model at ``path`` by its int8 twin once it passes the accuracy gate."""
    import onnx

    from sleap_export.exporters.precision import accuracy_gate, calibration_set, quantize_int8

    calibration = calibration_set(options.calibration, options.calibration_frames)
    # Beside the artifact, keyed by the fp32 payload and the calibration frames: reused by re-exports.
    key = onnx_payload_sha256(onnx.load(str(path)), spec)[:8] + "-" + calibration.cache_key()[:8]
    cache = path.parent / f".sleap-export-calibration-{key}.json"
    int8_path = path.with_name(path.name + ".int8")
    try:
        quantize_int8(path, int8_path, calibration.calibrate, cache)
        int8_spec = attrs.evolve(spec, precision="int8")
        gate = accuracy_gate(int8_spec, path, int8_path, calibration, options.max_deviation)
        exported = {
            **spec.export_options,
            "calibration": f"{len(calibration.calibrate)} frames of {calibration.source}",
            "accuracy gate": gate,
        }
        write_model(onnx.load(str(int8_path)), attrs.evolve(int8_spec, export_options=exported), path)
    finally:
        int8_path.unlink(missing_ok=True)
