"""Progress for long predictions: a rich bar on a terminal, log lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class LogProgress:
    """A line every ``every_s`` seconds (for logs and CI, where a bar would garble)."""

    def __init__(self, stream: TextIO = sys.stderr, every_s: float = 10.0):
        self.stream, self.every_s = stream, every_s

    def start(self, total: int, done: int) -> None:
        self.total, self.done, self.resumed = total, done, done
        self.started = self.last = time.perf_counter()

    def advance(self, frames: int) -> None:
        self.done += frames
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            fps = (self.done - self.resumed) / max(now - self.started, 1e-9)
            eta = (self.total - self.done) / fps if fps > 0 else float("inf")
            print(f"{self.done}/{self.total} frames, {fps:.1f} fps, ETA {eta:.0f} s", file=self.stream, flush=True)

    def stop(self) -> None:
        """Nothing to tear down: every line is already written."""


class BarProgress:
    """A rich progress bar with frames, fps and ETA."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("predicting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:.1f} fps"),
            TimeRemainingColumn(),
            transient=True,
        )

    def start(self, total: int, done: int) -> None:
        self.resumed, self.started = done, time.perf_counter()
        self.task = self.bar.add_task("predict", total=total, completed=done, fps=0.0)
        self.bar.start()

    def advance(self, frames: int) -> None:
        task = self.bar.tasks[0]
        fps = (task.completed + frames - self.resumed) / max(time.perf_counter() - self.started, 1e-9)
        self.bar.update(self.task, advance=frames, fps=fps)

    def stop(self) -> None:
        self.bar.stop()


def progress_for(quiet: bool) -> Optional[LogProgress | BarProgress]:
    """Nothing when quiet, a bar on a terminal, periodic lines otherwise."""
    if quiet:
        return None
    return BarProgress() if sys.stderr.isatty() else LogProgress()
