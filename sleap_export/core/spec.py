"""The typed description of an exported model, written into every artifact.

One `ModelSpec` travels with the weights (timm-style): the runtime needs nothing
else to preprocess frames, read the graph's outputs and build `sio.Labels`.
Serialization goes through cattrs, so adding a field needs no mapping code;
specs of older schemas are upgraded on reading (`_UPGRADES`).
"""

from __future__ import annotations

import json
import re
from typing import Optional

import attrs
import cattrs

from sleap_export.core.errors import SleapExportError
from sleap_export.core.model_types import HEAD_TYPES, MODEL_TYPES
from sleap_export.core.tiling_spec import TilingSpec

# Bump when a field changes meaning or a required field is added; readers refuse
# artifacts whose schema is newer than they understand.
# 2: typed `ExportRecord` in place of schema 1's ``export_options`` strings.
# 3: int8 calibration method and fp32 layers; the accuracy gate's tolerance and verdict.
# 4: tiled stages (`StageSpec.tiling`: a reader of 3 would run them untiled) and segmentation's
#    graph settings (fg_threshold, center_nms_kernel).
# 5: embedding stages' mask carriers (`StageSpec.crop_centering`, `preferred_carrier`: a reader of 4
#    would embed poses where a file holds masks too, and centre every mask's crop on its centre of mass).
SCHEMA_VERSION = 5

SOURCE_FORMATS = ("sleap-nn", "sleap-1.x")


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
class BoxCropSpec:
    """A centered-instance model trained on box-scaled crops (sleap-nn's ``crop_mode: bbox``):
    each detected box, padded by ``padding`` times its longest side, is resized to the crop
    (``aspect``: square, letterbox or stretch), its window at least ``min_size`` frame pixels."""

    aspect: str = attrs.field(default="square", validator=one_of("square", "letterbox", "stretch"))
    padding: float = 0.1
    min_size: Optional[float] = None


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
    # Centered-instance runs trained on box-scaled crops; None: fixed crops around a center.
    box_crop: Optional[BoxCropSpec] = None
    # Runs sleap-nn infers in tiles (single instance, semantic and bottom-up segmentation trained with
    # data_config.preprocessing.tiling): their frames are not size-matched, and the graph tiles them.
    tiling: Optional[TilingSpec] = None
    anchor_part: Optional[str] = None
    # Embedding runs: where a mask's crop is centred (sleap-nn's crop_centering: "auto" and "mask_com" on
    # its centre of mass, "bbox" on its bounding box's midpoint); None for other runs.
    crop_centering: Optional[str] = attrs.field(default=None, validator=one_of(None, "auto", "mask_com", "bbox"))
    # Embedding runs: the carrier they were trained on ("pose" or "mask"), embedded where a file holds both;
    # None: the one holding more detections (ties: masks), as sleap-nn decides for runs that do not record it.
    preferred_carrier: Optional[str] = attrs.field(default=None, validator=one_of(None, "pose", "mask"))
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
    # Box detectors: class-wise IoU-NMS threshold over the detections (sleap-nn's bbox_nms_iou;
    # None: none beyond CenterNet's max-pool peak NMS). Their score threshold is peak_threshold,
    # their detections per frame max_instances.
    box_nms_iou: Optional[float] = attrs.field(default=None, validator=_CONFIDENCE)
    # Segmentation: foreground probability threshold, and the window of the instance-center peak test
    # (bottom-up masks; odd, sleap-nn's center_nms_kernel). Their center threshold is peak_threshold.
    fg_threshold: float = attrs.field(default=0.5, validator=_CONFIDENCE)
    center_nms_kernel: int = attrs.field(default=3, validator=within(1))

    @center_nms_kernel.validator
    def _odd(self, attribute, value):
        if value % 2 == 0:
            raise ValueError(f"center-nms-kernel must be odd (a window centred on each pixel), got {value}; use 3, 5 or 7")


# onnxruntime's calibrators, by the names options and specs use.
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# Convolutions an int8 network can leave in fp32: each network's first ("entry") and its output ones ("heads").
CONVOLUTION_ROLES = ("entry", "heads")


@attrs.frozen
class Calibration:
    """How an int8 artifact's activation ranges were calibrated, and which convolutions stayed fp32."""

    frames: int
    source: str
    # Artifacts before schema 3 were all calibrated by min-max with every convolution quantized.
    method: str = attrs.field(default="minmax", validator=one_of(*CALIBRATION_METHODS))
    fp32_roles: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def __str__(self) -> str:
        kept = f"; fp32 convolutions: {', '.join(self.fp32_roles)}" if self.fp32_roles else ""
        return f"{self.frames} frames of {self.source} ({self.method}){kept}"


