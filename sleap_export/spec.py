"""The typed description of an exported model, written into every artifact.

One `ModelSpec` travels with the weights (timm-style): the runtime needs nothing
else to preprocess frames, read the graph's outputs and build `sio.Labels`.
Serialization goes through cattrs, so adding a field needs no mapping code.
"""

from __future__ import annotations

import json
from typing import Optional

import attrs
import cattrs

from sleap_export.errors import SleapExportError

# Bump when a field changes meaning or a required field is added; readers refuse
# artifacts whose schema is newer than they understand.
SCHEMA_VERSION = 1

# Head types of sleap-nn training runs (``model_config.head_configs`` keys).
HEAD_TYPES = (
    "single_instance",
    "centroid",
    "centered_instance",
    "bottomup",
    "multi_class_bottomup",
    "multi_class_topdown",
)
SOURCE_FORMATS = ("sleap-nn", "sleap-1.x")
# What an artifact is: one run, or a centroid run paired with a centered-instance run.
ARTIFACT_TYPES = (
    "single_instance",
    "centroid",
    "centered_instance",
    "multi_class_centered_instance",
    "topdown",
    "multi_class_topdown",
    "bottomup",
    "multi_class_bottomup",
)


def _pairs(value) -> tuple[tuple[int, int], ...]:
    return tuple((int(a), int(b)) for a, b in value)


@attrs.frozen
class SkeletonSpec:
    """Skeleton nodes, edges and symmetries (edges/symmetries as node indices)."""

    nodes: tuple[str, ...] = attrs.field(converter=tuple)
    edges: tuple[tuple[int, int], ...] = attrs.field(default=(), converter=_pairs)
    symmetries: tuple[tuple[int, int], ...] = attrs.field(
        default=(), converter=_pairs
    )
    name: str = "Skeleton-0"


@attrs.frozen
class StageSpec:
    """One network of the artifact, with its own preprocessing contract."""

    head_type: str = attrs.field(validator=attrs.validators.in_(HEAD_TYPES))
    backbone: str
    in_channels: int
    input_scale: float
    max_stride: int
    output_stride: int
    max_height: Optional[int] = None
    max_width: Optional[int] = None
    crop_size: Optional[int] = None
    anchor_part: Optional[str] = None
    paf_stride: Optional[int] = None
    class_maps_stride: Optional[int] = None
    # Bottom-up: the skeleton edges the PAFs encode, as node index pairs.
    paf_edges: tuple[tuple[int, int], ...] = attrs.field(default=(), converter=_pairs)
    # sha256 of the weights file: best.ckpt, or best_model.h5 for SLEAP 1.x.
    checkpoint_sha256: str = ""
    source: str = ""
    # "sleap-nn" (best.ckpt) or "sleap-1.x" (TensorFlow best_model.h5, mapped by sleap-nn).
    source_format: str = attrs.field(default="sleap-nn", validator=attrs.validators.in_(SOURCE_FORMATS))
    # The training config file as written by training (YAML, or SLEAP 1.x JSON).
    training_config: str = ""


def within(low: float, high: Optional[float] = None, what: str = ""):
    """attrs validator: ``low <= value`` (and ``value < high``), else one line naming the option."""

    def check(instance, attribute, value) -> None:
        if value is None or (value >= low and (high is None or value < high)):
            return
        allowed = f"in [{low:g}, {high:g})" if high is not None else f"at least {low:g}"
        raise ValueError(f"{attribute.name.replace('_', '-')} must be {allowed}{what}, got {value!r}")

    return check


def one_of(*choices):
    """attrs validator: ``value in choices``, else one line listing them."""

    def check(instance, attribute, value) -> None:
        if value not in choices:
            listed = ", ".join(str(c) for c in choices)
            raise ValueError(f"{attribute.name.replace('_', '-')} must be one of {listed}, got {value!r}")

    return check


# A peak threshold is a confidence: at 1 or above no peak can ever be found.
_CONFIDENCE = within(0.0, 1.0, " (a confidence)")


@attrs.frozen
class PostprocessSpec:
    """Peak-decoding settings baked into the graph (sleap-nn's defaults)."""

    peak_threshold: float = attrs.field(default=0.2, validator=_CONFIDENCE)
    # Top-down's centered-instance stage threshold when it differs (sleap-nn's keypoint_threshold).
    instance_peak_threshold: Optional[float] = attrs.field(default=None, validator=_CONFIDENCE)
    refinement: Optional[str] = attrs.field(default="integral", validator=one_of(None, "integral"))
    integral_patch_size: int = attrs.field(default=5, validator=within(1))
    max_instances: int = attrs.field(default=20, validator=within(1))
    # Bottom-up grouping (sleap-nn's PAFScorer defaults).
    peaks_per_node: int = attrs.field(default=64, validator=within(1))
    n_line_points: int = attrs.field(default=10, validator=within(2))
    max_edge_length_ratio: float = 0.25
    dist_penalty_weight: float = 1.0
    min_line_scores: float = 0.25
    min_instance_peaks: float = 0.0
    # "host": exact sleap-nn grouping in the runtime; "graph": approximate, in the graph.
    grouping: str = attrs.field(default="host", validator=one_of("host", "graph"))
    # Order in which sleap-nn assembles edges (BFS from its topological root).
    edge_order: tuple[int, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen
class ModelSpec:
    """Everything the runtime needs to run an artifact and interpret its outputs."""

    model_type: str = attrs.field(validator=attrs.validators.in_(ARTIFACT_TYPES))
    skeleton: SkeletonSpec
    stages: tuple[StageSpec, ...] = attrs.field(converter=tuple)
    postprocess: PostprocessSpec = PostprocessSpec()
    input_names: tuple[str, ...] = attrs.field(default=("frames",), converter=tuple)
    output_names: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    class_names: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    precision: str = "fp32"
    # The graph outputs head maps named after sleap-nn's heads, not poses.
    raw_heads: bool = False
    # Export settings outside decoding (e.g. ONNX opset).
    export_options: dict[str, str] = attrs.field(factory=dict)
    versions: dict[str, str] = attrs.field(factory=dict)
    # sha256 over the model payload and this spec (with this field blank); see runtime.integrity.
    payload_sha256: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def input_channels(self) -> int:
        """Channels the artifact's frames input expects."""
        return self.stages[0].in_channels

    @property
    def output_node_names(self) -> tuple[str, ...]:
        """Node names of the instances the artifact produces."""
        if self.model_type == "centroid":
            anchor = self.stages[0].anchor_part
            return self.skeleton.nodes if anchor else ("centroid",)
        return self.skeleton.nodes

    def to_json(self) -> str:
        """Stable JSON (sorted keys) so identical specs give identical bytes."""
        return json.dumps(_converter.unstructure(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        """Parse a spec, refusing schemas newer than this release understands."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SleapExportError(
                f"The artifact's embedded spec is not valid JSON ({err}); re-export it."
            ) from None
        version = data.get("schema_version", 0)
        if version > SCHEMA_VERSION:
            raise SleapExportError(
                f"The artifact uses spec schema {version}, newer than this "
                f"sleap-export understands ({SCHEMA_VERSION}); upgrade sleap-export."
            )
        try:
            return _converter.structure(data, cls)
        except Exception as err:  # cattrs raises a ClassValidationError group
            raise SleapExportError(
                f"The artifact's embedded spec is malformed ({err}); re-export it."
            ) from None


_converter = cattrs.Converter()
