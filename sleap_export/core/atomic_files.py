"""Write-then-rename, so no reader ever sees a half-written file."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from sleap_export.core.errors import InputError


@contextmanager
def written_atomically(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a hidden temporary sibling of ``path`` to write; rename it onto ``path`` on success.

    ``suffix`` keeps a writer that goes by the file extension (``.slp``) happy.
    """
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}{suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_json_atomically(values: dict, path: Path) -> None:
    """Write JSON through a temporary file in the same folder, then rename."""
    if not path.parent.exists():
        raise InputError(f"Folder {path.parent} does not exist; create it first.")
    with written_atomically(path) as partial:
        partial.write_text(json.dumps(values, indent=2))


def refuse_inputs_as_output(output: Path, inputs: Iterable, what: str) -> None:
    """Refuse an ``output`` that is one of ``inputs`` or an existing file in an input folder
    (a training run's checkpoint or labels), symlinks resolved; ``what``: what the error says goes
    to another file ("the predictions")."""
    target = output.resolve()
    for item in inputs:
        if not isinstance(item, (str, Path)):
            continue
        source = Path(item).resolve()
        if target == source or (output.exists() and source.is_dir() and source in target.parents):
            raise InputError(f"{output} is one of the inputs; write {what} to another file.")


def check_json_destination(path: Path, inputs: Iterable) -> None:
    """Before the work: a ``--json`` report that would overwrite an input, or whose folder is missing, is refused."""
    refuse_inputs_as_output(path, inputs, "the report")
    if not path.parent.exists():
        raise InputError(f"Folder {path.parent} does not exist; create it first.")