@attrs.frozen
class AccuracyGate:
    """A reduced-precision artifact measured against its fp32 twin on held-out frames."""

    precision: str
    frames: int
    source: str
    mean_px: float
    p99_px: float
    count_agreement: float
    # Where the gate frames are labeled: mean error against the labels, (reduced, fp32) px.
    labels_error_px: Optional[tuple[float, float]] = None
    # The tolerance it was held to (`check.tolerance_for`) and whether it met it; None before schema 3.
    max_deviation_px: Optional[float] = None
    min_count_agreement: Optional[float] = None
    passed: Optional[bool] = None
    # Embedding artifacts: the appearance vectors paired with fp32's (same detection); their cosine similarity
    # at the 1st percentile (held to ``min_vector_cosine``, as p99 px is to ``max_deviation_px``) and at worst,
    # and their largest element difference. None for other artifacts and before these were recorded.
    vectors: Optional[int] = None
    vector_cosine_p1: Optional[float] = None
    worst_vector_cosine: Optional[float] = None
    max_vector_deviation: Optional[float] = None
    min_vector_cosine: Optional[float] = None

    def describe_tolerance(self) -> str:
        text = f"p99 <= {self.max_deviation_px:g} px, counts agree >= {self.min_count_agreement:.0%}"
        if self.min_vector_cosine is not None:
            text += f", vector cosine p1 >= {self.min_vector_cosine:g}"
        return text

    def __str__(self) -> str:
        text = (
            f"{self.precision} vs fp32 on {self.frames} {self.source} frames: mean {self.mean_px:.3f} px, "
            f"p99 {self.p99_px:.3f} px, instance counts agree on {self.count_agreement:.1%}"
        )
        if self.labels_error_px is not None:
            reduced, fp32 = self.labels_error_px
            text += f"; vs labels: {self.precision} {reduced:.2f} px, fp32 {fp32:.2f} px"
        if self.vectors == 0:
            text += "; no appearance vector paired with fp32's"
        elif self.vectors is not None:
            text += (
                f"; {self.vectors} appearance vectors: cosine p1 {self.vector_cosine_p1:.6f}, worst "
                f"{self.worst_vector_cosine:.6f}, max element difference {self.max_vector_deviation:.2e}"
            )
        if self.passed is not None:
            verdict = "within" if self.passed else "FAILED, kept on request:"
            text += f"; {verdict} tolerance ({self.describe_tolerance()})"
        return text


HARDWARE_COMPATIBILITY_LEVELS = ("none", "ampere+")


@attrs.frozen
class EngineTarget:
    """The TensorRT version and GPU an engine was built with (or a machine has)."""

    tensorrt: str
    gpu: str
    compute_capability: str  # "8.6"
    hardware_compatibility: str = attrs.field(default="none", validator=one_of(*HARDWARE_COMPATIBILITY_LEVELS))


# An engine input's optimization profile: the smallest, tuned-for and largest shapes.
ProfileShapes = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


@attrs.frozen
class EngineBuild:
    """What a TensorRT engine was built for and from."""

    target: EngineTarget
    profile: dict[str, ProfileShapes]
    # The payload sha256 of the ONNX artifact the engine was built from (engines have none of their own).
    source_payload_sha256: str

    def describe_profile(self) -> str:
        """``frames 1x64x64x1 .. 4x512x512x1 .. 16x2048x2048x1`` (per input, ``;``-separated)."""
        return "; ".join(
            f"{name} " + " .. ".join("x".join(map(str, shape)) for shape in shapes) for name, shapes in self.profile.items()
        )


@attrs.frozen
class ExportRecord:
    """How the artifact was made, beyond decoding: what code reads back, typed."""

    opset: Optional[int] = None
    # int8 artifacts: "uint8" activations (ONNX Runtime's CPU provider) or symmetric "int8" (TensorRT).
    int8_activations: Optional[str] = attrs.field(default=None, validator=one_of(None, "uint8", "int8"))
    calibration: Optional[Calibration] = None
    accuracy_gate: Optional[AccuracyGate] = None
    engine: Optional[EngineBuild] = None

    def describe(self) -> dict[str, str]:
        """Display lines by topic (``inspect``)."""
        lines = {
            "opset": self.opset,
            "int8 activations": {"uint8": "uint8", "int8": "int8 (symmetric)"}.get(self.int8_activations),
            "calibration": self.calibration,
            "accuracy gate": self.accuracy_gate,
        }
        if self.engine is not None:
            target = self.engine.target
            lines.update(
                {
                    "tensorrt": target.tensorrt,
                    "gpu": f"{target.gpu} (compute capability {target.compute_capability})",
                    "hardware compatibility": target.hardware_compatibility,
                    "profile": self.engine.describe_profile(),
                    "built from payload": self.engine.source_payload_sha256,
                }
            )
        return {name: str(value) for name, value in lines.items() if value is not None}


