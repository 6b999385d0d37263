"""int8 ONNX on the CPU provider: calibration, cache, accuracy gate, spec."""

from __future__ import annotations

import warnings

import pytest

from sleap_export.errors import InputError, SleapExportError
from sleap_export.exporters import export
from sleap_export.runtime.artifact import read_spec
from sleap_export.runtime.integrity import verify_payload
from conftest import DATA, MODELS

CENTROID = MODELS / "minimal_instance_centroid"
VIDEO = DATA / "centered_pair_small.mp4"


def test_int8_export_records_precision_and_gate_and_reuses_its_cache(tmp_path):
    output = tmp_path / "int8.onnx"
    with pytest.warns(UserWarning, match="on 8 frames; 32"):
        export([CENTROID], output, precision="int8", calibration=str(VIDEO), calibration_frames=8)
    spec = verify_payload(output)
    assert spec.precision == "int8"
    assert spec.export_options["calibration"] == "8 frames of centered_pair_small.mp4"
    assert spec.export_options["accuracy gate"].startswith("int8 vs fp32 on 8 centered_pair_small.mp4 frames: mean ")
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


def test_int8_needs_calibration_and_onnx(tmp_path):
    with pytest.raises(InputError, match="--calibration"):
        export([CENTROID], tmp_path / "a.onnx", precision="int8")
    with pytest.raises(InputError, match="export TorchScript in fp32"):
        export([CENTROID], tmp_path / "a.pt", precision="int8", calibration=str(VIDEO))
    assert list(tmp_path.iterdir()) == []
