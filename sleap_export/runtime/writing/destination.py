"""Where predictions go: a file of an output format (`output_formats`) that is none of the
inputs, in a writable folder, one writer at a time (`exclusive_output`)."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Optional

from sleap_export.core.atomic_files import refuse_inputs_as_output
from sleap_export.core.errors import InputError
from sleap_export.runtime.writing.journal import journal_path
from sleap_export.runtime.writing.output_formats import OutputFormat, output_format


def check_destination(output: Path, inputs: Iterable, format_name: Optional[str] = None) -> OutputFormat:
    """The output's format (its suffix; ``format_name``, ``--format``, must agree), refused when
    the suffix is no output format's, the file is one of ``inputs`` (`refuse_inputs_as_output`),
    or it lies in a folder this process cannot write; before any frame is predicted."""
    found = output_format(output, format_name)
    refuse_inputs_as_output(output, inputs, "the predictions")
    folder = output.parent
    if not folder.is_dir():
        raise InputError(f"Output folder {folder} does not exist; create it first.")
    try:
        # A file made and removed, not os.access: that passes for root on folders it cannot write to.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{output.name}.probe-"):
            pass
    except OSError:
        raise InputError(f"Output folder {folder} is not writable; choose another --output.") from None
    if output.exists() and not os.access(output, os.W_OK):
        raise InputError(f"{output} is read-only; choose another --output or make it writable.")
    return found


def refuse_resume_with_overwrite(resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise InputError("--resume keeps the frames in --output and --overwrite replaces them; pass one of the two.")


def refuse_replacing(output: Path, found: OutputFormat, resume: bool, overwrite: bool) -> None:
    """What an earlier run left at ``output`` (the file, or the journal of a run that was stopped) is
    kept unless the caller says what to do with it: ``resume`` finishes it, ``overwrite`` replaces it;
    the CLI and the Python API alike, before any frame is predicted."""
    refuse_resume_with_overwrite(resume, overwrite)
    if overwrite or resume:
        return
    journal = journal_path(output)
    if journal.exists():
        raise InputError(
            f"{journal} holds the frames an interrupted run predicted into {output.name}; pass --resume to finish it, "
            "or --overwrite to start again."
        )
    if output.exists():
        finish = ", or --resume to finish it" if found.not_resumable is None else ""
        raise InputError(f"{output} already exists; pass --overwrite to replace it{finish}.")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def exclusive_output(output: Path) -> Iterator[None]:
    """Hold ``OUTPUT.lock`` (the writer's pid) while predicting into ``output``.

    A second writer is refused; a lock left by a process that no longer runs is taken over.
    """
    lock = output.with_name(output.name + ".lock")
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and _pid_alive(holder):
                raise InputError(
                    f"Another predict (pid {holder}) is writing {output}; wait for it to finish "
                    f"or write to another file."
                ) from None
            lock.unlink(missing_ok=True)  # stale: its writer is gone
    else:
        raise InputError(f"Cannot lock {output} ({lock} keeps reappearing); write to another file.")
    try:
        os.write(descriptor, str(os.getpid()).encode())
        os.close(descriptor)
        yield
    finally:
        lock.unlink(missing_ok=True)
