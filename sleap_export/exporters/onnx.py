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
    model = onnx.load_from_string(buffer.getvalue())
    model = onnxslim.slim(model)
    del model.metadata_props[:]
    model.producer_name, model.producer_version = "sleap-export", built.spec.versions["sleap-export"]
    spec = attrs.evolve(built.spec, payload_sha256=onnx_payload_sha256(model, built.spec))
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_SPEC_KEY, spec.to_json()
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
    expected = [t.numpy() for t in built.module(*inputs)]
    verify_outputs(built.spec, expected, actual, "ONNX")
