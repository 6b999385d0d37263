"""TensorRT: what can be checked without a GPU (profiles, the spec inside engines,
compatibility rules, refusals), and GPU tests that skip cleanly elsewhere
(`make gpu-test`; parity of engines with sleap-nn is in test_parity.py).
"""

from __future__ import annotations

import copy
import json

import attrs
import numpy as np
import onnx
import onnxruntime
import pytest

from sleap_export.exporting.options import AxisRange, EngineOptions
from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.exporting.writers.tensorrt_writer import (
    default_timing_cache,
    engine_graph,
    profile_shapes,
)
from sleap_export.runtime.artifacts.formats import read_spec
from sleap_export.runtime.artifacts.embedded_spec import ENGINE_SPEC_OUTPUT, spec_json_in_engine
from sleap_export.runtime.backends.tensorrt_runner import built_for, compatibility_problem, cuda_device_index
from sleap_export.core.spec import EngineBuild, EngineTarget
from conftest import DATA, MODELS, gpu_problem
from test_cli import cli

CENTROID = "minimal_instance_centroid"
CENTERED = "minimal_instance_centered_instance"
VIDEO = DATA / "centered_pair_small.mp4"
H100 = EngineTarget(tensorrt="10.13.3.9", gpu="NVIDIA H100 80GB HBM3", compute_capability="9.0")
needs_gpu = pytest.mark.skipif(gpu_problem() is not None, reason=str(gpu_problem()))


def test_axis_ranges_parse_and_refuse_nonsense():
    assert AxisRange.parse("1/4/16", "batch") == AxisRange(1, 4, 16)
    assert AxisRange.parse("384", "height") == AxisRange(384, 384, 384)
    for text, message in (("4/2/8", "min <= opt <= max"), ("0/1/2", "min <= opt <= max"), ("1/4", "MIN/OPT/MAX"), ("big", "MIN/OPT/MAX")):
        with pytest.raises(InputError, match=message):
            AxisRange.parse(text, "batch")
    with pytest.raises(InputError, match="--workspace-gb must be positive"):
        EngineOptions(workspace_gb=0)


def test_profiles_cover_every_input_with_the_chosen_ranges(artifact):
    spec = read_spec(artifact([CENTROID], ".onnx"))
    shapes = profile_shapes(spec, EngineOptions())
    assert list(shapes) == ["frames"]
    # Any size from 64 to 2048 (the graph fits frames to the 384x384 training size), tuned for 384.
    assert spec.stages[0].max_height == 384
    assert shapes["frames"] == ((1, 64, 64, 1), (4, 384, 384, 1), (16, 2048, 2048, 1))
    custom = EngineOptions(batch=AxisRange(2, 8, 8), height=AxisRange(384, 384, 384), width=AxisRange(300, 400, 500))
    assert profile_shapes(spec, custom)["frames"] == ((2, 384, 300, 1), (8, 384, 400, 1), (8, 384, 500, 1))
    described = EngineBuild(H100, profile_shapes(spec, custom), "").describe_profile()
    assert described == "frames 2x384x300x1 .. 8x384x400x1 .. 8x384x500x1"
    free = attrs.evolve(spec, stages=[attrs.evolve(spec.stages[0], max_height=None, max_width=None)])
    assert profile_shapes(free, EngineOptions())["frames"][1] == (4, 512, 512, 1)

    centered = read_spec(artifact([CENTERED], ".onnx"))
    shapes = profile_shapes(centered, EngineOptions())
    assert list(shapes) == ["frames", "centroids", "centroid_valid"]
    slots = centered.postprocess.max_instances
    assert shapes["centroids"] == ((1, 1, 2), (4, slots, 2), (16, 64, 2))
    assert shapes["centroid_valid"] == ((1, 1), (4, slots), (16, 64))


