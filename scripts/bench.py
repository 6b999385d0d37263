"""The README's speed and accuracy tables (``make bench``): every model type, every CPU variant, one run.

Per model type, our ONNX artifact is exported in fp32 and in int8 (kept even when
its gate fails, so its speed is measured; the gate's verdict is reported) and
sleap-nn exports its own ONNX. Then, on this machine, one after another:

  - whole-process wall time of ``sleap-nn predict`` on the checkpoint (as users
    run it) and on sleap-nn's own ONNX export, and of ``sleap-export predict``
    with each variant: ONNX Runtime fp32, OpenVINO fp32, OpenVINO bf16 (networks
    only), ONNX Runtime int8; plus our start-up (a 1-frame prediction);
  - each variant's poses over those frames against fp32 ONNX Runtime's and
    against sleap-nn's checkpoint predictions (p99 px, instance counts agree);
  - ``sleap-export check`` of each variant at its precision's tolerance;
  - ``sleap-export bench`` network-only fps at batch 4 of each variant, and
    end-to-end over network for fp32.

Cases: the six shared model types on their whole videos, the trained
realistic-size bottom-up (UNet medium RF, ``bottomup_unet_medium_rf``) on its
384x384 frames, and ``--realistic`` random-weight realistic architectures
(scripts/realistic_models.py) on 100 frames scaled to 1024x1024 (speed only:
their accuracy rows measure nothing). Writes bench-results.md / .json; ratios
are within this one run.

    python scripts/bench.py [--only NAME ...] [--realistic]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs

BIN = Path(sys.executable).parent
ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
MODELS, DATA = ASSETS / "models", ASSETS / "data"
PAIR = DATA / "centered_pair_small.mp4"
CENTROID = MODELS / "minimal_instance_centroid"


@attrs.frozen
class Case:
    runs: tuple[Path, ...]
    video: Path
    frames: str | None = None  # frame ranges for predict (None: the whole video)
    check_frames: int = 50
    bench_frames: int = 100
    trained: bool = True  # random weights: accuracy rows mean nothing


CASES = {
    "single_instance": Case((MODELS / "minimal_instance_single_instance",), DATA / "small_robot.mp4"),
    "centroid": Case((CENTROID,), PAIR),
    "topdown": Case((CENTROID, MODELS / "minimal_instance_centered_instance"), PAIR),
    "multi_class_topdown": Case((CENTROID, MODELS / "minimal_instance_multiclass_centered_instance"), PAIR),
    "bottomup": Case((MODELS / "minimal_instance_bottomup",), PAIR),
    "multi_class_bottomup": Case((MODELS / "minimal_instance_multiclass_bottomup",), PAIR),
    "bottomup medium RF 384 (trained)": Case((MODELS / "bottomup_unet_medium_rf",), PAIR, frames="0-299", bench_frames=40),
}


@attrs.frozen
class Variant:
    """One way of running our artifact: which file and which runtime options."""

    artifact: str  # "fp32" or "int8"
    precision: str  # the precision check holds it to
    options: tuple[str, ...] = ()


VARIANTS = {
    "onnxruntime fp32": Variant("fp32", "fp32"),
    "openvino fp32": Variant("fp32", "fp32", ("--runtime", "openvino")),
    "openvino bf16": Variant("fp32", "bf16", ("--runtime", "openvino", "--precision", "bf16")),
    "onnxruntime int8": Variant("int8", "int8"),
}


def add_realistic_cases(work: Path) -> None:
    """Random-weight realistic-size runs and a 100-frame clip scaled to their frame size."""
    import imageio_ffmpeg

    sys.path.insert(0, str(Path(__file__).parent))
    from realistic_models import FRAME_SIZE, build

    video = work / f"pair-{FRAME_SIZE}.mp4"
    scale = f"scale={FRAME_SIZE}:{FRAME_SIZE}"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", PAIR, "-frames:v", "100", "-vf", scale, "-pix_fmt", "yuv420p", video],
        check=True,
    )
    runs = {name: build(work / "realistic", name) for name in ("bottomup_unet_medium_rf", "centroid_unet", "centered_instance_unet_medium_rf")}
    small = dict(check_frames=8, bench_frames=16, trained=False)
    CASES[f"bottomup medium RF {FRAME_SIZE} (random)"] = Case((runs["bottomup_unet_medium_rf"],), video, **small)
    CASES[f"topdown medium RF {FRAME_SIZE} (random)"] = Case(
        (runs["centroid_unet"], runs["centered_instance_unet_medium_rf"]), video, **small
    )


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    if result.returncode not in (0, 1):  # check exits 1 on a failed comparison: reported, not fatal
        raise RuntimeError(f"{' '.join(map(str, command[:3]))} failed: {result.stderr.strip().splitlines()[-1:]}")
    return result


def timed(command: list) -> float:
    started = time.perf_counter()
    if run(command).returncode != 0:
        raise RuntimeError(f"{command[0]} exited 1")
    return time.perf_counter() - started


def agreement(ours: Path, reference: Path) -> dict:
    import sleap_io as sio

    from sleap_export.core.comparison import compare_poses, poses_by_frame

    comparison = compare_poses(poses_by_frame(sio.load_slp(str(ours))), poses_by_frame(sio.load_slp(str(reference))))
    return {"p99 px": comparison.deviation_at(99), "counts agree": comparison.count_agreement}


def measure(name: str, work: Path) -> dict:
    case = CASES[name]
    slug = "".join(c if c.isalnum() else "-" for c in name)
    artifacts = {"fp32": work / f"{slug}.onnx", "int8": work / f"{slug}.int8.onnx"}
    run([BIN / "sleap-export", "onnx", *case.runs, "-o", artifacts["fp32"]])
    run([BIN / "sleap-export", "onnx", *case.runs, "-o", artifacts["int8"], "--precision", "int8", "--calibration", case.video, "--keep-inaccurate"])
    their_export = work / f"{slug}-sleap-nn"
    run([BIN / "sleap-nn", "export", *case.runs, "-o", their_export, "--no-verify"])
    selection = ["--frames", case.frames] if case.frames else []
    models = [arg for r in case.runs for arg in ("-m", r)]
    checkpoint_slp = work / f"{slug}-checkpoint.slp"
    result = {
        "sleap-nn checkpoint s": timed([BIN / "sleap-nn", "predict", "-i", case.video, *models, "-o", checkpoint_slp, "--device", "cpu", *selection]),
        "sleap-nn onnx s": timed(
            [BIN / "sleap-nn", "predict", "-i", case.video, "-m", their_export, "--runtime", "onnx", "-o", work / "theirs.slp", "--device", "cpu", *selection]
        ),
        "start-up s": timed([BIN / "sleap-export", "predict", artifacts["fp32"], case.video, "-o", work / "one.slp", "-q", "--overwrite", "--frames", "0"]),
        "int8 gate": _gate(artifacts["int8"]),
        "variants": {},
    }
    for label, variant in VARIANTS.items():
        artifact, output = artifacts[variant.artifact], work / f"{slug}-{label.replace(' ', '-')}.slp"
        seconds = timed([BIN / "sleap-export", "predict", artifact, case.video, "-o", output, "-q", "--overwrite", *variant.options, *selection])
        check_json, bench_json = work / "check.json", work / "bench.json"
        run([BIN / "sleap-export", "check", artifact, *[a for r in case.runs for a in ("-r", r)], "-d", case.video,
             "-n", case.check_frames, "-q", "--json", check_json, *variant.options])
        check = json.loads(check_json.read_text())
        run([BIN / "sleap-export", "bench", artifact, "-d", case.video, "-b", "4", "-n", case.bench_frames, "-q", "--json", bench_json, *variant.options])
        batch = json.loads(bench_json.read_text())["batches"][0]
        result["variants"][label] = {
            "predict s": seconds,
            "vs checkpoint": result["sleap-nn checkpoint s"] / seconds,
            "network fps": batch["network_fps"],
            "end-to-end fps": batch["end_to_end_fps"],
            "vs fp32": agreement(output, work / f"{slug}-onnxruntime-fp32.slp"),
            "vs sleap-nn": agreement(output, checkpoint_slp),
            "check passed": check["passed"],
            "check p99 px": check["keypoint_deviation_px"].get("p99", 0.0),
            "check counts agree": check["count_agreement"],
        }
    passing = {label: v["vs checkpoint"] for label, v in result["variants"].items() if v["check passed"]}
    result["best passing"] = max(passing, key=passing.get) if passing else None
    result["trained"] = case.trained
    return result


def _gate(int8_artifact: Path) -> str:
    from sleap_export.runtime.artifacts.formats import read_spec

    gate = read_spec(int8_artifact).export.accuracy_gate
    return f"mean {gate.mean_px:.2f} / p99 {gate.p99_px:.2f} px, counts {gate.count_agreement:.0%}, {'pass' if gate.passed else 'FAIL'}"


def tables(results: dict) -> list[str]:
    lines = ["### Whole process against `sleap-nn predict` (x = sleap-nn checkpoint time / ours)", ""]
    lines += ["| model type | sleap-nn ckpt s | sleap-nn onnx s | " + " | ".join(f"{v} s (x)" for v in VARIANTS) + " | best passing check |"]
    lines += ["|---" * (len(VARIANTS) + 4) + "|"]
    for name, r in results.items():
        cells = [f"{v['predict s']:.1f} ({v['vs checkpoint']:.2f}x)" for v in r["variants"].values()]
        best = r["best passing"]
        best_cell = f"{best} {r['variants'][best]['vs checkpoint']:.2f}x" if best else "none"
        lines.append(f"| {name} | {r['sleap-nn checkpoint s']:.1f} | {r['sleap-nn onnx s']:.1f} | " + " | ".join(cells) + f" | {best_cell} |")
    lines += ["", "### Network-only fps at batch 4 (x = over ONNX Runtime fp32), and end to end over network (fp32)", ""]
    lines += ["| model type | " + " | ".join(VARIANTS) + " | e2e / network |", "|---" * (len(VARIANTS) + 2) + "|"]
    for name, r in results.items():
        base = r["variants"]["onnxruntime fp32"]["network fps"]
        cells = [f"{v['network fps']:.1f} ({v['network fps'] / base:.2f}x)" for v in r["variants"].values()]
        share = r["variants"]["onnxruntime fp32"]["end-to-end fps"] / base
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {share:.2f} |")
    lines += ["", "### Accuracy: p99 px / instance counts agree, against fp32 ONNX Runtime and against sleap-nn (predict's frames); `check` verdict", ""]
    lines += ["| model type | variant | vs fp32 | vs sleap-nn | check (p99 px, counts) |", "|---|---|---|---|---|"]
    for name, r in results.items():
        for label, v in r["variants"].items():
            verdict = f"{'pass' if v['check passed'] else 'FAIL'} ({v['check p99 px']:.3g}, {v['check counts agree']:.0%})"
            lines.append(
                f"| {name}{'' if r['trained'] else ' (random weights)'} | {label} | {v['vs fp32']['p99 px']:.3g} / {v['vs fp32']['counts agree']:.1%} | "
                f"{v['vs sleap-nn']['p99 px']:.3g} / {v['vs sleap-nn']['counts agree']:.1%} | {verdict} |"
            )
    lines += ["", "int8 export gates (vs fp32 on held-out frames): " + "; ".join(f"{n}: {r['int8 gate']}" for n, r in results.items())]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="Cases to run (default: all).")
    parser.add_argument("--realistic", action="store_true", help="Also random-weight realistic architectures at 1024x1024.")
    parser.add_argument("--out", type=Path, default=Path("."), help="Folder for bench-results.md and .json.")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        if args.realistic:
            add_realistic_cases(Path(work))
        for name in args.only or CASES:
            started = time.perf_counter()
            results[name] = measure(name, Path(work))
            print(f"{name}: {time.perf_counter() - started:.0f} s", json.dumps(results[name]), flush=True)
            (args.out / "bench-results.json").write_text(json.dumps(results, indent=2))
    lines = tables(results)
    (args.out / "bench-results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
