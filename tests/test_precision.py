"""int8 ONNX on the CPU provider: calibration, cache, accuracy gate, spec."""

from __future__ import annotations

import warnings

import pytest

from sleap_export.errors import InputError, SleapExportError
from sleap_export.exporters import export
from sleap_export.runtime.artifact import read_spec, verify_payload
from sleap_export.spec import Calibration
from conftest import DATA, MODELS

CENTROID = MODELS / "minimal_instance_centroid"
VIDEO = DATA / "centered_pair_small.mp4"


def test_int8_export_records_precision_and_gate_and_reuses_its_cache(tmp_path):
    output = tmp_path / "int8.onnx"
    with pytest.warns(UserWarning, match="on 8 frames; 32"):
        export([CENTROID], output, precision="int8", calibration=str(VIDEO), calibration_frames=8)
    spec = verify_payload(output)
    assert spec.precision == "int8"
    assert spec.export.calibration == Calibration(frames=8, source="centered_pair_small.mp4")
    assert spec.export.int8_activations == "uint8"
    gate = spec.export.accuracy_gate
    assert (gate.precision, gate.frames, gate.source) == ("int8", 8, "centered_pair_small.mp4")
    assert str(gate).startswith("int8 vs fp32 on 8 centered_pair_small.mp4 frames: mean ")
    caches = list(tmp_path.glob(".sleap-export-calibration-*.json"))
    assert len(caches) == 1
    stamp = caches[0].stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export([CENTROID], output, precision="int8", calibration=str(VIDEO), calibration_frames=8, overwrite=True)
    assert caches[0].stat().st_mtime_ns == stamp  # read, not rewritten
    assert output.read_bytes() and read_spec(output).precision == "int8"


def test_int8_gate_fails_the_export_and_leaves_nothing(tmp_path):
    labels = DATA / "minimal_instance.pkg.slp"
    with pytest.warns(UserWarning):
        with pytest.raises(SleapExportError, match=r"fails its accuracy gate .*vs labels"):
            export([CENTROID], tmp_path / "int8.onnx", precision="int8", calibration=str(labels), max_deviation=0.0)
    assert not list(tmp_path.glob("*.onnx*"))


def test_reduced_precision_needs_frames_and_onnx_or_tensorrt(tmp_path):
    with pytest.raises(InputError, match="--calibration"):
        export([CENTROID], tmp_path / "a.onnx", precision="int8")
    with pytest.raises(InputError, match="for ONNX and TensorRT artifacts; export TorchScript in fp32"):
        export([CENTROID], tmp_path / "a.pt", precision="int8", calibration=str(VIDEO))
    assert list(tmp_path.iterdir()) == []


def test_fp16_onnx_runs_on_the_cpu_provider_passes_its_gate_and_check(tmp_path):
    """The networks' convolutions in fp16, decoding in fp32; gated against fp32, checked against sleap-nn."""
    import numpy as np
    import onnx

    from sleap_export.check import check_artifact

    output = tmp_path / "fp16.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no calibration-size warning: fp16 calibrates nothing
        export([CENTROID], output, precision="fp16", calibration=str(VIDEO), calibration_frames=8)
    spec = verify_payload(output)
    assert spec.precision == "fp16" and spec.export.calibration is None
    assert str(spec.export.accuracy_gate).startswith("fp16 vs fp32 on 8 centered_pair_small.mp4 frames: mean ")
    model = onnx.load(str(output))
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    convolutions = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert convolutions and all(weights[n.input[1]].dtype == np.float16 for n in convolutions)
    assert all(o.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16 for o in model.graph.output)
    report = check_artifact(output, [CENTROID], VIDEO, frames=8)
    assert report, report.failures


def test_fp16_needs_gate_frames(tmp_path):
    with pytest.raises(InputError, match="fp16 needs real frames to gate against fp32: pass --calibration"):
        export([CENTROID], tmp_path / "a.onnx", precision="fp16")
    assert list(tmp_path.iterdir()) == []
