"""Predictions in every output format (issue 37): each written by the installed command, read
back with sleap-io and compared with the .slp of the same run; resume decided per format; bad
choices refused in one line, leaving no file."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from sleap_export.runtime.writing.output_formats import OUTPUT_FORMATS
from conftest import DATA, PROJECT
from test_cli import assert_one_line_error, installed

TOPDOWN = ["minimal_instance_centroid", "minimal_instance_centered_instance"]
MULTICLASS = ["minimal_instance_multiclass_bottomup"]
VIDEO = DATA / "centered_pair_small.mp4"
FRAMES = "0-7"

# file name, its sleap-io reader, whether it keeps instance scores, the provenance (and so can be resumed)
WRITTEN = [
    ("out.analysis.h5", sio.load_analysis_h5, True, True),
    ("out.h5", sio.load_analysis_h5, True, True),
    ("out.nwb", sio.load_nwb, False, False),
    ("out.csv", sio.load_csv, True, False),
]


@pytest.fixture(scope="module")
def topdown(artifact) -> Path:
    return artifact(TOPDOWN, ".onnx")


@pytest.fixture(scope="module")
def baseline(topdown, tmp_path_factory) -> sio.Labels:
    """The .slp of the run every format is compared with."""
    output = tmp_path_factory.mktemp("baseline") / "out.slp"
    installed("predict", topdown, VIDEO, "--frames", FRAMES, "-o", output, "-q", check_rc=0)
    return sio.load_slp(str(output))


def posed(labels: sio.Labels) -> dict:
    """``frame -> instances`` of the frames with instances (the only frames the other formats keep)."""
    return {lf.frame_idx: list(lf.instances) for lf in labels.labeled_frames if lf.instances}


def assert_same_poses(got: sio.Labels, expected: sio.Labels, instance_scores: bool, tracks: bool = False) -> None:
    got, expected = posed(got), posed(expected)
    assert sorted(got) == sorted(expected)
    for frame, instances in expected.items():
        assert len(got[frame]) == len(instances), frame
        for a, b in zip(got[frame], instances):
            assert isinstance(a, sio.PredictedInstance), frame
            np.testing.assert_allclose(a.numpy(scores=True), b.numpy(scores=True), atol=1e-4, err_msg=f"frame {frame}")
            if instance_scores:
                assert a.score == pytest.approx(b.score, abs=1e-6), frame
            if tracks:
                assert a.track.name == b.track.name, frame


def only_outputs(folder: Path, *names: str) -> None:
    """No partial file, lock or journal left beside the outputs."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def test_the_table_the_docs_and_these_tests_agree():
    documented = (PROJECT / "docs" / "output-formats.md").read_text()
    assert [f.name for f in OUTPUT_FORMATS] == ["slp", "analysis.h5", "nwb", "csv"]
    tested = {Path(name).name.removeprefix("out") for name, *_ in WRITTEN}
    assert {s for f in OUTPUT_FORMATS[1:] for s in f.suffixes} == tested
    for output_format in OUTPUT_FORMATS:
        row = re.search(rf"^\| `{re.escape(output_format.name)}` \|.*$", documented, re.M)
        assert row, output_format.name
        assert all(f"`{s}`" in row.group(0) for s in output_format.suffixes), row.group(0)
        assert f"`{output_format.writer}`" in row.group(0), row.group(0)
        assert ("| yes |" in row.group(0)) == (output_format.not_resumable is None), row.group(0)


