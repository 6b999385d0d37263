"""Reproduce the README's speed table (``make bench``): every model type, one run.

For each model type, on the whole video, whole-process wall time of:
  - ``sleap-nn predict`` on the checkpoint (as users run it),
  - ``sleap-nn predict`` on sleap-nn's own ONNX export (``sleap-nn export``),
  - ``sleap-export predict`` on our ONNX artifact,
plus our start-up (process start to a 1-frame prediction written) and, from
``sleap-export bench``, network-only vs end-to-end throughput at batch 4.
``--realistic`` adds realistic-size architectures (scripts/realistic_models.py,
random weights) on the first 100 frames of the video scaled to 1024x1024.
Writes bench-results.md and bench-results.json; ratios are within one run.

    python scripts/bench.py [--only NAME ...] [--frames RANGES] [--realistic]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
MODELS, DATA = ASSETS / "models", ASSETS / "data"
PAIR = DATA / "centered_pair_small.mp4"

CASES = {
    "single_instance": ([MODELS / "minimal_instance_single_instance"], DATA / "small_robot.mp4"),
    "centroid": ([MODELS / "minimal_instance_centroid"], PAIR),
    "topdown": ([MODELS / "minimal_instance_centroid", MODELS / "minimal_instance_centered_instance"], PAIR),
    "multi_class_topdown": (
        [MODELS / "minimal_instance_centroid", MODELS / "minimal_instance_multiclass_centered_instance"],
        PAIR,
    ),
    "bottomup": ([MODELS / "minimal_instance_bottomup"], PAIR),
    "multi_class_bottomup": ([MODELS / "minimal_instance_multiclass_bottomup"], PAIR),
}


def add_realistic_cases(work: Path) -> list[str]:
    """Realistic-size runs (random weights) and a 1024x1024 clip, as extra cases."""
    import imageio_ffmpeg

    sys.path.insert(0, str(Path(__file__).parent))
    from realistic_models import build

    video = work / "pair-1024.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", PAIR, "-frames:v", "100", "-vf", "scale=1024:1024", "-pix_fmt", "yuv420p", video],
        check=True,
    )
    runs = {name: build(work / "realistic", name) for name in ("bottomup_unet_medium_rf", "centroid_unet", "centered_instance_unet_medium_rf")}
    CASES["bottomup medium RF 1024"] = ([runs["bottomup_unet_medium_rf"]], video)
    CASES["topdown medium RF 1024"] = ([runs["centroid_unet"], runs["centered_instance_unet_medium_rf"]], video)
    return ["bottomup medium RF 1024", "topdown medium RF 1024"]


def timed(command: list) -> float:
    started = time.perf_counter()
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def measure(name: str, frames: str | None, work: Path) -> dict:
    run_dirs, video = CASES[name]
    slug = name.replace(" ", "-")
    artifact = work / f"{slug}.onnx"
    subprocess.run([BIN / "sleap-export", "onnx", *run_dirs, "-o", artifact], check=True, capture_output=True)
    their_export = work / f"{slug}-sleap-nn"
    subprocess.run([BIN / "sleap-nn", "export", *run_dirs, "-o", their_export, "--no-verify"], check=True, capture_output=True)
    selection = ["--frames", frames] if frames else []
    models = [arg for r in run_dirs for arg in ("-m", r)]
    figures = {
        "sleap-nn checkpoint s": timed([BIN / "sleap-nn", "predict", "-i", video, *models, "-o", work / "a.slp", "--device", "cpu", *selection]),
        "sleap-nn onnx s": timed(
            [BIN / "sleap-nn", "predict", "-i", video, "-m", their_export, "--runtime", "onnx", "-o", work / "b.slp", "--device", "cpu", *selection]
        ),
        "sleap-export s": timed([BIN / "sleap-export", "predict", artifact, video, "-o", work / "c.slp", "-q", "--overwrite", *selection]),
        "start-up s": timed([BIN / "sleap-export", "predict", artifact, video, "-o", work / "d.slp", "-q", "--overwrite", "--frames", "0"]),
    }
    report = work / f"{slug}-bench.json"
    subprocess.run(
        [BIN / "sleap-export", "bench", artifact, "-d", video, "-b", "4", "-n", "100", "--json", report],
        check=True,
        capture_output=True,
    )
    batch = json.loads(report.read_text())["batches"][0]
    figures["network fps"] = batch["network_fps"]
    figures["end-to-end fps"] = batch["end_to_end_fps"]
    figures["e2e / network"] = batch["end_to_end_share"]
    figures["vs checkpoint"] = figures["sleap-nn checkpoint s"] / figures["sleap-export s"]
    figures["vs sleap-nn onnx"] = figures["sleap-nn onnx s"] / figures["sleap-export s"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--frames", default=None, help="frame ranges for the CLI runs (default: the whole video)")
    parser.add_argument("--realistic", action="store_true", help="also realistic-size architectures at 1024x1024")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        names = list(args.only) + (add_realistic_cases(Path(work)) if args.realistic else [])
        for name in names:
            results[name] = measure(name, args.frames, Path(work))
            print(name, {k: round(v, 2) for k, v in results[name].items()}, flush=True)
    columns = list(next(iter(results.values())))
    lines = ["| model type | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{v:.2f}" for v in row.values()) + " |" for name, row in results.items()]
    Path("bench-results.md").write_text("\n".join(lines) + "\n")
    Path("bench-results.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
