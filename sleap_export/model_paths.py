"""Which paths name models (artifacts or training runs), and opening either (`load`).

Above the runtime: the runtime opens artifacts; training runs go to the export
side's eager graph. Which is which is decided from suffixes and file names only
(no torch, nothing read), so ONNX prediction starts fast; what a model path
holds is checked when it loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sleap_export.checkpoint import CONFIG_NAME, LEGACY_CONFIG_NAME
from sleap_export.errors import InputError
from sleap_export.runtime.artifact import artifact_suffixes

# What a model path may be, for the errors.
MODEL_KINDS = (
    "an artifact (.onnx, .pt, .engine), a sleap-nn training run folder (training_config.yaml + best.ckpt), "
    "its best.ckpt, or a SLEAP 1.x model folder"
)


def is_artifact(path: Path) -> bool:
    return path.suffix in artifact_suffixes()


def is_training_run(path: Path) -> bool:
    """A run folder with a training config (the test `checkpoint.resolve_run_dir` applies), or a
    checkpoint file; a config or weights file counts when its folder is a run."""
    if path.is_dir():
        return (path / CONFIG_NAME).exists() or (path / LEGACY_CONFIG_NAME).exists()
    if path.suffix == ".ckpt":
        return True
    return path.suffix in (".yaml", ".json", ".h5") and path.is_file() and is_training_run(path.parent)


def is_model(path: Path) -> bool:
    return is_artifact(path) or is_training_run(path)


def check_models(models: Sequence[Path]) -> list[Path]:
    """One artifact, or one or two training runs (a top-down pair); one-line errors otherwise."""
    models = [Path(p) for p in models]
    for path in models:
        if not is_model(path):
            problem = "does not exist" if not path.exists() else "is not a model"
            raise InputError(f"{path} {problem}; pass {MODEL_KINDS}.")
    artifacts = [p for p in models if is_artifact(p)]
    if len(artifacts) > 1:
        raise InputError(
            f"{' and '.join(p.name for p in artifacts)} are {len(artifacts)} artifacts; pass one "
            "(a top-down artifact holds both of its models)."
        )
    if artifacts and len(models) > 1:
        run = next(p for p in models if not is_artifact(p))
        raise InputError(
            f"{artifacts[0].name} is an artifact and {run} a training run; pass one artifact, or the training run(s) alone."
        )
    if len(models) > 2:
        raise InputError(
            f"Got {len(models)} training runs; pass one, or a centroid + centered-instance pair (top-down)."
        )
    return models


def split_models_and_inputs(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """``MODEL [MODEL2] INPUT...``: the leading paths that are models, then the inputs."""
    paths = [Path(p) for p in paths]
    count = next((i for i, p in enumerate(paths) if not is_model(p)), len(paths))
    models, inputs = paths[:count], paths[count:]
    misplaced = next((p for p in inputs if is_model(p)), None)
    if misplaced is not None:
        raise InputError(
            f"{misplaced} is a model but comes after an input; put the model(s) first: MODEL [MODEL2] INPUT..."
        )
    if not models:
        problem = "does not exist" if not paths[0].exists() else "is not a model"
        raise InputError(f"{paths[0]} {problem}; pass {MODEL_KINDS} first, then the inputs.")
    check_models(models)
    if not inputs:
        raise InputError(f"No input after the model(s) {' '.join(p.name for p in models)}; pass video(s) or .slp file(s) to predict on.")
    return models, inputs


def load(paths: str | Path | Sequence[str | Path], device: str | None = None, for_throughput: bool = False, **options):
    """A runner for an artifact (`runtime.runners.load`), or for one or two training runs,
    run eagerly by PyTorch (`sleap_export.eager`; needs the export extra)."""
    from sleap_export.runtime.runners import load as load_artifact

    models = check_models([paths] if isinstance(paths, (str, Path)) else paths)
    if is_artifact(models[0]):
        return load_artifact(models[0], device=device, for_throughput=for_throughput, **options)
    from sleap_export.eager import eager_runner

    return eager_runner(models, device=device or "cpu", **options)
