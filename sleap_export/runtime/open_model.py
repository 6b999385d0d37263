"""Opening a model: `open_model(paths, ModelOptions(...))`, the one place that tells an
artifact from a training run.

predict, check, bench, live, Ray workers and the Python API all open what they
run here. Artifacts open with their format's runner (`artifacts.formats.FORMATS`);
training runs are built and run eagerly by the export side, which plugs in as
the ``sleap_export.training_runs`` entry point (pyproject.toml), so this runtime
never imports torch or sleap-nn itself. Which is which is decided from suffixes
and file names only (nothing read), so ONNX prediction starts fast; what a path
holds is checked when it opens.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Optional, Sequence

import attrs

from sleap_export.core.errors import InputError, SleapExportError, install_extra
from sleap_export.core.mask_options import MaskOptions, settings_read_by
from sleap_export.core.model_types import MODEL_TYPES
from sleap_export.core.training_runs import is_training_run
from sleap_export.runtime.artifacts.formats import (
    ONNX, SLEAP_NN_FOLDER, artifact_suffixes, format_by_content, format_of, read_checked_spec, read_spec,
)
from sleap_export.runtime.sources.video_inputs import LABELS_SUFFIXES, VIDEO_SUFFIXES
from sleap_export.runtime.backends.runner import Runner

# What a model path may be, for the errors.
MODEL_KINDS = (
    "an artifact (.onnx, .pt, .engine), a sleap-nn export folder (model.onnx + export_metadata.json), "
    "a sleap-nn training run folder (training_config.yaml + best.ckpt), its best.ckpt, or a SLEAP 1.x model folder"
)
# Inputs, never read to see whether they are artifacts.
NOT_ARTIFACT_SUFFIXES = (*VIDEO_SUFFIXES, *LABELS_SUFFIXES, ".ckpt", ".yaml", ".json", ".h5")
# The entry point group through which the export side runs training runs (see pyproject.toml).
TRAINING_RUN_OPENERS = "sleap_export.training_runs"
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")
# Precisions an artifact is exported at (its networks), never chosen when running it.
EXPORT_PRECISIONS = ("fp16", "int8")


def _at_least_one(instance, attribute, value) -> None:
    if value is not None and value < 1:
        name = attribute.name.replace("_", " ").capitalize()
        advice = "use 1 for the lowest latency, 2 for throughput" if attribute.name == "parallel_batches" else "use 1 or more"
        raise InputError(f"{name} must be at least 1, got {value}; {advice}.")


def _known_device(instance, attribute, value) -> None:
    if value is not None and not _DEVICE.fullmatch(value):
        raise InputError(f"Unknown device {value!r}; use cpu, cuda or cuda:N.")


@attrs.frozen
class ModelOptions:
    """How to run a model, validated once and carried from the command line (or a caller) to its runner.

    ``device``: cpu, cuda or cuda:N (default: cuda for TensorRT engines, else cpu).
    ``runtime``: for ONNX artifacts, onnxruntime (default) or openvino.
    ``precision``: OpenVINO's network precision, fp32 or bf16 (needs ``runtime="openvino"``).
    ``masks``: how a segmentation model's masks are decoded and written (`MaskOptions`).
    ``threads``: CPU threads in all, ``parallel_batches``: batches run at once sharing them
    (ONNX artifacts). ``throughput``: set up for many batches (a video) rather than the
    lowest latency per batch; the options given explicitly win.
    """

    device: Optional[str] = attrs.field(default=None, validator=_known_device)
    # Checked against the artifact's format when it opens (`ArtifactFormat.runner_class`).
    runtime: Optional[str] = None
    precision: Optional[str] = None
    threads: Optional[int] = attrs.field(default=None, validator=_at_least_one)
    parallel_batches: Optional[int] = attrs.field(default=None, validator=_at_least_one)
    throughput: bool = False
    # A segmentation model's predict-time settings (sleap-nn's names); refused for other models.
    masks: MaskOptions = MaskOptions()

    def __attrs_post_init__(self):
        if self.precision in EXPORT_PRECISIONS:
            raise InputError(
                f"--precision {self.precision} is chosen at export, not at run time: export an {self.precision} artifact "
                f"(sleap-export onnx RUN -o model_{self.precision}.onnx --precision {self.precision} --calibration video.mp4) "
                "and predict with it; at run time, --runtime openvino --precision bf16 runs an fp32 artifact's networks in bf16."
            )
        if self.precision is not None and self.runtime != "openvino":
            raise InputError(f"--precision {self.precision} is chosen at run time by OpenVINO; add --runtime openvino.")

    def runner_keywords(self) -> dict:
        """The options the runner class takes, where given."""
        given = {"precision": self.precision, "threads": self.threads, "parallel_batches": self.parallel_batches}
        return {name: value for name, value in given.items() if value is not None}

    def check_applies_to(self, model: Path) -> None:
        """Refuse the options that do not apply to this model, in one line."""
        artifact = is_artifact(model)
        if not artifact and (self.runtime or self.precision):
            raise InputError("--runtime and --precision apply to artifacts; leave them out for training runs.")
        onnx_only = [flag for flag, value in (("--threads", self.threads), ("--parallel-batches", self.parallel_batches)) if value is not None]
        if onnx_only and not (artifact and format_of(model) in (ONNX, SLEAP_NN_FOLDER)):
            what = f"{format_of(model).title} artifacts" if artifact else "training runs"
            verb, pronoun = ("applies", "it") if len(onnx_only) == 1 else ("apply", "them")
            raise InputError(
                f"{' and '.join(onnx_only)} {verb} to ONNX artifacts only (CPU threads and parallel batches "
                f"apply to ONNX artifacts, not to {what}); leave {pronoun} out."
            )


def is_artifact(path: Path) -> bool:
    """An artifact's suffix (any case), or a file of another suffix whose content is one (a renamed
    artifact); video and labels files are never read for it."""
    path = Path(path)
    if path.suffix.lower() in artifact_suffixes():
        return True
    return path.suffix.lower() not in NOT_ARTIFACT_SUFFIXES and format_by_content(path) is not None


def is_model(path: Path) -> bool:
    return is_artifact(path) or is_training_run(path)


def check_models(models: Sequence[str | Path]) -> list[Path]:
    """One artifact, one or two training runs (a top-down pair), or a detector artifact followed by a lone
    embedding artifact (`detector_and_embedding`); one-line errors otherwise."""
    models = [Path(p) for p in models]
    for path in models:
        if not is_model(path):
            problem = "does not exist" if not path.exists() else "is not a model"
            raise InputError(f"{path} {problem}; pass {MODEL_KINDS}.")
    if detector_and_embedding(models)[1] is not None:
        return models
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


def detector_and_embedding(models: Sequence[Path]) -> tuple[list[Path], Optional[Path]]:
    """``DETECTOR EMBEDDING`` (two artifacts, the second a lone embedding run; sleap-nn's fused ``-m DETECTOR
    -m EMBEDDING``): the detector, and the embedding artifact that embeds what it finds; otherwise the models as
    given and None."""
    models = [Path(p) for p in models]
    if len(models) != 2 or not all(m.is_file() and is_artifact(m) for m in models):
        return models, None
    try:
        types = [read_spec(m).model_type for m in models]
    except SleapExportError:  # not artifacts after all: refused as such by the caller
        return models, None
    if types[1] != "embedding" or types[0] == "embedding":
        return models, None
    return models[:1], models[1]


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


def model_name(models: Sequence[Path]) -> str:
    """How reports and provenance name the model: the artifact, or the runs joined by " + "."""
    return " + ".join(str(m) for m in models)


def training_run_opener() -> Callable[..., Runner]:
    """``(run paths, device=) -> Runner`` for training runs: the export side (torch, sleap-nn),
    plugged in as an entry point."""
    from importlib.metadata import entry_points

    found = entry_points(group=TRAINING_RUN_OPENERS)
    if not found:
        raise InputError(
            "Training runs run in PyTorch through sleap-export's export side, which is not installed here; "
            f"{install_extra('export')}, or pass an exported artifact."
        )
    return next(iter(found)).load()


def open_model(paths: str | Path | Sequence[str | Path], options: ModelOptions = ModelOptions()) -> Runner:
    """A runner for one artifact (.onnx, .pt, .engine) or one or two training runs (a folder,
    its best.ckpt, a SLEAP 1.x folder; a centroid + centered-instance pair), run eagerly by
    PyTorch (needs the ``export`` extra)."""
    models = check_models([paths] if isinstance(paths, (str, Path)) else paths)
    options.check_applies_to(models[0])
    if not is_artifact(models[0]):
        runner = training_run_opener()(models, device=options.device or "cpu")
    else:
        path = models[0]
        spec = read_checked_spec(path)
        runner_class = format_of(path).runner_class(options.runtime)
        device = options.device or runner_class.default_device
        keywords = options.runner_keywords()
        if options.throughput:
            keywords = {**runner_class.throughput_options(device), **keywords}
        runner = runner_class.from_path(path, spec, device=device, **keywords)
    check_mask_options(options.masks, runner.spec)
    runner.mask_options = options.masks
    return runner


def check_mask_options(masks: MaskOptions, spec) -> None:
    """Refuse mask settings a model does not read, in one line naming the first."""
    changed = [f.name for f in attrs.fields(MaskOptions) if getattr(masks, f.name) != f.default]
    if not changed:
        return
    flag = f"--{changed[0].replace('_', '-')}"
    if not MODEL_TYPES[spec.model_type].segments:
        raise InputError(f"{flag} applies to segmentation models and this is a {spec.model_type} model; leave it out.")
    read = settings_read_by(spec.model_type)
    unread = [name for name in changed if name not in read]
    if unread:
        raise InputError(
            f"--{unread[0].replace('_', '-')} does not apply to {spec.model_type} models (they read "
            f"{', '.join('--' + n.replace('_', '-') for n in read)}); leave it out."
        )


def load(paths: str | Path | Sequence[str | Path], device: Optional[str] = None, for_throughput: bool = False, **options) -> Runner:
    """`open_model` with the options as keywords (``sleap_export.load``): artifacts and training runs."""
    return open_model(paths, ModelOptions(device=device, throughput=for_throughput, **options))


def load_artifact(path: str | Path, device: Optional[str] = None, for_throughput: bool = False, **options) -> Runner:
    """`load` for artifacts only (``sleap_export.runtime.load``): refuses training runs."""
    path = Path(path)
    if path.is_dir():
        raise InputError(
            f"{path} is a folder; load() opens artifacts (.onnx, .pt, .engine). For a training run, use "
            "Predictor.from_model_paths or sleap_export.open_model (needs the export extra)."
        )
    format_of(path)  # a one-line error for anything but an artifact
    return load(path, device=device, for_throughput=for_throughput, **options)
