"""sleap-nn's export folders, both ways (`--layout sleap-nn`; predict/check/inspect on a folder).

The real client is sleap-nn itself: `sleap-nn predict -m FOLDER --runtime onnx`
on our folder must give sleap-nn's checkpoint poses within our ONNX tolerances
(test_parity.py's cases), at the training size and at another frame size.
Everything runs through the installed commands.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from conftest import DATA, MODELS, Predictions, cached
from test_parity import CASES, compare

BIN = Path(sys.executable).parent
LAYOUT_CASES = ["single_instance", "centroid", "topdown", "multi_class_topdown", "bottomup", "multi_class_bottomup"]
FRAMES = 30
OTHER_SIZE_FRAMES = 12


def run(*args, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def sleap_export(*args, check: bool = True):
    return run(BIN / "sleap-export", *args, check=check)


def sleap_nn_predict(model_args, video, out: Path, frames: int, **settings) -> sio.Labels:
    flags = [x for k, v in settings.items() for x in (f"--{k}", v)]
    run(BIN / "sleap-nn", "predict", *model_args, "-i", video, "--frames", f"0-{frames - 1}", "-o", out, "--batch_size", 4, *flags)
    return sio.load_slp(str(out))


@pytest.fixture(scope="session")
def layout_folder(assets, session_cache):
    """``layout_folder(case name) -> Path``: our sleap-nn export folder of the case, written once by the CLI."""

    def make(name: str) -> Path:
        case = CASES[name]
        preset = dict(case.export_options)

        def produce(path: Path) -> None:
            flags = []
            if preset:
                preset_file = path.with_suffix(".yaml")
                preset_file.write_text(json.dumps(preset))
                flags = ["--preset", preset_file]
            sleap_export("onnx", *[MODELS / m for m in case.models], "-o", path, "--layout", "sleap-nn", *flags)

        return cached(session_cache, f"layout-{name}", produce)

    return make


@pytest.fixture(scope="session")
def other_size_video(assets, session_cache):
    """``other_size_video(case name) -> path``: the case video's first frames padded/cropped to its
    first other size, as an mp4 (both sides decode the same file)."""

    def make(name: str) -> str:
        case = CASES[name]
        height, width = case.other_sizes[0]

        def produce(path: Path) -> None:
            source = sio.load_video(str(DATA / case.video))
            frames = np.zeros((OTHER_SIZE_FRAMES, height, width, source.shape[-1]), np.uint8)
            for i in range(OTHER_SIZE_FRAMES):
                frame = source[i][:height, :width]
                frames[i, : frame.shape[0], : frame.shape[1]] = frame
            sio.save_video(frames, str(path), crf=0)

        return str(cached(session_cache, f"{Path(case.video).stem}-{height}x{width}-first{OTHER_SIZE_FRAMES}.mp4", produce))

    return make


@pytest.mark.parametrize("name", LAYOUT_CASES)
def test_sleap_nn_predicts_our_folder_as_its_checkpoint(name, layout_folder, reference, tmp_path):
    """sleap-nn's own reader on our folder gives its checkpoint's poses (training size, first frames)."""
    case = CASES[name]
    folder = layout_folder(name)
    metadata = json.loads((folder / "export_metadata.json").read_text())
    video = str(DATA / case.video)
    expected = reference(f"{name}-{case.video}", case.models, lambda: video, **case.reference_settings).only(range(FRAMES))
    got = sleap_nn_predict(["-m", folder, "--runtime", "onnx"], video, tmp_path / "ours.slp", FRAMES)
    ours = Predictions.of(got)
    if name.startswith("multi_class"):
        # sleap-nn's exported-model reader writes no tracks (its limitation, docs/sleap-nn-layout.md);
        # poses are compared, and our own reader of the folder keeps the tracks (below).
        assert not got.tracks
        expected = Predictions(expected.poses, {k: [None] * len(v) for k, v in expected.tracks.items()})
        ours = Predictions(ours.poses, {k: [None] * len(v) for k, v in ours.tracks.items()})
    assert len(ours.poses) == FRAMES
    compare(ours, expected, case, f"{name} sleap-nn layout via sleap-nn", "onnx")
    assert metadata["model_type"] == {"multi_class_topdown": "multi_class_topdown_combined"}.get(name, name)


@pytest.mark.parametrize("name", ["single_instance", "topdown", "bottomup"])
def test_sleap_nn_predicts_our_folder_at_another_size(name, layout_folder, other_size_video, reference, tmp_path):
    """Our folder is exact at a frame size it was not exported at (sleap-nn's own is frozen at one)."""
    case = CASES[name]
    video = other_size_video(name)
    expected = reference(f"{name}-{Path(video).name}", case.models, lambda: sio.load_video(video), **case.reference_settings)
    got = Predictions.of(sleap_nn_predict(["-m", layout_folder(name), "--runtime", "onnx"], video, tmp_path / "o.slp", OTHER_SIZE_FRAMES))
    assert len(got.poses) == OTHER_SIZE_FRAMES
    compare(got, expected, case, f"{name} sleap-nn layout via sleap-nn at {Path(video).name}", "onnx")


@pytest.mark.parametrize("name", ["multi_class_bottomup", "topdown"])
def test_our_predict_reads_our_folder_with_tracks(name, layout_folder, reference, tmp_path):
    """sleap-export predict on our folder: the checkpoint's poses and, for multi-class, its tracks."""
    case = CASES[name]
    video = str(DATA / case.video)
    expected = reference(f"{name}-{case.video}", case.models, lambda: video, **case.reference_settings).only(range(FRAMES))
    out = tmp_path / "ours.slp"
    sleap_export("predict", layout_folder(name), video, "--frames", f"0-{FRAMES - 1}", "-o", out)
    compare(Predictions.of(sio.load_slp(str(out))), expected, case, f"{name} sleap-export on our folder", "onnx")


@pytest.fixture(scope="session")
def their_bottomup_folder(assets, session_cache) -> Path:
    """sleap-nn's own export of the bottom-up run."""
    return cached(
        session_cache,
        "sleap-nn-export-bottomup",
        lambda path: run(BIN / "sleap-nn", "export", MODELS / "minimal_instance_bottomup", "-o", path, "--format", "onnx"),
    )


def test_our_predict_reads_their_folder_as_sleap_nn_does(their_bottomup_folder, tmp_path):
    """sleap-export predict on sleap-nn's own export gives what sleap-nn predict -m gives on it."""
    video = str(DATA / "centered_pair_small.mp4")
    theirs = sleap_nn_predict(["-m", their_bottomup_folder, "--runtime", "onnx"], video, tmp_path / "theirs.slp", 12)
    out = tmp_path / "ours.slp"
    sleap_export("predict", their_bottomup_folder, video, "--frames", "0-11", "-o", out)
    from sleap_export.core.comparison import compare_poses, poses_by_frame

    comparison = compare_poses(poses_by_frame(sio.load_slp(str(out))), poses_by_frame(theirs), tolerance_px=1e-4)
    assert comparison.frames == 12 and comparison, comparison.summary()


def test_check_says_how_far_their_export_is_from_its_checkpoint(their_bottomup_folder, layout_folder, tmp_path):
    """check on sleap-nn's own export: the same report, exit 1 (it skips refinement); on ours: exit 0."""
    video = DATA / "centered_pair_small.mp4"
    run_dir = MODELS / "minimal_instance_bottomup"
    report = tmp_path / "theirs.json"
    theirs = sleap_export("check", their_bottomup_folder, "-r", run_dir, "-d", video, "-n", 8, "--json", report, check=False)
    assert theirs.returncode == 1, theirs.stderr
    assert "check failed" in theirs.stderr
    measured = json.loads(report.read_text())
    assert measured, "the report is written either way"
    ours = sleap_export("check", layout_folder("bottomup"), "-r", run_dir, "-d", video, "-n", 8, check=False)
    assert ours.returncode == 0, ours.stderr


def test_inspect_describes_both_folders(their_bottomup_folder, layout_folder):
    theirs = sleap_export("inspect", their_bottomup_folder, "--json")
    spec = json.loads(theirs.stdout)
    assert spec["model_type"] == "bottomup" and spec["postprocess"]["refinement"] is None
    assert spec["versions"]["written by"] == "sleap-nn export"
    ours = json.loads(sleap_export("inspect", layout_folder("bottomup"), "--json").stdout)
    assert ours["postprocess"]["refinement"] == "integral" and ours["stages"][0]["checkpoint_sha256"]
    refused = sleap_export("inspect", their_bottomup_folder, "--verify", check=False)
    assert refused.returncode == 2 and "no payload hash" in refused.stderr


def copy_folder(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize(
    "break_it, exit_code, message",
    [
        # metadata naming a model type we do not know
        (lambda d: _edit_metadata(d, model_type="keypoint_transformer"), 2, "does not know"),
        # metadata and graph disagree (a bottom-up graph described as single instance)
        (lambda d: _edit_metadata(d, model_type="centroid"), 2, "lacks its outputs"),
        # a centered-instance export takes crops
        (lambda d: _edit_metadata(d, model_type="centered_instance"), 2, "takes crops"),
        # no graph
        (lambda d: (d / "model.onnx").unlink(), 2, "has no model.onnx"),
        # unreadable metadata
        (lambda d: (d / "export_metadata.json").write_text("{not json"), 2, "not readable JSON"),
    ],
    ids=["unknown-type", "graph-disagrees", "crops-only", "no-graph", "bad-json"],
)
def test_bad_folders_are_one_line_errors(break_it, exit_code, message, their_bottomup_folder, tmp_path):
    folder = copy_folder(their_bottomup_folder, tmp_path / "export")
    break_it(folder)
    out = tmp_path / "out.slp"
    done = sleap_export("predict", folder, DATA / "centered_pair_small.mp4", "--frames", "0-1", "-o", out, check=False)
    assert done.returncode == exit_code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [folder]


def _edit_metadata(folder: Path, **changes) -> None:
    path = folder / "export_metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_folder_that_is_neither_layout(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    done = sleap_export("predict", folder, DATA / "centered_pair_small.mp4", "-o", tmp_path / "o.slp", check=False)
    assert done.returncode == 2 and "is not a model" in done.stderr and "export folder" in done.stderr
    assert not (tmp_path / "o.slp").exists()


def test_layout_export_refusals(assets, layout_folder, tmp_path):
    run_dir = MODELS / "minimal_instance_bottomup"
    # an existing export is kept unless --overwrite
    existing = copy_folder(layout_folder("bottomup"), tmp_path / "existing")
    before = (existing / "model.onnx").read_bytes()
    done = sleap_export("onnx", run_dir, "-o", existing, "--layout", "sleap-nn", check=False)
    assert done.returncode == 2 and "--overwrite" in done.stderr
    assert (existing / "model.onnx").read_bytes() == before
    # a folder of other files is never written into
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    done = sleap_export("onnx", run_dir, "-o", other, "--layout", "sleap-nn", check=False)
    assert done.returncode == 2 and "other files" in done.stderr and [p.name for p in other.iterdir()] == ["keep.txt"]
    # the layout is ONNX's
    done = sleap_export("torchscript", run_dir, "-o", tmp_path / "x", "--layout", "sleap-nn", check=False)
    assert done.returncode == 2 and "applies to sleap-export onnx" in done.stderr
    # a centered-instance run alone cannot run on frames in this layout
    done = sleap_export("onnx", MODELS / "minimal_instance_centered_instance", "-o", tmp_path / "ci", "--layout", "sleap-nn", check=False)
    assert done.returncode == 2 and "centroid run" in done.stderr and not (tmp_path / "ci").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "other"]


def test_layout_overwrite_replaces_the_folder_whole(assets, layout_folder, tmp_path):
    target = copy_folder(layout_folder("centroid"), tmp_path / "export")
    (target / "stale.txt").write_text("from an older export")
    sleap_export("onnx", MODELS / "minimal_instance_bottomup", "-o", target, "--layout", "sleap-nn", "--overwrite")
    assert json.loads((target / "export_metadata.json").read_text())["model_type"] == "bottomup"
    assert sorted(p.name for p in target.iterdir()) == ["export_metadata.json", "model.onnx", "training_config.yaml"]
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_paf_edge_order_is_networkx_bfs():
    """The runtime's edge order (no networkx) equals sleap-nn's networkx BFS on random DAGs."""
    import random

    import networkx as nx

    from sleap_export.runtime.decoding.peak_grouping import paf_edge_order

    rng = random.Random(0)
    for _ in range(2000):
        n = rng.randint(2, 9)
        names = rng.sample(range(20), n)
        edges = []
        for _ in range(rng.randint(1, 12)):
            a, b = sorted(rng.sample(range(n), 2))
            if (names[a], names[b]) not in edges:
                edges.append((names[a], names[b]))
        graph = nx.DiGraph(edges)
        expected = tuple(edges.index(e) for e in nx.bfs_edges(graph, next(nx.topological_sort(graph))))
        assert paf_edge_order(edges) == expected, edges


def test_fp16_folder_records_its_precision_and_runs_in_sleap_nn(assets, reference, tmp_path):
    """fp16 networks in the layout say so in export_metadata.json (what Bonsai.Sleap asks for), pass
    the fp16 gate, and sleap-nn runs them within the fp16 tolerance."""
    from sleap_export.core.comparison import compare_poses
    from sleap_export.core.tolerances import tolerance_for

    video = str(DATA / "centered_pair_small.mp4")
    folder = tmp_path / "fp16"
    sleap_export(
        "onnx", MODELS / "minimal_instance_bottomup", "-o", folder, "--layout", "sleap-nn",
        "--precision", "fp16", "--calibration", video, "--calibration-frames", 8,
    )
    assert json.loads((folder / "export_metadata.json").read_text())["precision"] == "fp16"
    spec = json.loads(sleap_export("inspect", folder, "--json").stdout)
    assert spec["precision"] == "fp16" and spec["export"]["accuracy_gate"]["passed"]
    got = Predictions.of(sleap_nn_predict(["-m", folder, "--runtime", "onnx"], video, tmp_path / "o.slp", 8))
    expected = reference(f"bottomup-{Path(video).name}", CASES["bottomup"].models, lambda: video).only(range(8))
    tolerance = tolerance_for("fp16")
    comparison = compare_poses(got.poses, expected.poses, tolerance.max_deviation_px, tolerance.percentile, tolerance.min_agreement)
    assert comparison, comparison.summary()
