"""Exactness where sleap-nn's results hinge on rounding: preprocessing at any frame
size, and exact ties (saturated probabilities, plateaus) under ONNX Runtime.

The preprocessing sweep exports size matching, input scaling and padding once,
with the frame size, training size, input scale and stride as graph inputs, and
compares the image it gives in ONNX Runtime and in TorchScript with torch's
uint8 kernel as sleap-nn calls it, bit for bit.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import sleap_io as sio
import torch

from sleap_export.exporting.graph.preprocess import frames_to_images, match_size, pad_to_stride, resize_by_scale
from conftest import DATA, MODELS
from test_tensorrt import tensorrt_double_downcast

SWEEP_CASES = 520
# Scales users train with, non-dyadic ones included; a third of the cases draw any.
INPUT_SCALES = (0.25, 0.3, 0.33, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0, 1.1, 1.2, 1.25, 1.3, 1.5)
TRAINING_SIDES = (64, 96, 128, 160, 192, 256, 320, 384, 400, 448, 512, 560, 640, 768, 1024)
# TensorRT computes float64 in float32 (emulated here): the bound the README and
# `check` state for engines on frames that are resized.
FLOAT32_MAX_GREY_LEVELS = 2
FLOAT32_MAX_SHARE_OFF = 0.005


class PreprocessContract(torch.nn.Module):
    """sleap-nn's preprocessing with every contract value as an input."""

    def forward(self, frames, training_size, input_scale, max_stride):
        images, size_scale = match_size(frames_to_images(frames), training_size[0], training_size[1])
        return pad_to_stride(resize_by_scale(images, input_scale), max_stride).to(torch.float32) / 255.0, size_scale


def sweep_cases(count: int, seed: int = 0) -> list[tuple[int, int, int, int, float, int]]:
    """(height, width, max_height, max_width, input_scale, max_stride), frame sides
    log-uniform in 16..2048 so that both up- and downscaling are frequent."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        height, width = (int(round(np.exp(rng.uniform(np.log(16), np.log(2048))))) for _ in range(2))
        if rng.random() < 0.3:
            max_height, max_width = (int(rng.integers(16, 1100)) for _ in range(2))
        else:
            max_height, max_width = (int(rng.choice(TRAINING_SIDES)) for _ in range(2))
        scale = float(rng.choice(INPUT_SCALES)) if rng.random() < 0.67 else float(np.round(rng.uniform(0.25, 1.5), 3))
        cases.append((height, width, max_height, max_width, scale, int(rng.choice([1, 4, 8, 16, 32]))))
    return cases


def sleap_nn_preprocess(frame: np.ndarray, max_height: int, max_width: int, scale: float, stride: int) -> np.ndarray:
    """What sleap-nn's layers feed the network (``_apply_full_preprocess``), for one frame."""
    from sleap_nn.data.resizing import apply_pad_to_stride, apply_sizematcher, resize_image

    image, _ = apply_sizematcher(torch.from_numpy(frame).permute(2, 0, 1), max_height, max_width)
    image = image[None]
    if scale != 1.0:
        image = resize_image(image, scale)
    return apply_pad_to_stride(image, stride).float().numpy() / 255.0


@pytest.fixture(scope="module")
def contract_runners():
    example = (
        torch.zeros((1, 40, 50, 1), dtype=torch.uint8),
        torch.tensor([32, 48]),
        torch.tensor(0.75, dtype=torch.float64),
        torch.tensor(8),
    )
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            PreprocessContract(),
            example,
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["frames", "training_size", "input_scale", "max_stride"],
            output_names=["image", "size_scale"],
            dynamic_axes={"frames": {1: "height", 2: "width"}},
        )
        traced = torch.jit.trace(PreprocessContract(), example, check_trace=False)
    model = onnx.load_from_string(buffer.getvalue())

    def session(proto):
        return onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])

    return session(model), session(tensorrt_double_downcast(model)), traced


def test_preprocessing_is_bit_exact_at_any_size_and_scale(contract_runners):
    from loguru import logger

    logger.disable("sleap_nn")  # one size-mismatch warning per case
    onnx_session, float32_session, traced = contract_runners
    rng = np.random.default_rng(1)
    off = {"onnx": [], "torchscript": []}
    float32_levels, float32_pixels_off, pixels, upscaled, downscaled = 0.0, 0, 0, 0, 0
    for height, width, max_height, max_width, scale, stride in sweep_cases(SWEEP_CASES):
        frame = rng.integers(0, 256, (height, width, 1), dtype=np.uint8)
        expected = sleap_nn_preprocess(frame, max_height, max_width, scale, stride)
        feeds = {
            "frames": frame[None],
            "training_size": np.array([max_height, max_width]),
            "input_scale": np.array(scale),
            "max_stride": np.array(stride),
        }
        ours = {
            "onnx": onnx_session.run(None, feeds)[0],
            "torchscript": traced(*(torch.from_numpy(np.asarray(v)) for v in feeds.values()))[0].numpy(),
        }
        for kind, image in ours.items():
            if image.shape != expected.shape or not np.array_equal(image, expected):
                off[kind].append((height, width, max_height, max_width, scale, stride))
        as_float32 = float32_session.run(None, {**feeds, "input_scale": np.array(scale, np.float32)})[0]
        assert as_float32.shape == expected.shape
        levels = np.abs(as_float32 - expected) * 255
        float32_levels = max(float32_levels, float(levels.max()))
        float32_pixels_off += int((levels > 0.5).sum())
        pixels += expected.size
        fit = min(max_height / height, max_width / width)
        upscaled += fit * scale > 1
        downscaled += fit * scale < 1
    assert upscaled > 100 and downscaled > 100
    assert off == {"onnx": [], "torchscript": []}, {k: v[:5] for k, v in off.items()}
    # Measured on these cases: at most 1-2 grey levels on 0.19% of the pixels.
    assert round(float32_levels) <= FLOAT32_MAX_GREY_LEVELS
    assert float32_pixels_off / pixels <= FLOAT32_MAX_SHARE_OFF


