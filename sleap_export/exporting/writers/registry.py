"""The writers' table: one `Exporter` per artifact format (`runtime.artifacts.formats.FORMATS`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import attrs

from sleap_export.core.errors import InputError
from sleap_export.exporting.graph_builder import BuiltGraph
from sleap_export.exporting.options import ExportOptions
from sleap_export.exporting.writers import onnx_writer, tensorrt_writer, torchscript_writer
from sleap_export.runtime.artifacts.formats import (
    ONNX,
    TENSORRT,
    TORCHSCRIPT,
    ArtifactFormat,
    artifact_suffixes,
    format_by_suffix,
    format_named,
)


def _any_machine(options: ExportOptions) -> None:
    """Every machine can write the format."""


@attrs.frozen
class Exporter:
    """The writer of one artifact format."""

    format: ArtifactFormat
    write: Callable[[BuiltGraph, Path, ExportOptions], None]
    # Raises when this machine cannot write the format, before any model is loaded.
    check_machine: Callable[[ExportOptions], None] = _any_machine


# Format name -> its exporter.
EXPORTERS: dict[str, Exporter] = {
    exporter.format.name: exporter
    for exporter in (
        Exporter(ONNX, onnx_writer.write_onnx),
        Exporter(TORCHSCRIPT, torchscript_writer.write_torchscript),
        Exporter(TENSORRT, tensorrt_writer.write_engine, tensorrt_writer.check_machine),
    )
}


def exporter_for(output: Path, format: Optional[str]) -> Exporter:
    """The exporter named by ``format``, else the one owning the output's suffix."""
    if format is not None:
        fmt = format_named(format)
        if output.suffix.lower() not in fmt.suffixes:
            raise InputError(
                f"{output.name} has the wrong suffix for {format}; name it "
                f"{output.stem}{fmt.suffixes[0]} so the runtime can load it."
            )
    else:
        fmt = format_by_suffix(output)
        if fmt is None:
            raise InputError(
                f"Cannot tell the format of {output.name} from its suffix; use one of "
                f"{', '.join(artifact_suffixes())} or pass format=."
            )
    return EXPORTERS[fmt.name]
