"""Parity with sleap-nn's own checkpoint inference on the shared real models.

Tolerance: matched keypoints within 0.01 px at the 99.9th percentile, and the
same number of instances on every frame.
"""

from __future__ import annotations

import pytest
import sleap_io as sio

from sleap_export.compare import compare_poses
from conftest import DATA
from parity import RUNNER_KINDS, make_runner, our_poses

TOLERANCE_PX = 0.01

CASES = {
    "single_instance": (["minimal_instance_single_instance"], "small_robot.mp4"),
    "centroid": (["minimal_instance_centroid"], "centered_pair_small.mp4"),
}
# Frame sizes other than the training size and not multiples of the stride:
# larger (resized down to fit) and smaller (resized up) than training.
OTHER_SIZES = {
    "single_instance": [(337, 571), (301, 517)],
    "centroid": [(413, 397), (250, 301)],
}


def assert_parity(comparison):
    print(comparison.summary())
    assert comparison.count_agreement == 1.0, f"instance counts differ on {comparison.count_mismatches[:10]}"
    assert comparison, comparison.summary()


@pytest.mark.parametrize("kind", RUNNER_KINDS)
@pytest.mark.parametrize("model_type", sorted(CASES))
def test_whole_video_parity(model_type, kind, reference, artifact):
    models, video = CASES[model_type]
    expected = reference(f"{model_type}-{video}", models, lambda: str(DATA / video))
    ours = our_poses(make_runner(kind, models, artifact), str(DATA / video))
    assert_parity(compare_poses(ours, expected, tolerance_px=TOLERANCE_PX))


@pytest.mark.parametrize("kind", RUNNER_KINDS)
@pytest.mark.parametrize("model_type", sorted(CASES))
def test_other_frame_size_parity(model_type, kind, reference, artifact, frame_sequence):
    models, video = CASES[model_type]
    for height, width in OTHER_SIZES[model_type]:
        paths = frame_sequence(video, range(0, 40), height, width)
        expected = reference(
            f"{model_type}-{height}x{width}", models, lambda: sio.load_video(paths)
        )
        ours = our_poses(make_runner(kind, models, artifact), sio.load_video(paths))
        assert_parity(compare_poses(ours, expected, tolerance_px=TOLERANCE_PX))


@pytest.mark.parametrize("kind", RUNNER_KINDS)
def test_labels_file_parity(kind, reference, artifact):
    models = ["minimal_instance_centroid"]
    source = str(DATA / "minimal_instance.pkg.slp")
    expected = reference("centroid-pkg", models, lambda: sio.load_slp(source))
    ours = our_poses(make_runner(kind, models, artifact), source)
    assert_parity(compare_poses(ours, expected, tolerance_px=TOLERANCE_PX))
