"""From sleap-nn run folders to a traceable graph and the spec that describes it.

This is the door between the checkpoint reader and everything that traces:
exporters and the eager runner both start here, so they run the same module.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Optional, Sequence

import attrs

from sleap_export.errors import InputError
from sleap_export.runtime.model_types import model_type_for_runs, valid_run_combinations
from sleap_export.spec import CALIBRATION_METHODS, CONVOLUTION_ROLES, ExportRecord, ModelSpec, PostprocessSpec, one_of, within


PRECISIONS = ("fp32", "fp16", "int8")
# Frame sides (min, opt, max) a TensorRT engine accepts when neither the user nor the training config says.
DEFAULT_SIDE = (64, 512, 2048)


@attrs.frozen
class AxisRange:
    """One input axis of an optimization profile: the smallest, the tuned-for and the largest size."""

    min: int
    opt: int
    max: int

    def __attrs_post_init__(self):
        if not 1 <= self.min <= self.opt <= self.max:
            raise InputError(f"A profile range needs 1 <= min <= opt <= max, got {self}; e.g. 1/4/16.")

    @classmethod
    def parse(cls, text: str, axis: str) -> "AxisRange":
        """``"1/4/16"`` (min/opt/max) or ``"384"`` (fixed)."""
        try:
            values = [int(part) for part in text.split("/")]
        except ValueError:
            values = []
        if len(values) == 1:
            values *= 3
        if len(values) != 3:
            raise InputError(f"--{axis} takes MIN/OPT/MAX or one size, e.g. 1/4/16 or 384; got {text!r}.")
        return cls(*values)

    def __str__(self) -> str:
        return str(self.min) if self.min == self.max else f"{self.min}/{self.opt}/{self.max}"


@attrs.frozen
class EngineOptions:
    """How to build an engine: profile per axis, builder memory, timing cache, portability."""

    # The opt batch is the batch prediction runs at (predict's default is 4).
    batch: AxisRange = AxisRange(1, 4, 16)
    # None: DEFAULT_SIDE's range, tuned for the training size where the config fixes one.
    height: Optional[AxisRange] = None
    width: Optional[AxisRange] = None
    # None leaves TensorRT's default (all of the GPU's memory), which large models need.
    workspace_gb: Optional[float] = attrs.field(default=None)
    # None: one cache per TensorRT version and GPU in the user's cache folder.
    timing_cache: Optional[Path] = None
    use_timing_cache: bool = True
    hardware_compatibility: bool = False
    show_progress: bool = False

    @workspace_gb.validator
    def _positive(self, attribute, value):
        if value is not None and value <= 0:
            raise InputError(f"--workspace-gb must be positive, got {value}.")


@attrs.frozen
class ExportOptions:
    """Export settings a user chooses; the decoding ones are recorded in the spec."""

    postprocess: PostprocessSpec = PostprocessSpec()
    opset: int = 17
    # Output the network's head maps instead of poses (checks against other frameworks).
    raw_heads: bool = False
    # Reduced precision is the network's alone: "fp16" runs it in half precision (GPU
    # providers, TensorRT); "int8" quantizes its convolutions, calibrated on
    # ``calibration`` (video or .slp). Both are gated against fp32 on frames of
    # ``calibration`` (``max_deviation``: p99 px).
    precision: str = attrs.field(default="fp32", validator=one_of(*PRECISIONS))
    calibration: Optional[str] = None
    # int8 for ONNX Runtime's CPU provider (uint8 activations) or TensorRT (symmetric int8 only).
    int8_target: str = attrs.field(default="onnxruntime", validator=one_of("onnxruntime", "tensorrt"))
    calibration_frames: int = attrs.field(default=64, validator=within(1))
    # int8 activation ranges by onnxruntime's min-max, entropy or percentile calibrator, and the
    # convolution roles left in fp32 (`spec.CONVOLUTION_ROLES`); defaults measured, see README.
    calibration_method: str = attrs.field(default="minmax", validator=one_of(*CALIBRATION_METHODS))
    int8_fp32_roles: tuple[str, ...] = attrs.field(
        default=("heads",), converter=tuple, validator=attrs.validators.deep_iterable(one_of(*CONVOLUTION_ROLES))
    )
    max_deviation: Optional[float] = attrs.field(default=None, validator=within(0.0))
    # Write an artifact that misses its precision's tolerance (its spec says so) instead of failing.
    keep_inaccurate: bool = False
    # TensorRT builds (the ``trt`` format) only.
    tensorrt: EngineOptions = EngineOptions()

    @classmethod
    def from_fields(cls, **fields) -> "ExportOptions":
        """Build from flat fields (``max_instances=``, ``opset=``, ...), as the CLI and presets give them."""
        own = {f.name for f in attrs.fields(cls)} - {"postprocess"}
        decoding = {f.name for f in attrs.fields(PostprocessSpec)}
        unknown = set(fields) - own - decoding
        if unknown:
            raise InputError(
                f"Unknown export option(s) {', '.join(sorted(unknown))}; known: "
                f"{', '.join(sorted(own | decoding))}."
            )
        try:
            post = PostprocessSpec(**{k: v for k, v in fields.items() if k in decoding})
            return cls(postprocess=post, **{k: v for k, v in fields.items() if k in own})
        except (TypeError, ValueError) as err:
            raise InputError(f"Invalid export option: {err}.") from None


@attrs.frozen
class BuiltGraph:
    """A traceable module and its spec (without the artifact's output names)."""

    module: object  # torch.nn.Module taking uint8 (B, H, W, C) frames
    spec: ModelSpec


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def build_graph(model_paths: Sequence[str | Path], options: ExportOptions = ExportOptions()) -> BuiltGraph:
    """Load the run(s), check they make a valid artifact, and wrap them in its graph."""
    from sleap_export.checkpoint import load_run, model_type_of, resolve_run_dir
    from sleap_export.graph import models as graphs
    from sleap_export.graph.models import SizeMatch, Stage

    if not 1 <= len(model_paths) <= 2:
        raise InputError(
            f"Got {len(model_paths)} model folders; pass one run, or a centroid run and "
            f"a centered-instance run. Valid: {valid_run_combinations()}."
        )
    # Check the pairing from the configs before loading any weights.
    head_types = [model_type_of(resolve_run_dir(p)) for p in model_paths]
    model_type = model_type_for_runs(head_types)
    if model_type is None and len(model_paths) == 1:
        load_run(model_paths[0])  # raises its own "not supported" error
    if model_type is None:
        raise InputError(
            f"Runs of types {' + '.join(sorted(head_types))} do not make one artifact; valid: "
            f"{valid_run_combinations()}."
        )
    runs = sorted((load_run(p) for p in model_paths), key=lambda r: model_type.runs.index(r.stage.head_type))
    if len({r.stage.in_channels for r in runs}) > 1:
        raise InputError(
            "The two runs take different channel counts (grayscale vs RGB); pair runs "
            "trained on the same kind of frames."
        )
    post = attrs.evolve(options.postprocess, edge_order=_edge_order(runs[0].stage.paf_edges))
    if post.grouping == "graph" and model_type.name != "bottomup":
        raise InputError("--grouping graph applies to bottom-up (PAF) models only; leave it out.")
    if options.raw_heads and len(runs) != 1:
        raise InputError("--raw-heads exports one model's heads; pass a single model folder.")
    instance_post = post
    if post.instance_peak_threshold is not None:
        instance_post = attrs.evolve(post, peak_threshold=post.instance_peak_threshold)
    stages = [
        Stage(r.network, r.head_names, r.stage, post if r.stage.head_type == "centroid" else instance_post)
        for r in runs
    ]
    # sleap-nn fits frames to the first run's max size that is set, centroid first.
    max_height = next((r.stage.max_height for r in runs if r.stage.max_height is not None), None)
    max_width = next((r.stage.max_width for r in runs if r.stage.max_width is not None), None)
    graph_cls = graphs.RawHeadsGraph if options.raw_heads else getattr(graphs, model_type.graph)
    module = graph_cls(stages, SizeMatch(max_height, max_width))
    module.eval()
    instance_run = runs[-1]
    spec = ModelSpec(
        model_type=model_type.name,
        skeleton=instance_run.skeleton,
        stages=tuple(r.stage for r in runs),
        postprocess=post,
        input_names=module.input_names,
        output_names=module.output_names,
        class_names=instance_run.class_names,
        versions=versions(),
        raw_heads=options.raw_heads,
        export=ExportRecord(opset=options.opset),
    )
    return BuiltGraph(module=module, spec=spec)


def _edge_order(edges) -> tuple[int, ...]:
    """The order sleap-nn assembles PAF edges in: BFS from its topological root."""
    if not edges:
        return ()
    import networkx as nx

    edges = [tuple(e) for e in edges]
    graph = nx.DiGraph(edges)
    root = next(nx.topological_sort(graph))
    return tuple(edges.index(e) for e in nx.bfs_edges(graph, root))


def versions() -> dict[str, str]:
    """Versions of the packages that shape an artifact's numbers."""
    names = ("sleap-export", "sleap-nn", "torch", "onnx", "onnxruntime", "onnxslim")
    found = {name: package_version(name) for name in names}
    found["python"] = platform.python_version()
    return found
