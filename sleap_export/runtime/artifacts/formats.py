"""Artifact formats: one record each (suffixes, spec reader, payload digest, runner).

`FORMATS` is the one table of formats; `format_of` finds a file's format,
`read_spec` and `verify_payload` read through it, `runtime.runners.load` opens
its runner and the exporters write to it. Nothing here imports torch or
TensorRT: runners are named by import path and imported when an artifact runs.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable, Optional

import attrs

from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.core.spec import SCHEMA_VERSION, ModelSpec
from sleap_export.runtime.artifacts import embedded_spec, integrity, sleap_nn_export_folder


@attrs.frozen
class ArtifactFormat:
    """One artifact file format."""

    # The exporter's and the CLI command's name.
    name: str
    title: str
    # The first one is what exporters suggest.
    suffixes: tuple[str, ...]
    read_spec_json: Callable[[Path], str]
    # ``(path, spec digest text) -> payload sha256``; None where builds are not reproducible.
    payload_sha256: Optional[Callable[[Path, str], str]]
    # ``"module:Class"`` of its `Runner`, imported on first use (engines need the trt extra).
    runner: str
    # Other runtimes that run the format: ``load(..., runtime=NAME)``, the same ``"module:Class"`` form.
    runtimes: dict[str, str] = attrs.field(factory=dict)
    # The runtime ``runner`` is, as ``--runtime`` names it.
    default_runtime: str = ""
    # The same digest read the quick way, for a file as it was written (every open checks it); where it
    # differs, ``payload_sha256`` decides. None where ``payload_sha256`` is quick already.
    quick_payload_sha256: Optional[Callable[[Path, str], str]] = None

    def runner_class(self, runtime: Optional[str] = None) -> type:
        if runtime in (None, self.default_runtime):
            target = self.runner
        elif runtime in self.runtimes:
            target = self.runtimes[runtime]
        else:
            known = " or ".join([self.default_runtime, *self.runtimes])
            raise InputError(f"{self.title} artifacts run with {known}, not {runtime!r}; pick one of those.")
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)


ONNX = ArtifactFormat(
    name="onnx",
    title="ONNX",
    suffixes=(".onnx",),
    read_spec_json=embedded_spec.onnx_spec_json,
    payload_sha256=integrity.onnx_file_payload_sha256,
    runner="sleap_export.runtime.backends.onnx_runner:OnnxRunner",
    default_runtime="onnxruntime",
    runtimes={"openvino": "sleap_export.runtime.backends.openvino_runner:OpenVinoRunner"},
    quick_payload_sha256=integrity.onnx_bytes_payload_sha256,
)
TORCHSCRIPT = ArtifactFormat(
    name="torchscript",
    title="TorchScript",
    suffixes=(".pt", ".ts", ".torchscript"),
    read_spec_json=embedded_spec.torchscript_spec_json,
    payload_sha256=integrity.torchscript_file_payload_sha256,
    runner="sleap_export.runtime.backends.torch_runner:TorchScriptRunner",
    default_runtime="torch",
)
TENSORRT = ArtifactFormat(
    name="tensorrt",
    title="TensorRT",
    suffixes=(".engine", ".plan"),
    read_spec_json=embedded_spec.engine_spec_json,
    payload_sha256=None,
    runner="sleap_export.runtime.backends.tensorrt_runner:TensorRTRunner",
    default_runtime="tensorrt",
)
# A folder, not a file: what ``sleap-nn export`` writes (and ``sleap-export onnx --layout sleap-nn``).
SLEAP_NN_FOLDER = ArtifactFormat(
    name="sleap-nn-folder",
    title="sleap-nn export folder",
    suffixes=(),
    read_spec_json=sleap_nn_export_folder.spec_json,
    payload_sha256=None,
    runner="sleap_export.runtime.backends.sleap_nn_folder_runner:SleapNnFolderRunner",
    default_runtime="onnxruntime",
)
FORMATS: tuple[ArtifactFormat, ...] = (ONNX, TORCHSCRIPT, TENSORRT, SLEAP_NN_FOLDER)


def artifact_suffixes() -> tuple[str, ...]:
    return tuple(suffix for fmt in FORMATS for suffix in fmt.suffixes)


def format_named(name: str) -> ArtifactFormat:
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise InputError(f"Unknown format {name!r}; choose one of {', '.join(f.name for f in FORMATS)}.")


def format_by_suffix(path: str | Path) -> Optional[ArtifactFormat]:
    """The format owning the path's suffix (any case), or None: what a file about to be written will be."""
    suffix = Path(path).suffix.lower()
    return next((fmt for fmt in FORMATS if suffix in fmt.suffixes), None)


