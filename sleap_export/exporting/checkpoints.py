"""The one module that reads trained models: sleap-nn runs and SLEAP 1.x folders.

A sleap-nn run folder (``best.ckpt`` + ``training_config.yaml``) or a SLEAP 1.x
folder (``best_model.h5`` + ``training_config.json``) becomes the network as
sleap-nn itself builds it plus the typed `StageSpec`/`SkeletonSpec` describing
its preprocessing contract. Checkpoints are unpickled with ``weights_only=True``;
the only non-tensor globals allowed are sleap-nn's own config classes and the
omegaconf/typing/builtin types they are made of. SLEAP 1.x weights are HDF5
datasets read by sleap-nn's legacy loader through h5py (no code in the file runs).
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Optional

import attrs

from sleap_export.core.errors import InputError
from sleap_export.core.model_types import BOX_HEAD_TYPES, HEAD_TYPES, MASK_HEAD_TYPES
from sleap_export.core.spec import BoxCropSpec, SkeletonSpec, StageSpec
from sleap_export.core.tiling_spec import TilingSpec
from sleap_export.core.training_runs import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    LEGACY_CONFIG_NAME,
    LEGACY_WEIGHTS_NAME,
    is_legacy,
    resolve_run_dir,
)

# The head types sleap-nn infers in tiles when their training config enables tiling (others ignore it).
TILED_HEAD_TYPES = ("single_instance", "semantic_segmentation", "bottomup_segmentation")
# Globals a sleap-nn checkpoint may reference besides tensors (its saved config).
_SAFE_GLOBAL_PREFIXES = ("sleap_nn.config.", "omegaconf.", "typing.", "builtins.")
_SAFE_GLOBALS = {"collections.defaultdict", "_operator.getitem"}
_BUILTIN_TYPES = {"builtins." + t for t in ("str", "int", "float", "bool", "dict", "list", "tuple", "set", "frozenset", "bytes", "NoneType")}


@attrs.frozen
class LoadedRun:
    """A sleap-nn training run, ready to wrap in a graph."""

    network: object  # torch.nn.Module built by sleap-nn; returns {head name: tensor}
    head_names: tuple[str, ...]
    stage: StageSpec
    skeleton: SkeletonSpec
    run_dir: Path
    class_names: tuple[str, ...] = ()


def model_type_of(run_dir: Path) -> str:
    """The head type a run's training config declares."""
    if is_legacy(run_dir):
        heads = _load_legacy_config(run_dir).model_config.head_configs
        config_name = LEGACY_CONFIG_NAME
    else:
        heads = _load_config(run_dir).get("model_config", {}).get("head_configs", {}) or {}
        config_name = CONFIG_NAME
    for name, head in heads.items():
        if head is not None:
            return name
    raise InputError(f"{run_dir / config_name} declares no model head; re-train or fix the config.")


def _box_crop(config) -> Optional[BoxCropSpec]:
    """How a centered-instance run trained with ``crop_mode: bbox`` cuts its crops (read by sleap-nn's
    own ``BBoxCropSpec``), or None for fixed crops."""
    from sleap_nn.data.instance_cropping import BBoxCropSpec

    found = BBoxCropSpec.from_config(config)
    if found is None:
        return None
    return BoxCropSpec(aspect=found.aspect, padding=float(found.padding), min_size=found.min_size)


def _check_embedding_crop_center(head, run_dir: Path) -> None:
    """An embedding run crops around each pose's anchor node or the mean of its visible nodes (the
    graph's two ways, `EmbeddedInstances`); its config may name another (read by sleap-nn's own rule)."""
    from sleap_nn.data.instance_centroids import resolve_centroid_method

    method, fallback = resolve_centroid_method(head.get("anchor_part"), head.get("centroid_method"), head.get("centroid_fallback"))
    if method not in ("anchor", "center_of_mass") or fallback not in (None, "center_of_mass"):
        raise InputError(
            f"{run_dir / CONFIG_NAME} centres embedding crops by {method} (fallback {fallback}); sleap-export crops at the "
            "anchor node or the mean of the visible nodes: set centroid_method to center_of_mass (or anchor_part)."
        )


