"""Local peaks follow sleap-nn 0.3.5's flat-top rule (its #781) in every runtime: a top of
equal pixels that fits in a 2x2 block is one peak at the mean of its pixels; and an animal
whose peak ONNX Runtime rounds into such a tie is found (issue 46: frame 7 of
centered_pair_small.mp4 lost a fly under the realistic bottom-up model)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnxruntime
import pytest
import torch
from sleap_nn.inference.ops.peaks import find_local_peaks, find_local_peaks_rough

from sleap_export.core.comparison import compare_poses, poses_by_frame
from sleap_export.exporting.graph.model_graphs import PEAK_TIE_TOLERANCE
from sleap_export.exporting.graph.peaks import integral_offsets, local_peaks
from conftest import DATA

THRESHOLD = 0.2
SWEEP_CASES = 300
MAX_SIDE = 20
PATCH = 5


class PeakContract(torch.nn.Module):
    """The graph's peak finder and refinement, every slot kept, as one traceable module."""

    def __init__(self, tie_tolerance: float = 0.0):
        super().__init__()
        self.tie_tolerance = tie_tolerance

    def forward(self, confmaps):
        points, values, valid = local_peaks(confmaps, THRESHOLD, MAX_SIDE * MAX_SIDE, self.tie_tolerance)
        anchors = torch.floor(points)
        return points, anchors + integral_offsets(confmaps, anchors, PATCH), values, valid


def onnx_session(module: torch.nn.Module) -> onnxruntime.InferenceSession:
    buffer = io.BytesIO()
    example = torch.zeros((1, 1, MAX_SIDE, MAX_SIDE))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=17, input_names=["confmaps"],
                          dynamic_axes={"confmaps": {0: "b", 1: "c", 2: "h", 3: "w"}})
    return onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])


def tied_maps(rng: np.random.Generator) -> np.ndarray:
    """(2, 3, h, w) float32 maps on a coarse grid of values, so that flat tops of every shape
    (pairs, Ls, 2x2 blocks, wider plateaus, tops beside an equal pixel) are frequent."""
    height, width = (int(side) for side in rng.integers(1, MAX_SIDE + 1, 2))
    levels = int(rng.integers(2, 40))
    return (rng.integers(0, levels, (2, 3, height, width)) / levels).astype(np.float32)


def sleap_nn_peaks(maps: np.ndarray) -> list[tuple]:
    """sleap-nn's ``(sample, channel, rough (x, y), value, refined (x, y))`` per peak, sorted."""
    cms = torch.from_numpy(maps)
    points, values, samples, channels = find_local_peaks_rough(cms, threshold=THRESHOLD)
    refined = find_local_peaks(cms, threshold=THRESHOLD, refinement="integral", integral_patch_size=PATCH)[0]
    return sorted(
        zip(samples.tolist(), channels.tolist(), map(tuple, points.tolist()), values.tolist(), map(tuple, refined.tolist()))
    )


def our_peaks(points, values, valid, refined=None) -> list[tuple]:
    refined = points if refined is None else refined
    return sorted(
        (int(s), int(c), tuple(points[s, c, k].tolist()), float(values[s, c, k]), tuple(refined[s, c, k].tolist()))
        for s, c, k in zip(*np.nonzero(valid))
    )


