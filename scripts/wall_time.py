"""Whole-process wall time of sleap-nn predict vs sleap-export predict, in one run.

    python scripts/wall_time.py VIDEO RUN_DIR [RUN_DIR2]

Exports the run(s) to ONNX (not timed), then times each CLI end to end on the
same video, as users run them, and prints the ratio.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main(video: str, *runs: str) -> None:
    with tempfile.TemporaryDirectory() as work:
        artifact = Path(work) / "model.onnx"
        subprocess.run([BIN / "sleap-export", "onnx", *runs, "-o", artifact], check=True, capture_output=True)
        models = [arg for run in runs for arg in ("-m", run)]
        reference = timed([BIN / "sleap-nn", "predict", "-i", video, *models, "-o", f"{work}/ref.slp", "--device", "cpu"])
        ours = timed([BIN / "sleap-export", "predict", artifact, video, "-o", f"{work}/ours.slp", "-q"])
    names = " + ".join(Path(r).name for r in runs)
    print(f"{names} on {Path(video).name}: sleap-nn predict {reference:.1f} s, sleap-export predict (ONNX) {ours:.1f} s, {reference / ours:.1f}x")


if __name__ == "__main__":
    main(*sys.argv[1:])