def _check_no_burn_in(config, run_dir: Path) -> None:
    """A run trained with mask burn-in sees crops with the background blanked and standardized over the
    foreground; the artifact feeds whole crops, so its vectors would be off the training distribution."""
    if bool(config.data_config.preprocessing.get("burn_in", False)):
        raise InputError(
            f"{run_dir / CONFIG_NAME} was trained with mask burn-in (data_config.preprocessing.burn_in: true), which "
            "sleap-export does not apply; embed with sleap-nn, or train with burn_in: false."
        )


def _check_one_stride(heads, run_dir: Path) -> None:
    """Bottom-up masks read foreground, centers and offsets on one grid, as sleap-nn does."""
    strides = {name: int(head.output_stride) for name, head in heads.items() if head is not None}
    if len(set(strides.values())) > 1:
        raise InputError(
            f"{run_dir / CONFIG_NAME} gives its segmentation heads different output strides ({strides}); sleap-nn "
            "groups them on one grid: train them at one output_stride."
        )


def load_run(path: str | Path) -> LoadedRun:
    """Build the network of a run folder (sleap-nn or SLEAP 1.x) and describe it."""
    import torch
    from sleap_nn.inference.utils import get_skeleton_from_config

    run_dir = resolve_run_dir(path)
    model_type = model_type_of(run_dir)
    if model_type not in HEAD_TYPES:
        raise InputError(
            f"Model type {model_type!r} is not one sleap-export exports yet; "
            f"supported: {', '.join(HEAD_TYPES)}."
        )
    legacy = is_legacy(run_dir)
    if legacy:
        config = _load_legacy_config(run_dir)
        weights_path = run_dir / LEGACY_WEIGHTS_NAME
        network = _load_legacy_network(run_dir)
        backbone_type = "unet"  # sleap-nn maps every SLEAP 1.x model onto its UNet
    else:
        config, backbone_type = _load_run_config(run_dir)
        weights_path = run_dir / CHECKPOINT_NAME
        network = _load_network(weights_path, config, backbone_type, model_type)
    backbone = config.model_config.backbone_config[backbone_type]
    heads = config.model_config.head_configs[model_type]
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    torch.set_grad_enabled(False)

    preprocessing = config.data_config.preprocessing
    if model_type in BOX_HEAD_TYPES:
        from sleap_nn.data.bboxes import bbox_head_categories, bbox_head_leaf

        # The box head whose grid the boxes are read on (its stride), and the box categories.
        confmaps = bbox_head_leaf(model_type, config.model_config.head_configs)
        categories = tuple(bbox_head_categories(model_type, config.model_config.head_configs))
    elif model_type in MASK_HEAD_TYPES:
        confmaps = heads["segmentation"]  # every mask head shares its output stride
        _check_one_stride(heads, run_dir)
    elif model_type == "embedding":
        confmaps = heads["embedding"]  # its output stride and anchor, as a confmaps head's
        _check_embedding_crop_center(confmaps, run_dir)
        _check_no_burn_in(config, run_dir)
    else:
        confmaps = heads["confmaps"]
    skeleton = get_skeleton_from_config(config.data_config.skeletons)[0]
    pafs = heads.get("pafs")
    paf_edges = ()
    if pafs is not None:
        # The PAF channels follow the head's own edge list, over its part names.
        parts = list(confmaps.part_names)
        paf_edges = tuple((parts.index(a), parts.index(b)) for a, b in pafs.edges)
    class_maps = heads.get("class_maps")
    classes = heads.get("class_vectors") or class_maps
    stage = StageSpec(
        head_type=model_type,
        backbone=backbone_type,
        # sleap-nn reads a SLEAP 1.x model's channel count from its first kernel.
        in_channels=int(network.backbone_config.in_channels if legacy else backbone.in_channels),
        input_scale=float(preprocessing.scale),
        max_stride=int(backbone.max_stride),
        output_stride=int(confmaps.output_stride),
        max_height=_optional_int(preprocessing.get("max_height")),
        max_width=_optional_int(preprocessing.get("max_width")),
        crop_size=_optional_int(preprocessing.get("crop_size")),
        box_crop=None if legacy else _box_crop(config),
        tiling=None if legacy or model_type not in TILED_HEAD_TYPES else TilingSpec.from_training_config(
            config, str(run_dir / CONFIG_NAME)
        ),
        anchor_part=confmaps.get("anchor_part"),
        crop_centering=preprocessing.get("crop_centering", "auto") if model_type == "embedding" else None,
        preferred_carrier=confmaps.get("detection_mode") if model_type == "embedding" else None,
        paf_stride=None if pafs is None else int(pafs.output_stride),
        class_maps_stride=None if class_maps is None else int(class_maps.output_stride),
        paf_edges=paf_edges,
        checkpoint_sha256=file_sha256(weights_path),
        source=run_dir.resolve().name,
        source_format="sleap-1.x" if legacy else "sleap-nn",
        training_config=(run_dir / (LEGACY_CONFIG_NAME if legacy else CONFIG_NAME)).read_text(),
    )
    return LoadedRun(
        network=network,
        head_names=tuple(head.name for head in network.heads),
        stage=stage,
        skeleton=skeleton_spec(skeleton),
        run_dir=run_dir,
        class_names=categories if model_type in BOX_HEAD_TYPES else tuple(classes["classes"]) if classes is not None else (),
    )


