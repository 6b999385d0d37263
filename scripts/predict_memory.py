"""Peak memory of ``sleap-export predict`` over a long video, in one run.

Makes (once, in a temporary folder) a video of ``--repeats`` copies of the input
video back to back, then runs the installed command on its first N frames for
each N given, and prints each run's peak RSS (the child process's ``ru_maxrss``)
and wall time, with the .slp and the journal in flight checked at the end.
``--tracking both`` runs each N without and with ``--tracking`` (extra options
after ``--tracking-options``) and prints tracking's share of the wall time.

    .venv/bin/python scripts/predict_memory.py MODEL.onnx VIDEO [--frames 1100 8800] [--repeats 8] [--tracking off|on|both]
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
    parser.add_argument("--tracking", choices=("off", "on", "both"), default="off")
    parser.add_argument("--tracking-options", nargs=argparse.REMAINDER, default=[], help="predict's tracking options, e.g. --max_tracks 2")
    args = parser.parse_args()
    command = str(Path(sys.executable).parent / "sleap-export")
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.tracking]
    results = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        video = long_video(args.video, args.repeats, work)
        for count in args.frames:
            for tracking in modes:
                output = work / f"p{count}{'-tracked' if tracking else ''}.slp"
                extra = ["--tracking", *args.tracking_options] if tracking else []
                peak, seconds = peak_rss_mb([command, "predict", args.model, str(video), "-o", str(output),
                                             "--frames", f"0-{count - 1}", "-q", *extra])
                labels = sio.load_slp(str(output))
                journal_left = output.with_name(output.name + ".journal").exists()
                results.append({"frames": count, "tracking": tracking, "peak_rss_mb": round(peak, 1), "seconds": round(seconds, 1),
                                "frames_written": len(labels.labeled_frames), "tracks": len(labels.tracks),
                                "journal_left": journal_left})
                print(json.dumps(results[-1]), flush=True)
    for tracking in modes:
        runs = [r for r in results if r["tracking"] == tracking]
        growth = (runs[-1]["peak_rss_mb"] - runs[0]["peak_rss_mb"]) / max(1, runs[-1]["frames"] - runs[0]["frames"])
        print(f"peak RSS growth{' tracked' if tracking else ''}: {1024 * growth:.2f} kB per frame "
              f"({time.strftime('%Y-%m-%d')}, {resource.getpagesize()} B pages)")
    if len(modes) == 2:
        for off, on in zip(results[::2], results[1::2]):
            print(f"{off['frames']} frames: tracking adds {100 * (on['seconds'] - off['seconds']) / on['seconds']:.1f}% "
                  f"of the tracked run's wall time, {on['peak_rss_mb'] - off['peak_rss_mb']:+.1f} MB peak RSS")


if __name__ == "__main__":
    main()