def assert_same_peaks(ours: list[tuple], theirs: list[tuple]) -> None:
    """Peaks, values and rough points bit for bit; refined points within 1e-5 grid units."""
    assert [peak[:4] for peak in ours] == [peak[:4] for peak in theirs]
    np.testing.assert_allclose([peak[4] for peak in ours], [peak[4] for peak in theirs], rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def runtimes():
    """(name, run) for the eager graph and ONNX Runtime, each returning the contract's numpy outputs."""
    eager = PeakContract()
    session = onnx_session(PeakContract())

    def run_eager(maps):
        with torch.inference_mode():
            return [t.numpy() for t in eager(torch.from_numpy(maps))]

    return [("eager", run_eager), ("onnxruntime", lambda maps: session.run(None, {"confmaps": maps}))]


def test_local_peaks_equal_sleap_nns_on_tied_maps_in_every_runtime(runtimes):
    """300 maps of random size and coarse values: the same peaks, values and rough points as
    sleap-nn's find_local_peaks_rough (bit for bit), integral-refined points within 1e-5 grid units."""
    rng = np.random.default_rng(46)
    flat_tops = peaks = 0
    for _ in range(SWEEP_CASES):
        maps = tied_maps(rng)
        expected = sleap_nn_peaks(maps)
        for _name, run in runtimes:
            points, refined, values, valid = run(maps)
            assert_same_peaks(our_peaks(points, values, valid, refined), expected)
        peaks += len(expected)
        flat_tops += sum(1 for _s, _c, (x, y), *_ in expected if x != int(x) or y != int(y))
    # The sweep meets every kind of top often enough to be a test of the rule.
    assert peaks > 15_000 and flat_tops > 2_000


def test_near_ties_count_as_ties_under_the_tolerance():
    """ONNX Runtime spreads values equal in torch over a few ulps: with the graph's tolerance,
    maps whose ties are spread by up to 4 ulps give sleap-nn's peaks on the unspread maps."""
    rng = np.random.default_rng(7)
    module = PeakContract(PEAK_TIE_TOLERANCE)
    spread_tops = 0
    for _ in range(100):
        maps = tied_maps(rng)
        ulps = rng.integers(-4, 5, maps.shape).astype(np.int32)
        spread = (maps.view(np.int32) + np.where(maps > 0, ulps, 0)).view(np.float32)
        expected = sleap_nn_peaks(maps)
        with torch.inference_mode():
            points, _refined, values, valid = (t.numpy() for t in module(torch.from_numpy(spread)))
        ours = our_peaks(points, values, valid)
        # Positions and membership from the rule; values from the spread map.
        assert [peak[:3] for peak in ours] == [peak[:3] for peak in expected]
        np.testing.assert_allclose([peak[3] for peak in ours], [peak[3] for peak in expected], rtol=1e-6)
        spread_tops += sum(1 for _s, _c, (x, y), *_ in expected if x != int(x) or y != int(y))
    assert spread_tops > 500


def test_realistic_bottomup_finds_both_flies_where_onnx_runtime_ties(artifact, reference, tmp_path):
    """Frame 7: ONNX Runtime's map holds two equal pixels at a fly's peak (0.90896) where torch's
    differ by an ulp. Once, no peak (one fly); by sleap-nn's rule, one at the top's mean.
    The node on the tie may sit on the other pixel of the top than in torch (2.96 px here):
    runtimes may round an exact tie either way; every other keypoint is within 0.05 px."""
    from sleap_export import Predictor

    frames = [6, 7, 8]
    model = artifact(["bottomup_unet_medium_rf"], ".onnx")
    video = DATA / "centered_pair_small.mp4"
    expected = reference("bottomup_unet_medium_rf-frames-6-8", ["bottomup_unet_medium_rf"],
                         lambda: str(video), frames=frames)
    labels = Predictor.from_model_paths([model]).predict(str(video), frames=frames, output=tmp_path / "p.slp")
    ours = poses_by_frame(labels)
    assert {k: len(v) for k, v in ours.items()} == {k: len(v) for k, v in expected.poses.items()} == {
        (0, f): 2 for f in frames
    }
    deviations = np.sort(compare_poses(ours, expected.poses).deviations)
    assert deviations[-1] < 4.0  # the node on the tie: one confidence-map pixel and its refinement
    assert deviations[-2] <= 0.05


def test_check_counts_the_peaks_a_tie_decides():
    """check's tie count: flat tops, and peaks that neighbours within 8 ulps decide; not clear peaks."""
    from sleap_export.evaluation.peak_ties import ties_in_map

    maps = torch.zeros((1, 3, 9, 9))
    maps[0, :, 2, 2] = 0.9  # a clear peak in every channel
    maps[0, 0, 6, 5:7] = 0.8  # a flat top of two pixels
    maps[0, 1, 6, 5] = 0.8  # a peak 2 ulps above its neighbour: a runtime may tie them
    maps[0, 1, 6, 6] = float(np.nextafter(np.nextafter(np.float32(0.8), np.float32(0)), np.float32(0)))
    maps[0, 2, 5:7, 5:8] = 0.7  # a plateau wider than 2x2: no peak, no tie
    found = ties_in_map(maps, THRESHOLD)
    assert (found.peaks, found.tied) == (5, 2)
