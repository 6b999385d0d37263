"""TorchScript exporter: traced graph, spec stored as an extra file in the archive."""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import attrs

from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.exporting.graph_builder import BuiltGraph
from sleap_export.exporting.options import ExportOptions
from sleap_export.exporting.writers.verification import sample_inputs, verify_outputs
from sleap_export.runtime.artifacts.embedded_spec import TORCHSCRIPT_SPEC_FILE
from sleap_export.runtime.artifacts.integrity import torchscript_payload_sha256


def write_torchscript(built: BuiltGraph, path: Path, options: ExportOptions) -> None:
    import torch

    if options.precision != "fp32":
        raise InputError(f"{options.precision} is for ONNX and TensorRT artifacts; export TorchScript in fp32.")
    inputs = tuple(torch.from_numpy(a) for a in sample_inputs(built.spec))
    with warnings.catch_warnings():
        # The tracer's shape warnings and jit.save/load's deprecation notices.
        warnings.simplefilter("ignore")
        # Tracing is exact across sizes here: every shape computation in our code
        # is a tensor op, and sleap-nn's backbones only branch on shapes that are
        # fixed once inputs are padded to the max stride (verified below).
        traced = torch.jit.trace(built.module, inputs, check_trace=False)
        # Saved through a buffer: a file name would become the archive's root
        # folder, and the same model must give the same bytes whatever its name.
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_SPEC_FILE: built.spec.to_json()})
        with zipfile.ZipFile(buffer) as archive:
            spec = attrs.evolve(built.spec, payload_sha256=torchscript_payload_sha256(archive, built.spec))
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_SPEC_FILE: spec.to_json()})
        path.write_bytes(buffer.getvalue())
        loaded = torch.jit.load(str(path), map_location="cpu")
    # A size other than the trace's, so a frame size baked into the trace shows.
    other = [torch.from_numpy(a[:1]) for a in sample_inputs(built.spec)]
    other[0] = torch.nn.functional.pad(other[0], (0, 0, 0, 7, 0, 13))
    for sample in (inputs, tuple(other)):
        expected = [t.numpy() for t in built.module(*sample)]
        try:
            actual = [t.numpy() for t in loaded(*sample)]
        except RuntimeError as err:
            message = str(err).strip().splitlines()[-1]
            raise SleapExportError(
                f"The TorchScript graph fails on frames of shape {tuple(sample[0].shape)} ({message}); "
                "report this as a sleap-export bug."
            ) from None
        verify_outputs(built.spec, expected, actual, "TorchScript")
