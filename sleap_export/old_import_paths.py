"""Module paths from before the layered packages (sleap-export 0.1.0), kept for one release.

``import sleap_export.runtime.live`` (say) still works and gives the module now at
``sleap_export.runtime.drivers.live``, with a DeprecationWarning naming it; a module
that was split gives each name from the module that holds it now. Only the table
below is kept; nothing else of the old layout.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# Old module path -> the module(s) that hold its contents now (a split module: searched in order).
MOVED: dict[str, tuple[str, ...]] = {
    old: tuple(new.split())
    for old, new in {
        "sleap_export.errors": "sleap_export.core.errors",
        "sleap_export.spec": "sleap_export.core.spec",
        "sleap_export.compare": "sleap_export.core.comparison",
        "sleap_export.files": "sleap_export.core.atomic_files",
        "sleap_export.model_paths": "sleap_export.runtime.open_model",
        "sleap_export.progress": "sleap_export.runtime.drivers.progress",
        "sleap_export.checkpoint": "sleap_export.exporting.checkpoints sleap_export.core.training_runs",
        "sleap_export.build": "sleap_export.exporting.graph_builder sleap_export.exporting.options",
        "sleap_export.eager": "sleap_export.exporting.eager_runner",
        "sleap_export.exporters": "sleap_export.evaluation.checked_export sleap_export.exporting.writers.registry "
        "sleap_export.exporting.artifact_writer",
        "sleap_export.exporters.onnx": "sleap_export.exporting.writers.onnx_writer",
        "sleap_export.exporters.torchscript": "sleap_export.exporting.writers.torchscript_writer",
        "sleap_export.exporters.tensorrt": "sleap_export.exporting.writers.tensorrt_writer",
        "sleap_export.exporters.verify": "sleap_export.exporting.writers.verification",
        "sleap_export.exporters.precision": "sleap_export.exporting.precision",
        "sleap_export.graph": "sleap_export.exporting.graph",
        "sleap_export.graph.models": "sleap_export.exporting.graph.model_graphs",
        "sleap_export.graph.grouping": "sleap_export.exporting.graph.paf_grouping",
        "sleap_export.graph.keras": "sleap_export.exporting.graph.keras_geometry",
        **{f"sleap_export.graph.{name}": f"sleap_export.exporting.graph.{name}"
           for name in ("crops", "paf", "peaks", "preprocess", "resize", "shapes")},
        "sleap_export.check": "sleap_export.evaluation.parity_check sleap_export.core.tolerances",
        "sleap_export.bench": "sleap_export.evaluation.throughput",
        "sleap_export.live_bench": "sleap_export.evaluation.latency",
        "sleap_export.reference": "sleap_export.evaluation.sleap_nn_reference",
        "sleap_export.cli": "sleap_export.cli",
        "sleap_export.live_examples": "sleap_export.demo.live_processors",
        "sleap_export.runtime.artifact": "sleap_export.runtime.artifacts.formats",
        "sleap_export.runtime.embedded_spec": "sleap_export.runtime.artifacts.embedded_spec",
        "sleap_export.runtime.integrity": "sleap_export.runtime.artifacts.integrity",
        "sleap_export.runtime.runners": "sleap_export.runtime.backends.runner sleap_export.runtime.backends.onnx_runner "
        "sleap_export.runtime.backends.torch_runner sleap_export.runtime.open_model",
        "sleap_export.runtime.openvino": "sleap_export.runtime.backends.openvino_runner",
        "sleap_export.runtime.tensorrt": "sleap_export.runtime.backends.tensorrt_runner",
        "sleap_export.runtime.malloc": "sleap_export.runtime.backends.malloc",
        "sleap_export.runtime.model_types": "sleap_export.core.model_types sleap_export.runtime.decoding.completion",
        "sleap_export.runtime.decode": "sleap_export.runtime.decoding.completion",
        "sleap_export.runtime.grouping": "sleap_export.runtime.decoding.peak_grouping",
        "sleap_export.runtime.outputs": "sleap_export.runtime.decoding.outputs",
        "sleap_export.runtime.frames": "sleap_export.runtime.sources.frame_arrays",
        "sleap_export.runtime.sources": "sleap_export.runtime.sources.video_inputs",
        "sleap_export.runtime.live_sources": "sleap_export.runtime.sources.live_sources",
        "sleap_export.runtime.labels": "sleap_export.runtime.writing.labels_writer",
        "sleap_export.runtime.output_file": "sleap_export.runtime.writing.destination sleap_export.runtime.writing.labels_writer",
        "sleap_export.runtime.pipeline": "sleap_export.runtime.drivers.batch_pipeline",
        "sleap_export.runtime.predictor": "sleap_export.runtime.drivers.predictor",
        "sleap_export.runtime.cluster": "sleap_export.runtime.drivers.ray_cluster",
        "sleap_export.runtime.live": "sleap_export.runtime.drivers.live",
        "sleap_export.runtime.forecast": "sleap_export.runtime.drivers.forecast",
        "sleap_export.runtime.timing": "sleap_export.core.stage_clock",
    }.items()
    if old != new
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and loads the module at its new one under both names."""

    def find_spec(self, name, path=None, target=None):
        if name not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return None  # a placeholder, replaced in exec_module

    def exec_module(self, module) -> None:
        new = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} moved to {' and '.join(new)}; import it from there.", DeprecationWarning, stacklevel=2)
        if len(new) == 1:
            # The import system returns what sys.modules holds once this returns: the real module.
            sys.modules[module.__name__] = importlib.import_module(new[0])
            return

        def find(name: str):
            for target in new:
                found = importlib.import_module(target)
                if hasattr(found, name):
                    return getattr(found, name)
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")

        module.__getattr__ = find


def install() -> None:
    """Answer imports of the old paths (once per process)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())
