"""From sleap-nn run folders to a traceable graph and the spec that describes it.

This is the door between the checkpoint reader and everything that traces:
exporters and the eager runner both start here, so they run the same module.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Sequence

import attrs

from sleap_export.errors import InputError
from sleap_export.spec import ModelSpec, PostprocessSpec


@attrs.frozen
class ExportOptions:
    """Export settings a user chooses; recorded in the spec."""

    max_instances: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    peak_threshold: float = attrs.field(default=0.2, validator=attrs.validators.ge(0.0))
    refinement: bool = True
    integral_patch_size: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    opset: int = 17

    def postprocess(self) -> PostprocessSpec:
        return PostprocessSpec(
            peak_threshold=self.peak_threshold,
            refinement="integral" if self.refinement else None,
            integral_patch_size=self.integral_patch_size,
            max_instances=self.max_instances,
        )


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
    """Load the run(s) and wrap them in the graph for their model type."""
    from sleap_export.checkpoint import load_run
    from sleap_export.graph.models import GRAPHS

    if len(model_paths) != 1:
        raise InputError(
            f"Got {len(model_paths)} model folders; single-instance and centroid "
            "artifacts are built from exactly one run folder."
        )
    run = load_run(model_paths[0])
    graph_cls = GRAPHS[run.stage.head_type]
    post = options.postprocess()
    module = graph_cls(run.network, run.head_names[0], run.stage, post)
    module.eval()
    spec = ModelSpec(
        model_type=run.stage.head_type,
        skeleton=run.skeleton,
        stages=(run.stage,),
        postprocess=post,
        output_names=graph_cls.output_names,
        versions=versions(),
    )
    return BuiltGraph(module=module, spec=spec)


def versions() -> dict[str, str]:
    """Versions of the packages that shape an artifact's numbers."""
    names = ("sleap-export", "sleap-nn", "torch", "onnx", "onnxruntime", "onnxslim")
    found = {name: package_version(name) for name in names}
    found["python"] = platform.python_version()
    return found
