"""Payload digests: one sha256 over an artifact's model bytes and its spec.

The exporter stores the digest in the spec (``payload_sha256``);
`runtime.artifact.verify_payload` recomputes it, so weights, graph or spec
changed after export are caught. The spec enters the digest with that field
blank, and bytes that do not describe the model (ONNX metadata, TorchScript's
serialization id) are left out.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import attrs

from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.artifacts.embedded_spec import TORCHSCRIPT_SPEC_FILE

# TorchScript archive entries that are not the model (relative to the archive root).
_TORCHSCRIPT_SKIPPED = ("extra/" + TORCHSCRIPT_SPEC_FILE, ".data/serialization_id")


def spec_digest_text(spec: ModelSpec) -> str:
    """The spec as it enters the digest: blank hash field, through a JSON round trip, so
    the writer hashes what readers will parse (0 -> 0.0)."""
    return ModelSpec.from_json(attrs.evolve(spec, payload_sha256="").to_json()).to_json()


def stored_spec_digest_text(spec_json: str) -> str:
    """What the writer of an older schema hashed: its own JSON, hash field blank, keys sorted."""
    data = json.loads(spec_json)
    data["payload_sha256"] = ""
    return json.dumps(data, sort_keys=True)


def _finish(digest, spec_text: str) -> str:
    digest.update(b"\0spec\0")
    digest.update(spec_text.encode())
    return digest.hexdigest()


def onnx_payload_sha256(model, spec: ModelSpec) -> str:
    """Digest of an ``onnx.ModelProto`` without its metadata, plus the spec."""
    return _onnx_digest(model, spec_digest_text(spec))


def _onnx_digest(model, spec_text: str) -> str:
    import onnx

    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.metadata_props[:]
    return _finish(hashlib.sha256(bare.SerializeToString(deterministic=True)), spec_text)


def torchscript_payload_sha256(archive: zipfile.ZipFile, spec: ModelSpec) -> str:
    """Digest of a TorchScript archive's entries (by name, root folder dropped), plus the spec."""
    return _torchscript_digest(archive, spec_digest_text(spec))


def _torchscript_digest(archive: zipfile.ZipFile, spec_text: str) -> str:
    digest = hashlib.sha256()
    entries = sorted((name.split("/", 1)[-1], name) for name in archive.namelist())
    for relative, name in entries:
        if relative in _TORCHSCRIPT_SKIPPED:
            continue
        digest.update(relative.encode() + b"\0")
        digest.update(archive.read(name))
        digest.update(b"\0")
    return _finish(digest, spec_text)


def onnx_file_payload_sha256(path: Path, spec_text: str) -> str:
    """The payload digest of an ONNX file, with ``spec_text`` (see `spec_digest_text`)."""
    import onnx

    return _onnx_digest(onnx.load(str(path)), spec_text)


# ModelProto's metadata_props field, and protobuf's wire types that carry a varint, 8 bytes, a length, 4 bytes.
_ONNX_METADATA_FIELD = 14
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def onnx_bytes_payload_sha256(path: Path, spec_text: str) -> str:
    """The payload digest read straight from an ONNX file's bytes: its top-level fields but the metadata,
    as written, plus the spec. Equal to `onnx_file_payload_sha256` for a file as sleap-export wrote it
    (protobuf writes fields in number order, and ONNX has no maps that deterministic output would sort),
    without importing onnx (1-2 s) or parsing the graph; anything else gives another digest."""
    data = memoryview(Path(path).read_bytes())
    digest = hashlib.sha256()
    at = 0
    try:
        while at < len(data):
            start = at
            key, at = _varint(data, at)
            field, wire_type = key >> 3, key & 7
            if wire_type == _VARINT:
                _, at = _varint(data, at)
            elif wire_type == _LENGTH_DELIMITED:
                length, at = _varint(data, at)
                at += length
            elif wire_type in (_FIXED64, _FIXED32):
                at += 8 if wire_type == _FIXED64 else 4
            else:  # groups: never in ONNX
                return ""
            if field != _ONNX_METADATA_FIELD:
                digest.update(data[start:at])
    except IndexError:  # cut short: not what was written
        return ""
    return _finish(digest, spec_text)


def torchscript_file_payload_sha256(path: Path, spec_text: str) -> str:
    """The payload digest of a TorchScript file, with ``spec_text`` (see `spec_digest_text`)."""
    with zipfile.ZipFile(path) as archive:
        return _torchscript_digest(archive, spec_text)
