"""``--overlay``: each predicted frame drawn with its poses, streamed into a video
(`sleap_export.runtime.writing.overlay_video`), from predict, live and Python."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sleap_io as sio

from conftest import DATA
from test_cli import assert_one_line_error, installed
from test_live import clip  # noqa: F401  (the fixture: a short .mp4 played as a camera)
from sleap_export.runtime.decoding.outputs import Outputs
from sleap_export.runtime.writing.overlay_video import OverlayVideo

TOPDOWN = ["minimal_instance_centroid", "minimal_instance_centered_instance"]
MULTI_CLASS = ["minimal_instance_multiclass_bottomup"]
VIDEO = DATA / "centered_pair_small.mp4"


def colourfulness(frame: np.ndarray) -> np.ndarray:
    """Per pixel, how far from grey: 0 on the (grayscale) source video, large where drawn."""
    frame = frame.astype(np.int16)
    return frame.max(axis=-1) - frame.min(axis=-1)


def assert_poses_drawn(overlay: sio.Video, labels: sio.Labels) -> None:
    """Colour at every predicted keypoint of every frame, and none away from every instance."""
    assert overlay.shape[0] == len(labels.labeled_frames)
    for drawn, lf in zip(overlay, labels.labeled_frames):
        assert drawn.shape[-1] == 3  # grayscale frames drawn in colour
        colour = colourfulness(drawn)
        height, width = colour.shape
        far = np.ones(colour.shape, bool)
        assert lf.instances, f"frame {lf.frame_idx} has no instance to look for"
        for instance in lf.instances:
            points = instance.numpy()
            points = points[~np.isnan(points).any(axis=1)]
            for x, y in points.round().astype(int):
                near = colour[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3]
                assert near.max() > 60, f"nothing drawn at ({x}, {y}) in frame {lf.frame_idx}"
            (x0, y0), (x1, y1) = points.min(axis=0).astype(int) - 12, points.max(axis=0).astype(int) + 12
            far[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)] = False
        assert np.percentile(colour[far], 99.9) < 30, f"colour away from every instance in frame {lf.frame_idx}"


def test_predict_draws_each_predicted_frame_at_the_sources_size_and_rate(artifact, tmp_path):
    output, overlay = tmp_path / "poses.slp", tmp_path / "poses.mp4"
    result = installed("predict", artifact(TOPDOWN, ".onnx"), VIDEO, "--frames", "0-9", "-o", output, "--overlay", overlay,
                       check_rc=0)
    assert f"wrote {overlay}" in result.stdout
    source, drawn, labels = sio.load_video(str(VIDEO)), sio.load_video(str(overlay)), sio.load_slp(str(output))
    assert drawn.shape[0] == len(labels.labeled_frames) == 10
    assert drawn.shape[1:3] == source.shape[1:3] and drawn.fps == source.fps
    assert_poses_drawn(drawn, labels)
    # Away from the poses, the frame is the source's (up to H.264's loss).
    assert np.abs(drawn[0].astype(int).mean(axis=-1) - source[0][..., 0]).mean() < 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.mp4", "poses.slp"]  # no temporary left


def test_tracks_keep_their_colour_from_frame_to_frame(artifact, tmp_path):
    """A multi-class model's instances carry tracks: one colour per track, on every frame."""
    from sleap_export import Predictor

    overlay = tmp_path / "tracks.mkv"
    labels = Predictor.from_model_paths(artifact(MULTI_CLASS, ".onnx")).predict(str(VIDEO), frames="0-9", overlay=overlay,
                                                                                 progress=None)
    drawn = sio.load_video(str(overlay))
    assert_poses_drawn(drawn, labels)
    colours: dict[str, list] = {}
    for image, lf in zip(drawn, labels.labeled_frames):
        for instance in lf.instances:
            points = instance.numpy()
            points = points[~np.isnan(points).any(axis=1)].round().astype(int)
            colours.setdefault(instance.track.name, []).append(np.median([image[py, px] for px, py in points], axis=0))
    assert len(colours) == 2
    (first, a), (second, b) = colours.items()
    assert np.ptp(a, axis=0).max() < 60 and np.ptp(b, axis=0).max() < 60, "a track changed colour"
    assert np.abs(np.median(a, axis=0) - np.median(b, axis=0)).max() > 60, f"{first} and {second} share a colour"


def test_a_folder_gets_one_overlay_per_video(artifact, tmp_path):
    second = tmp_path / "second.mp4"
    second.write_bytes(VIDEO.read_bytes())
    folder = tmp_path / "overlays"
    folder.mkdir()
    installed("predict", artifact(TOPDOWN, ".onnx"), VIDEO, second, "--frames", "0-3", "-o", tmp_path / "all.slp",
              "--overlay", folder, "-q", check_rc=0)
    assert sorted(p.name for p in folder.iterdir()) == ["centered_pair_small.overlay.mp4", "second.overlay.mp4"]
    assert all(sio.load_video(str(p)).shape[0] == 4 for p in folder.iterdir())


