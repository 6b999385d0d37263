"""Box detectors (``bbox_centernet``, ``bbox_ssd``): the same boxes as sleap-nn's checkpoint inference.

Tolerances (issue 34): equal box counts on every frame, corners within 0.01 px,
scores within 1e-5; TorchScript bit for bit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import attrs
import numpy as np
import pytest
import sleap_io as sio

from conftest import DATA, cached, model_dir
from parity import REFERENCE_BATCH_SIZE

CENTERNET = "new_bbox_centernet"
SSD = "new_bbox_ssd"
DETECTORS = [CENTERNET, SSD]
VIDEO = "centered_pair_small.mp4"
BIN = Path(sys.executable).parent
CORNER_PX = 0.01
SCORE = 1e-5


def boxes_by_frame(labels: sio.Labels) -> dict[int, np.ndarray]:
    """``frame -> (K, 5)`` x1, y1, x2, y2, score, in the order written."""
    return {
        lf.frame_idx: np.array([[b.x1, b.y1, b.x2, b.y2, b.score] for b in lf.bboxes], np.float64).reshape(-1, 5)
        for lf in labels.labeled_frames
    }


@pytest.fixture(scope="session")
def box_reference(assets, session_cache):
    """``box_reference(model, name, source, frames, **settings) -> {frame: (K, 5)}`` by sleap-nn, once per session."""

    def compute(model: str, name: str, source, frames=None, **settings) -> dict[int, np.ndarray]:
        from sleap_export.evaluation.sleap_nn_reference import sleap_nn_predict

        def produce(path: Path) -> None:
            labels = sleap_nn_predict(source(), [model_dir(model)], frames=frames, batch_size=REFERENCE_BATCH_SIZE, **settings)
            np.savez(path, **{str(k): v for k, v in boxes_by_frame(labels).items()})

        with np.load(cached(session_cache, f"boxes-{model}-{name}.npz", produce)) as data:
            return {int(k): data[k] for k in data.files}

    return compute


def compare_boxes(ours: dict, theirs: dict) -> tuple[float, float]:
    """Max corner and score differences over frames with equal counts; raises on any count mismatch."""
    assert sorted(ours) == sorted(theirs)
    counts = [f for f in theirs if len(ours[f]) != len(theirs[f])]
    assert not counts, f"box counts differ on frames {counts[:10]}"
    corners = max((np.abs(ours[f][:, :4] - theirs[f][:, :4]).max(initial=0) for f in theirs), default=0.0)
    scores = max((np.abs(ours[f][:, 4] - theirs[f][:, 4]).max(initial=0) for f in theirs), default=0.0)
    return float(corners), float(scores)


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
@pytest.mark.parametrize("detector", DETECTORS)
def test_boxes_match_sleap_nn(detector, suffix, artifact, box_reference, tmp_path):
    """Every 10th frame of the video, through `sleap-export predict`."""
    frames = list(range(0, 1100, 10))
    expected = box_reference(detector, f"{VIDEO}-every10", lambda: str(DATA / VIDEO), frames)
    model = artifact([detector], suffix)
    out = tmp_path / "boxes.slp"
    done = subprocess.run(
        [BIN / "sleap-export", "predict", model, DATA / VIDEO, "--frames", ",".join(map(str, frames)), "-o", out],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    labels = sio.load_slp(str(out))
    assert not labels.tracks and all(not lf.instances for lf in labels.labeled_frames)
    assert all(b.category is None for lf in labels.labeled_frames for b in lf.bboxes)  # the default "object" category
    corners, scores = compare_boxes(boxes_by_frame(labels), expected)
    if suffix == ".pt":
        assert corners == 0 and scores < 1e-7
    assert corners <= CORNER_PX and scores <= SCORE


@pytest.mark.parametrize("height, width", [(413, 397), (250, 301), (512, 448)])
@pytest.mark.parametrize("detector", DETECTORS)
def test_boxes_at_other_frame_sizes(detector, height, width, artifact, box_reference, frame_sequence):
    """Frames padded or cropped (size matching resizes them), through the ONNX runner."""
    import sleap_export

    paths = frame_sequence(VIDEO, range(0, 1100, 50), height, width)
    expected = box_reference(detector, f"{height}x{width}", lambda: sio.load_video(paths))
    runner = sleap_export.load(artifact([detector], ".onnx"))
    video = sio.load_video(paths)
    ours = {}
    for start in range(0, len(video), 4):
        batch = np.stack([video[i] for i in range(start, min(start + 4, len(video)))])
        for i, o in enumerate(runner.predict(batch, frame_indices=range(start, start + len(batch)))):
            ours[o.frame_idx] = np.column_stack([o.pred_bboxes, o.pred_bbox_scores]).reshape(-1, 5)
    corners, scores = compare_boxes(ours, expected)
    assert corners <= CORNER_PX and scores <= SCORE


def test_centernet_class_wise_nms(artifact, box_reference):
    """sleap-nn's --bbox_nms_iou, on the host over the graph's detections: the same boxes survive."""
    import sleap_export

    # This detector's boxes barely overlap (IoU <= ~0.01), so the threshold is that low.
    frames = list(range(0, 1100, 25))
    low_threshold = {"peak_threshold": 0.01}
    expected = box_reference(
        CENTERNET, f"{VIDEO}-nms0.005", lambda: str(DATA / VIDEO), frames, bbox_nms_iou=0.005, **low_threshold
    )
    without = box_reference(CENTERNET, f"{VIDEO}-no-nms", lambda: str(DATA / VIDEO), frames, **low_threshold)
    assert sum(map(len, without.values())) > sum(map(len, expected.values())), "NMS must remove boxes here"
    runner = sleap_export.load(artifact([CENTERNET], ".onnx", box_nms_iou=0.005, peak_threshold=0.01))
    video = sio.load_video(str(DATA / VIDEO))
    ours = {}
    for start in range(0, len(frames), 4):
        chunk = frames[start : start + 4]
        for o in runner.predict(np.stack([video[i] for i in chunk]), frame_indices=chunk):
            ours[o.frame_idx] = np.column_stack([o.pred_bboxes, o.pred_bbox_scores]).reshape(-1, 5)
    corners, scores = compare_boxes(ours, expected)
    assert corners <= CORNER_PX and scores <= SCORE


@pytest.mark.parametrize("detector", DETECTORS)
def test_openvino_gives_onnx_runtimes_boxes(detector, artifact):
    """The same artifact under OpenVINO: the same detections, corners within 0.01 px."""
    import sleap_export

    path = artifact([detector], ".onnx")
    video = sio.load_video(str(DATA / VIDEO))
    frames = list(range(0, 1100, 100))
    batch = np.stack([video[i] for i in frames])

    def boxes(runner) -> dict:
        return {
            o.frame_idx: np.column_stack([o.pred_bboxes, o.pred_bbox_scores]).reshape(-1, 5)
            for o in runner.predict(batch, frame_indices=frames)
        }

    corners, scores = compare_boxes(boxes(sleap_export.load(path, runtime="openvino")), boxes(sleap_export.load(path)))
    assert corners <= CORNER_PX and scores <= SCORE


def test_check_compares_box_corners_and_can_fail(artifact, tmp_path):
    """`sleap-export check` on a detector: box counts and corners against sleap-nn; exit 1 over tolerance."""
    model = artifact([CENTERNET], ".onnx")
    args = [BIN / "sleap-export", "check", model, "-r", model_dir(CENTERNET), "-d", DATA / VIDEO, "-n", "6"]
    passed = subprocess.run([*args, "--json", tmp_path / "report.json"], capture_output=True, text=True)
    assert passed.returncode == 0, passed.stderr
    assert "box corners" in passed.stdout and "box counts agree on 100.0%" in passed.stdout.replace("\n", " ")
    import json

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["matched_instances"] >= 6 and report["keypoint_deviation_px"]["max"] <= CORNER_PX
    failed = subprocess.run([*args, "--max-deviation", "0"], capture_output=True, text=True)
    assert failed.returncode == 1 and "box corner deviation" in failed.stderr


SWEEP_CASES = 150
SWEEP_THRESHOLD = 0.01


def sweep_sizes(count: int, seed: int) -> list[tuple[int, int]]:
    """Frame sides log-uniform in 24..1500: the detectors size-match to 384 x 384, so most cases resize."""
    rng = np.random.default_rng(seed)
    return [tuple(int(round(np.exp(rng.uniform(np.log(24), np.log(1500))))) for _ in range(2)) for _ in range(count)]


@pytest.mark.parametrize("detector", DETECTORS)
def test_boxes_over_a_sweep_of_frame_sizes(detector, artifact):
    """150 frame sizes (real frames stretched to each by nearest-neighbour sampling, so the animals
    stay in view): sleap-nn's own detector layer and the ONNX artifact find the same boxes on every
    one (counts equal, corners within 0.01 px, scores within 1e-5)."""
    import sleap_export
    import torch
    from loguru import logger
    from sleap_nn.inference.predictor import Predictor

    logger.disable("sleap_nn")
    # A low score threshold on both sides, so that stretched frames still give boxes to compare.
    layer = Predictor.from_model_paths([str(model_dir(detector))], device="cpu").layer
    layer.postprocess_config = attrs.evolve(layer.postprocess_config, peak_threshold=SWEEP_THRESHOLD)
    runner = sleap_export.load(artifact([detector], ".onnx", peak_threshold=SWEEP_THRESHOLD))
    video = sio.load_video(str(DATA / VIDEO))
    mismatches, corners, scores, boxes_seen = [], 0.0, 0.0, 0
    for case, (height, width) in enumerate(sweep_sizes(SWEEP_CASES, seed=DETECTORS.index(detector))):
        source = video[(case * 97) % len(video)]
        rows = np.arange(height) * source.shape[0] // height
        cols = np.arange(width) * source.shape[1] // width
        frame = np.ascontiguousarray(source[rows][:, cols])
        with torch.no_grad():
            out = layer.predict(torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None])
        found = np.isfinite(out.pred_bbox_scores[0].numpy())
        theirs = np.column_stack([out.pred_bboxes[0].numpy()[found], out.pred_bbox_scores[0].numpy()[found]])
        ours_outputs = runner.predict(frame[None])[0]
        ours = np.column_stack([ours_outputs.pred_bboxes, ours_outputs.pred_bbox_scores]).reshape(-1, 5)
        if len(ours) != len(theirs):
            mismatches.append((height, width, len(ours), len(theirs)))
            continue
        boxes_seen += len(ours)
        if len(ours):
            corners = max(corners, float(np.abs(ours[:, :4] - theirs[:, :4]).max()))
            scores = max(scores, float(np.abs(ours[:, 4] - theirs[:, 4]).max()))
    assert not mismatches, f"box counts differ at {len(mismatches)} of {SWEEP_CASES} sizes: {mismatches[:5]}"
    # The weakly trained CenterNet finds 72 boxes over its sweep at this threshold, the SSD hundreds.
    assert boxes_seen >= 60, f"the sweep must compare boxes, not empty frames ({boxes_seen})"
    assert corners <= CORNER_PX and scores <= SCORE, (corners, scores)


def test_int8_detector_is_gated_on_its_boxes(assets, tmp_path):
    """int8's accuracy gate holds a detector's boxes to fp32's: the shared SSD's boxes move (refused,
    nothing written); with --keep-inaccurate it is written and says it failed."""
    import json

    out = tmp_path / "ssd_int8.onnx"
    args = [
        BIN / "sleap-export", "onnx", model_dir(SSD), "-o", out, "--precision", "int8",
        "--calibration", DATA / VIDEO, "--calibration-frames", "16",
    ]
    refused = subprocess.run(args, capture_output=True, text=True)
    assert refused.returncode == 1 and "fails its accuracy gate" in refused.stderr and "counts agree on" in refused.stderr
    assert not out.exists()
    kept = subprocess.run([*args, "--keep-inaccurate"], capture_output=True, text=True)
    assert kept.returncode == 0, kept.stderr
    spec = json.loads(subprocess.run([BIN / "sleap-export", "inspect", out, "--json"], capture_output=True, text=True).stdout)
    gate = spec["export"]["accuracy_gate"]
    assert gate["passed"] is False and gate["count_agreement"] < 0.9


def test_detector_through_live_and_bench(artifact, tmp_path):
    """live writes each posed frame's boxes; bench times a detector as any model."""
    model = artifact([CENTERNET], ".onnx")
    out = tmp_path / "live.slp"
    live = subprocess.run(
        [BIN / "sleap-export", "live", model, "--source", DATA / VIDEO, "--duration", "2", "-o", out],
        capture_output=True, text=True,
    )
    assert live.returncode == 0, live.stderr
    frames = sio.load_slp(str(out)).labeled_frames
    assert frames and sum(len(lf.bboxes) for lf in frames) >= len(frames)
    bench = subprocess.run([BIN / "sleap-export", "bench", model, "-d", DATA / VIDEO, "-b", "2"], capture_output=True, text=True)
    assert bench.returncode == 0 and "end-to-end" in bench.stdout, bench.stderr


def test_box_nms_iou_flag_reaches_the_spec_and_is_refused_for_pose_models(assets, tmp_path):
    import json

    out = tmp_path / "cn.onnx"
    done = subprocess.run(
        [BIN / "sleap-export", "onnx", model_dir(CENTERNET), "-o", out, "--box-nms-iou", "0.3"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    spec = json.loads(subprocess.run([BIN / "sleap-export", "inspect", out, "--json"], capture_output=True, text=True).stdout)
    assert spec["postprocess"]["box_nms_iou"] == 0.3 and spec["class_names"] == ["object"]
    refused = subprocess.run(
        [BIN / "sleap-export", "onnx", model_dir("minimal_instance_bottomup"), "-o", tmp_path / "bu.onnx", "--box-nms-iou", "0.3"],
        capture_output=True, text=True,
    )
    assert refused.returncode == 2 and "applies to box detectors" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cn.onnx"]
