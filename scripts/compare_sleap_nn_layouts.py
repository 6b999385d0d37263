"""Side by side: our `--layout sleap-nn` folder vs sleap-nn's own export, both run by sleap-nn.

For each shared model type, at the training frame size and at another size (the same
frames zero-padded, written losslessly), this runs

- the reference: ``sleap-nn predict -m RUN [-m RUN2]`` on the checkpoints,
- ours: ``sleap-export onnx RUN [RUN2] --layout sleap-nn -o OURS`` then
  ``sleap-nn predict -m OURS --runtime onnx``,
- theirs: ``sleap-nn export RUN [RUN2] --format onnx -o THEIRS`` then
  ``sleap-nn predict -m THEIRS --runtime onnx``,
- our runtime on their folder: ``sleap-export predict THEIRS VIDEO``,

and compares each with the reference (`sleap_export.core.comparison.compare_poses`):
frames with equal instance counts, p99 and max keypoint deviation (px), track mismatches.
Each folder is exported once and run at both sizes (export once, run anywhere).
A command that fails is reported with its last error line; that is a result too.

    python scripts/compare_sleap_nn_layouts.py --frames 100 --out /tmp/layouts.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"
BIN = Path(sys.executable).parent
SLEAP_NN = str(BIN / "sleap-nn")
SLEAP_EXPORT = str(BIN / "sleap-export")
BATCH = "4"

ROBOT = "small_robot.mp4"
PAIR = "centered_pair_small.mp4"
# Other frame sizes (height, width): the clip zero-padded at the bottom and right.
OTHER_SIZE = {ROBOT: (337, 571), PAIR: (413, 397)}

# name, runs, video, low threshold for the (barely trained) multi-class centered-instance stage
CASES = [
    ("single instance", ["minimal_instance_single_instance"], ROBOT, False),
    ("centroid", ["minimal_instance_centroid"], PAIR, False),
    (
        "top-down",
        ["minimal_instance_centroid", "minimal_instance_centered_instance"],
        PAIR,
        False,
    ),
    (
        "multi-class top-down",
        ["minimal_instance_centroid", "minimal_instance_multiclass_centered_instance"],
        PAIR,
        True,
    ),
    ("bottom-up", ["minimal_instance_bottomup"], PAIR, False),
    ("multi-class bottom-up", ["minimal_instance_multiclass_bottomup"], PAIR, False),
]
LOW_THRESHOLD = 0.01  # the multi-class centered-instance maps peak near 0.017


def run(
    cmd: list[str], log: Path, timeout: float = 1800, reuse: Path | None = None
) -> tuple[bool, str, float]:
    """Run ``cmd``; (ok, one-line error or '', seconds). Output goes to ``log``.

    With ``reuse`` (a work dir kept by --keep): when ``log`` exists and the command's
    product ``reuse`` exists, it is not run again; when only the log exists, its error stands.
    """
    if reuse is not None and log.exists():
        if reuse.exists():
            return True, "", 0.0
        return False, last_error(log.read_text(errors="replace"), "?"), 0.0
    start = time.perf_counter()
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n\n")
        f.flush()
        try:
            proc = subprocess.run(
                cmd,
                check=False,
                stdout=f,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env={**os.environ, "COLUMNS": "200"},
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            return (
                False,
                f"timed out after {timeout:.0f} s",
                time.perf_counter() - start,
            )
    seconds = time.perf_counter() - start
    if code == 0:
        return True, "", seconds
    return False, last_error(log.read_text(errors="replace"), code), seconds


def last_error(text: str, code) -> str:
    """The most telling line of a failed command's output."""
    lines = [ln.strip(" │╭╰─╮╯\t") for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("File ", "^", "~"))]
    for ln in reversed(lines):  # a Python exception line, e.g. "ValueError: ..."
        head = ln.split(":", 1)[0]
        if ":" in ln and (
            head.endswith(("Error", "Exception", "Fail")) or "onnxruntime" in head
        ):
            return ln[:500]
    return (lines[-1][:500] if lines else "") + (
        f" (exit {code})" if code != "?" else ""
    )


def pad_video(source: Path, target: Path, frames: int, size: tuple[int, int]) -> None:
    """The first ``frames`` frames of ``source`` zero-padded/cropped to ``size``, lossless."""
    import imageio_ffmpeg
    import sleap_io as sio

    video = sio.load_video(str(source))
    height, width = size
    writer = imageio_ffmpeg.write_frames(
        str(target),
        (width, height),
        pix_fmt_in="rgb24",
        pix_fmt_out="rgb24",
        codec="libx264rgb",
        output_params=["-crf", "0", "-preset", "ultrafast"],
        macro_block_size=1,
        fps=15,
    )
    writer.send(None)
    written = []
    for i in range(frames):
        frame = np.asarray(video[i])
        if frame.shape[-1] == 1:
            frame = np.repeat(frame, 3, axis=-1)
        out = np.zeros((height, width, 3), np.uint8)
        h, w = min(height, frame.shape[0]), min(width, frame.shape[1])
        out[:h, :w] = frame[:h, :w]
        writer.send(np.ascontiguousarray(out).tobytes())
        if i in (0, frames - 1):
            written.append((i, out))
    writer.close()
    video.close()
    check = sio.load_video(str(target))
    for i, expected in written:  # decoded exactly as written (lossless)
        got = np.asarray(check[i])
        got = np.repeat(got, 3, axis=-1) if got.shape[-1] == 1 else got
        if not np.array_equal(got, expected):
            raise RuntimeError(f"{target} frame {i} does not decode losslessly")
    check.close()


