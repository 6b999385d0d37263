"""OpenVINO's CPU plugin running our ONNX artifacts, in fp32 or with the networks in bf16.

OpenVINO's own bf16 hint (``INFERENCE_PRECISION_HINT``) lowers the whole graph,
resizing, crops and peak coordinates included, which moves keypoints by up to
a hundred pixels. So bf16 here is written into the graph instead: each
network (the ops the exporter scoped under ``.../network/``) gets its float
inputs converted to bf16 and its outputs back to fp32, and the graph is
compiled with an fp32 hint, which the plugin keeps for every op still in fp32.
"""

from __future__ import annotations

import os
import queue
import re
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from sleap_export.core.errors import InputError, SleapExportError, install_extra
from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.backends.runner import Runner, usable_cores

PRECISIONS = ("fp32", "bf16")
# The exporter traces each stage's network as a module named ``network``.
NETWORK_SCOPE = re.compile(r"^(.*?/network/)")
INSTALL_HINT = f"install it with {install_extra('openvino')}, or use --runtime onnxruntime"
# Compiled models, beside the artifact (where it is writable): OpenVINO keys each by a hash of the
# graph it compiled and its settings, so a re-exported artifact or another precision gets its own.
# Measured on 2 cores: a top-down model's load in 0.6 s instead of 1.6 s (fp32), 1.0 instead of 2.7 (bf16).
CACHE_FOLDER = ".sleap-export-openvino-cache"


def _openvino():
    try:
        import openvino
    except ImportError:
        raise SleapExportError(f"OpenVINO is not installed; {INSTALL_HINT}.") from None
    return openvino