def _load_run_config(run_dir: Path):
    """A sleap-nn run's config as OmegaConf, and its backbone type."""
    from omegaconf import OmegaConf

    _load_config(run_dir)  # one-line errors for unreadable YAML
    config = OmegaConf.load(run_dir / CONFIG_NAME)
    backbone_type = next(
        (k for k, v in config.model_config.backbone_config.items() if v is not None), None
    )
    if backbone_type is None:
        raise InputError(f"{run_dir / CONFIG_NAME} declares no backbone; fix the config.")
    return config, backbone_type


def _load_network(checkpoint_path: Path, config, backbone_type: str, model_type: str):
    """sleap-nn's `Model` with the run's checkpoint weights."""
    from sleap_nn.architectures.model import Model

    state_dict = _read_state_dict(checkpoint_path)
    network = Model(
        backbone_type=backbone_type,
        backbone_config=config.model_config.backbone_config[backbone_type],
        head_configs=config.model_config.head_configs[model_type],
        model_type=model_type,
    )
    weights = {k[len("model."):]: v for k, v in state_dict.items() if k.startswith("model.")}
    try:
        network.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first_line = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise InputError(
            f"{checkpoint_path} does not fit the architecture in {CONFIG_NAME} "
            f"({first_line}); use the checkpoint and config of the same run."
        ) from None
    return network


