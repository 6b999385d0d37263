"""``sleap-export demo``: the whole product on the bundled model and clip.

Exports the bundled sleap-nn model (trained by ``scripts/make_demo.py`` on a
synthetic clip) to ONNX and TorchScript, predicts the clip with each, writes
``demo.slp`` and ``demo_overlay.png``, and prints a short table.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).parent / "assets"
MODEL_DIR = ASSETS / "model"
CLIP = ASSETS / "clip.mp4"
TRUTH = ASSETS / "clip_truth.npy"
ERROR_COLUMN = "mean error vs truth px"
TABLE_CAPTION = (
    "mean error vs truth: the mean distance in pixels between each predicted keypoint and its true position "
    "(the clip is synthetic, so the truth is known exactly), over the frames with an instance"
)
LEGEND = ("predicted keypoints", "predicted skeleton", "true positions (white crosses)")


def run_demo(output_dir: Path, show: bool = True) -> dict:
    """Run the demo into ``output_dir``; ``show``: print the table and what was written."""
    from rich.console import Console
    from rich.table import Table

    from sleap_export.evaluation.checked_export import export
    from sleap_export.runtime.drivers.predictor import Predictor
    from sleap_export.runtime.writing.labels_writer import save_labels_atomically

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    console = Console()
    truth = np.load(TRUTH)
    table = Table(title="sleap-export demo (bundled single-instance model, synthetic clip)", caption=TABLE_CAPTION)
    for column in ("artifact", "export s", "frames", "fps", "instances", ERROR_COLUMN):
        table.add_column(column, justify="right" if column != "artifact" else "left")
    results = {}
    labels = None
    for suffix in (".onnx", ".pt"):
        artifact = output_dir / f"demo{suffix}"
        started = time.perf_counter()
        export([MODEL_DIR], artifact, overwrite=True)
        export_seconds = time.perf_counter() - started
        predictor = Predictor.from_artifact(artifact, batch_size=8)
        started = time.perf_counter()
        predicted = predictor.predict(str(CLIP))
        seconds = time.perf_counter() - started
        points = np.full_like(truth, np.nan)
        for lf in predicted.labeled_frames:
            if lf.instances:
                points[lf.frame_idx] = lf.instances[0].numpy()
        error = float(np.nanmean(np.linalg.norm(points - truth, axis=-1)))
        n_instances = sum(len(lf.instances) for lf in predicted.labeled_frames)
        frames = len(predicted.labeled_frames)
        table.add_row(artifact.name, f"{export_seconds:.1f}", str(frames), f"{frames / seconds:.0f}", str(n_instances), f"{error:.2f}")
        results[suffix] = {"frames": frames, "fps": frames / seconds, "instances": n_instances, "mean_error_px": error}
        labels = labels or predicted
    save_labels_atomically(labels, output_dir / "demo.slp")
    _overlay(labels, truth, output_dir / "demo_overlay.png")
    if show:
        console.print(table)
        console.print(f"wrote {output_dir / 'demo.slp'} and {output_dir / 'demo_overlay.png'}")
    return results


def _overlay(labels, truth: np.ndarray, path: Path):
    """Four frames with the predictions and the true positions, a legend and a caption; the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import patheffects
    from matplotlib.lines import Line2D

    from sleap_export.runtime.decoding.outputs import Outputs

    video = labels.videos[0]
    picks = np.linspace(0, len(labels.labeled_frames) - 1, 4).astype(int)
    figure, axes = plt.subplots(1, len(picks), figsize=(4 * len(picks), 4))
    by_frame = {lf.frame_idx: lf for lf in labels.labeled_frames}
    for ax, frame_idx in zip(axes, picks):
        lf = by_frame[frame_idx]
        keypoints = np.stack([inst.numpy() for inst in lf.instances]) if lf.instances else np.zeros((0, 2, 2))
        Outputs(
            original_image=video[frame_idx],
            pred_keypoints=keypoints,
            instance_valid=np.ones(len(keypoints), bool),
            edges=((0, 1),),
            frame_idx=frame_idx,
        ).plot(ground_truth=truth[frame_idx][None], ax=ax)
        ax.set_title(f"frame {frame_idx}", fontsize=10)
        ax.set_axis_off()
    # The marks as Outputs.plot draws them: the first instance's colour, its dots and lines; white crosses for the truth.
    color = plt.cm.tab10.colors[0]
    handles = [
        Line2D([], [], linestyle="", marker="o", color=color, markersize=4),
        Line2D([], [], linestyle="-", color=color, linewidth=2),
        # White as in the panels, outlined so that it shows on the figure's white background.
        Line2D([], [], linestyle="", marker="x", color="white", markersize=8,
               path_effects=[patheffects.withStroke(linewidth=3, foreground="black")]),
    ]
    figure.legend(handles, LEGEND, loc="lower center", ncol=3, frameon=False, fontsize=10)
    figure.suptitle("sleap-export demo: the ONNX artifact's predictions on the bundled synthetic clip, against its true positions",
                    fontsize=11)
    figure.tight_layout(rect=(0, 0.07, 1, 0.95))
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return figure
