"""Exporters: one per artifact format (`runtime.artifact.FORMATS`), registered on its record.

`export()` picks the format from ``format=`` or the output's suffix, builds the
graph once, writes the artifact through a temporary file in the destination
folder, verifies it against the eager module, then renames it into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import attrs

from sleap_export.build import BuiltGraph, ExportOptions, build_graph
from sleap_export.errors import InputError, SleapExportError
from sleap_export.files import written_atomically
from sleap_export.runtime.artifact import ONNX, TENSORRT, ArtifactFormat, artifact_suffixes, find_format, format_named


@attrs.frozen
class Exporter:
    """The writer of one artifact format."""

    format: ArtifactFormat
    write: Callable[[BuiltGraph, Path, ExportOptions], None]
    # Raises when this machine cannot write the format, before any model is loaded.
    preflight: Callable[[ExportOptions], None] = lambda options: None


# Format name -> its exporter (filled by `register_exporter` as the exporter modules load).
EXPORTERS: dict[str, Exporter] = {}


def register_exporter(fmt: ArtifactFormat, preflight: Callable[[ExportOptions], None] | None = None):
    """Decorator registering ``write(built, path, options)`` as the exporter of ``fmt``."""

    def add(write):
        extra = {} if preflight is None else {"preflight": preflight}
        EXPORTERS[fmt.name] = Exporter(format=fmt, write=write, **extra)
        return write

    return add


def exporter_for(output: Path, format: str | None) -> Exporter:
    """The exporter named by ``format``, else the one owning the output's suffix."""
    from sleap_export.exporters import onnx, tensorrt, torchscript  # noqa: F401  (each registers its exporter)

    if format is not None:
        fmt = format_named(format)
        if output.suffix not in fmt.suffixes:
            raise InputError(
                f"{output.name} has the wrong suffix for {format}; name it "
                f"{output.stem}{fmt.suffixes[0]} so the runtime can load it."
            )
    else:
        fmt = find_format(output)
        if fmt is None:
            raise InputError(
                f"Cannot tell the format of {output.name} from its suffix; use one of "
                f"{', '.join(artifact_suffixes())} or pass format=."
            )
    return EXPORTERS[fmt.name]


def check_output_path(output: Path, overwrite: bool) -> None:
    """Refuse outputs we cannot or should not write, before any work is done."""
    if output.is_dir():
        raise InputError(f"{output} is a folder; pass a file path for the artifact.")
    if not output.parent.exists():
        raise InputError(f"Output folder {output.parent} does not exist; create it first.")
    if not os.access(output.parent, os.W_OK):
        raise InputError(f"Output folder {output.parent} is not writable; choose another.")
    if output.exists() and not overwrite:
        raise InputError(f"{output} already exists; pass --overwrite to replace it.")


def export(
    model_paths: Sequence[str | Path] | str | Path,
    output: str | Path,
    format: str | None = None,
    options: ExportOptions | None = None,
    overwrite: bool = False,
    **option_fields,
) -> Path:
    """Export sleap-nn run folder(s) to one self-describing artifact.

    Options can be passed as an `ExportOptions` or as flat fields
    (``max_instances=``, ``peak_threshold=``, ``refinement=None``, ...).
    A TensorRT engine can also be built from one of our ONNX artifacts.
    """
    if isinstance(model_paths, (str, Path)):
        model_paths = [model_paths]
    output = Path(output)
    exporter = exporter_for(output, format)
    check_output_path(output, overwrite)
    if options is None:
        options = ExportOptions.from_fields(**option_fields)
    elif option_fields:
        raise InputError("Pass export options either as options= or as fields, not both.")
    onnx_source = _onnx_artifact_source(model_paths, exporter, options)
    exporter.preflight(options)
    if onnx_source is None:
        built = build_graph(model_paths, options)
    try:
        with written_atomically(output) as partial:
            if onnx_source is None:
                exporter.write(built, partial, options)
            else:
                from sleap_export.exporters.tensorrt import build_engine

                build_engine(onnx_source, partial, options.tensorrt)
    except OSError as err:
        raise SleapExportError(
            f"Could not write {output} ({err.strerror or err}); free space or choose another folder."
        ) from None
    return output


def _onnx_artifact_source(model_paths, exporter: Exporter, options: ExportOptions) -> Path | None:
    """The ONNX artifact to build an engine from, when that is what was passed."""
    paths = [Path(p) for p in model_paths]
    if not any(find_format(p) is ONNX for p in paths):
        return None
    if exporter.format is not TENSORRT or len(paths) != 1:
        raise InputError(
            "An ONNX artifact can only be built into a TensorRT engine (sleap-export trt MODEL.onnx -o "
            "MODEL.engine); to export another format, pass the training run folder(s)."
        )
    if not paths[0].is_file():
        raise InputError(f"{paths[0]} does not exist; pass an ONNX artifact written by sleap-export.")
    if options.precision != "fp32":
        raise InputError(
            "An engine built from an ONNX artifact keeps that artifact's precision; leave out --precision, "
            "or pass the run folder(s) to export at another precision."
        )
    return paths[0]
