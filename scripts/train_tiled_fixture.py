"""Train the tiny *tiled* single-instance sleap-nn run kept as a test fixture.

Writes ``tests/fixtures/tiled_single_instance/`` (or the folder given as the
first argument): ``best.ckpt`` + ``training_config.yaml``, nothing else. It is a
real sleap-nn 0.3.5 training run whose config enables
``data_config.preprocessing.tiling``, so ``sleap-nn predict`` runs it through
``sleap_nn.inference.layers.tiled.TiledLayer`` (tile -> forward -> Gaussian
stitch -> one global peak per node), which is what the exporter's tiled
single-instance graph is checked against.

How the fixture was made (exactly what this script does):

1. Config: ``../shared/assets/models/minimal_instance_single_instance/training_config.yaml``
   (single_instance confmaps A, B with sigma 5 at output_stride 4; UNet
   in_channels 3, filters 8; input scale 0.5, max_height 320, max_width 560)
   merged into sleap-nn 0.3.5's schema (``verify_training_cfg``), with these
   changes:

   - backbone: ``max_stride: 16`` and ``filters_rate: 1.5`` instead of 4 and 2
     (76,253 parameters; the backbone of the shared
     ``new_semantic_segmentation_tiled`` run, with in_channels 3 and
     output_stride 4). With the source's max_stride 4 the receptive field is
     too small to place A on the robot's propeller: trained the same way it
     gave a flat, multi-bump plateau for A (rival maxima two cells apart,
     within 1e-4 of each other on some frames), useless for a parity test.
     max_stride 16 gives one clean peak per node.
   - ``data_config.preprocessing.tiling``: ``enabled: true``, ``tile_size: 128``,
     ``overlap: 32`` (25 % of the tile, sleap-nn's ``min_overlap_fraction``
     floor; tile_size a multiple of lcm(max_stride 16, output_stride 4),
     overlap a multiple of output_stride); every other tiling knob at its
     default (gaussian blend, sigma_scale 0.125, foreground sampling with
     tile_fg_fraction 0.5; sleap-nn auto-sizes samples_per_frame to the grid
     count, 6). Tiles are in the *scaled* frame: a 320x560 frame at scale 0.5
     is 160x280, which sleap-nn covers with a 2x3 grid of 128x128 tiles
     (origins y 0, 32; x 0, 96, 152). The labelled points (A near scaled
     (158, 24), B near (157, 68)) lie where 2 and 4 tiles overlap, so the
     stitching decides both peaks.
   - trained on ``../shared/assets/data/small_robot_minimal.slp`` (2 labeled
     frames, 0 and 79, of ``small_robot.mp4``), ``use_same_data_for_val: true``
     (both frames train and validate: too few to split).
   - geometric augmentation off (``rotation_p: 0``, ``scale_p: 0``), as in the
     source run (its ``affine_p: 0.0``; 0.3.5's schema would otherwise turn on
     rotation and scale at p=1 for an old config).
   - CPU, 1 device, seed 0, batch size 4, ``max_epochs: 20`` x
     ``train_steps_per_epoch: 50`` (1000 steps), Adam lr 1e-3, no LR schedule,
     no early stop, no visualisation; ``best.ckpt`` = lowest ``val/loss``.

2. ``best.ckpt`` is stripped to ``epoch``, ``global_step``, ``state_dict`` and
   ``pytorch-lightning_version`` (sleap-nn loads single-instance models with
   Lightning's ``load_from_checkpoint``, which raises without the version key);
   about 320 KB. The script then loads the written folder with
   ``sleap_nn.inference.predictor.Predictor.from_model_paths`` and checks that
   its layer is a ``TiledLayer``.

The process lowers its own priority (``os.nice(10)``) because the machine it was
made on is shared; wall time depends on the other load there (see the fixture's
README for the time it took).

Usage (from the repository root)::

    .venv/bin/python scripts/train_tiled_fixture.py [OUT_DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = (ROOT / ".." / "shared" / "assets").resolve()
SOURCE_RUN = ASSETS / "models" / "minimal_instance_single_instance"
LABELS = ASSETS / "data" / "small_robot_minimal.slp"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "tiled_single_instance"

TILE_SIZE = 128
OVERLAP = 32
MAX_EPOCHS = 20
MAX_STRIDE = 16
FILTERS_RATE = 1.5
STEPS_PER_EPOCH = 50
SEED = 0
KEEP_KEYS = ("epoch", "global_step", "state_dict", "pytorch-lightning_version")


def build_config(run_dir: Path):
    """The source run's config in sleap-nn 0.3.5's schema, tiled, for a short CPU run."""
    from omegaconf import OmegaConf
    from sleap_nn.config.training_job_config import verify_training_cfg

    cfg = verify_training_cfg(OmegaConf.load(SOURCE_RUN / "training_config.yaml"))

    data = cfg.data_config
    data.train_labels_path = [str(LABELS)]
    data.val_labels_path = None
    data.use_same_data_for_val = True
    data.preprocessing.tiling.enabled = True
    data.preprocessing.tiling.tile_size = TILE_SIZE
    data.preprocessing.tiling.overlap = OVERLAP
    data.augmentation_config.geometric.rotation_p = 0.0
    data.augmentation_config.geometric.scale_p = 0.0
    data.augmentation_config.geometric.affine_p = 0.0

    unet = cfg.model_config.backbone_config.unet
    unet.max_stride = MAX_STRIDE
    unet.filters_rate = FILTERS_RATE
    cfg.model_config.total_params = None  # recomputed by sleap-nn

    tr = cfg.trainer_config
    tr.trainer_accelerator = "cpu"
    tr.trainer_devices = 1
    tr.trainer_device_indices = None
    tr.enable_progress_bar = False
    tr.visualize_preds_during_training = False
    tr.keep_viz = False
    tr.max_epochs = MAX_EPOCHS
    tr.train_steps_per_epoch = STEPS_PER_EPOCH
    tr.min_train_steps_per_epoch = STEPS_PER_EPOCH
    tr.seed = SEED
    tr.use_wandb = False
    tr.save_ckpt = True
    tr.ckpt_dir = str(run_dir.parent)
    tr.run_name = run_dir.name
    tr.resume_ckpt_path = None
    tr.model_ckpt.save_top_k = 1
    tr.model_ckpt.save_last = False
    tr.lr_scheduler = None
    tr.early_stopping.stop_training_on_plateau = False
    tr.zmq.controller_port = None
    tr.zmq.publish_port = None
    cfg.sleap_nn_version = None  # sleap-nn writes its own version
    return cfg


def strip_checkpoint(src: Path, dst: Path) -> None:
    """Keep only what sleap-nn needs to load the weights."""
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    torch.save({k: ckpt[k] for k in KEEP_KEYS if k in ckpt}, dst)


def check_tiled(out_dir: Path) -> None:
    """Load the fixture the way ``sleap-nn predict`` does; require a TiledLayer."""
    from sleap_nn.inference.layers.tiled import TiledLayer
    from sleap_nn.inference.predictor import Predictor

    predictor = Predictor.from_model_paths([str(out_dir)], device="cpu")
    layer = predictor.layer
    if not isinstance(layer, TiledLayer):
        raise SystemExit(f"expected a TiledLayer, sleap-nn built {type(layer).__name__}")
    print(
        f"sleap-nn loads {out_dir} as {type(layer).__name__}"
        f"(tile_size={layer.tile_size}, overlap={layer.overlap}, "
        f"output_stride={layer.output_stride}, max_stride={layer.max_stride})"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir.resolve()

    os.nice(10)
    import sleap_nn
    from sleap_nn.training.model_trainer import ModelTrainer

    if sleap_nn.__version__ != "0.3.5":
        print(f"warning: made with sleap-nn 0.3.5, running {sleap_nn.__version__}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="tiled_fixture_") as tmp:
        run_dir = Path(tmp) / "tiled_single_instance"
        cfg = build_config(run_dir)
        t0 = time.monotonic()
        trainer = ModelTrainer.get_model_trainer_from_config(cfg)
        trainer.train()
        elapsed = time.monotonic() - t0
        print(f"training took {elapsed:.0f} s")

        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("best.ckpt", "training_config.yaml"):
            (out_dir / stale).unlink(missing_ok=True)
        strip_checkpoint(run_dir / "best.ckpt", out_dir / "best.ckpt")
        shutil.copyfile(run_dir / "training_config.yaml", out_dir / "training_config.yaml")

    check_tiled(out_dir)
    size = (out_dir / "best.ckpt").stat().st_size
    print(f"wrote {out_dir} (best.ckpt {size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