@pytest.mark.parametrize(
    "overlay, extra, message",
    [
        ("{video}", ["--overwrite"], "is one of the inputs; write the overlay to another file"),
        ("poses.txt", [], "name a .mp4, .avi, .mkv, .mov file, or a folder"),
        ("existing.mp4", [], "existing.mp4 already exists; pass --overwrite to replace it"),
        ("one.mp4", ["{second}"], "is one video and the inputs hold 2; pass an existing folder"),
        ("one.mp4", ["--ray", "auto"], "--overlay draws the frames on this machine"),
    ],
)
def test_bad_overlays_are_refused_in_one_line_leaving_no_file(overlay, extra, message, artifact, tmp_path):
    model = artifact(TOPDOWN, ".onnx")
    names = {"video": tmp_path / "video.mp4", "second": tmp_path / "second.mp4"}
    for path in names.values():
        path.write_bytes(VIDEO.read_bytes())
    (tmp_path / "existing.mp4").write_bytes(b"an earlier overlay")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    result = installed("predict", model, names["video"], *[a.format(**names) for a in extra], "-o", tmp_path / "poses.slp",
                       "--overlay", overlay.format(**names) if "{" in overlay else tmp_path / overlay)
    assert_one_line_error(result, message)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_ctrl_c_keeps_the_frames_drawn_so_far_in_a_valid_video(artifact, tmp_path):
    from sleap_export import Predictor
    from sleap_export.runtime.drivers.predictor import PredictionInterrupted

    def interrupt(done, total):
        if done >= 6:
            raise KeyboardInterrupt

    output, overlay = tmp_path / "poses.slp", tmp_path / "poses.avi"
    predictor = Predictor.from_model_paths(artifact(TOPDOWN, ".onnx"), batch_size=2)
    with pytest.raises(PredictionInterrupted):
        predictor.predict(str(VIDEO), frames="0-99", output=output, overlay=overlay, progress=interrupt)
    assert sio.load_video(str(overlay)).shape[0] == len(sio.load_slp(str(output)).labeled_frames) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.avi", "poses.slp"]

    # Resumed, the overlay holds this run's frames, and says so.
    with pytest.warns(UserWarning, match="the overlay holds only the frames predicted in this run, not the 6 resumed"):
        predictor.predict(str(VIDEO), frames="0-19", output=output, overlay=tmp_path / "rest.mp4", resume=True, progress=None)
    assert sio.load_video(str(tmp_path / "rest.mp4")).shape[0] == 14


def test_live_draws_each_posed_frame_at_the_sources_rate(artifact, clip, tmp_path):  # noqa: F811
    source = clip("centered_pair_small.mp4")
    output, overlay = tmp_path / "live.slp", tmp_path / "live.mp4"
    result = installed("live", artifact(TOPDOWN, ".onnx"), "--source", source, "-o", output, "--overlay", overlay, check_rc=0)
    drawn, labels = sio.load_video(str(overlay)), sio.load_slp(str(output))
    assert f"wrote {overlay}: {len(labels.labeled_frames)} frames" in result.stdout
    assert drawn.fps == sio.load_video(str(source)).fps and drawn.shape[1:3] == (384, 384)
    assert_poses_drawn(drawn, labels)
    refused = installed("live", artifact(TOPDOWN, ".onnx"), "--source", source, "--overlay", overlay)
    assert_one_line_error(refused, "live.mp4 already exists; pass --overwrite")
    onto_source = installed("live", artifact(TOPDOWN, ".onnx"), "--source", source, "--overlay", source, "--overwrite")
    assert_one_line_error(onto_source, "is one of the inputs")


def test_odd_sizes_keep_their_size_and_an_unknown_rate_is_measured(tmp_path):
    outputs = Outputs(pred_keypoints=np.array([[[40.0, 50.0], [80.0, 60.0]]], np.float32), instance_valid=np.array([True]),
                      edges=((0, 1),), node_names=("head", "tail"))
    video = OverlayVideo(tmp_path / "odd.mp4")
    for i in range(5):
        video.add(np.zeros((101, 153), np.uint8), outputs, time_ns=i * 50_000_000)  # 20 frames a second
    assert video.close() == tmp_path / "odd.mp4"
    drawn = sio.load_video(str(tmp_path / "odd.mp4"))
    assert drawn.shape == (5, 101, 153, 3) and drawn.fps == pytest.approx(20.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert OverlayVideo(tmp_path / "empty.mp4", fps=30).close() is None  # no frame: no file
    assert not (tmp_path / "empty.mp4").exists()


def test_a_detectors_boxes_are_drawn_on_their_edges():
    from sleap_export.runtime.writing.overlay_video import draw_predictions

    outputs = Outputs(pred_bboxes=np.array([[20.0, 30.0, 80.0, 90.0]], np.float32),
                      pred_bbox_scores=np.array([0.9], np.float32), pred_bbox_classes=np.array([0]))
    colour = colourfulness(draw_predictions(np.zeros((120, 160), np.uint8), outputs))
    assert colour[30, 50] > 60 and colour[60, 20] > 60 and colour[90, 50] > 60 and colour[60, 80] > 60  # the four sides
    assert colour[60, 50] == 0 and colour[5, 150] == 0  # inside and outside