def _known_model_type(instance, attribute, value) -> None:
    if value not in MODEL_TYPES:
        raise ValueError(f"model-type must be one of {', '.join(MODEL_TYPES)}, got {value!r}")


@attrs.frozen
class ModelSpec:
    """Everything the runtime needs to run an artifact and interpret its outputs."""

    # A name of `core.model_types.MODEL_TYPES`.
    model_type: str = attrs.field(validator=_known_model_type)
    skeleton: SkeletonSpec
    stages: tuple[StageSpec, ...] = attrs.field(converter=tuple)
    postprocess: PostprocessSpec = PostprocessSpec()
    input_names: tuple[str, ...] = attrs.field(default=("frames",), converter=tuple)
    output_names: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    class_names: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    precision: str = "fp32"
    # The graph outputs head maps named after sleap-nn's heads, not poses.
    raw_heads: bool = False
    export: ExportRecord = ExportRecord()
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
        if self.model_type in ("centroid", "centroid_embedding"):
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
        for upgrade in _UPGRADES[version:]:
            data = upgrade(data)
        try:
            return _converter.structure(data, cls)
        except Exception as err:  # cattrs raises a ClassValidationError group
            raise SleapExportError(
                f"The artifact's embedded spec is malformed ({err}); re-export it."
            ) from None


_converter = cattrs.Converter()


def _export_record_from_v1(data: dict) -> dict:
    """Schema 1 kept `ExportRecord`'s contents as display strings in ``export_options``."""
    old = data.pop("export_options", {}) or {}
    record: dict = {}
    if "opset" in old:
        record["opset"] = int(old["opset"])
    if "int8 activations" in old:
        record["int8_activations"] = "int8" if old["int8 activations"].startswith("int8") else "uint8"
    calibration = re.fullmatch(r"(\d+) frames of (.+)", old.get("calibration", ""))
    if calibration:
        record["calibration"] = {"frames": int(calibration[1]), "source": calibration[2]}
    gate = re.fullmatch(
        r"(\w+) vs fp32 on (\d+) (.+) frames: mean ([\d.]+) px, p99 ([\d.]+) px, instance counts agree on ([\d.]+)%"
        r"(?:; vs labels: \w+ ([\d.]+) px, fp32 ([\d.]+) px)?",
        old.get("accuracy gate", ""),
    )
    if gate:
        record["accuracy_gate"] = {
            "precision": gate[1],
            "frames": int(gate[2]),
            "source": gate[3],
            "mean_px": float(gate[4]),
            "p99_px": float(gate[5]),
            "count_agreement": float(gate[6]) / 100,
            "labels_error_px": None if gate[7] is None else (float(gate[7]), float(gate[8])),
        }
    if "tensorrt" in old:
        profile = {}
        for entry in filter(None, old.get("profile", "").split("; ")):
            name, _, shapes = entry.partition(" ")
            profile[name] = [[int(side) for side in shape.split("x")] for shape in shapes.split(" .. ")]
        record["engine"] = {
            "target": {
                "tensorrt": old["tensorrt"],
                "gpu": old.get("gpu", "unknown"),
                "compute_capability": old.get("compute capability", "0.0"),
                "hardware_compatibility": old.get("hardware compatibility", "none"),
            },
            "profile": profile,
            "source_payload_sha256": old.get("built from payload", ""),
        }
    return {**data, "export": record, "schema_version": 2}


# ``_UPGRADES[v]`` turns a schema-``v`` spec (as parsed JSON) into schema ``v + 1``;
# schema 0 (no version recorded) has schema 1's layout. Schemas 3-5 only added fields whose
# defaults say what older artifacts were (min-max, all quantized, no verdict; untiled; no embedding).
_UPGRADES = (
    lambda data: data,
    _export_record_from_v1,
    lambda data: {**data, "schema_version": 3},
    lambda data: {**data, "schema_version": 4},
    lambda data: {**data, "schema_version": 5},
)
