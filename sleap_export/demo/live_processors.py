"""Two closed-loop hooks for ``sleap-export live --processor`` and ``LiveRunner(processor=...)``.

Copy one and adapt it: ``process(outputs, timestamps)`` runs on the inference
thread after each frame's poses, so keep it short (its time delays the next
frame); ``close()`` runs once at the end. See docs/live.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from sleap_export.runtime.decoding.outputs import Outputs
from sleap_export.runtime.drivers.live import FrameTimes


def _animals(outputs: Outputs):
    """``(animal, slot)`` of each instance: its class id on multi-class models, else its slot."""
    for slot in np.flatnonzero(np.asarray(outputs.instance_valid)):
        yield (int(outputs.class_ids[slot]) if outputs.class_ids is not None else int(slot)), slot


class RegionTrigger:
    """Logs each time an animal's node enters or leaves a rectangle (a region of interest).

    ``region``: ``(x0, y0, x1, y1)`` frame pixels; ``node``: its name or index;
    ``log``: a CSV file to append ``frame,capture_ns,animal,event`` lines to
    (``events`` keeps them too). With forward prediction on, the forecast
    position is tested: where the animal is when the event is logged, not
    where it was at capture. An animal not found in a frame keeps its state.
    """

    def __init__(self, region=(0.0, 0.0, 100.0, 100.0), node: int | str = 0, log: Optional[str | Path] = None):
        self.region = tuple(float(v) for v in region)
        self.node = node
        self.events: list[tuple[int, int, int, str]] = []
        self._inside: dict[int, bool] = {}
        self._log = open(log, "a") if log is not None else None

    def process(self, outputs: Outputs, timestamps: FrameTimes) -> None:
        node = outputs.node_names.index(self.node) if isinstance(self.node, str) else self.node
        points = outputs.pred_forecast_keypoints if outputs.pred_forecast_keypoints is not None else outputs.pred_keypoints
        x0, y0, x1, y1 = self.region
        for animal, slot in _animals(outputs):
            x, y = points[slot, node]
            inside = bool(x0 <= x < x1 and y0 <= y < y1)  # False for NaN (node not found)
            if inside != self._inside.get(animal, False):
                event = (timestamps.index, timestamps.capture_ns, animal, "enter" if inside else "leave")
                self.events.append(event)
                if self._log is not None:
                    self._log.write(",".join(map(str, event)) + "\n")
            self._inside[animal] = inside

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


def any_animal(outputs: Outputs, timestamps: FrameTimes) -> bool:
    return bool(np.any(outputs.instance_valid))


def print_line(high: bool) -> None:
    print(f"line {'high' if high else 'low'}", file=sys.stderr)


class LineTrigger:
    """Drives an output line from the poses: ``set_line(True)`` when ``condition`` starts
    to hold, ``set_line(False)`` when it stops (and at the end), nothing in between.

    ``set_line`` is your I/O call: a TTL pin (``gpiozero.LED(17).on/off``), a
    byte to a microcontroller (``serial.Serial(...).write(b"1")``), a DAQ line.
    The defaults (any animal in view; print the change) show the mechanics.
    """

    def __init__(self, condition: Optional[Callable[[Outputs, FrameTimes], bool]] = None,
                 set_line: Optional[Callable[[bool], None]] = None):
        self.condition = condition or any_animal
        self.set_line = set_line or print_line
        self.high = False

    def process(self, outputs: Outputs, timestamps: FrameTimes) -> None:
        wanted = bool(self.condition(outputs, timestamps))
        if wanted != self.high:
            self.set_line(wanted)
            self.high = wanted

    def close(self) -> None:
        if self.high:  # never leave a laser on after the run
            self.set_line(False)
            self.high = False