@attrs.define
class Step:
    """The prediction commands of one model type at one frame size."""

    work: Path
    tag: str
    size: str
    frames: str  # "0-99"
    video: Path
    reuse: bool
    outputs: dict  # key -> .slp path, or the one-line error

    def predict(self, key: str, cmd: list[str], out: Path) -> None:
        ok, err, seconds = run(
            cmd, self.work / f"{self.tag}_{key}.log", reuse=out if self.reuse else None
        )
        if ok and not out.exists():
            ok, err = False, "no output written"
        print(
            f"   [{self.size}] {key}: {'ok' if ok else err} ({seconds:.0f} s)",
            flush=True,
        )
        self.outputs[key] = out if ok else err

    def nn_predict(self, key: str, models: list[str], extra=()) -> None:
        """``sleap-nn predict -m MODEL...`` (checkpoints or an exported folder)."""
        out = self.work / f"{self.tag}_{key}.slp"
        model_args = [arg for m in models for arg in ("-m", m)]
        cmd = [
            SLEAP_NN,
            "predict",
            *model_args,
            "-i",
            str(self.video),
            "--frames",
            self.frames,
            "-o",
            str(out),
            "--batch_size",
            BATCH,
            "--device",
            "cpu",
            *extra,
        ]
        self.predict(key, cmd, out)

    def export_predict(self, key: str, model: Path) -> None:
        """``sleap-export predict MODEL VIDEO`` (our runtime)."""
        out = self.work / f"{self.tag}_{key}.slp"
        cmd = [
            SLEAP_EXPORT,
            "predict",
            str(model),
            str(self.video),
            "-o",
            str(out),
            "--frames",
            self.frames,
            "--batch-size",
            BATCH,
            "--overwrite",
            "-q",
        ]
        self.predict(key, cmd, out)


def compare(candidate: Path, reference: Path):
    import sleap_io as sio

    from sleap_export.core.comparison import (
        compare_poses,
        poses_by_frame,
        tracks_by_frame,
    )

    a, b = sio.load_slp(str(candidate)), sio.load_slp(str(reference))
    result = compare_poses(
        poses_by_frame(a),
        poses_by_frame(b),
        ours_tracks=tracks_by_frame(a),
        reference_tracks=tracks_by_frame(b),
    )
    instances = (
        sum(len(lf.instances) for lf in a.labeled_frames),
        sum(len(lf.instances) for lf in b.labeled_frames),
    )
    return result, instances


def cell(entry) -> str:
    if isinstance(entry, str):
        short = entry.replace(
            "onnxruntime.capi.onnxruntime_pybind11_state.", ""
        ).removeprefix("error: ")
        short = short.split("Status Message: ")[-1].split(" (rerun with")[0]
        return f"fails: `{short[:160]}`"
    result, _ = entry
    return (
        f"{100 * result.count_agreement:.0f}%, {result.deviation_at(99):.2g}, "
        f"{result.max_deviation:.2g}"
    )