# Downscaling by 250x, the most the float32 sums are bounded for (graph/resize.py:
# ~518 taps), on white frames (the largest sums) and on noise.
EXTREME_DOWNSCALES = [(1500, 3000, 6, 12), (2000, 4000, 8, 16), (800, 8000, 8, 32), (4000, 250, 16, 1)]


@pytest.mark.parametrize("fill", ["white", "noise"])
def test_preprocessing_is_bit_exact_at_extreme_downscaling(contract_runners, fill):
    from loguru import logger

    logger.disable("sleap_nn")
    onnx_session, _, traced = contract_runners
    rng = np.random.default_rng(2)
    for height, width, max_height, max_width in EXTREME_DOWNSCALES:
        if fill == "white":
            frame = np.full((height, width, 1), 255, np.uint8)
        else:
            frame = rng.integers(0, 256, (height, width, 1), dtype=np.uint8)
        expected = sleap_nn_preprocess(frame, max_height, max_width, 1.0, 1)
        feeds = {"frames": frame[None], "training_size": np.array([max_height, max_width]),
                 "input_scale": np.array(1.0), "max_stride": np.array(1)}
        np.testing.assert_array_equal(onnx_session.run(None, feeds)[0], expected)
        np.testing.assert_array_equal(traced(*(torch.from_numpy(np.asarray(v)) for v in feeds.values()))[0].numpy(), expected)


def test_sigmoids_saturate_where_torchs_do_under_onnx_runtime():
    """sleap-nn's class maps end in a sigmoid; exact 1.0s tie in its identity assignment."""
    from sleap_export.exporting.graph.model_graphs import SaturatingSigmoid

    logits = np.concatenate(
        [np.linspace(-30, 30, 1_000_001, dtype=np.float32), np.linspace(15, 19, 1_000_003, dtype=np.float32)]
    ).reshape(1, 1, 1, -1)
    expected = torch.sigmoid(torch.from_numpy(logits)).numpy()
    saturated = {}
    for label, module in (("kernel", torch.nn.Sigmoid()), ("formula", SaturatingSigmoid())):
        buffer = io.BytesIO()
        torch.onnx.export(module, (torch.from_numpy(logits[..., :8]),), buffer, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {3: "n"}})
        session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
        actual = session.run(None, {"x": logits})[0]
        saturated[label] = int(((actual == 1.0) != (expected == 1.0)).sum())
        assert np.abs(actual - expected).max() <= 2.4e-7
    assert saturated["formula"] == 0
    assert saturated["kernel"] > 1000  # what the formula is there for


def _six_node_peak_counts(module, frames: np.ndarray) -> np.ndarray:
    valid = module(torch.from_numpy(frames))[2]
    return valid.numpy().sum(axis=-1)


def test_plateau_peaks_equal_torchs_under_onnx_runtime(artifact):
    """The six-node bottom-up model answers flat background with a constant; in torch
    those pixels tie exactly (no peak), ONNX Runtime spreads them over a few ulps."""
    from sleap_export.exporting.graph_builder import build_graph
    from sleap_export.runtime import load

    onnx_path = artifact(["minimal_instance6_bottomup"], ".onnx")  # exports: verification passes
    eager = build_graph([MODELS / "minimal_instance6_bottomup"]).module
    video = sio.load_video(str(DATA / "centered_pair_small.mp4"))
    uniform = np.full((2, 384, 384, 1), 30, np.uint8)
    uniform[1] = 0
    padded = np.zeros((3, 384, 384, 1), np.uint8)  # zero padding as size matching adds it
    for i, (h, w) in enumerate([(300, 384), (384, 250), (200, 200)]):
        padded[i, :h, :w] = video[100 * i][:h, :w]
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for frames in (uniform, padded):
        expected = _six_node_peak_counts(eager, frames)
        actual = session.run(None, {"frames": frames})[names.index("pred_peak_valid")].sum(axis=-1)
        np.testing.assert_array_equal(actual, expected)
    assert load(onnx_path).spec.model_type == "bottomup"


def test_raw_heads_verify_at_input_scale_075(tmp_path, assets):
    """onnxslim's shape inference once removed the input-scale resize of this graph."""
    import yaml

    from sleap_export import export

    run = tmp_path / "bottomup-scale-0.75"
    run.mkdir()
    (run / "best.ckpt").symlink_to(MODELS / "minimal_instance_bottomup" / "best.ckpt")
    config = yaml.safe_load((MODELS / "minimal_instance_bottomup" / "training_config.yaml").read_text())
    config["data_config"]["preprocessing"]["scale"] = 0.75
    (run / "training_config.yaml").write_text(yaml.safe_dump(config))
    export([run], tmp_path / "heads.onnx", raw_heads=True)
    export([run], tmp_path / "poses.onnx")
