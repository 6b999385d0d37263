"""MOT tracking (SORT, ByteTrack) and sleap-nn's pre-tracking filters: on the same predicted
labels as tests/test_tracking.py, our tracker gives every instance the track sleap-nn's
`apply_tracking` gives it (after sleap-nn's `FilterPipeline` for the filters); the options of the
other tracker family, and unknown trackers, are refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import sleap_io as sio
from test_cli import assert_one_line_error, installed
from test_tracking import PAIRS, VIDEO, _load, assert_same_tracks, predicted  # noqa: F401 (fixture)

from sleap_export.core.errors import InputError
from sleap_export.runtime.tracking import TrackingOptions
from sleap_export.runtime.tracking.labels_tracking import track_labels

KINDS = ["topdown", "bottomup6"]
MOT_SETTINGS = {
    "sort-defaults": {"tracker": "sort"},
    "sort-short-buffer": {"tracker": "sort", "track_buffer": 2, "min_hits": 1, "min_match_similarity": 0.5},
    "bytetrack-defaults": {"tracker": "bytetrack"},
    "bytetrack-oks-thresholds": {
        "tracker": "bytetrack", "scoring_method": "oks", "oks_stddev": 0.05,
        "track_high_threshold": 0.7, "new_track_threshold": 0.8, "track_buffer": 10,
    },
}
# sleap-nn's --filter_* options (FilterConfig names without the prefix), then a tracker.
FILTER_SETTINGS = {
    "overlap-iou-min-nodes": {"filter_overlapping": True, "filter_overlapping_threshold": 0.3, "filter_min_visible_nodes": 4},
    "overlap-oks-scores": {
        "filter_overlapping": True, "filter_overlapping_method": "oks", "filter_overlapping_threshold": 0.5,
        "filter_min_instance_score": 0.3, "filter_min_mean_node_score": 0.4, "filter_min_visible_node_fraction": 0.5,
    },
}


def sleap_nn_mot_tracked(path, settings: dict) -> sio.Labels:
    from sleap_nn.inference.tracking import TrackerConfig, apply_tracking

    explicit = {"scoring_method_explicit": True} if "scoring_method" in settings else {}
    return apply_tracking(_load(path), TrackerConfig(**settings, **explicit))


def sleap_nn_filtered(path, settings: dict) -> sio.Labels:
    """The labels at ``path`` through sleap-nn's FilterPipeline, frame by frame (instances it NaNs out removed)."""
    import torch
    from sleap_nn.inference.filters import FilterConfig, FilterPipeline
    from sleap_nn.inference.outputs import Outputs

    config = FilterConfig(**{name.removeprefix("filter_"): value for name, value in settings.items()})
    labels = _load(path)
    for lf in labels.labeled_frames:
        instances = lf.predicted_instances
        if not instances:
            continue
        values = np.stack([inst.numpy(scores=True) for inst in instances]).astype(np.float32)
        outputs = Outputs(
            pred_keypoints=torch.from_numpy(values[None, ..., :2].copy()),
            pred_peak_values=torch.from_numpy(values[None, ..., 2].copy()),
            instance_scores=torch.tensor([[inst.score for inst in instances]], dtype=torch.float32),
        )
        kept = ~torch.isnan(FilterPipeline(config)(outputs).pred_keypoints[0]).all(dim=-1).all(dim=-1)
        lf.instances = [inst for inst, keep in zip(instances, kept.tolist()) if keep]
    return labels


def instance_count(labels: sio.Labels) -> int:
    return sum(len(lf.predicted_instances) for lf in labels.labeled_frames)


@pytest.mark.parametrize("setting", MOT_SETTINGS)
@pytest.mark.parametrize("kind", KINDS)
def test_mot_tracks_as_sleap_nn_does(kind, setting, predicted):
    path = predicted(kind)
    theirs = sleap_nn_mot_tracked(path, MOT_SETTINGS[setting])
    ours = track_labels(_load(path), TrackingOptions(**MOT_SETTINGS[setting]))
    assert assert_same_tracks(ours, theirs) >= 100
    tracked = sum(inst.track is not None for lf in ours.labeled_frames for inst in lf.predicted_instances)
    assert tracked > 0 and len(ours.tracks) > 0