def tracks_cell(entry) -> str:
    if isinstance(entry, str):
        return "-"
    result, (ours, ref) = entry
    return (
        f"{ours}/{ref}, {result.visibility_mismatches} visibility, "
        f"{result.track_mismatches} track"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--frames", type=int, default=100, help="Frames per clip (default 100)."
    )
    parser.add_argument(
        "--other-frames",
        type=int,
        default=None,
        help="Frames at the other size (default: --frames).",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="Also write the tables here (markdown)."
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="Model types to run (names as in the table).",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="Work here and keep it (default: a temp dir); outputs already there are reused.",
    )
    args = parser.parse_args(argv)
    other_frames = args.other_frames or args.frames

    work = args.keep or Path(tempfile.mkdtemp(prefix="layouts-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        videos = {}
        for name in (ROBOT, PAIR):
            src = ASSETS / "data" / name
            padded = (
                work
                / f"{Path(name).stem}_{OTHER_SIZE[name][0]}x{OTHER_SIZE[name][1]}.mp4"
            )
            if not padded.exists():
                pad_video(src, padded, other_frames, OTHER_SIZE[name])
            videos[name] = [
                ("training", src, args.frames),
                ("{}x{}".format(*OTHER_SIZE[name]), padded, other_frames),
            ]

        for label, runs, video_name, low in CASES:
            if args.only and label not in args.only:
                continue
            slug = label.replace(" ", "_").replace("-", "")
            run_paths = [str(ASSETS / "models" / r) for r in runs]
            print(f"== {label}", flush=True)

            ours_dir, theirs_dir = work / f"{slug}_ours", work / f"{slug}_theirs"
            export_ours = [
                SLEAP_EXPORT,
                "onnx",
                *run_paths,
                "-o",
                str(ours_dir),
                "--layout",
                "sleap-nn",
                "--overwrite",
                "-q",
            ]
            export_theirs = [
                SLEAP_NN,
                "export",
                *run_paths,
                "-o",
                str(theirs_dir),
                "--format",
                "onnx",
            ]
            ref_extra = []
            if low:
                preset = work / "low_instance_threshold.yaml"
                preset.write_text(f"instance_peak_threshold: {LOW_THRESHOLD}\n")
                export_ours += ["--preset", str(preset)]
                # sleap-nn export has one threshold for both stages.
                export_theirs += ["--peak-threshold", str(LOW_THRESHOLD)]
                ref_extra = [
                    "--peak_threshold",
                    str(LOW_THRESHOLD),
                    "--centroid_peak_threshold",
                    "0.2",
                ]
            ok_ours, err_ours, t = run(
                export_ours,
                work / f"{slug}_export_ours.log",
                reuse=ours_dir / "model.onnx" if args.keep else None,
            )
            print(
                f"   sleap-export onnx --layout sleap-nn: {'ok' if ok_ours else err_ours} ({t:.0f} s)",
                flush=True,
            )
            ok_theirs, err_theirs, t = run(
                export_theirs,
                work / f"{slug}_export_theirs.log",
                reuse=theirs_dir / "model.onnx" if args.keep else None,
            )
            print(
                f"   sleap-nn export: {'ok' if ok_theirs else err_theirs} ({t:.0f} s)",
                flush=True,
            )

            for size, video, n in videos[video_name]:
                outputs = {}
                step = Step(
                    work,
                    f"{slug}_{size}",
                    size,
                    f"0-{n - 1}",
                    video,
                    args.keep is not None,
                    outputs,
                )
                step.nn_predict("reference", run_paths, ref_extra)
                if ok_ours:
                    step.nn_predict(
                        "ours_via_sleap_nn", [str(ours_dir)], ["--runtime", "onnx"]
                    )
                else:
                    outputs["ours_via_sleap_nn"] = f"export failed: {err_ours}"
                if ok_theirs:
                    step.nn_predict(
                        "theirs_via_sleap_nn", [str(theirs_dir)], ["--runtime", "onnx"]
                    )
                    step.export_predict("theirs_via_sleap_export", theirs_dir)
                else:
                    outputs["theirs_via_sleap_nn"] = outputs[
                        "theirs_via_sleap_export"
                    ] = f"export failed: {err_theirs}"

                reference = outputs["reference"]
                row = {"model": label, "size": size, "frames": n}
                for key in (
                    "ours_via_sleap_nn",
                    "theirs_via_sleap_nn",
                    "theirs_via_sleap_export",
                ):
                    if isinstance(reference, str):
                        row[key] = f"reference failed: {reference}"
                    elif isinstance(outputs[key], str):
                        row[key] = outputs[key]
                    else:
                        row[key] = compare(outputs[key], reference)
                        print(f"   [{size}] {key}: {row[key][0].summary()}", flush=True)
                rows.append(row)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    import sleap_nn

    header = (
        f"{datetime.date.today()}, sleap-nn {sleap_nn.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; frames 0-{args.frames - 1} at the training size, "
        f"0-{other_frames - 1} at the other size; every sleap-nn predict with --batch_size {BATCH}.\n"
        "Each cell: frames with equal instance counts, p99 and max keypoint deviation (px) "
        "from the checkpoint reference (`sleap-nn predict -m RUN`).\n"
    )
    table = [
        (
            "| model type | size | ours via sleap-nn (counts, p99 px, max px) "
            "| sleap-nn's own export via sleap-nn (counts, p99 px, max px) "
            "| sleap-nn's export via sleap-export predict (counts, p99 px, max px) |"
        ),
        "|---|---|---|---|---|",
    ]
    detail = [
        "| model type | size | ours via sleap-nn | sleap-nn's export via sleap-nn | sleap-nn's export via sleap-export |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        keys = ("ours_via_sleap_nn", "theirs_via_sleap_nn", "theirs_via_sleap_export")
        table.append(
            f"| {row['model']} | {row['size']} | "
            + " | ".join(cell(row[k]) for k in keys)
            + " |"
        )
        detail.append(
            f"| {row['model']} | {row['size']} | "
            + " | ".join(tracks_cell(row[k]) for k in keys)
            + " |"
        )
    text = (
        header
        + "\n"
        + "\n".join(table)
        + "\n\nInstances (candidate/reference), then mismatches among matched instances: keypoints "
        "present on one side only (visibility), track names (track):\n\n"
        + "\n".join(detail)
        + "\n"
    )
    print()
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
