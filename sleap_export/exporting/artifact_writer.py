"""Writing an artifact: the format from the output's name, the graph built once, the
file written through a temporary sibling and renamed into place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from sleap_export.core.atomic_files import written_atomically
from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.exporting.graph_builder import build_graph
from sleap_export.exporting.options import ExportOptions
from sleap_export.exporting.writers.registry import Exporter, exporter_for
from sleap_export.runtime.artifacts.formats import ONNX, TENSORRT, find_format


def check_output_path(output: Path, overwrite: bool) -> None:
    """Refuse outputs we cannot or should not write, before any work is done."""
    if output.is_dir():
        raise InputError(f"{output} is a folder; pass a file path for the artifact.")
    if not output.parent.exists():
        raise InputError(f"Output folder {output.parent} does not exist; create it first.")
    if not os.access(output.parent, os.W_OK):
        raise InputError(f"Output folder {output.parent} is not writable; choose another.")
    if output.exists() and not overwrite:
        raise InputError(f"{output} already exists; pass --overwrite (overwrite=True in Python) to replace it.")


def write_artifact(
    model_paths: Sequence[str | Path] | str | Path,
    output: str | Path,
    format: str | None = None,
    options: ExportOptions | None = None,
    overwrite: bool = False,
    **option_fields,
) -> Path:
    """Write sleap-nn run folder(s) as one self-describing artifact (verified against the
    eager module by its writer); `sleap_export.export` adds presets and the check.

    Options can be passed as an `ExportOptions` or as flat fields
    (``max_instances=``, ``peak_threshold=``, ``refinement=None``, ...).
    A TensorRT engine can also be built from one of our ONNX artifacts.
    """
    if isinstance(model_paths, (str, Path)):
        model_paths = [model_paths]
    output = Path(output)
    if options is None:
        options = ExportOptions.from_fields(**option_fields)
    elif option_fields:
        raise InputError("Pass export options either as options= or as fields, not both.")
    if options.layout == "sleap-nn":
        return _write_sleap_nn_folder(model_paths, output, format, options, overwrite)
    exporter = exporter_for(output, format)
    check_output_path(output, overwrite)
    onnx_source = _onnx_artifact_source(model_paths, exporter, options)
    exporter.check_machine(options)
    if onnx_source is None:
        built = build_graph(model_paths, options)
    try:
        with written_atomically(output) as partial:
            if onnx_source is None:
                exporter.write(built, partial, options)
            else:
                from sleap_export.exporting.writers.tensorrt_writer import build_engine

                build_engine(onnx_source, partial, options.tensorrt)
    except OSError as err:
        raise SleapExportError(
            f"Could not write {output} ({err.strerror or err}); free space or choose another folder."
        ) from None
    return output


def _write_sleap_nn_folder(model_paths, output: Path, format: str | None, options: ExportOptions, overwrite: bool) -> Path:
    from sleap_export.exporting.writers.sleap_nn_folder_writer import write_sleap_nn_folder

    if format not in (None, ONNX.name):
        raise InputError(
            f"--layout sleap-nn writes an ONNX model in sleap-nn's export folder, not {format}; use "
            "sleap-export onnx RUN -o FOLDER --layout sleap-nn."
        )
    if any(find_format(p) is not None for p in model_paths):
        raise InputError("--layout sleap-nn exports training runs; pass the run folder(s), not an artifact.")
    return write_sleap_nn_folder(model_paths, output, options, overwrite)


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
