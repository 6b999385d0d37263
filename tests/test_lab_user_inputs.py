"""A new lab user's inputs (issue 46): predictions on a .pkg.slp, a video damaged midway, predict --help."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import h5py
import numpy as np
import pytest
import sleap_io as sio

from conftest import DATA
from test_cli import assert_one_line_error, installed

PACKAGE = DATA / "minimal_instance.pkg.slp"


def test_predictions_on_a_pkg_slp_name_the_pkg_slp_as_sleap_nn_does(tmp_path, artifact):
    """docs/bad-inputs.md: "pkg-slp-input". sleap-nn 0.3.5 predict saves with sleap-io's
    restore_original_videos=False unless --restore_source_videos: the output's video is the .pkg.slp
    itself (its frames open), recording the source video it was packed from; with the option, that
    source video. Resuming matches the .pkg.slp input to either name."""
    model = artifact(["minimal_instance_centroid"], ".onnx")
    given = sio.load_slp(str(PACKAGE))
    source = given.videos[0].source_video.filename
    assert not (tmp_path / source).exists()  # the recorded source video is missing, as it usually is

    output = tmp_path / "out.slp"
    installed("predict", model, PACKAGE, "-o", output, "-q", check_rc=0)
    labels = sio.load_slp(str(output))
    assert [video.filename for video in labels.videos] == [str(PACKAGE)]
    assert labels.videos[0].source_video.filename == source
    with h5py.File(output) as saved:
        recorded = json.loads(saved["videos_json"][0])
    assert recorded["backend"]["dataset"] == "video0/video" and recorded["source_video"]["filename"] == source
    assert [lf.frame_idx for lf in labels.labeled_frames] == [lf.frame_idx for lf in given.labeled_frames]
    for predicted, labeled in zip(labels.labeled_frames, given.labeled_frames):
        assert np.array_equal(predicted.image, labeled.image)

    restored = tmp_path / "restored.slp"
    installed("predict", model, PACKAGE, "-o", restored, "-q", "--restore_source_videos", check_rc=0)
    assert [video.filename for video in sio.load_slp(str(restored)).videos] == [source]
    # The dashed spelling, and --resume of an output naming the source video: its frames are found done.
    installed("predict", model, PACKAGE, "-o", restored, "-q", "--restore-source-videos", "--resume", check_rc=0)
    assert len(sio.load_slp(str(restored)).labeled_frames) == len(given.labeled_frames)


def damaged_copy(tmp_path, share: float):
    """centered_pair_small.mp4 with its index moved to the front (as cameras and most encoders write it),
    cut to its first ``share`` of bytes: the frames past the cut cannot be decoded."""
    import imageio_ffmpeg

    whole = tmp_path / "whole.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(DATA / "centered_pair_small.mp4"),
         "-c", "copy", "-movflags", "+faststart", str(whole)],
        check=True,
    )
    damaged = tmp_path / "damaged.mp4"
    data = whole.read_bytes()
    damaged.write_bytes(data[: int(len(data) * share)])
    whole.unlink()
    return damaged


def first_unreadable_frame(path, last: int) -> int:
    video = sio.load_video(str(path))
    for i in range(last + 1):
        try:
            video[i]
        except IndexError:
            return i
    pytest.fail(f"frames 0-{last} of {path} all read")


def test_a_damaged_video_keeps_the_frames_before_it_and_names_the_command_that_finishes(tmp_path, artifact):
    """docs/bad-inputs.md: "damaged-video". One line naming the video and frame, exit 1; the frames
    predicted before it saved as an interrupted run saves them (no journal left); the --resume --frames
    command it names predicts the rest, that frame left out."""
    model = artifact(["minimal_instance_centroid"], ".onnx")
    video = damaged_copy(tmp_path, 0.03)
    bad = first_unreadable_frame(video, 40)
    output = tmp_path / "out.slp"

    result = installed("predict", model, video, "-o", output, "--frames", "0-40", "-q")
    assert_one_line_error(result, f"Frame {bad} of {video} could not be read", rc=1)
    line = result.stderr.strip()
    saved = sorted(lf.frame_idx for lf in sio.load_slp(str(output)).labeled_frames)
    assert saved and saved == list(range(len(saved))) and len(saved) <= bad
    assert f"{len(saved)} of 41 frames were predicted and are saved in {output}" in line
    assert not output.with_name("out.slp.journal").exists() and not output.with_name("out.slp.lock").exists()
    rest = f"0-{bad - 1},{bad + 1}-40" if bad else "1-40"
    command = line.split("to predict the rest without that frame: ", 1)[1]
    assert command.endswith(f"--resume --frames {rest}") and "sleap-export predict" in command

    installed(*shlex.split(command)[1:], check_rc=0)
    finished = sorted(lf.frame_idx for lf in sio.load_slp(str(output)).labeled_frames)
    assert finished == [i for i in range(41) if i != bad]


def test_predict_help_takes_a_top_down_pair_in_either_order():
    """The README shows the centroid run first; both orders work, and the help says so."""
    shown = installed("predict", "--help", check_rc=0).stdout
    text = re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", shown))
    assert "either order" in text and "centered-instance run first" not in text
    assert "--restore-source-videos" in text


def test_the_python_api_keeps_an_existing_output_as_the_cli_does(tmp_path, artifact):
    """Predictor.predict(..., output=EXISTING) once replaced the file without a word: now refused
    (the file untouched) unless overwrite=True or resume=True, with the CLI's message."""
    from sleap_export import Predictor
    from sleap_export.core.errors import InputError

    predictor = Predictor.from_model_paths([artifact(["minimal_instance_centroid"], ".onnx")])
    video = str(DATA / "centered_pair_small.mp4")
    kept = tmp_path / "keep.slp"
    kept.write_bytes(b"a lab's earlier predictions")
    with pytest.raises(InputError, match="keep.slp already exists; pass --overwrite to replace it"):
        predictor.predict(video, frames=[0, 1], output=kept, progress=None)
    assert kept.read_bytes() == b"a lab's earlier predictions"
    with pytest.raises(InputError, match="--resume keeps the frames in --output and --overwrite replaces them"):
        predictor.predict(video, frames=[0, 1], output=kept, progress=None, resume=True, overwrite=True)
    predictor.predict(video, frames=[0, 1], output=kept, progress=None, overwrite=True)
    resumed = predictor.predict(video, frames=[0, 1, 2], output=kept, progress=None, resume=True)
    assert sorted(lf.frame_idx for lf in resumed.labeled_frames) == [0, 1, 2]
    assert sorted(lf.frame_idx for lf in sio.load_slp(str(kept)).labeled_frames) == [0, 1, 2]


