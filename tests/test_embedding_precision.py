"""Reduced precision of the embedding model types: the accuracy gate holds the appearance vectors as well as the
poses, and says what it measured (docs/precision.md, "Embedding models")."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import attrs
import numpy as np
import pytest
import sleap_io as sio

from sleap_export.core.errors import SleapExportError
from sleap_export.core.tolerances import tolerance_for
from sleap_export.exporting.precision import accuracy_gate, calibration_set, convolution_roles, quantize_int8
from sleap_export.runtime.artifacts.formats import read_spec, verify_payload
from conftest import DATA, model_dir

BIN = Path(sys.executable).parent
PAIR = ["minimal_instance_centroid", "new_embedding"]
VIDEO = DATA / "centered_pair_small.mp4"
LABELS = DATA / "minimal_instance.pkg.slp"


def sleap_export(*args) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "sleap-export", *map(str, args)], capture_output=True, text=True, timeout=600)


def test_fp16_centroid_embedding_passes_its_gate_predicts_vectors_and_inspect_shows_them(assets, tmp_path):
    model = tmp_path / "e.onnx"
    done = sleap_export(
        "onnx", *map(model_dir, PAIR), "-o", model, "--precision", "fp16", "--calibration", VIDEO,
        "--calibration-frames", "8",
    )
    assert done.returncode == 0, done.stderr
    gate = verify_payload(model).export.accuracy_gate
    # 8 gate frames of two flies: every vector paired with fp32's, within fp16's cosine (measured p1 0.999995).
    assert gate.passed and gate.vectors >= 12, gate
    assert gate.min_vector_cosine == tolerance_for("fp16").min_vector_cosine
    assert gate.min_vector_cosine <= gate.vector_cosine_p1 and gate.worst_vector_cosine <= gate.vector_cosine_p1
    assert 0 < gate.max_vector_deviation < 0.01, gate
    shown = sleap_export("inspect", model)
    # The table wraps the gate's text over its rows: read it without the borders.
    text = " ".join(shown.stdout.replace("│", " ").split())
    assert f"{gate.vectors} appearance vectors: cosine p1" in text and "vector cosine p1 >= 0.9999" in text, text

    output = tmp_path / "e.slp"
    done = sleap_export("predict", model, VIDEO, "--frames", "0-3", "-o", output)
    assert done.returncode == 0, done.stderr
    instances = [i for lf in sio.load_slp(str(output)).labeled_frames for i in lf.instances]
    assert instances and all(i.identity_embedding is not None for i in instances)
    assert all(np.isclose(np.linalg.norm(i.identity_embedding.vector), 1.0, atol=1e-3) for i in instances)


def test_a_gate_that_fails_exits_with_one_line_and_writes_nothing(assets, tmp_path):
    """fp16 moves centroids by ~0.002 px, so a --max-deviation of 0 fails the gate."""
    done = sleap_export(
        "onnx", *map(model_dir, PAIR), "-o", tmp_path / "e.onnx", "--precision", "fp16", "--calibration", VIDEO,
        "--calibration-frames", "2", "--max-deviation", "0",
    )
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "fails its accuracy gate" in done.stderr and "appearance vectors: cosine p1" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_int8_calibrated_on_blank_frames_is_caught_by_the_vectors_alone(artifact, tmp_path):
    """The embedding network's convolutions calibrated on black frames, the centroid network kept fp32: the
    centroids are fp32's exactly, so only the vectors can fail the gate (measured: worst cosine -0.45). Not
    mid-grey frames: their centroid maps hold flat tops, which sleap-nn's rule makes centroids, so the
    embedding network is calibrated on real (grey) crops and reaches 0.92."""
    import onnx

    fp32 = artifact(PAIR, ".onnx")
    spec = attrs.evolve(read_spec(fp32), precision="int8")
    model = onnx.load(str(fp32))
    weights = {n.name: n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    centroid_convolutions = tuple(n for n in convolution_roles(model) if not weights[n].startswith("embedding."))
    assert centroid_convolutions and len(centroid_convolutions) < len(convolution_roles(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few calibration frames
        frames = calibration_set(VIDEO, 4)
        blank = [np.zeros_like(f) for f in frames.calibrate]
        quantize_int8(fp32, tmp_path / "int8.onnx", blank, tmp_path / "cache.json", fp32_nodes=centroid_convolutions)
    gate = accuracy_gate(spec, fp32, tmp_path / "int8.onnx", frames, keep_inaccurate=True)
    assert gate.p99_px == 0 and gate.count_agreement == 1, gate
    assert not gate.passed and gate.vector_cosine_p1 < 0.6 < tolerance_for("int8").min_vector_cosine, gate
    with pytest.raises(SleapExportError, match="fails its accuracy gate"):
        accuracy_gate(spec, fp32, tmp_path / "int8.onnx", frames)


def test_lone_embedding_calibrates_on_a_slp_and_is_refused_a_video(assets, tmp_path):
    """int8 on the labels' own detections, gated on the same detections (vectors paired in order); a video
    gives no detections to crop, so it is refused in one line before anything is written (docs/bad-inputs.md:
    "embedding-precision-video")."""
    model = tmp_path / "e.onnx"
    done = sleap_export(
        "onnx", model_dir("new_embedding"), "-o", model, "--precision", "int8", "--calibration", LABELS,
    )
    assert done.returncode == 0, done.stderr
    spec = verify_payload(model)
    gate = spec.export.accuracy_gate
    assert spec.export.calibration.frames == 1 and gate.vectors == 2 and gate.passed, gate
    assert (gate.p99_px, gate.labels_error_px) == (0, None), gate

    refused = sleap_export(
        "onnx", model_dir("new_embedding"), "-o", tmp_path / "v.onnx", "--precision", "fp16", "--calibration", VIDEO,
    )
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "pass --calibration LABELS.slp" in refused.stderr, refused.stderr
    assert not (tmp_path / "v.onnx").exists()