@pytest.mark.parametrize("name, read, instance_scores, provenance", WRITTEN, ids=[w[0] for w in WRITTEN])
def test_each_format_holds_the_same_poses_as_the_slp(name, read, instance_scores, provenance, topdown, baseline, tmp_path):
    output = tmp_path / name
    done = installed("predict", topdown, VIDEO, "--frames", FRAMES, "-o", output, check_rc=0)
    assert f"wrote {output}: 8 frames, 16 instances" in done.stdout
    got = read(str(output))
    assert_same_poses(got, baseline, instance_scores)
    assert [n.name for n in got.skeletons[0].nodes] == [n.name for n in baseline.skeletons[0].nodes]
    assert [Path(v.filename).name for v in got.videos] in ([VIDEO.name], ["video.mp4"])  # CSV names no video
    kept = {k: v for k, v in got.provenance.items() if k.startswith("sleap_export.")}
    assert kept == ({k: v for k, v in baseline.provenance.items() if k.startswith("sleap_export.")} if provenance else {})
    only_outputs(tmp_path, name)


@pytest.mark.parametrize("suffix", [".analysis.h5", ".csv"])
def test_class_tracks_are_kept(suffix, artifact, tmp_path):
    model = artifact(MULTICLASS, ".onnx")
    slp, other = tmp_path / "out.slp", tmp_path / f"out{suffix}"
    for output in (slp, other):
        installed("predict", model, VIDEO, "--frames", FRAMES, "-o", output, "-q", check_rc=0)
    expected = sio.load_slp(str(slp))
    assert {i.track.name for lf in expected.labeled_frames for i in lf.instances} == {"female", "male"}
    got = sio.load_analysis_h5(str(other)) if suffix == ".analysis.h5" else sio.load_csv(str(other))
    assert_same_poses(got, expected, instance_scores=True, tracks=True)


def test_a_folder_takes_the_format_for_each_video(topdown, baseline, tmp_path):
    folder = tmp_path / "per-video"
    folder.mkdir()
    robot = DATA / "small_robot.mp4"
    installed("predict", topdown, VIDEO, robot, "--frames", "0-3", "-o", folder, "--format", "csv", "-q", check_rc=0)
    only_outputs(folder, "centered_pair_small.csv", "small_robot.csv")
    first = sio.load_csv(str(folder / "centered_pair_small.csv"))
    expected = sio.Labels(labeled_frames=[lf for lf in baseline.labeled_frames if lf.frame_idx <= 3])
    assert_same_poses(first, expected, instance_scores=True)
    # Several videos in one file: formats that hold one video are refused, NWB keeps each.
    result = installed("predict", topdown, VIDEO, robot, "--frames", "0-3", "-o", tmp_path / "both.csv")
    assert_one_line_error(result, "A csv file holds one video and")  # "output-format-one-video"
    both = tmp_path / "both.nwb"
    installed("predict", topdown, VIDEO, robot, "--frames", "0-3", "-o", both, "-q", check_rc=0)
    assert sorted({Path(lf.video.filename).name for lf in sio.load_nwb(str(both)).labeled_frames}) == [
        "centered_pair_small.mp4", "small_robot.mp4"]
    only_outputs(tmp_path, "per-video", "both.nwb")


def test_analysis_h5_is_resumed(topdown, baseline, artifact, tmp_path):
    """Its metadata keeps the provenance: a finished file of frames 0-3 is resumed to 0-7."""
    output = tmp_path / "out.analysis.h5"
    installed("predict", topdown, VIDEO, "--frames", "0-3", "-o", output, "-q", check_rc=0)
    resumed = installed("predict", topdown, VIDEO, "--frames", FRAMES, "-o", output, "--resume", check_rc=0)
    assert "4 predicted at" in resumed.stdout, resumed.stdout
    assert_same_poses(sio.load_analysis_h5(str(output)), baseline, instance_scores=True)
    # Another model's file is refused as a .slp is.
    centroid = artifact(["minimal_instance_centroid"], ".onnx")
    result = installed("predict", centroid, VIDEO, "--frames", FRAMES, "-o", output, "--resume")
    assert_one_line_error(result, "holds topdown predictions and this artifact is centroid")  # "resume-other-model"
    only_outputs(tmp_path, "out.analysis.h5")


