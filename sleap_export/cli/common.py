"""What every command shares: the session's flags, the options declared once, and
turning the model flags into one `ModelOptions`."""

from __future__ import annotations

import contextvars
import warnings
from typing import Optional

import attrs
import typer

from sleap_export.core.errors import install_extra


@attrs.define
class Session:
    """One command line's state, from `main` (or the root callback) to every command."""

    debug: bool = False
    quiet: bool = False
    # An interruption the command already reported (with its partial output named).
    interrupt_reported: bool = False
    # SIGTERM arrived (it unwinds like Ctrl-C).
    terminated: bool = False


_SESSION: contextvars.ContextVar[Session] = contextvars.ContextVar("sleap_export_cli_session")


def start_session() -> Session:
    """A new `Session` for one command line (`main` starts one per call)."""
    state = Session()
    _SESSION.set(state)
    return state


def session() -> Session:
    """This command line's `Session`."""
    try:
        return _SESSION.get()
    except LookupError:
        return start_session()


def quiet(flag: bool = False) -> bool:
    """Whether to print nothing but errors (``flag``: this command's -q)."""
    state = session()
    if flag and not state.quiet:
        state.quiet = True
        warnings.simplefilter("ignore")  # warnings are not errors
    return state.quiet


# Every command takes it too, so it works before or after the command name.
QUIET = typer.Option(
    False, "--quiet", "-q",
    help="Print nothing but errors: no progress, summaries or reports (asked-for output, --json files and the exit status stay).",
)
# What a model argument may be (predict, check, bench, live).
MODEL_HELP = (
    "An artifact (.onnx, .pt, .engine), or a training run run eagerly by PyTorch: a sleap-nn run folder, "
    "its best.ckpt, or a SLEAP 1.x model folder."
)
RUNTIME = typer.Option(
    None, "--runtime", help=f"ONNX artifacts: onnxruntime (default) or openvino ({install_extra('openvino')})."
)
RUNTIME_PRECISION = typer.Option(
    None, "--precision", help="--runtime openvino: fp32 (default) or bf16 (the networks in bf16; CPUs with bf16 instructions)."
)
DEVICE = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda for TensorRT engines, else cpu).")
SPIN = typer.Option(
    None, "--spin/--no-spin",
    help="Live: between frames, poll for the next one (a core kept busy: a core woken from sleep runs the network slower) or sleep. Default: poll on 2+ cores.",
)
WARM_AHEAD = typer.Option(
    False, "--warm-ahead",
    help="Live: run the network once on the last frame just before each frame is due (a network run a moment ago runs faster; one more run per frame).",
)


def model_options(
    device: Optional[str] = None,
    runtime: Optional[str] = None,
    precision: Optional[str] = None,
    threads: Optional[int] = None,
    parallel_batches: Optional[int] = None,
    masks=None,
):
    """The `ModelOptions` the model flags ask for (validated there); ``masks``: a `MaskOptions`."""
    from sleap_export.runtime.open_model import ModelOptions

    extra = {} if masks is None else {"masks": masks}
    return ModelOptions(device=device, runtime=runtime, precision=precision, threads=threads, parallel_batches=parallel_batches, **extra)


def waiting(spin: Optional[bool], warm_ahead: bool):
    """The live run's `Waiting` for --spin/--no-spin and --warm-ahead."""
    from sleap_export.runtime.drivers.live import Waiting

    return Waiting.default(spin, warm_ahead)
