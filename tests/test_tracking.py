"""Tracking: on the same predicted labels, our tracker gives every instance the track sleap-nn's
`apply_tracking` (what `sleap-nn predict --tracking` runs) gives it, frame by frame, for every
setting we support; the same online, as a stage of `Predictor`; and the CLI's options and refusals.

The predicted labels come from our artifacts on frames 0-299 of the shared two-fly clip: top-down
(centroid + centered instance: 516 instances), bottom-up (158 instances, weakly trained) and the
six-node bottom-up (631 instances, many partial: OKS over six nodes with unseen ones), and the
box-driven top-down pair (CenterNet boxes + centered instance; its boxes stay linked to their poses).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio
from conftest import DATA, cached
from test_cli import assert_one_line_error, installed

from sleap_export.core.errors import InputError
from sleap_export.runtime.tracking import TrackingOptions
from sleap_export.runtime.tracking.labels_tracking import track_labels

VIDEO = DATA / "centered_pair_small.mp4"
FRAMES = "0-299"
PAIRS = {
    "topdown": ["minimal_instance_centroid", "minimal_instance_centered_instance"],
    "bottomup": ["minimal_instance_bottomup"],
    "bottomup6": ["minimal_instance6_bottomup"],
    "box_topdown": ["new_bbox_centernet", "new_centered_instance_bbox"],
}
# Every option we support, each at least once off its default (sleap-nn's names).
SETTINGS = {
    "defaults": {},
    "greedy": {"track_matching_method": "greedy"},
    "iou-bboxes": {"scoring_method": "iou", "features": "bboxes"},
    "euclidean-centroids": {"scoring_method": "euclidean_dist", "features": "centroids"},
    "max-window10": {"scoring_reduction": "max", "window_size": 10},
    "robust-quantile": {"scoring_reduction": "robust_quantile", "robust_best_instance": 0.5},
    "local-queues": {"candidates_method": "local_queues", "window_size": 3},
    "max-tracks": {"max_tracks": 2},
    "flow": {"use_flow": True},
    "flow-half-scale-greedy-max-tracks": {
        "use_flow": True,
        "of_img_scale": 0.5,
        "of_window_size": 15,
        "of_max_levels": 2,
        "track_matching_method": "greedy",
        "max_tracks": 2,
    },
    "clean-cull-connect": {"tracking_clean_instance_count": 2, "tracking_clean_iou_threshold": 0.3},
    "post-connect": {"tracking_target_instance_count": 2, "post_connect_single_breaks": True},
    "pre-cull": {"tracking_target_instance_count": 1, "tracking_pre_cull_to_target": 1, "tracking_pre_cull_iou_threshold": 0.5},
    "min-points-oks-stddev": {"min_new_track_points": 1, "min_match_points": 1, "oks_stddev": 0.05},
    "kalman": {"use_kalman": True, "tracking_target_instance_count": 2},
    "kalman-keypoints-nodes-max-tracks": {
        "use_kalman": True,
        "max_tracks": 2,
        "kf_track_features": "keypoints",
        "kf_init_frame_count": 5,
        "kf_node_indices": [0, 1],
        "kf_reset_gap_size": 2,
    },
}


@pytest.fixture(scope="session")
def predicted(artifact, session_cache):
    """``predicted(kind) -> Path``: our untracked predictions of FRAMES, once per session."""

    def make(kind: str) -> Path:
        from sleap_export import Predictor

        def produce(path: Path) -> None:
            model = artifact(PAIRS[kind], ".onnx")
            Predictor.from_model_paths([model], threads=1).predict(str(VIDEO), frames=FRAMES, output=path, progress=None)

        return cached(session_cache, f"tracking-{kind}.slp", produce)

    return make


def sleap_nn_tracked(path: Path, settings: dict, last_frame: int | None = None) -> sio.Labels:
    """sleap-nn's apply_tracking on the labels at ``path`` (frames up to ``last_frame``)."""
    from sleap_nn.inference.tracking import TrackerConfig, apply_tracking

    labels = _load(path, last_frame)
    return apply_tracking(labels, TrackerConfig(**settings))


def _load(path: Path, last_frame: int | None = None) -> sio.Labels:
    labels = sio.load_slp(str(path))
    if last_frame is not None:
        labels.labeled_frames = [lf for lf in labels.labeled_frames if lf.frame_idx <= last_frame]
    return labels


def assert_same_tracks(ours: sio.Labels, theirs: sio.Labels) -> int:
    """Frame by frame: the same instances (bit for bit), the same tracking scores (to float32, as a
    .slp keeps them), and one track of ours for each of theirs (names may differ). Returns the
    instances compared."""

    def by_frame(labels):
        return {
            lf.frame_idx: sorted(
                (
                    (inst.numpy().tobytes(), inst.track.name if inst.track else None, inst.tracking_score)
                    for inst in lf.predicted_instances
                ),
                key=lambda entry: entry[0],
            )
            for lf in labels.labeled_frames
        }

    mine, reference = by_frame(ours), by_frame(theirs)
    assert sorted(mine) == sorted(reference)
    ours_to_theirs, theirs_to_ours, compared = {}, {}, 0
    for frame, instances in reference.items():
        assert [i[0] for i in mine[frame]] == [i[0] for i in instances], f"frame {frame}: other instances kept"
        for (_, track, score), (_, their_track, their_score) in zip(mine[frame], instances):
            assert ours_to_theirs.setdefault(track, their_track) == their_track, (
                f"frame {frame}: track {track} is also {their_track}"
            )
            assert theirs_to_ours.setdefault(their_track, track) == track, f"frame {frame}: their {their_track} is two of ours"
            assert (score is None) == (their_score is None) and (score is None or np.float32(score) == np.float32(their_score))
            compared += 1
    return compared


