"""int8 ONNX on the CPU provider: calibration, fp32 layers, cache, accuracy gate and its verdict, spec."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from sleap_export.core.tolerances import tolerance_for
from sleap_export.core.errors import InputError
from sleap_export import export
from sleap_export.exporting.options import ExportOptions
from sleap_export.exporting.precision import convolution_roles
from sleap_export.runtime.artifacts.formats import read_spec, verify_payload
from sleap_export.core.spec import ModelSpec
from conftest import DATA, MODELS

CENTROID = MODELS / "minimal_instance_centroid"
VIDEO = DATA / "centered_pair_small.mp4"
LABELS = DATA / "minimal_instance.pkg.slp"


def sleap_export_command(*args) -> subprocess.CompletedProcess:
    command = Path(sys.executable).parent / "sleap-export"
    return subprocess.run([str(command), *map(str, args)], capture_output=True, text=True, timeout=600)


def test_int8_export_records_method_fp32_layers_and_verdict_and_reuses_its_cache(tmp_path):
    import onnx

    output = tmp_path / "int8.onnx"
    options = dict(precision="int8", calibration=str(VIDEO), calibration_frames=8, keep_inaccurate=True)
    with pytest.warns(UserWarning, match="on 8 frames; 32"):
        export([CENTROID], output, calibration_method="entropy", **options)
    spec = verify_payload(output)
    assert spec.precision == "int8"
    calibration = spec.export.calibration
    assert (calibration.frames, calibration.source, calibration.method) == (8, "centered_pair_small.mp4", "entropy")
    fp32_roles = ExportOptions().int8_fp32_roles
    assert fp32_roles and calibration.fp32_roles == fp32_roles
    assert spec.export.int8_activations == "uint8"
    gate = spec.export.accuracy_gate
    assert (gate.precision, gate.frames, gate.source) == ("int8", 8, "centered_pair_small.mp4")
    assert str(gate).startswith("int8 vs fp32 on 8 centered_pair_small.mp4 frames: mean ")
    # The verdict is check's int8 tolerance applied to the recorded figures.
    tolerance = tolerance_for("int8")
    assert (gate.max_deviation_px, gate.min_count_agreement) == (tolerance.max_deviation_px, tolerance.min_agreement)
    assert gate.passed == (gate.p99_px <= tolerance.max_deviation_px and gate.count_agreement >= tolerance.min_agreement)
    # The convolutions of the fp32 roles keep float weights; the others read theirs through DequantizeLinear.
    model = onnx.load(str(output))
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    roles = convolution_roles(model)
    assert set(roles.values()) == {"entry", "body", "heads"}
    for node in model.graph.node:
        if node.name in roles:
            assert (node.input[1] in dequantized) == (roles[node.name] not in fp32_roles), node.name
    caches = list(tmp_path.glob(".sleap-export-calibration-*-entropy.json"))
    assert len(caches) == 1
    stamp = caches[0].stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export([CENTROID], output, calibration_method="entropy", overwrite=True, **options)
    assert caches[0].stat().st_mtime_ns == stamp  # read, not rewritten
    assert output.read_bytes() and read_spec(output).precision == "int8"


def test_convolution_roles_give_each_network_of_a_top_down_graph_its_entry_and_head(artifact):
    import onnx

    model = onnx.load(str(artifact(["minimal_instance_centroid", "minimal_instance_centered_instance"], ".onnx")))
    roles = convolution_roles(model)
    special = sorted((role, name.split("/")[1]) for name, role in roles.items() if role != "body")
    assert special == [("entry", "instance"), ("entry", "network"), ("heads", "instance"), ("heads", "network")]


def test_int8_gate_failure_fails_the_export_unless_kept_and_inspect_shows_it(tmp_path):
    """Default: one-line error with the figures and the fix, exit 1, the existing file untouched.
    --keep-inaccurate: written, the failed verdict in its spec and in `inspect`."""
    output = tmp_path / "int8.onnx"
    output.write_bytes(b"an artifact from before")
    export_args = ["onnx", CENTROID, "-o", output, "--overwrite", "--precision", "int8", "--calibration", LABELS, "--max-deviation", "0"]
    failed = sleap_export_command(*export_args)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    # One error line (after the small-calibration warning), no traceback.
    lines = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert "fails its accuracy gate (int8 vs fp32 on 1 minimal_instance.pkg.slp frames: mean " in lines[0]
    assert "vs labels" in lines[0] and "needs p99 <= 0 px, counts agree >= 90%" in lines[0]
    assert "nothing was written" in lines[0] and "--keep-inaccurate" in lines[0]
    assert output.read_bytes() == b"an artifact from before"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".sleap-export-calibration-")) == ["int8.onnx"]

    kept = sleap_export_command(*export_args, "--keep-inaccurate")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    gate = verify_payload(output).export.accuracy_gate
    assert gate.passed is False and gate.max_deviation_px == 0.0
    assert "FAILED, kept on request: tolerance (p99 <= 0 px, counts agree >= 90%)" in kept.stdout
    shown = sleap_export_command("inspect", output)
    assert shown.returncode == 0, shown.stderr
    words = " ".join(re.sub(r"[\u2500-\u257f]", " ", shown.stdout).split())  # rich's table, unwrapped
    assert "FAILED, kept on request: tolerance (p99 <= 0 px, counts agree >= 90%)" in words


def test_specs_before_schema_3_read_as_min_max_all_quantized_without_verdict(artifact):
    spec = read_spec(artifact(["minimal_instance_centroid"], ".onnx"))
    data = json.loads(spec.to_json())
    data["schema_version"] = 2
    data["export"]["calibration"] = {"frames": 8, "source": "clip.mp4"}
    data["export"]["accuracy_gate"] = {
        "precision": "int8", "frames": 8, "source": "clip.mp4", "mean_px": 0.5, "p99_px": 2.0, "count_agreement": 0.75,
    }
    record = ModelSpec.from_json(json.dumps(data)).export
    assert (record.calibration.method, record.calibration.fp32_roles) == ("minmax", ())
    assert record.accuracy_gate.passed is None
    assert str(record.accuracy_gate).endswith("instance counts agree on 75.0%")  # no verdict it never had


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

    from sleap_export.evaluation.parity_check import check_artifact

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


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_reduced_precision_top_down_runs_batches_without_any_instance(tmp_path, precision):
    """Frames with no animal give the instance stage zero crops; the reduced graphs must run them
    (the int8 graph once failed in ONNX Runtime: its saved shapes let a reshape fuse to (0, C, -1))."""
    import numpy as np

    from sleap_export.runtime import load

    output = tmp_path / f"topdown-{precision}.onnx"
    runs = [CENTROID, MODELS / "minimal_instance_centered_instance"]
    export(runs, output, precision=precision, calibration=str(VIDEO), calibration_frames=8, keep_inaccurate=True)
    runner = load(output)
    runner.activate()
    for batch in (1, 3):
        outputs = runner.infer(np.zeros((batch, 384, 384, 1), np.uint8))
        assert outputs["instance_valid"].shape == (batch, 20) and not outputs["instance_valid"].any()
        assert np.isnan(outputs["pred_keypoints"]).all()
