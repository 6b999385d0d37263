"""Make the bundled demo: a synthetic clip and a tiny sleap-nn model trained on it.

Run once (``make demo-assets``); it writes ``sleap_export/demo/assets/``:
``clip.mp4`` (a grey "animal" with a bright head moving over a textured
background), ``clip_truth.npy`` (its true head/tail positions) and ``model/``
(``best.ckpt`` + ``training_config.yaml``, trained by sleap-nn itself). The
frame size (144x176, kept exactly by H.264's 16-pixel blocks) is not a multiple
of the model's max stride (32) and the config sets no max_height/max_width, so
the demo exercises padding and the network at its native input size.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import sleap_io as sio

ASSETS = Path(__file__).resolve().parents[1] / "sleap_export" / "demo" / "assets"
N_FRAMES, HEIGHT, WIDTH = 120, 144, 176
BODY_LENGTH = 26.0


def trajectory(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, 2 nodes [head, tail], 2) positions along a smooth looping path."""
    t = np.linspace(0, 2 * np.pi, n_frames, endpoint=False)
    center = np.stack([WIDTH / 2 + 45 * np.sin(t), HEIGHT / 2 + 35 * np.sin(2 * t + 0.5)], axis=1)
    heading = np.unwrap(np.arctan2(np.gradient(center[:, 1]), np.gradient(center[:, 0])))
    heading += 0.15 * rng.standard_normal(n_frames).cumsum() * 0.1
    direction = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    head = center + direction * BODY_LENGTH / 2
    tail = center - direction * BODY_LENGTH / 2
    return np.stack([head, tail], axis=1)


def render(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grayscale frames (frames, H, W, 1) for the given head/tail positions."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    texture = 40 + 10 * np.sin(xs / 7.0) * np.cos(ys / 11.0)
    frames = np.empty((len(points), HEIGHT, WIDTH, 1), np.uint8)
    for i, (head, tail) in enumerate(points):
        axis = head - tail
        length2 = axis @ axis
        along = np.clip(((xs - tail[0]) * axis[0] + (ys - tail[1]) * axis[1]) / length2, 0, 1)
        dist2 = (xs - (tail[0] + along * axis[0])) ** 2 + (ys - (tail[1] + along * axis[1])) ** 2
        body = 110 * np.exp(-dist2 / (2 * 4.0**2))
        head_spot = 90 * np.exp(-((xs - head[0]) ** 2 + (ys - head[1]) ** 2) / (2 * 3.0**2))
        image = texture + body + head_spot + rng.normal(0, 3, texture.shape)
        frames[i, ..., 0] = np.clip(image, 0, 255).astype(np.uint8)
    return frames


def main() -> None:
    from sleap_nn.train import train

    rng = np.random.default_rng(7)
    points = trajectory(N_FRAMES, rng)
    frames = render(points, rng)
    ASSETS.mkdir(parents=True, exist_ok=True)
    clip = ASSETS / "clip.mp4"
    sio.save_video(frames, clip, fps=15, crf=18)
    np.save(ASSETS / "clip_truth.npy", points.astype(np.float32))

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        skeleton = sio.Skeleton(["head", "tail"], edges=[("head", "tail")], name="demo-animal")
        video = sio.load_video(str(clip))
        labels = sio.Labels(
            labeled_frames=[
                sio.LabeledFrame(video, i, [sio.Instance.from_numpy(points[i], skeleton=skeleton)])
                for i in range(N_FRAMES)
            ],
            videos=[video],
            skeletons=[skeleton],
        )
        sio.save_slp(labels, str(work / "train.slp"))
        train(
            train_labels_path=[str(work / "train.slp")],
            validation_fraction=0.15,
            backbone_config={"unet": {"in_channels": 1, "filters": 8, "filters_rate": 1.5, "max_stride": 32, "output_stride": 2}},
            head_configs={"single_instance": {"confmaps": {"part_names": ["head", "tail"], "sigma": 2.5, "output_stride": 2}}},
            geometry_aug=None,
            batch_size=4,
            max_epochs=12,
            min_train_steps_per_epoch=60,
            learning_rate=3e-3,
            save_ckpt=True,
            ckpt_dir=str(work),
            run_name="demo",
            trainer_accelerator="cpu",
            enable_progress_bar=False,
        )
        model = ASSETS / "model"
        shutil.rmtree(model, ignore_errors=True)
        model.mkdir()
        for name in ("best.ckpt", "training_config.yaml"):
            shutil.copy(work / "demo" / name, model / name)
    print("wrote", sorted(p.name for p in ASSETS.rglob("*")))


if __name__ == "__main__":
    main()