def schedule_group(item):
    """The tests of one model share its predictions (one worker each)."""
    kind = getattr(item, "callspec", None) and item.callspec.params.get("kind")
    return (f"tracking-{kind}", 60.0) if kind else None


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("kind", PAIRS)
def test_same_tracks_as_sleap_nn(kind, setting, predicted):
    path = predicted(kind)
    theirs = sleap_nn_tracked(path, SETTINGS[setting])
    ours = track_labels(_load(path), TrackingOptions(**SETTINGS[setting]))
    compared = assert_same_tracks(ours, theirs)
    assert compared >= 100
    assert len({inst.track.name for lf in ours.labeled_frames for inst in lf.predicted_instances if inst.track}) == len(
        ours.tracks
    )


@pytest.mark.parametrize(
    "kind, setting",
    [
        ("topdown", {"use_flow": True}),
        ("bottomup", {"max_tracks": 2, "tracking_clean_instance_count": 2}),
        ("box_topdown", {"use_flow": True}),
        ("bottomup6", {"use_kalman": True, "tracking_target_instance_count": 2, "kf_track_features": "keypoints"}),
    ],
)
def test_predictor_tracks_online_as_sleap_nn_does(kind, setting, predicted, artifact, tmp_path):
    """Tracked as frames are predicted (flow on the decoded frames), written to the .slp: sleap-nn's tracks."""
    from sleap_export import Predictor

    output = tmp_path / "tracked.slp"
    predictor = Predictor.from_model_paths([artifact(PAIRS[kind], ".onnx")], threads=1, batch_size=8)
    predictor.predict(str(VIDEO), frames="0-99", output=output, progress=None, tracking=TrackingOptions(**setting))
    ours = sio.load_slp(str(output))
    assert ours.tracks and all(t.name.startswith("track_") for t in ours.tracks)
    assert assert_same_tracks(ours, sleap_nn_tracked(predicted(kind), setting, last_frame=99)) > 40


def test_predictor_refuses_identity_models_and_detectors(artifact, tmp_path):
    """docs/bad-inputs.md: "tracking-not-trackable"."""
    from sleap_export import Predictor

    multi_class = Predictor.from_model_paths([artifact(["minimal_instance_multiclass_bottomup"], ".onnx")], threads=1)
    with pytest.raises(InputError, match="already gives each instance its identity"):
        multi_class.predict(str(VIDEO), frames="0-3", tracking=TrackingOptions())
    detector = Predictor.from_model_paths([artifact(["new_bbox_centernet"], ".onnx")], threads=1)
    with pytest.raises(InputError, match="predicts boxes, not poses"):
        detector.predict(str(VIDEO), frames="0-3", tracking=TrackingOptions())


@pytest.mark.parametrize(
    "bad, value",
    [
        ({"scoring_method": "cosine"}, "--scoring_method 'cosine' is not one of"),
        ({"track_matching_method": "auction"}, "--track_matching_method 'auction'"),
        ({"window_size": 0}, "--tracking_window_size must be at least 1"),
        ({"robust_best_instance": 0.0}, "--robust_best_instance must be in (0, 1]"),
        ({"post_connect_single_breaks": True, "max_tracks": 2}, "add --tracking_target_instance_count 2"),
        ({"use_kalman": True}, "--use_kalman needs the number of animals"),
        ({"use_kalman": True, "use_flow": True, "max_tracks": 2}, "--use_kalman and --use_flow are two motion models"),
        ({"kf_track_features": "pose"}, "--kf_track_features 'pose' is not one of centroid, keypoints"),
        ({"tracker": "sort", "use_kalman": True}, "--use_kalman only applies to --tracker classic"),
    ],
)
def test_options_refuse_bad_values_in_one_line(bad, value):
    with pytest.raises(InputError) as raised:
        TrackingOptions(**bad)
    assert value in str(raised.value) and "\n" not in str(raised.value)


def test_cli_tracks_with_sleap_nn_option_names(predicted, artifact, tmp_path):
    output = tmp_path / "tracked.slp"
    done = installed(
        "predict",
        artifact(PAIRS["topdown"], ".onnx"),
        VIDEO,
        "-o",
        output,
        "--frames",
        "0-49",
        "--tracking",
        "--max_tracks",
        "2",
        "--tracking-window-size",
        "3",
        "--threads",
        "1",
        check_rc=0,
    )
    assert ", 2 tracks;" in done.stdout
    setting = {"max_tracks": 2, "window_size": 3}
    assert assert_same_tracks(sio.load_slp(str(output)), sleap_nn_tracked(predicted("topdown"), setting, last_frame=49)) > 50


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tracking", "--tracker", "deepsort"], "--tracker deepsort is not available here"),
        (["--tracking", "--scoring-method", "bogus"], "--scoring_method 'bogus' is not one of"),
        (["--use_flow"], "--use-flow is a tracking option; add --tracking"),
        (["--tracking", "--post-connect-single-breaks"], "needs --tracking_target_instance_count"),
        (["--tracking", "--use-kalman", "--max_tracks", "2", "--kf_node_indices", "0,x"], "--kf_node_indices '0,x' is not"),
    ],
)
def test_cli_refuses_bad_tracking_options_in_one_line(args, message, tmp_path):
    """docs/bad-inputs.md: "tracking-bad-option"."""
    done = installed("predict", "model.onnx", VIDEO, "-o", tmp_path / "p.slp", *args)
    assert_one_line_error(done, message)
