"""Export settings, one typed object from the command line (or a caller) to every writer:
`ExportOptions` (decoding, precision, calibration), `EngineOptions` (TensorRT builds),
and YAML presets (bundled ones by name: `configs/`, installed with the package as `sleap_export/presets/`; or a
user's file) that fill them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import attrs

from sleap_export.core.errors import InputError
from sleap_export.core.spec import CALIBRATION_METHODS, CONVOLUTION_ROLES, PostprocessSpec, one_of, within

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


# How an ONNX export is laid out on disk.
LAYOUTS = ("artifact", "sleap-nn")


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
    # ONNX only: "artifact" (one self-describing file) or "sleap-nn" (sleap-nn's export folder).
    layout: str = attrs.field(default="artifact", validator=one_of(*LAYOUTS))

    def __attrs_post_init__(self):
        # Before any model loads: a missing calibration would otherwise be found after the graph is built.
        if self.precision != "fp32":
            require_calibration(self.precision, self.calibration)

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


def require_calibration(precision: str, data: Optional[str | Path]) -> Path:
    """The calibration data a reduced-precision export needs (it calibrates int8 and gates both)."""
    if data is None:
        purpose = "to calibrate on and gate against fp32" if precision == "int8" else "to gate against fp32"
        raise InputError(f"{precision} needs real frames {purpose}: pass --calibration VIDEO or LABELS.slp.")
    if not Path(data).exists():
        raise InputError(f"Calibration data {data} does not exist; pass a video or .slp file.")
    return Path(data)


def bundled_presets() -> dict[str, Path]:
    """The presets installed with the package, by name (``crowded-arena``)."""
    folder = Path(__file__).resolve().parents[1] / "presets"
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def read_preset(preset: str | Path) -> dict:
    """A preset's export option fields (as `ExportOptions.from_fields` takes them): a YAML file,
    or a bundled preset by name (``crowded-arena`` or ``crowded-arena.yaml``) where no such file is."""
    import yaml

    path = Path(preset)
    bundled = bundled_presets()
    if not path.exists() and path.parent == Path(".") and path.name.removesuffix(".yaml") in bundled:
        path = bundled[path.name.removesuffix(".yaml")]
    if not path.exists():
        raise InputError(
            f"Preset {preset} does not exist; pass a YAML file of export options or a bundled preset: "
            f"{', '.join(bundled)}."
        )
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise InputError(f"Preset {path} must be a YAML mapping of export options.")
    return values