def _load_legacy_config(run_dir: Path):
    """A SLEAP 1.x ``training_config.json`` as sleap-nn maps it (OmegaConf)."""
    import json

    from sleap_nn.config.training_job_config import TrainingJobConfig

    config_path = run_dir / LEGACY_CONFIG_NAME
    try:
        json.loads(config_path.read_text())
        return TrainingJobConfig.load_sleap_config(str(config_path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(
            f"{config_path} is not valid JSON ({err}); restore the config SLEAP wrote."
        ) from None
    except Exception as err:
        raise InputError(
            f"{config_path} is not a SLEAP 1.x training config sleap-nn can read "
            f"({type(err).__name__}: {err}); restore the config SLEAP wrote."
        ) from None


def _load_legacy_network(run_dir: Path):
    """sleap-nn's `Model` for a SLEAP 1.x folder, with every weight from ``best_model.h5``.

    sleap-nn's loader logs, rather than raises, when weights do not map, so any
    weight tensor left at its random initial value is reported here.
    """
    import h5py
    from loguru import logger
    from sleap_nn.legacy_models import create_model_from_legacy_config, load_legacy_model_weights

    from sleap_export.exporting.graph.keras_geometry import use_keras_geometry

    weights_path = run_dir / LEGACY_WEIGHTS_NAME
    if not weights_path.exists():
        raise InputError(
            f"{weights_path} is missing; the SLEAP 1.x folder needs the best_model.h5 training saved."
        )
    if not h5py.is_hdf5(weights_path):
        raise InputError(
            f"{weights_path} is not an HDF5 file (corrupt or truncated); restore it from the training run."
        )
    # sleap-nn logs every mapped layer; the check below is what we report.
    logger.disable("sleap_nn")
    try:
        network = create_model_from_legacy_config(str(run_dir))
        initial = {n: p.detach().clone() for n, p in network.named_parameters() if p.ndim > 1}
        load_legacy_model_weights(network, str(weights_path))
    except Exception as err:
        raise InputError(
            f"{weights_path} could not be mapped onto sleap-nn's architecture "
            f"({type(err).__name__}: {err}); check the folder holds the model its config describes."
        ) from None
    finally:
        logger.enable("sleap_nn")
    missing = [n for n, p in network.named_parameters() if n in initial and p.equal(initial[n])]
    if missing:
        raise InputError(
            f"{weights_path} lacks weights for {len(missing)} of {len(initial)} layers "
            f"(e.g. {missing[0]}); it does not match {LEGACY_CONFIG_NAME} — use the files of one training run."
        )
    use_keras_geometry(network)  # TensorFlow's, not sleap-nn's, upsampling geometry
    return network


def ssd_anchor_settings(training_config: str) -> tuple[list[int], list[list[tuple[float, float]]], list[float]]:
    """An SSD run's anchors as sleap-nn makes them: level strides (finest first), each level's
    anchor ``(w, h)`` shapes, and the box-coding variances (from its training config text)."""
    import yaml
    from omegaconf import OmegaConf
    from sleap_nn.data.bboxes import anchor_shapes, get_bbox_target_encoder

    config = OmegaConf.create(yaml.safe_load(training_config))
    encoder = get_bbox_target_encoder("bbox_ssd", config.model_config.head_configs)
    shapes = [anchor_shapes(size, encoder.scales, encoder.aspect_ratios) for size in encoder.sizes]
    return encoder.strides, shapes, encoder.variances


def skeleton_spec(skeleton) -> SkeletonSpec:
    """Describe a `sio.Skeleton` by node indices."""
    index = {node.name: i for i, node in enumerate(skeleton.nodes)}
    return SkeletonSpec(
        nodes=skeleton.node_names,
        edges=[(index[e.source.name], index[e.destination.name]) for e in skeleton.edges],
        symmetries=[
            tuple(index[node.name] for node in symmetry.nodes)
            for symmetry in skeleton.symmetries
        ],
        name=skeleton.name or "Skeleton-0",
    )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_config(run_dir: Path) -> dict:
    import yaml

    try:
        with open(run_dir / CONFIG_NAME) as stream:
            config = yaml.safe_load(stream)
    except yaml.YAMLError as err:
        raise InputError(
            f"{run_dir / CONFIG_NAME} is not valid YAML ({str(err).splitlines()[0]}); "
            "restore the training config that sleap-nn wrote."
        ) from None
    if not isinstance(config, dict):
        raise InputError(f"{run_dir / CONFIG_NAME} is not a sleap-nn training config; restore it.")
    return config


def _optional_int(value) -> int | None:
    return None if value is None else int(value)


def _read_state_dict(checkpoint_path: Path) -> dict:
    """Unpickle a checkpoint with ``weights_only=True``, allowing sleap-nn config types."""
    import torch

    if not checkpoint_path.exists():
        raise InputError(
            f"{checkpoint_path} is missing; the run folder needs the best.ckpt that "
            "sleap-nn train saved."
        )
    if checkpoint_path.stat().st_size == 0:
        raise InputError(f"{checkpoint_path} is empty; restore the checkpoint from the training run.")
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(checkpoint_path))
    except Exception:
        raise InputError(
            f"{checkpoint_path} is not a readable PyTorch checkpoint (corrupt or "
            "truncated); restore it from the training run."
        ) from None
    unsafe = [n for n in names if not _is_safe_global(n)]
    if unsafe:
        raise InputError(
            f"{checkpoint_path} references code outside sleap-nn's config types "
            f"({', '.join(sorted(unsafe)[:3])}); refusing to unpickle it. Use a "
            "checkpoint written by sleap-nn train."
        )
    allowed = [_import_global(n) for n in names]
    try:
        with torch.serialization.safe_globals([a for a in allowed if a is not None]):
            checkpoint = torch.load(
                checkpoint_path, map_location="cpu", weights_only=True, mmap=False
            )
    except Exception as err:
        raise InputError(
            f"{checkpoint_path} could not be loaded safely ({type(err).__name__}); "
            "restore it from the training run."
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise InputError(
            f"{checkpoint_path} holds no state_dict; it is not a sleap-nn Lightning checkpoint."
        )
    return checkpoint["state_dict"]


def _is_safe_global(name: str) -> bool:
    if name in _SAFE_GLOBALS or name in _BUILTIN_TYPES:
        return True
    if name.startswith("builtins."):
        return False  # e.g. builtins.eval / exec
    return name.startswith(_SAFE_GLOBAL_PREFIXES)


def _import_global(name: str):
    module_name, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None