def format_by_content(path: str | Path) -> Optional[ArtifactFormat]:
    """The format a file's bytes show, whatever its name, or None: a folder with sleap-nn's
    export_metadata.json is a sleap-nn export folder, a zip archive is TorchScript,
    bytes carrying our engine spec are a TensorRT engine, a protobuf opening with its
    ``ir_version`` field is ONNX."""
    path = Path(path)
    if sleap_nn_export_folder.is_sleap_nn_export_folder(path):
        return SLEAP_NN_FOLDER
    if not path.is_file():
        return None
    with open(path, "rb") as stream:
        head = stream.read(4)
    if head == b"PK\x03\x04":
        return TORCHSCRIPT
    if head[:1] == b"\x08":
        return ONNX
    if embedded_spec.spec_json_in_engine(path.read_bytes()) is not None:
        return TENSORRT
    return None


def find_format(path: str | Path) -> Optional[ArtifactFormat]:
    """The format of an existing artifact by its content (so a renamed one still opens), else by
    its suffix; None when neither tells."""
    return format_by_content(path) or format_by_suffix(path)


def format_of(path: str | Path) -> ArtifactFormat:
    """`find_format`, with a one-line error if neither content nor suffix tells."""
    fmt = find_format(path)
    if fmt is None:
        raise InputError(
            f"{Path(path).name} is not a sleap-export artifact type; expected one of {', '.join(artifact_suffixes())}."
        )
    return fmt


def _spec_json(path: Path) -> str:
    if not path.exists():
        raise InputError(f"{path} does not exist; pass an artifact written by sleap-export.")
    return format_of(path).read_spec_json(path)


def read_spec(path: str | Path) -> ModelSpec:
    """The `ModelSpec` inside an artifact, with a one-line error if there is none."""
    return ModelSpec.from_json(_spec_json(Path(path)))


def verify_payload(path: str | Path) -> ModelSpec:
    """The artifact's spec, after checking its payload digest; raises when tampered."""
    path = Path(path)
    text = _spec_json(path)
    spec = ModelSpec.from_json(text)
    fmt = format_of(path)
    if fmt is SLEAP_NN_FOLDER:
        raise InputError(
            f"{path.name} is a sleap-nn export folder, which records no payload hash; hold it to its training "
            f"run instead: sleap-export check {path} -r RUN_DIR -d VIDEO."
        )
    if fmt.payload_sha256 is None:
        engine = spec.export.engine
        raise InputError(
            f"{path.name} is a TensorRT engine: TensorRT builds are not reproducible, so engines carry no "
            f"payload hash; verify the ONNX artifact it was built from (payload "
            f"{engine.source_payload_sha256[:16] if engine else 'unknown'}) and run `sleap-export check` on the engine."
        )
    if not spec.payload_sha256:
        raise SleapExportError(
            f"{path} carries no payload hash (written before sleap-export recorded one); re-export it."
        )
    _check_payload(path, fmt, text, spec)
    return spec


def read_checked_spec(path: str | Path) -> ModelSpec:
    """`read_spec`, refusing an artifact modified after export (how models are opened): the payload hash
    is checked where there is one (not in TensorRT engines, sleap-nn export folders, or artifacts written
    before hashes were recorded), the quick way (ONNX: 1 ms for 0.6 MB, 50 ms for 30 MB)."""
    path = Path(path)
    text = _spec_json(path)
    spec = ModelSpec.from_json(text)
    fmt = format_of(path)
    if fmt.payload_sha256 is not None and spec.payload_sha256:
        _check_payload(path, fmt, text, spec)
    return spec


def _check_payload(path: Path, fmt: ArtifactFormat, text: str, spec: ModelSpec) -> None:
    """Raise when the payload digest differs from the one the spec (as ``text``, read from ``path``) records."""
    # An older schema's writer hashed its own JSON, which reading upgraded.
    written_schema = json.loads(text).get("schema_version", 0)
    spec_text = (
        integrity.spec_digest_text(spec)
        if written_schema == SCHEMA_VERSION
        else integrity.stored_spec_digest_text(text)
    )
    actual = fmt.quick_payload_sha256(path, spec_text) if fmt.quick_payload_sha256 else ""
    if actual != spec.payload_sha256:
        actual = fmt.payload_sha256(path, spec_text)
    if actual != spec.payload_sha256:
        raise SleapExportError(
            f"{path} was modified after export (payload sha256 {actual[:12]}, recorded "
            f"{spec.payload_sha256[:12]}); re-export it from the training run."
        )
