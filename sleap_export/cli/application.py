"""The ``sleap-export`` command line (also ``python -m sleap_export``): the app, its
commands (one module per group), and `main`'s one-line errors and exit codes.

The CLI parses and prints; the work is in the layers below. Heavy imports
(torch, sleap-nn, onnx) happen inside the commands that need them, so
``--help`` and ONNX prediction start fast and torch-free.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings

import typer

from sleap_export.cli import evaluate_commands, export_commands, inspect_command, live_command, predict_command
from sleap_export.cli.common import QUIET, quiet, session, start_session
from sleap_export.cli.demo_command import demo
from sleap_export.core.errors import SleapExportError, missing_extra

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    # Plain help: option names are never cut to fit a narrow terminal (rich's tables cut them at 80 columns).
    rich_markup_mode=None,
    help="Export trained sleap-nn models to ONNX / TorchScript and run them.",
)
# Exit status for Ctrl-C / SIGTERM (typer turns KeyboardInterrupt into this code).
INTERRUPTED = 130
# Packages whose versions decide what an artifact does here (read from metadata, nothing imported).
_VERSION_PACKAGES = ("sleap-export", "onnxruntime", "onnx", "numpy", "sleap-io", "torch", "sleap-nn", "tensorrt")


def _print_versions(value: bool) -> None:
    if not value:
        return
    from importlib import metadata

    for name in _VERSION_PACKAGES:
        try:
            typer.echo(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            typer.echo(f"{name} not installed")
    raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors (also after the command)."),
    quiet_flag: bool = QUIET,
    version: bool = typer.Option(
        False, "--version", callback=_print_versions, is_eager=True, help="Print the versions of sleap-export and its runtimes."
    ),
):
    state = session()
    state.debug = state.debug or debug
    quiet(quiet_flag)


app.command("onnx")(export_commands.export_command("onnx"))
app.command("torchscript")(export_commands.export_command("torchscript"))
app.command("trt")(export_commands.trt)
app.command("predict")(predict_command.predict)
app.command("check")(evaluate_commands.check)
app.command("bench")(evaluate_commands.bench)
app.command("inspect")(inspect_command.inspect)
app.command("live")(live_command.live)
app.command("demo")(demo)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line, like errors (Python's default adds the source file and line)."""
    typer.echo(f"warning: {str(message).splitlines()[0] if str(message) else category.__name__}", err=True)


def main() -> None:
    """Entry point: one-line errors and warnings, and exit codes (2 usage, 1 failure, 130 interrupted)."""
    state = start_session()
    warnings.showwarning = _warning_line

    def interrupt(signum, frame):
        state.terminated = True
        raise KeyboardInterrupt

    # SIGTERM unwinds like Ctrl-C, so partial files are removed on the way out.
    signal.signal(signal.SIGTERM, interrupt)
    # --debug anywhere on the line: errors advise rerunning with it, after the command too.
    arguments = sys.argv[1:]
    if "--debug" in arguments:
        state.debug = True
        arguments = [a for a in arguments if a != "--debug"]
    try:
        result = app(args=arguments, standalone_mode=False)
    except typer.TyperException as err:
        # Usage errors (typer's own click): the command's usage line, the option named, exit 2.
        err.show()
        sys.exit(err.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        result = INTERRUPTED
    except SleapExportError as err:
        if state.debug:
            raise
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except Exception as err:
        if state.debug:
            raise
        # An optional extra that is not installed is a setup to fix, named in one line.
        refusal = missing_extra(err) if isinstance(err, ModuleNotFoundError) else None
        if refusal is not None:
            typer.echo(f"error: {refusal}", err=True)
            sys.exit(refusal.exit_code)
        message = str(err).splitlines()[0] if str(err) else ""
        typer.echo(f"error: {type(err).__name__}: {message} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)
    if state.terminated and result != INTERRUPTED:
        # A library swallowed the interrupt (a bare except) and the command finished.
        typer.echo("interrupted after the command had finished; its output is complete", err=True)
        result = INTERRUPTED
    if result == INTERRUPTED:
        if not state.interrupt_reported:
            typer.echo("interrupted; nothing was left half-written", err=True)
        # os._exit: an interrupt that landed inside an import makes CPython re-raise
        # SIGINT at shutdown (status -2) whatever sys.exit says; cleanup already ran.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED)
    if isinstance(result, int) and result:
        sys.exit(result)
