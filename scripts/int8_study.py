"""Measure int8 accuracy and speed per model type, calibration method and fp32 layers.

    python scripts/int8_study.py OUT_DIR [--models centroid,bottomup] [--methods minmax,entropy]
        [--calibration-frames 64] [--per-layer bottomup_unet_medium_rf]

For each model: the fp32 ONNX artifact (exported once into OUT_DIR), then for
each calibration method and each choice of convolution roles kept in fp32
(none, entry, heads, entry + heads) the int8 graph, gated against fp32 exactly
as the export gates it (frames held aside from calibration) and timed against
fp32 in the same run (network fps, batch 4, `sleap-export bench`'s definition;
best of 3 alternating runs, for the first method only).
``--per-layer`` also quantizes one convolution at a time (min-max, the rest fp32)
to show which layers int8 hurts. Rows go to stdout (markdown) and to
OUT_DIR/int8_study.jsonl.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import attrs
import numpy as np
import onnx

from sleap_export.core.spec import CALIBRATION_METHODS
from sleap_export.evaluation.throughput import _network_fps
from sleap_export.exporting.precision import accuracy_gate, calibration_set, convolution_roles, quantize_int8
from sleap_export import export
from sleap_export.runtime.artifacts.formats import read_spec
from sleap_export.runtime.backends.onnx_runner import OnnxRunner

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
MODELS, DATA = ASSETS / "models", ASSETS / "data"
PAIR, ROBOT = DATA / "centered_pair_small.mp4", DATA / "small_robot.mp4"
# name -> (run folders, video to calibrate and gate on)
STUDIED = {
    "single_instance": (["minimal_instance_single_instance"], ROBOT),
    "centroid": (["minimal_instance_centroid"], PAIR),
    "topdown": (["minimal_instance_centroid", "minimal_instance_centered_instance"], PAIR),
    "multiclass_topdown": (["minimal_instance_centroid", "minimal_instance_multiclass_centered_instance"], PAIR),
    "bottomup": (["minimal_instance_bottomup"], PAIR),
    "multiclass_bottomup": (["minimal_instance_multiclass_bottomup"], PAIR),
    "bottomup_unet_medium_rf": (["bottomup_unet_medium_rf"], PAIR),
}
FP32_CHOICES = ((), ("entry",), ("heads",), ("entry", "heads"))
BATCH = 4


def network_fps(path: Path, spec, frames: np.ndarray) -> float:
    runner = OnnxRunner(path, spec, **OnnxRunner.throughput_options("cpu"))
    return _network_fps(runner, frames, BATCH)


def best_fps_pair(fp32: tuple, int8: tuple, repeats: int = 3) -> tuple[float, float]:
    """Best of ``repeats`` alternating runs of each: other work on a shared machine only slows a run down."""
    runs = [(network_fps(*fp32), network_fps(*int8)) for _ in range(repeats)]
    return max(r[0] for r in runs), max(r[1] for r in runs)


def study(name: str, out_dir: Path, methods, count: int, per_layer: bool) -> None:
    runs, video = STUDIED[name]
    fp32_path = out_dir / f"{name}.onnx"
    if not fp32_path.exists():
        export([MODELS / r for r in runs], fp32_path)
    spec = read_spec(fp32_path)
    int8_spec = attrs.evolve(spec, precision="int8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = calibration_set(video, count)
    gate_frames = np.stack(frames.gate)
    int8_path = out_dir / f"{name}.int8.onnx"

    def measure(method, fp32_roles=(), fp32_nodes=(), layer=None, timed=False):
        cache = out_dir / f".{name}-{count}-{method}.calibration.json"
        quantize_int8(fp32_path, int8_path, frames.calibrate, cache, method=method, fp32_roles=fp32_roles, fp32_nodes=fp32_nodes)
        gate = accuracy_gate(int8_spec, fp32_path, int8_path, frames, keep_inaccurate=True)
        row = {
            "model": name,
            "method": method,
            "fp32": "+".join(fp32_roles) or "-",
            "layer": layer,
            "calibration_frames": len(frames.calibrate),
            "gate_frames": gate.frames,
            "mean_px": gate.mean_px,
            "p99_px": gate.p99_px,
            "count_agreement": gate.count_agreement,
            "passed": gate.passed,
        }
        if timed:
            fp32_fps, int8_fps = best_fps_pair((fp32_path, spec, gate_frames), (int8_path, int8_spec, gate_frames))
            row.update(fp32_fps=fp32_fps, int8_fps=int8_fps, speed=int8_fps / fp32_fps)
        with (out_dir / "int8_study.jsonl").open("a") as log:
            log.write(json.dumps(row) + "\n")
        speed = f"{row['fp32_fps']:.1f} | {row['int8_fps']:.1f} | {row['speed']:.2f}x" if timed else "| |"
        print(
            f"| {name} | {method} | {layer or row['fp32']} | {gate.mean_px:.3f} | {gate.p99_px:.3f} | "
            f"{gate.count_agreement:.1%} | {'pass' if gate.passed else 'FAIL'} | {speed} |",
            flush=True,
        )

    for method in methods:
        for fp32_roles in FP32_CHOICES:
            # Speed depends on which layers are int8, not on how their ranges were found: timed once.
            measure(method, fp32_roles, timed=method == methods[0])
    if per_layer:
        roles = convolution_roles(onnx.load(str(fp32_path)))
        for node, role in roles.items():
            others = tuple(n for n in roles if n != node)
            measure("minmax", fp32_nodes=others, layer=f"only {role} {node}")
    int8_path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--models", default=",".join(STUDIED))
    parser.add_argument("--methods", default=",".join(CALIBRATION_METHODS))
    parser.add_argument("--calibration-frames", type=int, default=64)
    parser.add_argument("--per-layer", default="", help="Comma-separated models to also study one layer at a time.")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    print("| model | method | fp32 layers | mean px | p99 px | counts agree | gate | fp32 fps | int8 fps | speed |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    per_layer = set(filter(None, args.per_layer.split(",")))
    for name in args.models.split(","):
        study(name, args.out_dir, args.methods.split(","), args.calibration_frames, name in per_layer)


if __name__ == "__main__":
    main()
