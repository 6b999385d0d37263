"""Tiled single-instance pose (issue 34): sleap-nn's `TiledLayer` in the graph.

The run is a small tiled single-instance model trained for these tests
(tests/fixtures/tiled_single_instance, made by scripts/train_tiled_fixture.py:
128 px tiles, 32 px overlap, input scale 0.5, so a 320 x 560 frame is six tiles).
Tolerances as for every pose type: equal instance counts on every frame and
keypoints within 0.01 px of sleap-nn's checkpoint inference (TorchScript: 1e-4 px),
at the training size, at another size, and over a sweep of frame sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from conftest import DATA, cached

RUN = Path(__file__).parent / "fixtures" / "tiled_single_instance"
VIDEO = DATA / "small_robot.mp4"
FRAMES = range(20)
TOLERANCE_PX = {".onnx": 0.01, ".pt": 1e-4}
SWEEP_CASES = 60


@pytest.fixture(scope="session")
def tiled_artifact(assets, session_cache):
    from sleap_export import export

    return lambda suffix: cached(session_cache, f"tiled-single-instance{suffix}", lambda path: export([RUN], path))


def sleap_nn_keypoints(source, frames=None) -> dict:
    from sleap_export.core.comparison import poses_by_frame
    from sleap_export.evaluation.sleap_nn_reference import REFERENCE_BATCH_SIZE, sleap_nn_predict

    return poses_by_frame(sleap_nn_predict(source, [RUN], frames=frames, batch_size=REFERENCE_BATCH_SIZE))


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_tiled_single_instance_matches_sleap_nn(suffix, tiled_artifact, frame_sequence):
    from sleap_export import Predictor
    from sleap_export.core.comparison import compare_poses, poses_by_frame

    model = tiled_artifact(suffix)
    other_size = frame_sequence(VIDEO.name, range(0, 60, 3), 400, 500)
    for source, frames in ((str(VIDEO), list(FRAMES)), (other_size, None)):
        theirs = sleap_nn_keypoints(source, frames)
        ours = poses_by_frame(Predictor.from_model_paths(model).predict(source, frames=frames, progress=None))
        comparison = compare_poses(ours, theirs, tolerance_px=TOLERANCE_PX[suffix], percentile=100)
        assert comparison and comparison.deviations.size >= 30, comparison.summary()


def test_tiled_single_instance_over_a_sweep_of_frame_sizes(tiled_artifact):
    """60 frame sizes, 48-1200 px a side (real frames stretched by nearest-neighbour sampling): the
    tile grid, the frames smaller than a tile and the blend, against sleap-nn's `TiledLayer`."""
    import torch
    from loguru import logger
    from sleap_nn.inference.predictor import Predictor

    import sleap_export

    logger.disable("sleap_nn")
    layer = Predictor.from_model_paths([str(RUN)], device="cpu").layer
    assert type(layer).__name__ == "TiledLayer"
    runner = sleap_export.load(tiled_artifact(".onnx"))
    video = sio.load_video(str(VIDEO))
    rng = np.random.default_rng(34)
    worst, compared = 0.0, 0
    for case in range(SWEEP_CASES):
        height, width = (int(round(np.exp(rng.uniform(np.log(48), np.log(1200))))) for _ in range(2))
        source = video[(case * 7) % len(video)]
        frame = np.ascontiguousarray(
            source[np.arange(height) * source.shape[0] // height][:, np.arange(width) * source.shape[1] // width]
        )
        ours = runner.predict(frame[None])[0].pred_keypoints[0]
        with torch.no_grad():
            theirs = layer.predict(torch.from_numpy(frame)[None]).pred_keypoints[0, 0].numpy()
        assert np.array_equal(np.isnan(ours), np.isnan(theirs)), (height, width, ours, theirs)
        found = ~np.isnan(theirs)
        compared += int(found.all(axis=-1).sum())
        worst = max(worst, float(np.abs(ours[found] - theirs[found]).max(initial=0.0)))
    assert compared >= SWEEP_CASES, f"the sweep must compare keypoints ({compared})"
    assert worst <= TOLERANCE_PX[".onnx"], worst
