"""Model types: one record each (spec name, the runs it takes, its graph, its completer).

`MODEL_TYPES` is the one table of model types. The export side builds
``graph`` (a class of `sleap_export.graph.models`, named here so the runtime
stays torch-free) from the runs ``runs`` names; the runtime completes the
graph's outputs with ``complete``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import attrs

from sleap_export.runtime import decode
from sleap_export.runtime.outputs import Outputs
from sleap_export.spec import HEAD_TYPES, ModelSpec


@attrs.frozen
class ModelType:
    """One kind of artifact."""

    name: str
    # Head types of the training runs it is made of, in stage order (the centroid run first).
    runs: tuple[str, ...] = attrs.field(validator=attrs.validators.deep_iterable(attrs.validators.in_(HEAD_TYPES)))
    # Its graph class in `sleap_export.graph.models`; every one is built as ``cls(stages, size_match)``.
    graph: str
    # Raw graph outputs of one frame -> completed `Outputs` (see `runtime.decode`).
    complete: Callable[[Outputs, ModelSpec], Outputs]


MODEL_TYPES: dict[str, ModelType] = {
    t.name: t
    for t in (
        ModelType("single_instance", ("single_instance",), "SingleInstanceGraph", decode.single_instance),
        ModelType("centroid", ("centroid",), "CentroidGraph", decode.centroid),
        ModelType("centered_instance", ("centered_instance",), "CenteredInstanceGraph", decode.centered_instance),
        ModelType(
            "multi_class_centered_instance",
            ("multi_class_topdown",),
            "MultiClassCenteredInstanceGraph",
            decode.multi_class_centered_instance,
        ),
        ModelType("topdown", ("centroid", "centered_instance"), "TopDownGraph", decode.topdown),
        ModelType(
            "multi_class_topdown", ("centroid", "multi_class_topdown"), "MultiClassTopDownGraph", decode.multi_class_topdown
        ),
        ModelType("bottomup", ("bottomup",), "BottomUpGraph", decode.bottomup),
        ModelType("multi_class_bottomup", ("multi_class_bottomup",), "MultiClassBottomUpGraph", decode.multi_class_bottomup),
    )
}


def model_type_for_runs(head_types: Iterable[str]) -> Optional[ModelType]:
    """The model type the runs of these head types make together (any order), or None."""
    wanted = sorted(head_types)
    return next((t for t in MODEL_TYPES.values() if sorted(t.runs) == wanted), None)


def valid_run_combinations() -> str:
    """For error messages: which runs make an artifact."""
    pairs = [" + ".join(t.runs) for t in MODEL_TYPES.values() if len(t.runs) == 2]
    singles = [t.runs[0] for t in MODEL_TYPES.values() if len(t.runs) == 1]
    return f"pairs {', '.join(pairs)}; or one run of {', '.join(singles)}"


def complete(outputs: Outputs, spec: ModelSpec) -> Outputs:
    """One frame's raw graph outputs, completed by the artifact's model type."""
    return decode.drop_empty_instances(MODEL_TYPES[spec.model_type].complete(outputs, spec))
