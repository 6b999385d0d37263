"""Reading the spec embedded in an artifact, one reader per file format.

Readers register by suffix; none of them imports torch: the TorchScript
archive is a zip whose extra file is read directly.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Callable

from sleap_export.errors import InputError, SleapExportError
from sleap_export.runtime.registry import suffix_registry
from sleap_export.spec import ModelSpec

ONNX_SPEC_KEY = "sleap_export.spec"
TORCHSCRIPT_SPEC_FILE = "sleap_export_spec.json"

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
