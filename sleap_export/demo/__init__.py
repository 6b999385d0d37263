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
    table = Table(title="sleap-export demo (bundled single-instance model, synthetic clip)")
    for column in ("artifact", "export s", "frames", "fps", "instances", "mean error px"):
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


def _overlay(labels, truth: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
