"""Where prediction time goes: seconds per pipeline stage, for `bench` and users."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict


class StageClock:
    """Accumulates wall-clock seconds per named stage, summed over the threads that run it."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def section(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.seconds[stage] += elapsed

    def reset(self) -> None:
        self.seconds.clear()
