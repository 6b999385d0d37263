"""The spec round-trips, is stable, and guards its schema."""

from __future__ import annotations

import json

import pytest

from sleap_export.core.errors import SleapExportError
from sleap_export.runtime.artifacts.formats import read_spec
from sleap_export.core.spec import SCHEMA_VERSION, ModelSpec, SkeletonSpec, StageSpec


def make_spec() -> ModelSpec:
    return ModelSpec(
        model_type="centroid",
        skeleton=SkeletonSpec(["A", "B"], [(0, 1)]),
        stages=[StageSpec("centroid", "unet", 1, 1.0, 8, 4, 384, 384, checkpoint_sha256="ab")],
        output_names=["pred_centroids"],
        versions={"torch": "x"},
    )


def test_round_trip_and_stable_bytes():
    spec = make_spec()
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert spec.to_json() == make_spec().to_json()


def test_newer_schema_is_refused():
    data = json.loads(make_spec().to_json())
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(SleapExportError, match="upgrade sleap-export"):
        ModelSpec.from_json(json.dumps(data))


def test_malformed_spec_is_refused():
    data = json.loads(make_spec().to_json())
    data["model_type"] = "segmentation"
    with pytest.raises(SleapExportError, match="malformed"):
        ModelSpec.from_json(json.dumps(data))


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_artifacts_carry_the_spec(artifact, suffix):
    spec = read_spec(artifact(["minimal_instance_single_instance"], suffix))
    assert spec.model_type == "single_instance"
    assert spec.skeleton.nodes == ("A", "B") and spec.skeleton.edges == ((0, 1),)
    stage = spec.stages[0]
    assert (stage.in_channels, stage.input_scale, stage.max_stride, stage.output_stride) == (3, 0.5, 4, 4)
    assert len(stage.checkpoint_sha256) == 64
    assert spec.versions["sleap-nn"] and spec.versions["torch"]


@pytest.mark.parametrize("command, suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_exports_are_byte_identical(tmp_path, assets, command, suffix):
    """Two exports (separate runs, different file names) give the same bytes.

    Separate processes, as users run them: within one process TorchScript
    mangles the names of classes it has traced before.
    """
    from conftest import MODELS
    from test_cli import cli

    first, second = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    for path in (first, second):
        cli(command, MODELS / "minimal_instance_centroid", "-o", path)
    assert first.read_bytes() == second.read_bytes()
