"""predict --ray against local predict on this machine, in one run.

Starts a Ray head on localhost (CPUs as given, only its own processes ended
after), then measures:

- whole-command wall time of ``sleap-export predict`` on N videos, locally
  (all cores) and with ``--ray --workers W --threads 1``; the ratio of the two
  (> 1: Ray faster), repeated and alternated;
- the fixed cost of a Ray job (Python API, one frame);
- the per-chunk overhead: the same Ray job (Python API, one process) with
  large and with small chunks, (time difference) / (chunk-count difference);
- the driver's peak memory over its baseline (sampled RSS) with few and with
  many videos, same frames per video, one .slp per video.

    .venv/bin/python scripts/ray_bench.py MODEL.onnx VIDEO [--videos 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # The raylet gives its agents 15 s to start by default, too little on a busy 2-core machine.
    env["RAY_agent_register_timeout_ms"] = "180000"
    return env


def start_head(cpus: int, temp_dir: str) -> tuple[int, str]:
    """A Ray head on localhost: ``(its process group, HOST:PORT)``; ``ray start`` returns once the
    node is up, and its daemons keep its process group (ended after, nothing else)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         f"--num-cpus={cpus}", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp_dir}", "--object-store-memory=200000000"],
        env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    _, stderr = head.communicate()
    if head.returncode:
        sys.exit(f"the Ray head did not start: {stderr.decode()[-300:]}")
    return head.pid, f"127.0.0.1:{port}"


def stop_head(group: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        time.sleep(2)


def timed(command: list) -> float:
    started = time.perf_counter()
    subprocess.run([str(c) for c in command], check=True, env=environment(), capture_output=True)
    return time.perf_counter() - started


class PeakMemory:
    """The largest RSS of this process over its value at the start, sampled every 20 ms."""

    def __init__(self):
        import psutil

        self.process = psutil.Process()
        self.baseline = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def stop(self) -> float:
        self.running = False
        self.thread.join()
        return (self.peak - self.baseline) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("video", type=Path)
    parser.add_argument("--videos", type=int, default=4, help="copies (symlinks) of VIDEO to predict on")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs the head node declares")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--chunks", default="500,20", help="large,small chunk sizes for the per-chunk overhead")
    parser.add_argument("--memory-videos", default="4,32", help="few,many videos for the driver's memory")
    parser.add_argument("--memory-frames", default="0-9", help="frames of each video in the memory runs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from sleap_export.runtime.drivers.ray_cluster import RayCluster, RayPrediction
    from sleap_export.runtime.sources.video_inputs import open_video

    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    n_memory = max(int(n) for n in args.memory_videos.split(","))
    links = []
    for i in range(max(args.videos, n_memory)):
        link = work / f"video{i:03d}{args.video.suffix}"
        link.symlink_to(args.video.resolve())
        links.append(link)
    videos = links[: args.videos]
    frames_per_video = open_video(args.video).shape[0]
    group, address = start_head(args.cpus, temp_dir)
    figures: dict = {"videos": args.videos, "frames": frames_per_video * args.videos, "workers": args.workers}
    try:
        local_s, ray_s = [], []
        for repeat in range(args.repeats):
            local = ["sleap-export", "predict", args.model, *videos, "-o", work / "local.slp", "--overwrite", "-q"]
            on_ray = [*local[:-4], "-o", work / "ray.slp", "--overwrite", "-q", "--ray", address,
                      "--workers", args.workers, "--threads", 1]
            local[0] = on_ray[0] = BIN / "sleap-export"
            # Alternate which goes first, so machine drift does not favour one side.
            pair = [(local_s, local), (ray_s, on_ray)]
            for times, command in pair if repeat % 2 == 0 else pair[::-1]:
                times.append(timed(command))
        figures.update(local_s=local_s, ray_s=ray_s, ratio=[a / b for a, b in zip(local_s, ray_s)])

        # The fixed cost of a job (connect, start the workers, load the artifact, write): one frame.
        job = RayPrediction(args.model, videos[:1], work / "one.slp", RayCluster(address=address, workers=args.workers),
                            frames="0", overwrite=True)
        started = time.perf_counter()
        job.run()
        figures["one_frame_job_s"] = time.perf_counter() - started

        large, small = (int(c) for c in args.chunks.split(","))
        chunk_s = {}
        for size in (large, small):
            job = RayPrediction(args.model, videos, work / f"chunks{size}.slp",
                                RayCluster(address=address, workers=args.workers, chunk_size=size), overwrite=True)
            started = time.perf_counter()
            job.run()
            chunk_s[size] = time.perf_counter() - started
        count = {size: args.videos * -(-frames_per_video // size) for size in (large, small)}
        figures.update(
            chunk_s=chunk_s, chunk_count=count,
            per_chunk_ms=1000 * (chunk_s[small] - chunk_s[large]) / (count[small] - count[large]),
        )

        memory = {}
        for n in (int(n) for n in args.memory_videos.split(",")):
            # One .slp per video: a single file would hold every video's poses at the end by design.
            folder = work / f"memory{n}"
            folder.mkdir()
            job = RayPrediction(args.model, links[:n], folder, RayCluster(address=address, workers=args.workers, chunk_size=10),
                                frames=args.memory_frames)
            peak = PeakMemory()
            job.run()
            memory[n] = peak.stop()
        figures["driver_peak_mib_over_baseline"] = memory
    finally:
        stop_head(group)
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