@pytest.mark.parametrize("name", ["out.nwb", "out.csv"])
def test_finished_nwb_and_csv_are_not_resumed(name, topdown, tmp_path):
    """They keep no model provenance, so a finished file cannot be checked: refused, untouched."""
    output = tmp_path / name
    installed("predict", topdown, VIDEO, "--frames", "0-3", "-o", output, "-q", check_rc=0)
    before = output.read_bytes()
    result = installed("predict", topdown, VIDEO, "--frames", FRAMES, "-o", output, "--resume")
    kind = "NWB" if name.endswith(".nwb") else "CSV"
    assert_one_line_error(  # "output-format-not-resumable"
        result, f"{name} cannot be resumed ({kind} keeps no model provenance); pass --overwrite, or predict to .slp and convert"
    )
    # Without --resume, the fix offered is --overwrite alone.
    result = installed("predict", topdown, VIDEO, "--frames", FRAMES, "-o", output)
    assert_one_line_error(result, f"{name} already exists; pass --overwrite to replace it.")
    assert output.read_bytes() == before
    only_outputs(tmp_path, name)


def test_the_journal_resumes_every_format(topdown, baseline, tmp_path):
    """A killed run leaves the journal, whatever the format: --resume finishes a CSV from it."""
    from sleap_export import Predictor

    output = tmp_path / "out.csv"
    predictor = Predictor.from_model_paths([topdown])
    outputs = predictor.predict(str(VIDEO), frames="0-3", as_labels=False, progress=None)
    journal = predictor.writer.journal(output, [sio.load_video(str(VIDEO))])
    journal.append(0, outputs)
    journal.close()  # as a killed run leaves it: frames 0-3 on disk, no output
    refused = installed("predict", topdown, VIDEO, "--frames", FRAMES, "-o", output)
    assert_one_line_error(refused, "pass --resume to finish it, or --overwrite")
    resumed = installed("predict", topdown, VIDEO, "--frames", FRAMES, "-o", output, "--resume", check_rc=0)
    assert "4 predicted at" in resumed.stdout, resumed.stdout
    assert_same_poses(sio.load_csv(str(output)), baseline, instance_scores=True)
    only_outputs(tmp_path, "out.csv")


def test_bad_format_choices_are_refused_before_the_model_loads(topdown, tmp_path):
    output = tmp_path / "out.csv"
    result = installed("predict", topdown, VIDEO, "--frames", FRAMES, "-o", output, "--format", "xlsx")
    assert_one_line_error(result, "--format xlsx is not an output format; pass one of slp, analysis.h5, nwb, csv.")  # "output-format-unknown"
    result = installed("predict", topdown, VIDEO, "--frames", FRAMES, "-o", output, "--format", "nwb")
    assert_one_line_error(result, "out.csv is a csv file name and --format says nwb; name it out.nwb, or leave out --format.")  # "output-format-mismatch"
    result = installed("predict", topdown, VIDEO, "-o", tmp_path / "out.txt")
    assert_one_line_error(result, "is not a .slp file or another predictions format")  # "predict-output-not-slp"
    labels = tmp_path / "labels.slp"
    shutil.copy(DATA / "minimal_instance.pkg.slp", labels)
    before = labels.read_bytes()
    result = installed("predict", topdown, labels, "-o", labels, "--format", "slp", "--overwrite")
    assert_one_line_error(result, "is one of the inputs")  # "predict-output-is-input"
    assert labels.read_bytes() == before
    folder = tmp_path / "folder"
    folder.mkdir()
    result = installed("predict", topdown, VIDEO, "-o", folder, "--format", "parquet")
    assert_one_line_error(result, "--format parquet is not an output format")  # "output-format-unknown"
    only_outputs(folder)
    only_outputs(tmp_path, "labels.slp", "folder")


