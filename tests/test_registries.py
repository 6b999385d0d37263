"""The format and model-type records agree with the code they name, and the rooms keep their doors."""

from __future__ import annotations

import ast
import contextlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sleap_export.core.errors import InputError
from sleap_export.runtime.artifacts.formats import FORMATS, artifact_suffixes, find_format, format_of, read_spec, verify_payload
from sleap_export.core.model_types import MODEL_TYPES, model_type_for_runs
from sleap_export.runtime.decoding.outputs import Outputs
from sleap_export.runtime.backends.runner import Runner
from sleap_export.core.spec import HEAD_TYPES

PACKAGE = Path(__file__).parents[1] / "sleap_export"
SCHEMA1 = Path(__file__).parent / "fixtures" / "schema1"
SCHEMA2 = Path(__file__).parent / "fixtures" / "schema2"


def test_each_suffix_belongs_to_one_format_with_a_runner_and_an_exporter():
    from sleap_export.exporting.writers.registry import EXPORTERS, exporter_for

    from sleap_export.exporting.options import LAYOUTS
    from sleap_export.runtime.artifacts.formats import SLEAP_NN_FOLDER

    assert len(artifact_suffixes()) == len(set(artifact_suffixes()))
    files = [fmt for fmt in FORMATS if fmt is not SLEAP_NN_FOLDER]
    for fmt in FORMATS:
        assert issubclass(fmt.runner_class(), Runner), fmt.name
    for fmt in files:
        for suffix in fmt.suffixes:
            assert format_of(f"model{suffix}") is fmt
            assert exporter_for(Path(f"model{suffix}"), None).format is fmt
        assert exporter_for(Path(f"model{fmt.suffixes[0]}"), fmt.name).format is fmt
    assert set(EXPORTERS) == {fmt.name for fmt in files}
    # The folder format has no suffix: `onnx --layout sleap-nn` writes it.
    assert SLEAP_NN_FOLDER.suffixes == () and "sleap-nn" in LAYOUTS
    assert find_format("model.h5") is None
    with pytest.raises(InputError, match="expected one of .onnx, .pt"):
        format_of("model.h5")


def test_each_model_type_names_runs_a_graph_a_completer_and_a_predictor():
    from sleap_export.exporting.graph import model_graphs as graphs
    from sleap_export.exporting.graph_builder import graph_class
    from sleap_export.runtime.drivers.predictor import PREDICTORS

    output_fields = {field for field in Outputs.__annotations__}
    for name, model_type in MODEL_TYPES.items():
        assert set(model_type.runs) <= set(HEAD_TYPES)
        assert model_type_for_runs(reversed(model_type.runs)) is model_type
        graph = graph_class(model_type)
        assert issubclass(graph, graphs.PoseGraph) and graph.n_stages == len(model_type.runs), name
        assert set(graph.output_names) <= output_fields, name
        assert callable(model_type.complete)
        assert name in PREDICTORS[name].model_types
    assert set(PREDICTORS) == set(MODEL_TYPES)
    assert model_type_for_runs(["centroid", "bottomup"]) is None


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_runtime_imports_nothing_from_the_export_side():
    export_side = ("sleap_export.exporting.graph_builder", "sleap_export.exporting.eager_runner", "sleap_export.exporting.writers", "sleap_export.exporting.checkpoints",
                   "sleap_export.exporting.graph", "sleap_export.evaluation.sleap_nn_reference", "torch", "sleap_nn")
    for module in sorted((PACKAGE / "runtime").rglob("*.py")):
        imported = _imported_modules(module)
        # Torch only where it is asked for: TorchScript's runner, and Outputs.to_torch (both import it lazily).
        allowed = {"torch"} if module.name in ("torch_runner.py", "outputs.py") else set()
        offending = {name for name in imported if name.startswith(export_side) and name not in allowed}
        assert not offending, f"{module.name} imports {offending}"
    # Importing every runtime module pulls in neither torch nor the export side.
    code = (
        "import importlib, pkgutil, sys, sleap_export.runtime as r\n"
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(r.__path__, 'sleap_export.runtime.')]\n"
        f"bad = [m for m in sys.modules if m.startswith({export_side!r})]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_runtime_loads_artifacts_and_the_package_loads_training_runs_too(tmp_path):
    import sleap_export
    from sleap_export.runtime.backends.torch_runner import TorchModuleRunner
    from sleap_export.runtime import load
    from conftest import MODELS

    with pytest.raises(InputError, match="load\\(\\) opens artifacts.*Predictor.from_model_paths"):
        load(tmp_path)
    runner = sleap_export.load(MODELS / "minimal_instance_centroid")
    assert isinstance(runner, TorchModuleRunner) and runner.spec.model_type == "centroid"