def test_sleap_export_predict_does_what_the_cli_does(tmp_path, artifact):
    """sleap_export.predict: the CLI's request from Python (issue 47): -o FOLDER with one file per video in
    the format asked, the same refusal of an existing output, and the same labels as the command."""
    import sleap_export
    from sleap_export.core.errors import InputError

    model = artifact(["minimal_instance_centroid"], ".onnx")
    video = DATA / "centered_pair_small.mp4"
    folder = tmp_path / "out"
    folder.mkdir()
    written = sleap_export.predict(model, [video], folder, frames="0-3", output_format="slp", progress=None)
    assert list(written) == [folder / "centered_pair_small.slp"]
    with pytest.raises(InputError, match="centered_pair_small.slp already exists; pass --overwrite to replace it"):
        sleap_export.predict(model, video, folder, frames="0-3", progress=None)
    by_cli = tmp_path / "cli.slp"
    installed("predict", model, video, "-o", by_cli, "--frames", "0-3", "-q", check_rc=0)
    ours, theirs = written[folder / "centered_pair_small.slp"], sio.load_slp(str(by_cli))
    assert [lf.frame_idx for lf in ours.labeled_frames] == [lf.frame_idx for lf in theirs.labeled_frames] == [0, 1, 2, 3]
    for mine, cli in zip(ours.labeled_frames, theirs.labeled_frames):
        np.testing.assert_array_equal(np.stack([i.numpy() for i in mine]), np.stack([i.numpy() for i in cli]))