@pytest.mark.parametrize("tracker", [{}, {"tracker": "bytetrack"}])
@pytest.mark.parametrize("setting", FILTER_SETTINGS)
def test_filters_keep_what_sleap_nn_keeps(setting, tracker, predicted):
    path = predicted("bottomup6")
    filtered = sleap_nn_filtered(path, FILTER_SETTINGS[setting])
    assert 0 < instance_count(filtered) < instance_count(_load(path))
    from sleap_nn.inference.tracking import TrackerConfig, apply_tracking

    theirs = apply_tracking(filtered, TrackerConfig(**tracker))
    ours = track_labels(_load(path), TrackingOptions(**FILTER_SETTINGS[setting], **tracker))
    assert assert_same_tracks(ours, theirs) == instance_count(theirs)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"tracker": "deepsort"}, "--tracker deepsort is not available here"),
        ({"tracker": "kalman"}, "--tracker 'kalman' is not one of classic, sort, bytetrack"),
        ({"tracker": "sort", "window_size": 3}, "--tracking_window_size only applies to --tracker classic"),
        ({"tracker": "bytetrack", "use_flow": True, "tracking_clean_instance_count": 2}, "--use_flow, --tracking_clean_instance_count only apply"),
        ({"tracker": "sort", "max_tracks": 2}, "--max_tracks with --tracker sort runs sleap-nn's identity linking"),
        ({"tracker": "sort", "oks_stddev": 0.05}, "--oks_stddev only applies to OKS scoring"),
        ({"tracker": "bytetrack", "track_low_threshold": 0.6, "track_high_threshold": 0.5}, "is above --track_high_threshold"),
        ({"track_buffer": 5}, "--track_buffer only applies to the MOT trackers; add --tracker sort"),
        ({"tracker": "sort", "min_match_similarity": 1.5}, "--min_match_similarity must be in [0, 1]"),
    ],
)
def test_options_refuse_the_other_family_in_one_line(bad, message):
    with pytest.raises(InputError) as raised:
        TrackingOptions(**bad)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_cli_tracks_with_bytetrack_and_filters(predicted, artifact, tmp_path):
    output = tmp_path / "tracked.slp"
    done = installed(
        "predict", artifact(PAIRS["topdown"], ".onnx"), VIDEO, "-o", output, "--frames", "0-299", "--threads", "1",
        "--tracking", "--tracker", "bytetrack", "--track_buffer", "10", "--filter-overlapping", "--filter_min_instance_score", "0.2",
        check_rc=0,
    )
    assert " tracks;" in done.stdout
    settings = {"filter_overlapping": True, "filter_min_instance_score": 0.2}
    from sleap_nn.inference.tracking import TrackerConfig, apply_tracking

    theirs = apply_tracking(sleap_nn_filtered(predicted("topdown"), settings), TrackerConfig(tracker="bytetrack", track_buffer=10))
    assert assert_same_tracks(sio.load_slp(str(output)), theirs) > 400


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tracking", "--tracker", "botsort"], "--tracker botsort is not available here"),
        (["--tracking", "--tracker", "sort", "--use-flow"], "--use_flow only applies to --tracker classic"),
        (["--tracking", "--min-hits", "2"], "--min_hits only applies to the MOT trackers"),
        (["--tracking", "--filter-overlapping-method", "giou"], "--filter_overlapping_method 'giou' is not one of"),
    ],
)
def test_cli_refuses_the_other_family_in_one_line(args, message, tmp_path):
    """docs/bad-inputs.md: "tracking-mot-bad-option"."""
    done = installed("predict", "model.onnx", VIDEO, "-o", tmp_path / "p.slp", *args)
    assert_one_line_error(done, message)


@pytest.mark.parametrize("setting", ["sort-defaults", "bytetrack-oks-thresholds"])
def test_predictor_tracks_with_mot_as_sleap_nn_does(setting, predicted, artifact, tmp_path):
    """Through `Predictor` (point scores from the model's outputs, tracks assigned when the labels are built)."""
    from sleap_export import Predictor

    output = tmp_path / "tracked.slp"
    predictor = Predictor.from_model_paths([artifact(PAIRS["bottomup6"], ".onnx")], threads=1, batch_size=8)
    predictor.predict(str(VIDEO), frames="0-149", output=output, progress=None, tracking=TrackingOptions(**MOT_SETTINGS[setting]))
    from sleap_nn.inference.tracking import TrackerConfig, apply_tracking

    settings = MOT_SETTINGS[setting]
    explicit = {"scoring_method_explicit": True} if "scoring_method" in settings else {}
    theirs = apply_tracking(_load(predicted("bottomup6"), last_frame=149), TrackerConfig(**settings, **explicit))
    assert assert_same_tracks(sio.load_slp(str(output)), theirs) > 200
