"""Progress for long predictions: a rich bar on a terminal, log lines elsewhere, or a
caller's function.

The displays report fps as `FrameRate` defines it, and so does predict's final line.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from typing import Callable, Iterator, Optional, Protocol, TextIO, Union


def counted(count: int, noun: str) -> str:
    """``1 frame``, ``2 frames``: a count with its noun (regular plurals)."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


class ProgressSink(Protocol):
    """What prediction reports its progress to."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, frames: int) -> None: ...


class CallbackProgress:
    """A caller's ``function(frames done, total)``, called at the start and after every batch."""

    def __init__(self, function: Callable[[int, int], object]):
        self.function = function

    def start(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self.function(done, total)

    def advance(self, frames: int) -> None:
        self.done += frames
        self.function(self.done, self.total)


class FrameRate:
    """fps as sleap-export reports it: frames predicted in this run (not those an earlier run
    saved) per wall-clock second from the start of prediction (``start``: the model read and
    the inputs opened; starting its runtime counts) to the last frame done."""

    def __init__(self, done: int = 0):
        self.started = self.last = time.perf_counter()
        self.resumed = self.done = done

    def advance(self, frames: int) -> None:
        self.done += frames
        self.last = time.perf_counter()

    @property
    def frames(self) -> int:
        return self.done - self.resumed

    @property
    def fps(self) -> float:
        return self.frames / max(self.last - self.started, 1e-9)


class LogProgress:
    """A line at the start and every ``every_s`` seconds (for logs and CI, where a bar would garble)."""

    def __init__(self, stream: TextIO = sys.stderr, every_s: float = 10.0, label: Optional[str] = None):
        self.stream, self.every_s = stream, every_s
        self.prefix = f"{label}: " if label else ""

    def start(self, total: int, done: int) -> None:
        self.total, self.rate = total, FrameRate(done)
        self.last = self.rate.started
        print(f"{self.prefix}{done}/{counted(total, 'frame')}", file=self.stream, flush=True)

    def advance(self, frames: int) -> None:
        self.rate.advance(frames)
        done, now = self.rate.done, self.rate.last
        if now - self.last >= self.every_s or done == self.total:
            self.last = now
            fps = self.rate.fps
            eta = (self.total - done) / fps if fps > 0 else float("inf")
            print(f"{self.prefix}{done}/{counted(self.total, 'frame')}, {fps:.1f} fps, ETA {eta:.0f} s", file=self.stream, flush=True)

    def stop(self) -> None:
        """Nothing to tear down: every line is already written."""


class _LinesAboveBar(io.TextIOBase):
    """Standard error while a bar is up: each line written is printed above the bar, not at the end of
    its line. rich's own redirection also takes bytes, so click (typer.echo) takes it for a binary
    stream and writes around it; this one takes text only, which click writes to as it is."""

    def __init__(self, console, stream: TextIO):
        self.console, self.stream, self.partial = console, stream, ""

    @property
    def encoding(self) -> str:
        return self.stream.encoding

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() takes text, not {type(text).__name__}")
        *lines, self.partial = (self.partial + text).split("\n")
        if lines:
            self._print("\n".join(lines))
        return len(text)

    def flush(self) -> None:
        if self.partial:
            self._print(self.partial)
            self.partial = ""

    def _print(self, text: str) -> None:
        from rich.text import Text

        self.console.print(Text.from_ansi(text), soft_wrap=True)


class BarProgress:
    """A rich progress bar with frames, fps and ETA, on standard error; what is written there while it is
    up (a warning, an interruption's message) goes above it."""

    def __init__(self, label: Optional[str] = None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn(label or "predicting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:.1f} fps"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),  # the stream itself: Console(stderr=True) would follow sys.stderr to the proxy
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.stderr: Optional[TextIO] = None

    def start(self, total: int, done: int) -> None:
        self.rate = FrameRate(done)
        self.task = self.bar.add_task("predict", total=total, completed=done, fps=0.0)
        self.bar.start()
        self.stderr, sys.stderr = sys.stderr, _LinesAboveBar(self.bar.console, sys.stderr)

    def advance(self, frames: int) -> None:
        self.rate.advance(frames)
        self.bar.update(self.task, advance=frames, fps=self.rate.fps)

    def stop(self) -> None:
        if self.stderr is not None:
            sys.stderr.flush()
            sys.stderr, self.stderr = self.stderr, None
        self.bar.stop()


Display = LogProgress | BarProgress


# What `Predictor.predict(progress=...)` takes: "auto", None, a function (done, total) or a sink.
ProgressArgument = Union[str, None, Callable[[int, int], object], ProgressSink]


def progress_sink(progress: ProgressArgument) -> Optional[ProgressSink]:
    """``"auto"``: a bar when standard error is a terminal, else nothing; a function: called
    with (frames done, total); a sink (``start``/``advance``): as it is; None: nothing."""
    if progress == "auto":
        return BarProgress() if sys.stderr.isatty() else None
    if progress is None or hasattr(progress, "advance"):
        return progress
    if callable(progress):
        return CallbackProgress(progress)
    raise TypeError(f"progress takes 'auto', None, a function (done, total) or a sink, not {progress!r}")


def progress_for(quiet: bool, label: Optional[str] = None) -> Optional[Display]:
    """Nothing when quiet, a bar on a terminal, periodic lines otherwise (``label``: what is running)."""
    if quiet:
        return None
    return BarProgress(label) if sys.stderr.isatty() else LogProgress(label=label)


class _Started:
    """A progress already started, for a `Predictor` to advance (its start call changes nothing)."""

    def __init__(self, progress: Display):
        self.progress = progress

    def start(self, total: int, done: int) -> None:
        """Started with its step, loading included."""

    def advance(self, frames: int) -> None:
        self.progress.advance(frames)


@contextlib.contextmanager
def phase(make: Optional[Callable[[str], Optional[Display]]], label: str, total: int) -> Iterator[Optional[_Started]]:
    """One step of a longer command over ``total`` frames (check: each side), shown from
    now, its loading included, until the way out; None without ``make``."""
    progress = None if make is None else make(label)
    if progress is None:
        yield None
        return
    progress.start(total=total, done=0)
    try:
        yield _Started(progress)
    finally:
        progress.stop()
