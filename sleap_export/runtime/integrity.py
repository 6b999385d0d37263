"""Payload digests: one sha256 over an artifact's model bytes and its spec.

The exporter stores the digest in the spec (``payload_sha256``); `verify_payload`
recomputes it, so weights, graph or spec changed after export are caught. The
spec enters the digest with that field blank, and bytes that do not describe the
model (ONNX metadata, TorchScript's serialization id) are left out.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Callable

import attrs

from sleap_export.errors import InputError, SleapExportError
from sleap_export.runtime.artifact import ENGINE_SUFFIXES, TORCHSCRIPT_SPEC_FILE, read_spec
from sleap_export.runtime.registry import suffix_registry
from sleap_export.spec import ModelSpec

_PAYLOAD_READERS: dict[str, Callable[[Path, ModelSpec], str]] = {}
# TorchScript archive entries that are not the model (relative to the archive root).
_TORCHSCRIPT_SKIPPED = ("extra/" + TORCHSCRIPT_SPEC_FILE, ".data/serialization_id")


# ``@_payload_reader(".onnx")`` registers a function ``(path, spec) -> payload sha256``.
_payload_reader = suffix_registry(_PAYLOAD_READERS)


def _finish(digest, spec: ModelSpec) -> str:
    # Through a JSON round trip, so the writer hashes what readers will parse (0 -> 0.0).
    canonical = ModelSpec.from_json(attrs.evolve(spec, payload_sha256="").to_json())
    digest.update(b"\0spec\0")
    digest.update(canonical.to_json().encode())
    return digest.hexdigest()


def onnx_payload_sha256(model, spec: ModelSpec) -> str:
    """Digest of an ``onnx.ModelProto`` without its metadata, plus the spec."""
    import onnx

    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.metadata_props[:]
    return _finish(hashlib.sha256(bare.SerializeToString(deterministic=True)), spec)


def torchscript_payload_sha256(archive: zipfile.ZipFile, spec: ModelSpec) -> str:
    """Digest of a TorchScript archive's entries (by name, root folder dropped), plus the spec."""
    digest = hashlib.sha256()
    entries = sorted((name.split("/", 1)[-1], name) for name in archive.namelist())
    for relative, name in entries:
        if relative in _TORCHSCRIPT_SKIPPED:
            continue
        digest.update(relative.encode() + b"\0")
        digest.update(archive.read(name))
        digest.update(b"\0")
    return _finish(digest, spec)


@_payload_reader(".onnx")
def _onnx_file_payload(path: Path, spec: ModelSpec) -> str:
    import onnx

    return onnx_payload_sha256(onnx.load(str(path)), spec)


@_payload_reader(".pt", ".ts", ".torchscript")
def _torchscript_file_payload(path: Path, spec: ModelSpec) -> str:
    with zipfile.ZipFile(path) as archive:
        return torchscript_payload_sha256(archive, spec)


def verify_payload(path: str | Path) -> ModelSpec:
    """The artifact's spec, after checking its payload digest; raises when tampered."""
    path = Path(path)
    spec = read_spec(path)
    if path.suffix in ENGINE_SUFFIXES:
        raise InputError(
            f"{path.name} is a TensorRT engine: TensorRT builds are not reproducible, so engines carry no "
            f"payload hash; verify the ONNX artifact it was built from (payload "
            f"{spec.export_options.get('built from payload', 'unknown')[:16]}) and run `sleap-export check` on the engine."
        )
    if not spec.payload_sha256:
        raise SleapExportError(
            f"{path} carries no payload hash (written before sleap-export recorded one); re-export it."
        )
    actual = _PAYLOAD_READERS[path.suffix](path, spec)
    if actual != spec.payload_sha256:
        raise SleapExportError(
            f"{path} was modified after export (payload sha256 {actual[:12]}, recorded "
            f"{spec.payload_sha256[:12]}); re-export it from the training run."
        )
    return spec