def test_the_spec_output_travels_through_a_graph_runtime_and_is_found_in_engine_bytes(artifact, tmp_path):
    """The engine's graph is an ONNX model with one more output: run it (ONNX Runtime
    standing in for TensorRT) and the spec's bytes come out, findable by a plain scan."""
    onnx_path = artifact([CENTROID], ".onnx")
    spec = read_spec(onnx_path)
    graph = engine_graph(onnx.load(str(onnx_path)), spec)
    assert [o.name for o in graph.graph.output][-1] == ENGINE_SPEC_OUTPUT
    assert not graph.metadata_props  # the spec is in the graph, not beside it
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    frames = np.zeros((1, 384, 384, 1), np.uint8)
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"frames": frames})))
    words = outputs[ENGINE_SPEC_OUTPUT]
    assert words.dtype == np.int32
    # Engines store constants verbatim among other bytes; a torn copy of the magic must not confuse the scan.
    engine_bytes = b"\x7fplan" + words.tobytes()[:30] + bytes(range(256)) * 8 + words.tobytes() + b"\0" * 64
    assert spec_json_in_engine(engine_bytes) == spec.to_json()
    engine = tmp_path / "model.engine"
    engine.write_bytes(engine_bytes)
    assert read_spec(engine) == spec
    result = cli("inspect", str(engine), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model_type"] == "centroid"


# Every op our graphs use, each checked against onnx-tensorrt's operator support
# matrix (docs/operators.md, TensorRT 8.5 and later: all "Y", no restriction that
# our graphs break: TopK's k <= 3840, Einsum without broadcasting). A new op in a
# graph fails this test until it is checked there and added. IsInf is absent on
# purpose: older parsers lack it, so the graphs do not use torch.nan_to_num. The box-driven
# top-down graphs add CumSum (its axis a constant), GridSample (4D) and Loop (the NMS: no scan
# outputs, carried tensors of one shape), within their restrictions (TensorRT 10's matrix).
# The top-down segmentation graph adds Split (of int64 index tensors; TensorRT 10: FP32-INT64, BOOL).
TENSORRT_PARSER_OPS = frozenset(
    "Abs Add And ArgMax Cast Clip Concat Constant ConstantOfShape Conv ConvTranspose CumSum "
    "DequantizeLinear Div Einsum Equal Exp Expand Flatten Floor Gather GatherElements Gemm GlobalAveragePool Greater "
    "GreaterOrEqual GridSample IsNaN Less LessOrEqual Loop MatMul Max MaxPool Min Mod Mul Neg NonZero Not Or Pad "
    "Pow QuantizeLinear Range Reciprocal ReduceL2 ReduceMax ReduceMean ReduceSum Relu Reshape Resize "
    "Round ScatterND Shape Sigmoid Slice Softmax Split Sqrt Squeeze Sub TopK Transpose Unsqueeze Where".split()
)
# Types, beside ops. TensorRT keeps UINT8 for network inputs and outputs (onnx-tensorrt's matrix for
# TensorRT 10: "UINT8 is only supported as network input or output tensor types"): a uint8 tensor
# may be cast (ICastLayer converts between all its types, TensorRT 10.6 on), transposed or reshaped
# (shuffles: every graph transposes its uint8 frames before casting them, and those engines build
# on TensorRT 10.13) and have its shape taken; any other op refuses it, e.g. the ScatterND importer
# ("Found unsupported input type of UINT8", addScatterLayer's notInvalidType check) and elementwise
# layers (PROD, SUM: int8, int32, int64 and float types only). The parser's elementwiseCheck refuses
# BOOL inputs to arithmetic.
UINT8_CONSUMERS = frozenset({"Cast", "Reshape", "Shape", "Transpose"})
UINT8_PRODUCERS = frozenset({"Cast", "Reshape", "Transpose"})
NO_BOOL_ARITHMETIC = frozenset({"Add", "Div", "Max", "Min", "Mul", "Pow", "Sub", "Sum"})


def ops_of(graph: onnx.GraphProto) -> set[str]:
    """The op types of ``graph`` and of the graphs inside its nodes (a Loop's body)."""
    found = set()
    for node in graph.node:
        found.add(node.op_type)
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                found |= ops_of(attribute.g)
    return found


def tensorrt_type_problems(model: onnx.ModelProto) -> list[str]:
    """Nodes of ``model`` whose tensor types TensorRT refuses (see UINT8_CONSUMERS), one line each:
    ``"ScatterND (node name): uint8 input"``. Types come from ONNX shape inference; Loop bodies are
    left out (their uint8-free index arithmetic is checked by the op list)."""
    from onnx import TensorProto

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    types.update({t.name: t.data_type for t in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    types[node.output[0]] = attribute.t.data_type
    problems = []
    for node in graph.node:
        inputs = {types.get(name) for name in node.input if name}
        outputs = {types.get(name) for name in node.output if name}
        where = f"{node.op_type} ({node.name or node.output[0]})"
        if TensorProto.UINT8 in inputs and node.op_type not in UINT8_CONSUMERS:
            problems.append(f"{where}: uint8 input")
        if TensorProto.UINT8 in outputs and node.op_type not in UINT8_PRODUCERS:
            problems.append(f"{where}: uint8 output")
        if TensorProto.BOOL in inputs and node.op_type in NO_BOOL_ARITHMETIC:
            problems.append(f"{where}: bool input to arithmetic")
    return problems


def tensorrt_double_downcast(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model as TensorRT's parser runs it: it has no float64, and casts DOUBLE
    tensors, constants and Casts down to FLOAT (onnx-tensorrt's documented rule)."""
    from onnx import TensorProto, numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph

    def single(tensor):
        return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)

    for tensor in graph.initializer:
        if tensor.data_type == TensorProto.DOUBLE:
            tensor.CopyFrom(single(tensor))
    for node in graph.node:
        for attribute in node.attribute:
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == TensorProto.DOUBLE:
                attribute.i = TensorProto.FLOAT
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == TensorProto.DOUBLE:
                attribute.t.CopyFrom(single(attribute.t))
    for value in list(graph.input) + list(graph.output):
        if value.type.tensor_type.elem_type == TensorProto.DOUBLE:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    del graph.value_info[:]
    return model


@pytest.mark.parametrize(
    "models",
    [
        [CENTROID, CENTERED], ["minimal_instance_bottomup"], ["minimal_instance_single_instance"], ["new_bbox_centernet"],
        ["new_bbox_ssd"], ["new_bbox_ssd", "new_centered_instance_bbox"], [CENTROID, "new_embedding"],
        [CENTROID, CENTERED, "new_embedding"],
    ],
    ids=str,
)
def test_engine_graphs_use_only_ops_the_tensorrt_parser_imports(models, artifact):
    onnx_path = artifact(models, ".onnx")
    used = ops_of(engine_graph(onnx.load(str(onnx_path)), read_spec(onnx_path)).graph)
    assert used <= TENSORRT_PARSER_OPS, f"check onnx-tensorrt's operator matrix for {sorted(used - TENSORRT_PARSER_OPS)}"
    problems = tensorrt_type_problems(engine_graph(onnx.load(str(onnx_path)), read_spec(onnx_path)))
    assert not problems, f"TensorRT refuses these tensor types: {problems}"


def test_engine_graphs_survive_tensorrts_float64_downcast(artifact):
    """Size matching computes scales in float64 like sleap-nn; TensorRT runs them in
    float32. On frames that need resizing, poses move by float rounding only."""
    import cv2

    onnx_path = artifact([CENTROID, CENTERED], ".onnx")
    model = onnx.load(str(onnx_path))
    as_exported = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    as_tensorrt = onnxruntime.InferenceSession(
        tensorrt_double_downcast(model).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    import sleap_io as sio

    video = sio.load_video(str(VIDEO))
    for width, height in [(384, 384), (301, 250), (1024, 1024)]:
        frames = np.stack([cv2.resize(video[i], (width, height))[..., None] for i in range(0, 40, 5)])
        expected = dict(zip(read_spec(onnx_path).output_names, as_exported.run(None, {"frames": frames})))
        actual = dict(zip(read_spec(onnx_path).output_names, as_tensorrt.run(None, {"frames": frames})))
        np.testing.assert_array_equal(expected["instance_valid"], actual["instance_valid"])
        found = expected["instance_valid"]
        assert found.sum() >= 8
        np.testing.assert_allclose(
            actual["pred_keypoints"][found], expected["pred_keypoints"][found], atol=0.05, rtol=0, equal_nan=True
        )


def test_compatibility_rules():
    assert compatibility_problem(H100, H100) is None
    other_version = attrs.evolve(H100, tensorrt="10.14.1.48")
    assert "built with TensorRT 10.13.3.9 and this machine has TensorRT 10.14.1.48" in compatibility_problem(H100, other_version)
    ada = EngineTarget(tensorrt=H100.tensorrt, gpu="NVIDIA GeForce RTX 4090", compute_capability="8.9")
    problem = compatibility_problem(H100, ada, "model.engine")
    assert "built for compute capability 9.0 (NVIDIA H100 80GB HBM3)" in problem
    assert "sleap-export trt RUN_DIR... -o model.engine" in problem and "--hardware-compatibility" in problem
    portable = attrs.evolve(H100, hardware_compatibility="ampere+")
    assert compatibility_problem(portable, ada) is None
    turing = EngineTarget(tensorrt=H100.tensorrt, gpu="Tesla T4", compute_capability="7.5")
    assert "hardware-compatible from Ampere" in compatibility_problem(portable, turing)
    # Same compute capability, another card: TensorRT runs it.
    assert compatibility_problem(H100, attrs.evolve(H100, gpu="NVIDIA H100 PCIe")) is None
    assert all("\n" not in p for p in (compatibility_problem(H100, ada), compatibility_problem(H100, other_version)))


def test_engine_targets_round_trip_through_the_spec(artifact):
    spec = read_spec(artifact([CENTROID], ".onnx"))
    with pytest.raises(SleapExportError, match="does not say which TensorRT and GPU built it"):
        built_for(spec)
    built = attrs.evolve(spec, export=attrs.evolve(spec.export, engine=EngineBuild(target=H100, profile={}, source_payload_sha256=spec.payload_sha256)))
    assert built_for(read_spec_via_json(built)) == H100
    assert default_timing_cache(H100).name == "timing-10.13.3.9-sm90.cache"


def read_spec_via_json(spec):
    from sleap_export.core.spec import ModelSpec

    return ModelSpec.from_json(spec.to_json())


def test_engines_run_on_gpus_only():
    assert cuda_device_index("cuda") == 0 and cuda_device_index("cuda:1") == 1
    for device in ("cpu", "cuda:x", "gpu"):
        with pytest.raises(InputError, match="TensorRT engines run on a GPU"):
            cuda_device_index(device)


def test_symmetric_int8_for_tensorrt_has_zero_points_of_zero(tmp_path):
    from sleap_export.exporting.options import ExportOptions
    from sleap_export import export

    # About zero points, not accuracy: kept whatever its gate reads.
    options = ExportOptions.from_fields(
        precision="int8", calibration=str(VIDEO), calibration_frames=8, int8_target="tensorrt", keep_inaccurate=True
    )
    with pytest.warns(UserWarning, match="on 8 frames"):
        path = export([MODELS / CENTROID], tmp_path / "trt-int8.onnx", options=options)
    assert read_spec(path).export.int8_activations == "int8"
    model = onnx.load(str(path))
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_points = [initializers[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_gpu_engine_builds_loads_in_plain_tensorrt_and_predicts(precision, tmp_path, artifact):
    import tensorrt

    from sleap_export import export
    from sleap_export.runtime.drivers.predictor import Predictor

    # About building and loading engines: a reduced one is kept whatever its gate reads.
    fields = {} if precision == "fp32" else {"precision": precision, "calibration": str(VIDEO), "calibration_frames": 16, "keep_inaccurate": True}
    cache = tmp_path / "timing.cache"
    engine_path = export(
        [MODELS / CENTROID], tmp_path / "model.engine", tensorrt=EngineOptions(timing_cache=cache), **fields
    )
    assert cache.stat().st_size > 0
    spec = read_spec(engine_path)
    assert spec.precision == precision and spec.export.engine.target.tensorrt == tensorrt.__version__
    # Plain TensorRT loads it: the spec is one more output, nothing else changes.
    engine = tensorrt.Runtime(tensorrt.Logger()).deserialize_cuda_engine(engine_path.read_bytes())
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    assert names[0] == "frames" and ENGINE_SPEC_OUTPUT in names
    labels = Predictor.from_artifact(engine_path).predict(str(VIDEO), frames=range(8))
    onnx_labels = Predictor.from_artifact(artifact([CENTROID], ".onnx")).predict(str(VIDEO), frames=range(8))
    assert [len(lf.instances) for lf in labels.labeled_frames] == [len(lf.instances) for lf in onnx_labels.labeled_frames]


def test_onnx_on_cuda_runs_there_or_fails_loudly(artifact):
    """device="cuda" never falls back to the CPU in silence."""
    from sleap_export.runtime.drivers.predictor import Predictor
    from sleap_export.runtime import load

    path = artifact([CENTROID], ".onnx")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(SleapExportError, match="no CUDAExecutionProvider here; install onnxruntime-gpu"):
            load(path, device="cuda").activate()
        return
    on_gpu = Predictor.from_artifact(path, device="cuda").predict(str(VIDEO), frames=range(8))
    on_cpu = Predictor.from_artifact(path).predict(str(VIDEO), frames=range(8))
    for gpu_frame, cpu_frame in zip(on_gpu.labeled_frames, on_cpu.labeled_frames):
        assert len(gpu_frame.instances) == len(cpu_frame.instances)


class FakeCudart:
    """cuda-python's runtime API over host memory: enough to run TensorRTRunner without a GPU."""

    class cudaMemcpyKind:
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self):
        self.memory = {}  # pointer -> backing array
        self.mallocs = 0

    def cudaSetDevice(self, index):
        return (0,)

    def cudaStreamCreate(self):
        return (0, 7)

    def cudaStreamDestroy(self, stream):
        return (0,)

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaMalloc(self, nbytes):
        block = np.zeros(nbytes, np.uint8)
        self.memory[block.ctypes.data] = block
        self.mallocs += 1
        return (0, block.ctypes.data)

    def cudaFree(self, pointer):
        self.memory.pop(pointer)
        return (0,)

    def cudaMemcpyAsync(self, destination, source, nbytes, kind, stream):
        import ctypes

        ctypes.memmove(destination, source, nbytes)
        return (0,)

    def view(self, pointer, dtype, shape):
        return np.frombuffer(self.memory[pointer], dtype=dtype, count=int(np.prod(shape))).reshape(shape)


class FakeTensorRT:
    """TensorRT's runtime API, executing the engine's graph with ONNX Runtime."""

    __version__ = "10.13.3.9"

    class TensorIOMode:
        INPUT, OUTPUT = "input", "output"

    class Logger:
        ERROR, WARNING = 0, 1

        def __init__(self, severity=0):
            pass

    @staticmethod
    def nptype(dtype):
        return dtype

    def __init__(self, graph, cudart):
        self.graph, self.cudart = graph, cudart

    def Runtime(self, logger):
        fake = self

        class Runtime:
            def deserialize_cuda_engine(self, data):
                return FakeEngine(fake.graph, fake.cudart)

        return Runtime()


class FakeEngine:
    def __init__(self, graph, cudart):
        self.session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
        self.cudart = cudart
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.names = list(self.inputs) + [o.name for o in self.session.get_outputs()]
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, index):
        return self.names[index]

    def get_tensor_mode(self, name):
        return "input" if name in self.inputs else "output"

    def get_tensor_dtype(self, name):
        kinds = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32, "tensor(bool)": np.bool_, "tensor(int32)": np.int32, "tensor(int64)": np.int64}
        node = self.inputs.get(name) or next(o for o in self.session.get_outputs() if o.name == name)
        return kinds[node.type]

    def get_tensor_profile_shape(self, name, profile):
        return (1, 64, 64, 1), (4, 384, 384, 1), (16, 2048, 2048, 1)

    def create_execution_context(self):
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine):
        self.engine, self.shapes, self.addresses, self.results = engine, {}, {}, None

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        self.results = None
        return shape[0] <= 16

    def set_tensor_address(self, name, pointer):
        self.addresses[name] = pointer

    def _run(self):
        if self.results is None:
            feed = {
                n: self.engine.cudart.view(self.addresses[n], self.engine.get_tensor_dtype(n), self.shapes[n]).copy()
                for n in self.engine.inputs
            }
            names = [o.name for o in self.engine.session.get_outputs()]
            self.results = dict(zip(names, self.engine.session.run(None, feed)))
        return self.results

    def get_tensor_shape(self, name):
        return self._run()[name].shape

    def execute_async_v3(self, stream):
        for name, value in self._run().items():
            self.engine.cudart.view(self.addresses[name], value.dtype, value.shape)[...] = value
        return True


def test_the_engine_runner_feeds_buffers_reuses_them_and_returns_what_onnx_gives(artifact, tmp_path, monkeypatch):
    """TensorRTRunner's buffer and copy logic over fake CUDA and TensorRT modules that execute
    the engine's graph with ONNX Runtime: the same poses as the ONNX artifact, allocations
    only when a tensor grows, profile violations refused in one line."""
    from sleap_export.runtime.backends import tensorrt_runner as trt_runtime
    from sleap_export.runtime.drivers.predictor import Predictor
    from sleap_export.runtime import load
    from test_bad_inputs import fake_engine

    onnx_path = artifact([CENTROID], ".onnx")
    spec = read_spec(onnx_path)
    spec = attrs.evolve(spec, export=attrs.evolve(spec.export, engine=EngineBuild(target=H100, profile={}, source_payload_sha256=spec.payload_sha256)))
    engine_path = fake_engine(tmp_path / "model.engine", spec)
    cudart = FakeCudart()
    fake = FakeTensorRT(engine_graph(onnx.load(str(onnx_path)), spec), cudart)
    monkeypatch.setattr(trt_runtime, "_cudart", lambda: cudart)
    monkeypatch.setattr(trt_runtime, "import_tensorrt", lambda: fake)
    monkeypatch.setattr(trt_runtime, "local_target", lambda device_index=0, hardware_compatibility="none": H100)

    runner = load(engine_path)
    assert not cudart.memory  # nothing allocated before activation
    assert isinstance(runner, trt_runtime.TensorRTRunner) and runner.device == "cuda"
    frames = range(12)
    ours = Predictor(runner, batch_size=4).predict(str(VIDEO), frames=frames)
    reference = Predictor.from_artifact(onnx_path, batch_size=4).predict(str(VIDEO), frames=frames)
    for mine, theirs in zip(ours.labeled_frames, reference.labeled_frames):
        assert len(mine.instances) == len(theirs.instances)
        for a, b in zip(mine.instances, theirs.instances):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    # One allocation per tensor (input, outputs, the spec's), reused by the 3 batches.
    assert cudart.mallocs == len(spec.input_names) + len(spec.output_names) + 1
    with pytest.raises(InputError, match=r"frames of shape \(17, 384, 384, 1\) is outside model.engine's profile"):
        runner.infer(np.zeros((17, 384, 384, 1), np.uint8))
    runner.deactivate()
    assert cudart.memory == {}


class FakeBuilderTensorRT(FakeTensorRT):
    """FakeTensorRT plus the builder API: "building" parses the ONNX graph and stores its
    constants verbatim among other bytes, as TensorRT's plan files do."""

    class NetworkDefinitionCreationFlag:
        STRONGLY_TYPED = 5

    class BuilderFlag:
        TF32 = 6

    class MemoryPoolType:
        WORKSPACE = 0

    class HardwareCompatibilityLevel:
        AMPERE_PLUS = 1

    def __init__(self, cudart):
        super().__init__(None, cudart)
        self.calls = []

    def Builder(self, logger):
        fake = self

        class Network:
            name = ""

        class Config:
            progress_monitor = None
            hardware_compatibility_level = None

            def set_memory_pool_limit(self, pool, size):
                fake.calls.append(("workspace", size))

            def clear_flag(self, flag):
                fake.calls.append(("clear", flag))

            def add_optimization_profile(self, profile):
                fake.calls.append(("profile", dict(profile.shapes)))

            def create_timing_cache(self, data):
                fake.calls.append(("timing cache in", len(data)))
                return data

            def set_timing_cache(self, cache, ignore_mismatch):
                return True

            def get_timing_cache(self):
                class Cache:
                    def serialize(self):
                        return b"timings"

                return Cache()

        class Profile:
            def __init__(self):
                self.shapes = {}

            def set_shape(self, name, smallest, tuned, largest):
                self.shapes[name] = (smallest, tuned, largest)

        class Builder:
            def create_network(self, flags):
                fake.calls.append(("flags", flags))
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                fake.calls.append(("name", network.name))
                constants = [a.t.raw_data for n in fake.graph.graph.node for a in n.attribute if a.name == "value"]
                return b"\x7fplan" + b"".join(constants) + b"\0" * 16

        return Builder()

    def OnnxParser(self, network, logger):
        fake = self

        class Parser:
            num_errors = 0

            def parse(self, data):
                fake.graph = onnx.load_from_string(data)
                return True

        return Parser()


def test_the_engine_build_flow_over_a_fake_tensorrt(tmp_path, monkeypatch):
    """`export(..., format="tensorrt")` end to end on CPU: ONNX, profile, strongly typed
    network, TF32 off, timing cache, the spec in the plan, verification against ONNX."""
    from sleap_export import export
    from sleap_export.exporting.writers import tensorrt_writer as trt_exporter
    from sleap_export.runtime.backends import tensorrt_runner as trt_runtime

    cudart = FakeCudart()
    fake = FakeBuilderTensorRT(cudart)
    for module in (trt_runtime, trt_exporter):
        monkeypatch.setattr(module, "import_tensorrt", lambda: fake, raising=False)
        monkeypatch.setattr(module, "local_target", lambda device_index=0, hardware_compatibility="none": attrs.evolve(H100, hardware_compatibility=hardware_compatibility), raising=False)
    monkeypatch.setattr(trt_runtime, "_cudart", lambda: cudart)
    cache = tmp_path / "timing.cache"
    options = EngineOptions(batch=AxisRange(1, 2, 4), timing_cache=cache, workspace_gb=2, hardware_compatibility=True)
    engine = export([MODELS / CENTROID], tmp_path / "model.engine", tensorrt=options)

    spec = read_spec(engine)
    engine_build = spec.export.engine
    assert engine_build.target == attrs.evolve(H100, hardware_compatibility="ampere+")
    assert engine_build.profile["frames"] == ((1, 64, 64, 1), (2, 384, 384, 1), (4, 2048, 2048, 1))
    assert engine_build.describe_profile() == "frames 1x64x64x1 .. 2x384x384x1 .. 4x2048x2048x1"
    assert spec.payload_sha256 == "" and len(engine_build.source_payload_sha256) == 64
    calls = dict(fake.calls)
    assert calls["flags"] == 1 << 5 and calls["clear"] == 6 and calls["workspace"] == 2 * 2**30
    assert calls["profile"]["frames"][1] == (2, 384, 384, 1) and calls["name"] == "sleap-export centroid"
    assert cache.read_bytes() == b"timings"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.engine", "timing.cache"]  # no ONNX left behind
