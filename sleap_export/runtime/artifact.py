"""Reading the spec embedded in an artifact, one reader per file format.

Readers register by suffix; none of them imports torch: the TorchScript
archive is a zip whose extra file is read directly.

TensorRT engines carry the spec as one extra graph output, ``sleap_export_spec``:
a constant int32 vector whose bytes are `ENGINE_SPEC_MAGIC`, the JSON length and
the JSON. TensorRT rejects a plan file with bytes before or after its archive, so
a header or trailer would break trtexec and Triton; a constant output keeps the
engine a plain engine (those tools show one more output), and because TensorRT
stores constants verbatim the reader finds the spec by scanning the engine's
bytes, with neither TensorRT nor a GPU (``inspect``, and compatibility checks
before deserializing).
"""

from __future__ import annotations

import zipfile
import struct
from pathlib import Path
from typing import Callable

import numpy as np

from sleap_export.errors import InputError, SleapExportError
from sleap_export.runtime.registry import suffix_registry
from sleap_export.spec import ModelSpec

ONNX_SPEC_KEY = "sleap_export.spec"
TORCHSCRIPT_SPEC_FILE = "sleap_export_spec.json"
ENGINE_SPEC_OUTPUT = "sleap_export_spec"
ENGINE_SPEC_MAGIC = b"sleap-export spec v1\0"
ENGINE_SUFFIXES = (".engine", ".plan")

SPEC_READERS: dict[str, Callable[[Path], str]] = {}


# ``@spec_reader(".onnx")`` registers a function ``path -> spec JSON``.
spec_reader = suffix_registry(SPEC_READERS)


def artifact_suffixes() -> tuple[str, ...]:
    return tuple(SPEC_READERS)


def read_spec(path: str | Path) -> ModelSpec:
    """The `ModelSpec` inside an artifact, with a one-line error if there is none."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; pass an artifact written by sleap-export.")
    reader = SPEC_READERS.get(path.suffix)
    if reader is None:
        raise InputError(
            f"{path.name} is not a sleap-export artifact type; expected one of "
            f"{', '.join(SPEC_READERS)}."
        )
    return ModelSpec.from_json(reader(path))


@spec_reader(".onnx")
def _read_onnx_spec(path: Path) -> str:
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception:
        raise InputError(f"{path} is not a readable ONNX model; re-export it.") from None
    text = session.get_modelmeta().custom_metadata_map.get(ONNX_SPEC_KEY)
    if text is None:
        raise SleapExportError(
            f"{path} carries no sleap-export spec; it was not written by sleap-export "
            "(export the model with `sleap-export onnx`)."
        )
    return text


@spec_reader(".pt", ".ts", ".torchscript")
def _read_torchscript_spec(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/extra/" + TORCHSCRIPT_SPEC_FILE)]
            if not names:
                raise SleapExportError(
                    f"{path} carries no sleap-export spec; it was not written by "
                    "sleap-export (export the model with `sleap-export torchscript`)."
                )
            return archive.read(names[0]).decode()
    except zipfile.BadZipFile:
        raise InputError(f"{path} is not a TorchScript archive; re-export it.") from None


def engine_spec_words(spec_json: str) -> np.ndarray:
    """The spec as the int32 constant an engine carries: magic, length, JSON, zero padding."""
    payload = spec_json.encode()
    blob = ENGINE_SPEC_MAGIC + struct.pack("<I", len(payload)) + payload
    blob += b"\0" * (-len(blob) % 4)
    return np.frombuffer(blob, dtype="<i4").astype(np.int32)


def spec_json_in_engine(data: bytes) -> str | None:
    """The spec JSON found in engine bytes (the first complete copy), or None."""
    start = data.find(ENGINE_SPEC_MAGIC)
    while start >= 0:
        head = start + len(ENGINE_SPEC_MAGIC)
        (length,) = struct.unpack("<I", data[head : head + 4].ljust(4, b"\0"))
        text = data[head + 4 : head + 4 + length]
        if len(text) == length:
            try:
                return text.decode()
            except UnicodeDecodeError:
                pass
        start = data.find(ENGINE_SPEC_MAGIC, start + 1)
    return None


@spec_reader(*ENGINE_SUFFIXES)
def _read_engine_spec(path: Path) -> str:
    text = spec_json_in_engine(path.read_bytes())
    if text is None:
        raise SleapExportError(
            f"{path} carries no sleap-export spec; it was not built by sleap-export "
            "(build the engine with `sleap-export trt`)."
        )
    return text
