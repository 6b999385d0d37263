"""Top-down specifics: standalone centered instance, per-stage settings, gathered
crops, dynamic crop count, and the pairs of runs that make an artifact."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio
import torch
import torch.nn.functional as F

from sleap_export.exporting.graph_builder import build_graph
from sleap_export.exporting.options import ExportOptions
from sleap_export.core.comparison import compare_poses
from sleap_export.exporting.graph import model_graphs as models
from sleap_export.runtime.backends.torch_runner import TorchModuleRunner
from conftest import DATA, MODELS, cached
from parity import make_runner, our_poses
from test_cli import assert_one_line_error, cli

CENTROID = "minimal_instance_centroid"
CENTERED = "minimal_instance_centered_instance"
VIDEO = "centered_pair_small.mp4"


def test_standalone_centered_instance_on_sleap_nn_centroids(reference, artifact):
    """Fed sleap-nn's own centroids, the standalone artifact reproduces its top-down."""
    video = str(DATA / VIDEO)
    centroids = reference(f"centroid-{VIDEO}", [CENTROID], lambda: video).only(range(100))
    expected = reference(f"topdown-{VIDEO}", [CENTROID, CENTERED], lambda: video).only(range(100))
    runner = make_runner("onnx", [CENTERED], artifact)
    source = sio.load_video(video)
    ours = {}
    for start in range(0, 100, 10):
        indices = list(range(start, start + 10))
        found = [centroids.poses[(0, i)][:, 0] for i in indices]
        padded = np.full((10, max(len(c) for c in found), 2), np.nan, np.float32)
        for row, c in enumerate(found):
            padded[row, : len(c)] = c
        frames = np.stack([source[i] for i in indices])
        for outputs in runner.predict(frames, indices, centroids=padded):
            ours[(0, outputs.frame_idx)] = outputs.pred_keypoints[outputs.instance_valid]
    comparison = compare_poses(ours, expected.poses)
    assert comparison.count_agreement == 1.0 and comparison, comparison.summary()


@pytest.fixture(scope="session")
def half_scale_centered(session_cache) -> Path:
    """The centered-instance run declared at input scale 0.5 (same weights: the
    network is fully convolutional), so the two top-down stages' scales differ."""

    def produce(folder: Path) -> None:
        folder.mkdir()
        shutil.copy(MODELS / CENTERED / "best.ckpt", folder)
        config = (MODELS / CENTERED / "training_config.yaml").read_text()
        (folder / "training_config.yaml").write_text(config.replace("    scale: 1.0\n", "    scale: 0.5\n", 1))

    return cached(session_cache, "centered-half-scale", produce)


def test_stages_keep_their_own_input_scale(half_scale_centered, reference, frame_sequence):
    # Off its training scale the model's peaks are weak: both sides use a low
    # keypoint threshold so that every crop yields keypoints to compare.
    paths = frame_sequence(VIDEO, range(0, 40), 384, 384)
    runs = [CENTROID, str(half_scale_centered)]
    expected = reference(
        "topdown-half-scale-centered", runs, lambda: sio.load_video(paths), keypoint_threshold=0.01
    )
    options = ExportOptions.from_fields(instance_peak_threshold=0.01)
    built = build_graph([MODELS / CENTROID, half_scale_centered], options)
    assert [s.input_scale for s in built.spec.stages] == [1.0, 0.5]
    ours = our_poses(TorchModuleRunner(built.module, built.spec), sio.load_video(paths))
    comparison = compare_poses(ours, expected.poses)
    assert comparison.deviations.size >= 100 and comparison, comparison.summary()

    # The incumbent's mistake: one input scale (the first stage's) for both stages.
    shared = build_graph([MODELS / CENTROID, half_scale_centered], options)
    shared.module.instance.stage.prepare.input_scale = 1.0
    shared.module.instance.stage.input_scale = 1.0
    ours = our_poses(TorchModuleRunner(shared.module, shared.spec), sio.load_video(paths))
    assert not compare_poses(ours, expected.poses)


def bilinear_crops(images, centers, sample_index, crop_size):
    """sleap-nn's export's crops: bilinear samples on the float box (the mistake)."""
    top_left = (centers - crop_size / 2) + 0.5
    grid = torch.arange(crop_size, dtype=torch.float32)
    height, width = images.shape[2], images.shape[3]
    xs = (top_left[:, 0, None] + grid) / (width - 1) * 2 - 1
    ys = (top_left[:, 1, None] + grid) / (height - 1) * 2 - 1
    sample_grid = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), dim=-1)
    crops = F.grid_sample(images[sample_index].float(), sample_grid + 0.25 / crop_size, align_corners=True)
    return crops.round(), top_left


def test_bilinear_crops_fail_parity(reference, monkeypatch):
    video = str(DATA / VIDEO)
    expected = reference(f"topdown-{VIDEO}", [CENTROID, CENTERED], lambda: video).only(range(40))
    monkeypatch.setattr(models, "centered_crops", bilinear_crops)
    built = build_graph([MODELS / CENTROID, MODELS / CENTERED])
    ours = our_poses(TorchModuleRunner(built.module, built.spec), video, frames=list(range(40)))
    assert not compare_poses(ours, expected.poses)


def test_second_stage_runs_on_found_instances_only(assets):
    built = build_graph([MODELS / CENTROID, MODELS / CENTERED])
    crop_batches = []
    built.module.instance.stage.network.register_forward_hook(
        lambda module, args, output: crop_batches.append(args[0].shape[0])
    )
    video = sio.load_video(str(DATA / VIDEO))
    frames = torch.from_numpy(np.stack([video[i] for i in range(4)]))
    outputs = built.module(frames)
    assert crop_batches == [int(outputs[4].sum())] and crop_batches[0] < 4 * built.spec.postprocess.max_instances


@pytest.mark.parametrize(
    "runs",
    [
        [CENTROID, CENTROID],
        [CENTERED, CENTERED],
        ["minimal_instance_bottomup", CENTROID],
        [CENTROID, CENTERED, CENTERED],
    ],
)
def test_invalid_pairs_are_one_line_errors(runs, tmp_path, assets):
    result = cli("onnx", *(MODELS / r for r in runs), "-o", tmp_path / "x.onnx", check_rc=None)
    assert_one_line_error(result, "centroid + centered_instance")


def test_either_order_makes_the_same_artifact(assets):
    a = build_graph([MODELS / CENTERED, MODELS / CENTROID]).spec
    b = build_graph([MODELS / CENTROID, MODELS / CENTERED]).spec
    assert a == b and [s.head_type for s in a.stages] == ["centroid", "centered_instance"]
    assert a.skeleton.edges == ((0, 1),)