def test_live_writes_the_chosen_format(artifact, tmp_path):
    model = artifact(["minimal_instance_single_instance"], ".onnx")
    h5, csv = tmp_path / "poses.analysis.h5", tmp_path / "poses.csv"
    for output in (h5, csv):
        installed("live", model, "--source", VIDEO, "--duration", "1", "--no-spin", "-o", output, "-q", check_rc=0)
    # The analysis HDF5 keeps the provenance, the per-frame times with it.
    labels = sio.load_analysis_h5(str(h5))
    posed = {lf.frame_idx for lf in labels.labeled_frames}
    assert posed and posed <= set(labels.provenance["sleap_export.live"]["frame_idx"])
    assert len(sio.load_csv(str(csv)).labeled_frames) > 0
    result = installed("live", model, "--source", VIDEO, "-o", tmp_path / "p.csv", "--format", "nwb")
    assert_one_line_error(result, "p.csv is a csv file name and --format says nwb")  # "output-format-mismatch"
    result = installed("live", model, "--source", VIDEO, "--format", "csv")
    assert_one_line_error(result, "--format is the format of -o")
    only_outputs(tmp_path, "poses.analysis.h5", "poses.csv")



def test_ray_writes_the_chosen_format(topdown, baseline, tmp_path):
    """--ray checks the choice before reaching Ray, and writes each video's file, or the one file,
    in the chosen format. The chunks come from a parts folder as a finished job leaves it (what
    --resume finds), so no Ray cluster starts: tests/test_ray.py runs real ones."""
    from sleap_export import Predictor
    from sleap_export.runtime.drivers.ray_cluster import MANIFEST, Chunk, RayCluster, RayPrediction
    from sleap_export.runtime.writing.packed_outputs import pack

    nowhere = "ray://127.0.0.1:1"  # refused before connecting, or this would fail to connect
    result = installed("predict", topdown, VIDEO, DATA / "small_robot.mp4", "-o", tmp_path / "both.csv", "--ray", nowhere)
    assert_one_line_error(result, "A csv file holds one video and")  # "output-format-one-video"
    result = installed("predict", topdown, VIDEO, "-o", tmp_path / "out.csv", "--format", "nwb", "--ray", nowhere)
    assert_one_line_error(result, "out.csv is a csv file name and --format says nwb")  # "output-format-mismatch"
    folder = tmp_path / "per-video"
    folder.mkdir()
    result = installed("predict", topdown, VIDEO, "-o", folder, "--format", "xlsx", "--ray", nowhere)
    assert_one_line_error(result, "--format xlsx is not an output format")  # "output-format-unknown"
    only_outputs(tmp_path, "per-video")
    only_outputs(folder)

    chunk = pack(Predictor.from_model_paths([topdown]).predict(str(VIDEO), frames=FRAMES, as_labels=False, progress=None))
    for output, name, written, read in [(folder, "csv", folder / "centered_pair_small.csv", sio.load_csv),
                                        (tmp_path / "all.nwb", None, tmp_path / "all.nwb", sio.load_nwb)]:
        job = RayPrediction(topdown, [VIDEO], output, RayCluster(nowhere), frames=FRAMES, resume=True, output_format=name)
        job.parts.mkdir()
        (job.parts / MANIFEST).write_text(json.dumps(job._manifest()))
        np.savez(job.parts / Chunk(0, tuple(range(8))).name, **chunk)
        report = job.run()
        assert not report.failed and report.videos[0].output == written
        assert_same_poses(read(str(written)), baseline, instance_scores=name == "csv")
    only_outputs(folder, "centered_pair_small.csv")
    only_outputs(tmp_path, "per-video", "all.nwb")


def test_nwb_of_no_instance_is_refused_and_leaves_nothing(tmp_path):
    from sleap_export.core.errors import SleapExportError
    from sleap_export.runtime.writing.labels_writer import save_labels_atomically

    empty = sio.Labels(labeled_frames=[sio.LabeledFrame(video=sio.Video(str(VIDEO)), frame_idx=0)])
    with pytest.raises(SleapExportError, match="an NWB file cannot hold none; write .slp instead"):
        save_labels_atomically(empty, tmp_path / "out.nwb")
    only_outputs(tmp_path)
