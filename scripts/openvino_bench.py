"""ONNX Runtime vs OpenVINO fp32 vs OpenVINO bf16 networks on our ONNX artifacts.

For each model type (and the realistic ``bottomup_unet_medium_rf`` on frames
scaled to 1024x1024): network-only frames per second of the three runners,
each set up for throughput as ``predict`` sets it up, timed in interleaved
rounds in one process (so a busy machine slows all three alike; ratios are
per round, then the median), and the keypoints of OpenVINO fp32 and bf16
against ONNX Runtime's on the same frames.

    python scripts/openvino_bench.py [--only NAME ...] [--rounds 3] [--frames 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
MODELS, DATA = ASSETS / "models", ASSETS / "data"
PAIR = DATA / "centered_pair_small.mp4"
CENTROID = MODELS / "minimal_instance_centroid"
# name: (runs, video, frame size to scale to or None)
CASES = {
    "single_instance": ([MODELS / "minimal_instance_single_instance"], DATA / "small_robot.mp4", None),
    "centroid": ([CENTROID], PAIR, None),
    "topdown": ([CENTROID, MODELS / "minimal_instance_centered_instance"], PAIR, None),
    "multi_class_topdown": ([CENTROID, MODELS / "minimal_instance_multiclass_centered_instance"], PAIR, None),
    "bottomup": ([MODELS / "minimal_instance_bottomup"], PAIR, None),
    "multi_class_bottomup": ([MODELS / "minimal_instance_multiclass_bottomup"], PAIR, None),
    "bottomup medium RF 1024": ([MODELS / "bottomup_unet_medium_rf"], PAIR, 1024),
}
RUNNERS = {"onnxruntime": {}, "openvino fp32": {"runtime": "openvino"}, "openvino bf16": {"runtime": "openvino", "precision": "bf16"}}
BATCH = 4


def frames_of(video: Path, count: int, size) -> np.ndarray:
    import sleap_io as sio

    source = sio.load_video(str(video))
    frames = np.stack([source[i] for i in range(min(count, source.shape[0]))])
    if size is None:
        return frames
    rows = np.arange(size) * frames.shape[1] // size  # nearest-neighbour scaling: only the size matters here
    cols = np.arange(size) * frames.shape[2] // size
    return np.ascontiguousarray(frames[:, rows][:, :, cols])


def network_fps(runner, frames: np.ndarray) -> float:
    from sleap_export.runtime.drivers.batch_pipeline import in_order

    batches = [frames[i : i + BATCH] for i in range(0, len(frames), BATCH)]
    started = time.perf_counter()
    for _ in in_order(runner.infer, batches, runner.parallel_batches):
        pass
    return len(frames) / (time.perf_counter() - started)


def bench_case(name: str, work: Path, rounds: int, count: int) -> dict:
    from sleap_export.core.comparison import compare_poses, poses_by_frame
    from sleap_export import export
    from sleap_export.runtime import load
    from sleap_export.runtime.drivers.predictor import Predictor

    runs, video, size = CASES[name]
    path = work / (name.replace(" ", "_") + ".onnx")
    if not path.exists():
        export(runs, path, overwrite=True)
    frames = frames_of(video, count if size is None else min(count, 8), size)
    runners = {label: load(path, for_throughput=True, **options) for label, options in RUNNERS.items()}
    for runner in runners.values():
        runner.activate()
        runner.infer(frames[:BATCH])  # warm-up
    fps = {label: [] for label in runners}
    for _ in range(rounds):
        for label, runner in runners.items():
            fps[label].append(network_fps(runner, frames))
    poses = {label: poses_by_frame(Predictor(runner, batch_size=BATCH).predict(frames)) for label, runner in runners.items()}
    result = {"frames": len(frames), "size": list(frames.shape[1:3]), "fps": {k: statistics.median(v) for k, v in fps.items()}}
    result["ratio_vs_onnxruntime"] = {
        label: statistics.median(a / b for a, b in zip(fps[label], fps["onnxruntime"])) for label in runners
    }
    for label in ("openvino fp32", "openvino bf16"):
        comparison = compare_poses(poses[label], poses["onnxruntime"])
        deviations = comparison.deviations
        result[f"{label} vs onnxruntime"] = {
            "keypoints": int(deviations.size),
            "median_px": float(np.median(deviations)) if deviations.size else 0.0,
            "p99_px": float(comparison.deviation_at(99)) if deviations.size else 0.0,
            "max_px": float(deviations.max()) if deviations.size else 0.0,
            "count_agreement": float(comparison.count_agreement),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="Cases to run (default: all).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=32, help="Frames per round (the 1024x1024 case: at most 8).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sleap-export-openvino-bench"), help="Where artifacts are kept.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.only or CASES:
        results[name] = bench_case(name, args.work, args.rounds, args.frames)
        r = results[name]
        ratios, fp32, bf16 = r["ratio_vs_onnxruntime"], r["openvino fp32 vs onnxruntime"], r["openvino bf16 vs onnxruntime"]
        print(
            f"{name} ({r['frames']} frames {r['size'][0]}x{r['size'][1]}, batch {BATCH}): onnxruntime "
            f"{r['fps']['onnxruntime']:.1f} fps; openvino fp32 x{ratios['openvino fp32']:.2f}, bf16 x{ratios['openvino bf16']:.2f}; "
            f"fp32 max {fp32['max_px']:.2g} px; bf16 median {bf16['median_px']:.3g} p99 {bf16['p99_px']:.3g} "
            f"max {bf16['max_px']:.3g} px, counts {bf16['count_agreement']:.3f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
