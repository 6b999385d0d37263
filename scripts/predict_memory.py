"""Peak memory of ``sleap-export predict`` over a long video, in one run.

Makes (once, in a temporary folder) a video of ``--repeats`` copies of the input
video back to back, then runs the installed command on its first N frames for
each N given, and prints each run's peak RSS (the child process's ``ru_maxrss``)
and wall time, with the .slp and the journal in flight checked at the end.

    .venv/bin/python scripts/predict_memory.py MODEL.onnx VIDEO [--frames 1100 8800] [--repeats 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sleap_io as sio


def long_video(source: Path, repeats: int, folder: Path) -> Path:
    """``repeats`` copies of ``source`` back to back, losslessly enough for memory figures."""
    import imageio.v3 as iio

    video = sio.load_video(str(source))
    frames = np.stack([video[i] for i in range(video.shape[0])])
    path = folder / f"{source.stem}_x{repeats}.mp4"
    iio.imwrite(path, np.concatenate([frames[..., 0]] * repeats) if frames.shape[-1] == 1 else np.concatenate([frames] * repeats),
                fps=30, codec="libx264", quality=9, macro_block_size=1)
    return path


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one run of ``command``, run in a fresh child."""
    runner = (
        "import resource, subprocess, sys, time\n"
        "started = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - started)\n"
    )
    done = subprocess.run([sys.executable, "-c", runner, *command], capture_output=True, text=True, check=True)
    peak, seconds = done.stdout.split()
    return float(peak), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("video", type=Path)
    parser.add_argument("--frames", type=int, nargs="+", default=[1100, 8800])
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    command = str(Path(sys.executable).parent / "sleap-export")
    results = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        video = long_video(args.video, args.repeats, work)
        for count in args.frames:
            output = work / f"p{count}.slp"
            peak, seconds = peak_rss_mb([command, "predict", args.model, str(video), "-o", str(output),
                                         "--frames", f"0-{count - 1}", "-q"])
            written = len(sio.load_slp(str(output)).labeled_frames)
            journal_left = output.with_name(output.name + ".journal").exists()
            results.append({"frames": count, "peak_rss_mb": round(peak, 1), "seconds": round(seconds, 1),
                            "frames_written": written, "journal_left": journal_left})
            print(json.dumps(results[-1]), flush=True)
    growth = (results[-1]["peak_rss_mb"] - results[0]["peak_rss_mb"]) / max(1, results[-1]["frames"] - results[0]["frames"])
    print(f"peak RSS growth: {1024 * growth:.2f} kB per frame ({time.strftime('%Y-%m-%d')}, {resource.getpagesize()} B pages)")


if __name__ == "__main__":
    main()
