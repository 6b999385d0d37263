"""Where each artifact format keeps its spec, and how to read it back (no torch).

ONNX models carry the spec as metadata (`ONNX_SPEC_KEY`). TorchScript archives
carry it as an extra file, read here straight from the zip.

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

import struct
import zipfile
from pathlib import Path

import numpy as np

from sleap_export.core.errors import InputError, SleapExportError

ONNX_SPEC_KEY = "sleap_export.spec"
TORCHSCRIPT_SPEC_FILE = "sleap_export_spec.json"
ENGINE_SPEC_OUTPUT = "sleap_export_spec"
ENGINE_SPEC_MAGIC = b"sleap-export spec v1\0"


def onnx_spec_json(path: Path) -> str:
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


def torchscript_spec_json(path: Path) -> str:
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


def engine_spec_json(path: Path) -> str:
    text = spec_json_in_engine(path.read_bytes())
    if text is None:
        raise SleapExportError(
            f"{path} carries no sleap-export spec; it was not built by sleap-export "
            "(build the engine with `sleap-export trt`)."
        )
    return text
