"""The parity tests must be able to fail: each known mistake is shown to be caught."""

from __future__ import annotations

import numpy as np
import pytest
import sleap_io as sio
import torch

from sleap_export.exporting.graph_builder import build_graph
from sleap_export.exporting.options import ExportOptions
from sleap_export.core.comparison import compare_poses
from sleap_export.core.errors import SleapExportError
from sleap_export.exporting.writers.torchscript_writer import write_torchscript
from sleap_export.exporting.graph import preprocess
from sleap_export.exporting.graph.resize import resize_uint8_antialias
from sleap_export.runtime.backends.torch_runner import TorchModuleRunner
from conftest import DATA, MODELS
from parity import make_runner, our_poses

CENTROID = ["minimal_instance_centroid"]


def test_dropping_refinement_fails_parity(reference, artifact):
    video = str(DATA / "centered_pair_small.mp4")
    frames = range(0, 60)
    expected = reference("centroid-centered_pair_small.mp4", CENTROID, lambda: video).only(frames).poses
    ours = our_poses(make_runner("onnx", CENTROID, artifact, refinement=None), video, frames=list(frames))
    comparison = compare_poses(ours, expected)
    assert not comparison
    assert comparison.deviation_at(99.9) > 0.1


def _bake_frame_size(monkeypatch):
    """Make preprocessing read the frame size as Python ints, which tracing freezes."""
    monkeypatch.setattr(
        preprocess, "_size", lambda images: (torch.tensor(int(images.shape[2])), torch.tensor(int(images.shape[3])))
    )


def test_exporter_refuses_a_graph_that_bakes_the_frame_size(monkeypatch, tmp_path):
    _bake_frame_size(monkeypatch)
    built = build_graph([MODELS / CENTROID[0]])
    with pytest.raises(SleapExportError, match="differs from the eager model|fails on frames of shape"):
        write_torchscript(built, tmp_path / "baked.pt", ExportOptions())


def test_baked_frame_size_fails_parity_at_another_size(monkeypatch, reference, frame_sequence):
    paths = frame_sequence("centered_pair_small.mp4", range(0, 16), 413, 397)
    expected = reference("centroid-413x397", CENTROID, lambda: sio.load_video(paths)).poses
    _bake_frame_size(monkeypatch)
    built = build_graph([MODELS / CENTROID[0]])
    example = torch.zeros((1, 384, 384, 1), dtype=torch.uint8)
    traced = torch.jit.trace(built.module, (example,), check_trace=False)
    monkeypatch.undo()
    try:
        ours = our_poses(TorchModuleRunner(traced, built.spec), sio.load_video(paths))
    except RuntimeError:
        return  # a baked size that crashes at another size is caught too
    assert not compare_poses(ours, expected)


@pytest.mark.parametrize("size", [(192, 192), (288, 300), (384, 384), (421, 395), (97, 131)])
def test_resize_matches_torch_uint8_kernel_exactly(size):
    video = sio.load_video(str(DATA / "centered_pair_small.mp4"))
    frames = torch.from_numpy(np.stack([video[i] for i in (0, 500)])).permute(0, 3, 1, 2).contiguous()
    expected = torch.nn.functional.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True)
    ours = resize_uint8_antialias(frames.float(), torch.tensor(size[0]), torch.tensor(size[1]))
    assert torch.equal(ours.to(torch.uint8), expected)


def test_preprocessing_compiles_with_dynamic_shapes():
    """Under torch.compile shapes arrive as torch.Size, not tensors (the `compile` runner)."""
    from sleap_export.exporting.graph.preprocess import SizeMatch

    size_match = SizeMatch(96, 128)
    compiled = torch.compile(size_match, dynamic=True)
    for height, width in ((96, 128), (120, 100)):
        images = torch.randint(0, 256, (1, 1, height, width)).float()
        expected, expected_scale = size_match(images)
        actual, actual_scale = compiled(images)
        assert torch.equal(actual, expected) and torch.equal(actual_scale, expected_scale)
