"""Helpers for the parity tests: run our runners the same way on the same inputs."""

from __future__ import annotations

from functools import lru_cache

import pytest

from sleap_export.evaluation.sleap_nn_reference import REFERENCE_BATCH_SIZE
from sleap_export.runtime.drivers.predictor import Predictor
from sleap_export.runtime import load

from conftest import gpu_problem, model_dir

# TensorRT engines are held to the ONNX tolerances; they run where `make gpu-test` finds a GPU.
TENSORRT = pytest.param(
    "tensorrt", marks=[pytest.mark.gpu, pytest.mark.skipif(gpu_problem() is not None, reason=str(gpu_problem()))]
)
RUNNER_KINDS = ("onnx", "torchscript", "eager", TENSORRT)
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "tensorrt": ".engine"}
# Runtimes whose float rounding differs from PyTorch's (see Case.onnx_relaxed).
REORDERED_KINDS = ("onnx", "tensorrt")


@lru_cache(maxsize=8)
def _eager(models: tuple[str, ...], options: tuple):
    from sleap_export.exporting.options import ExportOptions
    from sleap_export.exporting.eager_runner import eager_runner

    return eager_runner([model_dir(m) for m in models], options=ExportOptions.from_fields(**dict(options)))


def make_runner(kind: str, models: list[str], artifact, **options):
    if kind == "eager":
        return _eager(tuple(models), tuple(sorted(options.items())))
    return load(artifact(models, SUFFIX[kind], **options))


def our_predictions(runner, source, frames=None, batch_size: int = REFERENCE_BATCH_SIZE):
    from conftest import Predictions

    return Predictions.of(Predictor(runner, batch_size=batch_size).predict(source, frames=frames))


def our_poses(runner, source, frames=None, batch_size: int = REFERENCE_BATCH_SIZE) -> dict:
    return our_predictions(runner, source, frames, batch_size).poses
