"""`export()`: what ``sleap-export onnx|torchscript|trt`` does, for Python callers too.

A YAML preset's fields, then the options given; the artifact written
(`exporting.artifact_writer`); optionally checked against sleap-nn on a video or
labels, and removed when the check fails or does not finish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.evaluation import parity_check
from sleap_export.exporting.artifact_writer import write_artifact
from sleap_export.exporting.options import ExportOptions, read_preset
from sleap_export.runtime.artifacts.formats import ONNX, find_format


def export(
    model_paths: Sequence[str | Path] | str | Path,
    output: str | Path,
    format: Optional[str] = None,
    options: Optional[ExportOptions] = None,
    overwrite: bool = False,
    preset: Optional[str | Path] = None,
    check: Optional[str | Path] = None,
    check_frames: int = 50,
    check_progress: Optional[Callable[[str], object]] = None,
    on_check_report: Optional[Callable[["parity_check.CheckReport"], None]] = None,
    **option_fields,
) -> Path:
    """Export sleap-nn run folder(s) (or SLEAP 1.x folders) to one self-describing artifact.

    Options come as an `ExportOptions`, or as flat fields (``max_instances=``,
    ``peak_threshold=``, ``refinement=None``, ...) over the fields of a YAML
    ``preset`` (a bundled preset's name, e.g. crowded-arena, or a YAML file). The format follows
    ``format`` or the output's suffix; a TensorRT engine can also be built from one of our ONNX artifacts.

    ``check``: a video or .slp to compare the new artifact with sleap-nn on
    (``check_frames`` frames, `check_artifact`); an artifact that fails, or whose
    check does not finish, is removed and the failure raised. ``on_check_report``
    receives the report either way; ``check_progress`` is `check_artifact`'s progress.
    """
    paths = [Path(p) for p in ([model_paths] if isinstance(model_paths, (str, Path)) else model_paths)]
    if options is not None and (option_fields or preset is not None):
        raise InputError("Pass export options either as options= or as fields (over a preset), not both.")
    if options is None:
        fields = {**(read_preset(preset) if preset is not None else {}), **option_fields}
        options = ExportOptions.from_fields(**fields)
    if check is not None and any(find_format(p) is ONNX for p in paths):
        raise InputError("--check compares with sleap-nn on the run folders; pass those instead of the ONNX artifact.")
    path = write_artifact(paths, output, format=format, options=options, overwrite=overwrite)
    if check is None:
        return path
    try:
        report = parity_check.check_artifact(path, paths, check, frames=check_frames, progress=check_progress)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if on_check_report is not None:
        on_check_report(report)
    if not report:
        path.unlink()
        raise SleapExportError(f"{path.name} failed its check ({'; '.join(report.failures)}); removed it.")
    return path
