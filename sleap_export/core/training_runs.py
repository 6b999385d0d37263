"""What a training run looks like on disk: its file names, and finding its folder.

Names only, nothing read: the runtime tells training runs from artifacts with
this (`runtime.open_model`), and the export side reads runs it finds here
(`exporting.checkpoints`).
"""

from __future__ import annotations

from pathlib import Path

from sleap_export.core.errors import InputError

CHECKPOINT_NAME = "best.ckpt"
CONFIG_NAME = "training_config.yaml"
LEGACY_CONFIG_NAME = "training_config.json"
LEGACY_WEIGHTS_NAME = "best_model.h5"


def resolve_run_dir(path: str | Path) -> Path:
    """Accept a run folder, its ``best.ckpt`` or its training config."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a sleap-nn training run folder.")
    if path.is_file() and path.suffix not in (".ckpt", ".yaml", ".json", ".h5"):
        raise InputError(
            f"{path} is a {path.suffix or 'suffix-less'} file, not a trained model; pass the training run "
            "folder (best.ckpt + training_config.yaml), its best.ckpt, or a SLEAP 1.x model folder."
        )
    run_dir = path if path.is_dir() else path.parent
    if not ((run_dir / CONFIG_NAME).exists() or is_legacy(run_dir)):
        raise InputError(
            f"{run_dir} is not a training run: neither {CONFIG_NAME} (sleap-nn) nor "
            f"{LEGACY_CONFIG_NAME} (SLEAP 1.x) is there; pass the folder that training wrote."
        )
    return run_dir


def is_legacy(run_dir: Path) -> bool:
    """A SLEAP 1.x (TensorFlow) model folder rather than a sleap-nn run."""
    return not (run_dir / CONFIG_NAME).exists() and (run_dir / LEGACY_CONFIG_NAME).exists()


def weights_file(run: str | Path) -> Path:
    """The weights a run's predictions come from: ``best.ckpt``, or ``best_model.h5`` of SLEAP 1.x."""
    run_dir = resolve_run_dir(run)
    return run_dir / (LEGACY_WEIGHTS_NAME if is_legacy(run_dir) else CHECKPOINT_NAME)


def is_training_run(path: Path) -> bool:
    """A run folder with a training config, or a checkpoint file; a config or weights file counts
    when its folder is a run (the test `resolve_run_dir` applies, without raising)."""
    if path.is_dir():
        return (path / CONFIG_NAME).exists() or (path / LEGACY_CONFIG_NAME).exists()
    if path.suffix == ".ckpt":
        return True
    return path.suffix in (".yaml", ".json", ".h5") and path.is_file() and is_training_run(path.parent)