@pytest.mark.parametrize("name", ["demo_int8.onnx", "demo.pt", "demo_int8.engine"])
def test_artifacts_of_schema_1_still_read_verify_and_describe_themselves(name):
    path = SCHEMA1 / name
    spec = read_spec(path)
    record = spec.export
    assert record.opset == 17
    if name != "demo.pt":
        assert (record.calibration.frames, record.calibration.source) == (8, "clip.mp4")
        gate = record.accuracy_gate
        assert (gate.precision, gate.frames, gate.mean_px, gate.p99_px, gate.count_agreement) == ("int8", 8, 0.39, 1.562, 1.0)
        # The typed record says what schema 1 said in words.
        assert str(gate) == "int8 vs fp32 on 8 clip.mp4 frames: mean 0.390 px, p99 1.562 px, instance counts agree on 100.0%"
    if name.endswith(".engine"):
        assert record.int8_activations == "int8"
        target = record.engine.target
        assert (target.tensorrt, target.compute_capability, target.hardware_compatibility) == ("10.13.3.9", "9.0", "ampere+")
        assert record.engine.profile["frames"][1] == (4, 512, 512, 1)
        assert len(record.engine.source_payload_sha256) == 64
    else:
        assert verify_payload(path) == spec  # the digest schema 1 wrote still checks out


@pytest.mark.parametrize("name", ["demo_int8.onnx", "demo.pt"])
def test_artifacts_of_schema_2_read_and_verify_with_schema_1s_int8_settings(name):
    spec = read_spec(SCHEMA2 / name)
    assert verify_payload(SCHEMA2 / name) == spec  # the digest schema 2 wrote still checks out
    if "int8" in name:
        calibration, gate = spec.export.calibration, spec.export.accuracy_gate
        assert (calibration.frames, calibration.method, calibration.fp32_roles) == (8, "minmax", ())
        assert gate.precision == "int8" and gate.passed is None  # schema 2 recorded no verdict


@pytest.mark.parametrize("name", ["demo_int8.onnx", "demo.pt"])
@pytest.mark.parametrize("folder", [SCHEMA1, SCHEMA2], ids=["schema1", "schema2"])
def test_artifacts_of_older_schemas_predict_like_todays(folder, name, tmp_path):
    """The schema-1 and schema-2 artifacts run, and give what today's export of the same model gives."""
    from sleap_export.demo import CLIP, MODEL_DIR
    from sleap_export import export
    from sleap_export.runtime.drivers.predictor import Predictor

    old = folder / name
    # Their int8: min-max ranges, every convolution quantized.
    int8 = {"precision": "int8", "calibration": str(CLIP), "calibration_frames": 8, "calibration_method": "minmax", "int8_fp32_roles": ()}
    options = int8 if "int8" in name else {}
    with pytest.warns(UserWarning, match="on 8 frames") if options else contextlib.nullcontext():
        new = export([MODEL_DIR], tmp_path / name, **options)
    outputs = [Predictor.from_model_paths([p]).predict(str(CLIP), frames=range(0, 40, 4), as_labels=False) for p in (old, new)]
    for before, after in zip(*outputs):
        np.testing.assert_array_equal(before.pred_keypoints, after.pred_keypoints)
