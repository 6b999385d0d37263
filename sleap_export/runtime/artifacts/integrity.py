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


def torchscript_file_payload_sha256(path: Path, spec_text: str) -> str:
    """The payload digest of a TorchScript file, with ``spec_text`` (see `spec_digest_text`)."""
    with zipfile.ZipFile(path) as archive:
        return _torchscript_digest(archive, spec_text)
