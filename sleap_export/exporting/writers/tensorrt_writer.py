"""TensorRT exporter: our verified ONNX graph, built into an engine that carries its spec.

Precision is decided in the ONNX graph (fp16 casts around the networks,
symmetric int8 Q/DQ on their convolutions) and the network is built strongly
typed, so peaks, refinement and coordinates stay fp32, and a precision means
the same on TensorRT 10 and 11 (where the builder's precision flags are gone).
The spec rides in the engine as a constant output (see `runtime.artifact`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import attrs
import numpy as np

from sleap_export.core.atomic_files import written_atomically
from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.core.spec import EngineBuild, EngineTarget, ModelSpec
from sleap_export.exporting.graph_builder import BuiltGraph
from sleap_export.exporting.options import DEFAULT_SIDE, AxisRange, EngineOptions, ExportOptions
from sleap_export.exporting.writers.verification import sample_inputs, verify_outputs
from sleap_export.runtime.artifacts.embedded_spec import ENGINE_SPEC_OUTPUT, engine_spec_words, spec_json_in_engine
from sleap_export.runtime.artifacts.formats import read_spec
from sleap_export.runtime.backends.tensorrt_runner import import_tensorrt, local_target


def profile_shapes(spec: ModelSpec, options: EngineOptions) -> dict[str, tuple[tuple[int, ...], ...]]:
    """``input name -> (min, opt, max)`` shapes for the engine's one optimization profile."""
    stage = spec.stages[0]
    height = options.height or _default_side(stage.max_height)
    width = options.width or _default_side(stage.max_width)
    batch = options.batch
    shapes = {
        "frames": tuple((b, h, w, spec.input_channels) for b, h, w in zip(_triple(batch), _triple(height), _triple(width)))
    }
    if "centroids" in spec.input_names:
        slots = spec.postprocess.max_instances
        counts = (1, slots, max(slots, 64))
        shapes["centroids"] = tuple((b, k, 2) for b, k in zip(_triple(batch), counts))
        shapes["centroid_valid"] = tuple((b, k) for b, k in zip(_triple(batch), counts))
    return shapes


def _default_side(training_side: Optional[int]) -> AxisRange:
    """Any frame side in DEFAULT_SIDE's range, tuned for the training size where the config fixes one
    (frames of other sizes are fitted to it inside the graph)."""
    smallest, tuned, largest = DEFAULT_SIDE
    if training_side is None:
        return AxisRange(smallest, tuned, largest)
    return AxisRange(min(smallest, training_side), training_side, max(largest, training_side))


def _triple(axis: AxisRange) -> tuple[int, int, int]:
    return axis.min, axis.opt, axis.max


def default_timing_cache(target: EngineTarget) -> Path:
    """The shared timing cache for this TensorRT version and GPU (reused by every build)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sleap-export" / "tensorrt"
    return root / f"timing-{target.tensorrt}-sm{target.compute_capability.replace('.', '')}.cache"


def engine_graph(model, spec: ModelSpec):
    """The ONNX model TensorRT builds: no metadata, plus the spec as a constant int32 output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph_model = onnx.ModelProto()
    graph_model.CopyFrom(model)
    del graph_model.metadata_props[:]
    words = engine_spec_words(spec.to_json())
    graph_model.graph.node.append(
        helper.make_node("Constant", [], [ENGINE_SPEC_OUTPUT], value=numpy_helper.from_array(words), name=ENGINE_SPEC_OUTPUT)
    )
    graph_model.graph.output.append(helper.make_tensor_value_info(ENGINE_SPEC_OUTPUT, TensorProto.INT32, [len(words)]))
    return graph_model


