"""Where prediction time goes: seconds per pipeline stage, for `bench` and users."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict


class StageClock:
    """Accumulates wall-clock seconds per named stage (one writer thread per stage)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def section(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started

    def reset(self) -> None:
        self.seconds.clear()