def _first_line(err: Exception) -> str:
    """OpenVINO's errors are stacks of 'Exception from src/...' lines; the last other line says what failed."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    meaningful = [line for line in lines if not line.startswith("Exception from")]
    return (meaningful or lines or [type(err).__name__])[-1].rstrip(".")


def supports_bf16(core) -> bool:
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def network_scopes(model) -> dict[str, set[int]]:
    """Op ids of each network: the ops named under its scope and every op on a path between two of them
    (ops the ONNX reader made without a name, such as a transposed convolution's core)."""
    named: dict[str, list] = defaultdict(list)
    for op in model.get_ordered_ops():
        match = NETWORK_SCOPE.match(op.get_friendly_name())
        if match and op.get_type_name() not in ("Constant", "Parameter", "Result"):
            named[match.group(1)].append(op)

    def reachable(starts, step) -> set[int]:
        seen, todo = set(), list(starts)
        while todo:
            op = todo.pop()
            for nxt in step(op):
                if nxt.get_instance_id() not in seen:
                    seen.add(nxt.get_instance_id())
                    todo.append(nxt)
        return seen

    def downstream(op):
        return [target.get_node() for out in op.outputs() for target in out.get_target_inputs()]

    def upstream(op):
        return [value.get_node() for value in op.input_values()]

    return {
        scope: {op.get_instance_id() for op in ops} | (reachable(ops, downstream) & reachable(ops, upstream))
        for scope, ops in named.items()
    }


def with_bf16_networks(model) -> None:
    """Convert the networks of ``model`` to bf16 in place (see the module docstring)."""
    import openvino as ov
    import openvino.opset13 as ops

    scopes = network_scopes(model)
    if not scopes:
        raise SleapExportError(
            "bf16 found no network in this artifact (no ops scoped under network/); re-export it with this "
            "version of sleap-export, or run it in fp32."
        )
    inside = set().union(*scopes.values())
    network_ops = [op for op in model.get_ordered_ops() if op.get_instance_id() in inside]
    # Back to fp32 where float values leave a network (placed first: types settle in one pass).
    for op in network_ops:
        for out in op.outputs():
            leaving = [t for t in out.get_target_inputs() if t.get_node().get_instance_id() not in inside]
            if leaving and out.get_element_type() == ov.Type.f32:
                restored = ops.convert(out, "f32").output(0)
                for target in leaving:
                    target.replace_source_output(restored)
    lowered: dict[tuple[int, int], object] = {}
    for op in network_ops:
        for port in op.inputs():
            source = port.get_source_output()
            if source.get_node().get_instance_id() in inside or source.get_element_type() != ov.Type.f32:
                continue
            key = (source.get_node().get_instance_id(), source.get_index())
            if key not in lowered:
                lowered[key] = ops.convert(source, "bf16").output(0)
            port.replace_source_output(lowered[key])
    try:
        model.validate_nodes_and_infer_types()
    except RuntimeError as err:
        raise SleapExportError(
            f"OpenVINO cannot run this network in bf16 ({_first_line(err)}); run it in fp32."
        ) from None


class OpenVinoRunner(Runner):
    """OpenVINO's CPU plugin on an ONNX artifact.

    ``precision="bf16"`` runs the networks in bf16 (CPUs with bf16 instructions;
    fp32 artifacts) and everything else in fp32. ``threads`` CPU threads in all
    (default: every usable core) are split over ``parallel_batches`` streams,
    as for ONNX Runtime.
    """

    name = "openvino"

    def __init__(
        self,
        path: Path,
        spec: ModelSpec,
        device: str = "cpu",
        threads: Optional[int] = None,
        parallel_batches: int = 1,
        precision: str = "fp32",
    ):
        super().__init__(spec, device)
        if device != "cpu":
            raise InputError(f"OpenVINO runs here on the CPU only, not {device!r}; use device='cpu'.")
        if precision not in PRECISIONS:
            raise InputError(f"Unknown OpenVINO precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
        if precision == "bf16" and spec.precision != "fp32":
            raise InputError(
                f"bf16 lowers fp32 networks; this artifact is already {spec.precision}. Run it as it is, "
                "or pass the fp32 artifact."
            )
        self.path = Path(path)
        self.threads = threads
        self.parallel_batches = parallel_batches
        self.precision = precision
        self.compiled = None
        self._requests: Optional[queue.Queue] = None

    @classmethod
    def from_path(cls, path, spec, device="cpu", **options):
        return cls(path, spec, device, **options)

    @classmethod
    def throughput_options(cls, device: str) -> dict:
        # Two single-threaded streams, as ONNX Runtime's two runs (see OnnxRunner).
        return {"parallel_batches": 2} if usable_cores() >= 2 else {}

    def compile(self):
        """The compiled model (what `activate` runs); errors in one line."""
        ov = _openvino()
        core = ov.Core()
        if self.precision == "bf16" and not supports_bf16(core):
            raise SleapExportError(
                "This CPU has no bf16 instructions (OpenVINO lists none); run in fp32, or use a CPU with AVX-512 BF16 or AMX."
            )
        try:
            model = core.read_model(str(self.path))
        except RuntimeError as err:
            raise SleapExportError(f"OpenVINO could not read {self.path.name} ({_first_line(err)}); re-export it.") from None
        if self.precision == "bf16":
            with_bf16_networks(model)
        threads = self.threads or usable_cores()
        config = {
            # fp32 unless the graph says otherwise: some CPUs default to bf16 for the whole graph.
            "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": max(1, threads // self.parallel_batches) * self.parallel_batches,
            "NUM_STREAMS": self.parallel_batches,
        }
        if os.access(self.path.parent, os.W_OK):
            config["CACHE_DIR"] = str(self.path.parent / CACHE_FOLDER)
        try:
            return core.compile_model(model, "CPU", config)
        except RuntimeError as err:
            raise SleapExportError(
                f"OpenVINO could not compile {self.path.name} ({_first_line(err)}); run it with --runtime onnxruntime."
            ) from None

    def activate_impl(self) -> None:
        self.compiled = self.compile()
        self._requests = queue.Queue()
        for _ in range(self.parallel_batches):
            self._requests.put(self.compiled.create_infer_request())

    def infer_impl(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        request = self._requests.get()
        try:
            try:
                request.infer(dict(zip(self.spec.input_names, inputs)))
            except RuntimeError as err:
                raise SleapExportError(f"OpenVINO failed to run {self.path.name} ({_first_line(err)}).") from None
            return [request.get_tensor(name).data.copy() for name in self.spec.output_names]
        finally:
            self._requests.put(request)

    def deactivate_impl(self) -> None:
        self.compiled = self._requests = None
