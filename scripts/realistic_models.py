"""Build realistic-size sleap-nn run folders with random weights, for timing only.

    python scripts/realistic_models.py OUT_DIR

Takes the architectures of sleap-nn's sample configs in ../shared/assets/configs
(bottom-up UNet medium RF; centroid UNet + centered-instance UNet medium RF)
and the skeleton and data settings of the shared trained runs, and writes
``best.ckpt`` + ``training_config.yaml`` folders that sleap-nn and sleap-export
both load. Random weights: good for speed, never for accuracy claims.

The shared runs fit frames to 384x384 (their ``max_height``/``max_width``);
these are set to the benchmark's frame size instead, so the networks run at
the frames' own size (a 1024x1024 row measures a 1024x1024 network).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from sleap_nn.architectures.model import Model

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
# Side of the square frames the realistic benchmark rows run on (scripts/bench.py --realistic).
FRAME_SIZE = 1024
# run folder name -> (sample config giving the architecture, trained run giving skeleton/data, crop size)
REALISTIC = {
    "bottomup_unet_medium_rf": ("config_bottomup_unet_medium_rf.yaml", "minimal_instance_bottomup", None),
    "centroid_unet": ("config_centroid_unet.yaml", "minimal_instance_centroid", None),
    "centered_instance_unet_medium_rf": (
        "config_topdown_centered_instance_unet_medium_rf.yaml",
        "minimal_instance_centered_instance",
        160,
    ),
}


def build(out_dir: Path, name: str, frame_size: int = FRAME_SIZE) -> Path:
    """The run folder ``out_dir/name``, for ``frame_size`` x ``frame_size`` frames."""
    template_name, trained_name, crop_size = REALISTIC[name]
    template = OmegaConf.load(ASSETS / "configs" / template_name)
    config = OmegaConf.load(ASSETS / "models" / trained_name / "training_config.yaml")
    model_type = next(k for k, v in config.model_config.head_configs.items() if v is not None)
    config.model_config.backbone_config.unet = template.model_config.backbone_config.unet
    for head_name, head in template.model_config.head_configs[model_type].items():
        config.model_config.head_configs[model_type][head_name].output_stride = head.output_stride
    config.data_config.preprocessing.scale = template.data_config.preprocessing.scale
    config.data_config.preprocessing.max_height = frame_size
    config.data_config.preprocessing.max_width = frame_size
    if crop_size is not None:
        config.data_config.preprocessing.crop_size = crop_size
    torch.manual_seed(0)
    network = Model(
        backbone_type="unet",
        backbone_config=config.model_config.backbone_config.unet,
        head_configs=config.model_config.head_configs[model_type],
        model_type=model_type,
    )
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, folder / "training_config.yaml")
    # The keys a Lightning checkpoint carries, which sleap-nn's loader reads.
    trained = torch.load(ASSETS / "models" / trained_name / "best.ckpt", map_location="cpu", weights_only=False)
    checkpoint = {key: trained[key] for key in ("epoch", "global_step", "pytorch-lightning_version")}
    checkpoint.update(state_dict={f"model.{k}": v for k, v in network.state_dict().items()}, config=config)
    torch.save(checkpoint, folder / "best.ckpt")
    parameters = sum(p.numel() for p in network.parameters())
    print(f"{folder}: {model_type}, {parameters / 1e6:.2f} M parameters, {frame_size}x{frame_size} frames")
    return folder


if __name__ == "__main__":
    for model_name in REALISTIC:
        build(Path(sys.argv[1]), model_name)