def build_engine(onnx_path: Path, output: Path, options: EngineOptions) -> ModelSpec:
    """Build ``output`` from one of our ONNX artifacts on this machine's GPU; returns the engine's spec."""
    import onnx

    onnx_spec = read_spec(onnx_path)
    if onnx_spec.precision == "int8" and onnx_spec.export.int8_activations != "int8":
        raise InputError(
            f"{onnx_path.name} is int8 for ONNX Runtime's CPU provider (uint8 activations), which TensorRT cannot "
            "build; export int8 for TensorRT from the run folders: sleap-export trt RUN_DIR... --precision int8 --calibration DATA."
        )
    tensorrt = import_tensorrt()
    target = local_target(hardware_compatibility="ampere+" if options.hardware_compatibility else "none")
    shapes = profile_shapes(onnx_spec, options)
    built = EngineBuild(target=target, profile=shapes, source_payload_sha256=onnx_spec.payload_sha256)
    spec = attrs.evolve(onnx_spec, export=attrs.evolve(onnx_spec.export, engine=built), payload_sha256="")
    graph_bytes = engine_graph(onnx.load(str(onnx_path)), spec).SerializeToString()

    logger = tensorrt.Logger(tensorrt.Logger.WARNING)
    builder = tensorrt.Builder(logger)
    flags = 0
    if hasattr(tensorrt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(tensorrt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = tensorrt.OnnxParser(network, logger)
    if not parser.parse(graph_bytes):
        errors = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))
        raise SleapExportError(f"TensorRT could not parse the graph ({errors}); report this as a sleap-export bug.")
    network.name = f"sleap-export {spec.model_type}"
    config = builder.create_builder_config()
    if options.workspace_gb is not None:
        config.set_memory_pool_limit(tensorrt.MemoryPoolType.WORKSPACE, int(options.workspace_gb * 2**30))
    if spec.precision == "fp32" and hasattr(tensorrt.BuilderFlag, "TF32"):
        # TF32 rounds convolution inputs to 10 mantissa bits; fp32 means fp32, as in ONNX Runtime.
        config.clear_flag(tensorrt.BuilderFlag.TF32)
    if options.hardware_compatibility:
        config.hardware_compatibility_level = tensorrt.HardwareCompatibilityLevel.AMPERE_PLUS
    profile = builder.create_optimization_profile()
    for name, (smallest, tuned, largest) in shapes.items():
        profile.set_shape(name, smallest, tuned, largest)
    config.add_optimization_profile(profile)
    cache_path = None
    if options.use_timing_cache:
        cache_path = Path(options.timing_cache) if options.timing_cache else default_timing_cache(target)
        known = cache_path.read_bytes() if cache_path.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(known), ignore_mismatch=True)
    monitor = _progress_monitor(tensorrt) if options.show_progress else None
    if monitor is not None:  # kept referenced here for the whole build
        config.progress_monitor = monitor
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise SleapExportError(
            "TensorRT could not build the engine (its messages are above); a larger --workspace-gb or a "
            "smaller profile (--batch, --height, --width) may help."
        )
    plan = bytes(serialized)
    output.write_bytes(plan)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with written_atomically(cache_path) as partial:
            partial.write_bytes(bytes(config.get_timing_cache().serialize()))
    if spec_json_in_engine(plan) != spec.to_json():
        raise SleapExportError(f"{output.name} lost its embedded spec in the build; report this as a sleap-export bug.")
    _verify_engine(output, onnx_path, spec, shapes["frames"][1])
    return spec


def _verify_engine(engine_path: Path, onnx_path: Path, spec: ModelSpec, frame_shape) -> None:
    """fp32 engines must give the ONNX artifact's outputs (reduced precision was gated on the ONNX)."""
    from sleap_export.runtime.backends.onnx_runner import OnnxRunner
    from sleap_export.runtime.backends.tensorrt_runner import TensorRTRunner

    if spec.precision != "fp32":
        return
    batch, height, width, _ = frame_shape
    inputs = sample_inputs(spec, batch=batch, size=(height, width))
    frames, centroids = inputs[0], (inputs[1] if len(inputs) > 1 else None)
    if centroids is not None:
        centroids = np.where(inputs[2][..., None], centroids, np.nan)
    with OnnxRunner(onnx_path, spec) as reference, TensorRTRunner(engine_path, spec) as engine:
        expected = reference.infer(frames, centroids=centroids)
        actual = engine.infer(frames, centroids=centroids)
    verify_outputs(spec, [expected[n] for n in spec.output_names], [actual[n] for n in spec.output_names], "TensorRT")


def _progress_monitor(tensorrt):
    """Prints the builder's top-level phases on stderr."""

    class BuildProgress(tensorrt.IProgressMonitor):
        def __init__(self):
            tensorrt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                print(f"building engine: {phase_name}", file=sys.stderr, flush=True)

        def step_complete(self, phase_name, step):
            return True  # keep building

        def phase_finish(self, phase_name):
            pass

    return BuildProgress()


def check_machine(options: ExportOptions) -> None:
    """Before any model is loaded: TensorRT installed and a GPU visible."""
    local_target()


def write_engine(built: BuiltGraph, path: Path, options: ExportOptions) -> None:
    """Run folders -> verified ONNX (at the chosen precision, int8 symmetric) -> engine."""
    from sleap_export.exporting.writers.onnx_writer import write_onnx

    onnx_path = path.with_name(path.name + ".onnx")
    try:
        write_onnx(built, onnx_path, attrs.evolve(options, int8_target="tensorrt"))
        build_engine(onnx_path, path, options.tensorrt)
    finally:
        onnx_path.unlink(missing_ok=True)
