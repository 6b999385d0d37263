"""Bottom-up specifics: the incumbent's mistakes are caught, grouping matches
sleap-nn's algorithm on hand-made cases."""

from __future__ import annotations

import numpy as np

from sleap_export.exporting.graph_builder import build_graph
from sleap_export.core.comparison import compare_poses
from sleap_export.exporting.graph import model_graphs as models
from sleap_export.runtime.decoding.peak_grouping import assemble, group_peaks
from sleap_export.runtime.backends.torch_runner import TorchModuleRunner
from sleap_export.core.spec import PostprocessSpec
from conftest import DATA, MODELS
from parity import our_poses

VIDEO = "centered_pair_small.mp4"
MULTI_CLASS = "minimal_instance_multiclass_bottomup"


def test_dividing_by_the_input_scale_twice_fails_parity(reference, monkeypatch):
    """sleap-nn's export divides multi-class bottom-up keypoints by the input
    scale twice (2x off on this scale-0.5 model); parity must catch that."""
    video = str(DATA / VIDEO)
    expected = reference(f"multi_class_bottomup-{VIDEO}", [MULTI_CLASS], lambda: video).only(range(30))
    built = build_graph([MODELS / MULTI_CLASS])
    assert built.spec.stages[0].input_scale == 0.5
    forward = models.MultiClassBottomUpGraph.forward

    def twice(self, frames):
        keypoints, *rest = forward(self, frames)
        return (keypoints / self.stage.input_scale, *rest)

    monkeypatch.setattr(models.MultiClassBottomUpGraph, "forward", twice)
    ours = our_poses(TorchModuleRunner(built.module, built.spec), video, frames=list(range(30)))
    comparison = compare_poses(ours, expected.poses)
    assert not comparison and comparison.deviation_at(50) > 50


def test_grouping_merges_and_quirks_like_sleap_nn():
    # Edges 0: A->B, 1: B->C, 2: A->C, assembled in that order.
    edges = [(0, 1), (1, 2), (0, 2)]
    matched = [
        (0, np.array([0]), np.array([0]), np.array([0.9], np.float32)),  # A0-B0: new instance 0
        (1, np.array([1]), np.array([0]), np.array([0.8], np.float32)),  # B1-C0: new instance 1
        (2, np.array([0]), np.array([0]), np.array([0.7], np.float32)),  # A0-C0: both known -> merge check
    ]
    assignments = assemble(matched, edges, 3, 0)
    # C0 moves to instance 0; instance 1 (B1) has node B, instance 0 has B too: no merge.
    assert assignments == {(0, 0): 0, (1, 0): 0, (1, 1): 1, (2, 0): 0}
    # Unknown source with a known destination is left alone.
    quirk = assemble(
        [(0, np.array([0]), np.array([0]), np.ones(1)), (1, np.array([1]), np.array([0]), np.ones(1))],
        [(0, 1), (2, 1)],
        3,
        0,
    )
    assert (2, 1) not in quirk


def test_grouping_matches_each_edge_by_line_score():
    post = PostprocessSpec(edge_order=(0,))
    points = np.array([[[0, 0], [10, 0]], [[0, 5], [10, 5]]], np.float32)  # (N=2, K=2, 2)
    values = np.ones((2, 2), np.float32)
    valid = np.ones((2, 2), bool)
    scores = np.array([[[0.9, 0.1], [0.2, 0.8]]], np.float32)  # (E=1, K, K)
    keypoints, peak_values, instance_scores = group_peaks(points, values, valid, scores, [(0, 1)], post)
    assert keypoints.shape == (2, 2, 2)
    np.testing.assert_allclose(instance_scores, [0.9, 0.8])
    np.testing.assert_array_equal(keypoints[1], [[10, 0], [10, 5]])
    weak = np.array([[[0.2, 0.1], [0.1, 0.2]]], np.float32)  # below min_line_scores
    assert group_peaks(points, values, valid, weak, [(0, 1)], post)[0].shape[0] == 0


def differing_instances(ours: dict, reference: dict) -> tuple[int, int]:
    """Instances of ``reference`` with no identical (to 1e-3 px) instance in ``ours``, and the total."""
    differ = total = 0
    for key, expected in reference.items():
        found = list(ours.get(key, []))
        total += len(expected)
        for instance in expected:
            same = [
                i for i, other in enumerate(found)
                if np.array_equal(np.isnan(other), np.isnan(instance))
                and np.nanmax(np.abs(np.nan_to_num(other - instance)), initial=0) < 1e-3
            ]
            if same:
                found.pop(same[0])
            else:
                differ += 1
    return differ, total


def test_graph_grouping_against_exact_grouping(artifact, reference):
    from parity import make_runner, our_predictions

    video = str(DATA / VIDEO)
    frames = list(range(0, 1100, 4))
    exact = our_predictions(make_runner("onnx", ["minimal_instance_bottomup"], artifact), video, frames)
    graph = our_predictions(
        make_runner("onnx", ["minimal_instance_bottomup"], artifact, grouping="graph"), video, frames
    )
    differ, total = differing_instances(graph.poses, exact.poses)
    print(f"graph vs exact grouping: {differ} of {total} instances differ")
    # Measured 6 of 88 (every 4th frame) on this weakly
    # trained model: its line scores are near ties often enough that greedy and
    # optimal matching part. A broken in-graph grouping differs on most instances.
    assert total > 50 and differ / total <= 0.15
