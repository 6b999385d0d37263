"""Embedding (re-ID) models (issue 34): a centroid run (or a top-down pair) and an embedding run in one
artifact give each centroid (pose) the appearance vector sleap-nn's fused ``predict -m CENTROID
[-m CENTERED_INSTANCE] -m EMBEDDING --save_embeddings slp`` gives it, written as sleap-nn writes it
(``instance.identity_embedding``; centroids on a one-node "centroid" skeleton).

Tolerances: equal instance counts on every frame; centroids and keypoints within 1e-4 px (TorchScript: bit
for bit);
vectors within 1e-5 per element wherever our crop equals sleap-nn's Skia crop pixel for pixel (measured
<= 1.3e-6, ONNX Runtime and TorchScript). sleap-nn's crop rounds each bilinear
sample to a grey level, and Skia's own arithmetic puts about 2 in 100,000 samples on the other side of
a half (measured over 150 random crops: 26 of 1.38 M pixels, each one grey level; a crop of this clip
has one such pixel a third of the time); an instance whose
crop has such a pixel is held to 1e-4 per element (one grey level in 9,216 moves a unit vector's
elements by up to 7.3e-5, measured).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from conftest import DATA, cached, model_dir
from parity import REFERENCE_BATCH_SIZE

RUNS = ["minimal_instance_centroid", "new_embedding"]
# Each artifact kind's runs: the vector of each centroid, or of each top-down pose (its crop on the pose's mean).
KINDS = {"centroid": RUNS, "topdown": ["minimal_instance_centroid", "minimal_instance_centered_instance", "new_embedding"]}
VIDEO = DATA / "centered_pair_small.mp4"
FRAMES = list(range(0, 1100, 10))
BIN = Path(sys.executable).parent
PX = 1e-4
SAME_CROP = 1e-5
OTHER_CROP = 1e-4
CROP = 96  # the shared embedding run's crop_size


def poses_and_vectors(labels: sio.Labels) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{frame: ((n, nodes, 2) points, (n, D) vectors)}`` in the order written."""
    frames = {}
    nodes = len(labels.skeletons[0].nodes)
    for lf in labels.labeled_frames:
        points = np.array([inst.numpy() for inst in lf.instances], np.float32).reshape(-1, nodes, 2)
        vectors = [inst.identity_embedding for inst in lf.instances]
        assert all(v is not None for v in vectors), f"frame {lf.frame_idx}: an instance without its vector"
        frames[lf.frame_idx] = (points, np.array([v.vector for v in vectors], np.float32).reshape(len(points), -1))
    return frames


def crop_center(points: np.ndarray) -> np.ndarray:
    """Where sleap-nn centres a pose's crop (no anchor): the mean of its visible nodes, in float32."""
    seen = ~np.isnan(points)
    return (np.where(seen, points, 0).sum(axis=0, dtype=np.float32) / seen.sum(axis=0)).astype(np.float32)


@pytest.fixture(scope="session")
def embedding_reference(assets, session_cache):
    """``embedding_reference(kind)``: sleap-nn's fused detect -> embed of every 10th frame, once per session."""
    from sleap_export.evaluation.sleap_nn_reference import sleap_nn_predict

    def compute(kind: str) -> dict:
        def produce(path: Path) -> None:
            runs = [model_dir(m) for m in KINDS[kind]]
            labels = sleap_nn_predict(str(VIDEO), runs, frames=FRAMES, batch_size=REFERENCE_BATCH_SIZE)
            sio.save_slp(labels, str(path), save_embedding_vectors=True)

        return poses_and_vectors(sio.load_slp(str(cached(session_cache, f"{kind}-embedding.slp", produce))))

    return compute


def skia_crop(frame: np.ndarray, center: np.ndarray) -> np.ndarray:
    """sleap-nn's crop of a size-matched frame around ``center``: its centered box, its Skia crop."""
    import torch
    from sleap_nn.data.instance_cropping import make_centered_bboxes
    from sleap_nn.data.skia_augmentation import crop_and_resize_skia

    box = make_centered_bboxes(torch.tensor(center, dtype=torch.float32), CROP, CROP).unsqueeze(0)
    image = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None]
    return crop_and_resize_skia(image, box, (CROP, CROP))[0].numpy().astype(np.float32)


def our_crop(frame: np.ndarray, center: np.ndarray) -> np.ndarray:
    """The artifact graph's crop of the same frame around ``center`` (the module it traces)."""
    import torch

    from sleap_export.exporting.graph.box_crops import resampled_crops

    c = torch.tensor(center, dtype=torch.float32)
    windows = torch.cat([(c - CROP / 2) + 0.5, (c + CROP / 2) - 0.5])[None]
    image = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).to(torch.float32)[None]
    return resampled_crops(image, windows, torch.zeros(1, dtype=torch.int64), CROP)[0].numpy()


def compare(ours: dict, theirs: dict, frames: dict) -> dict:
    """Largest centroid and vector differences, split by whether the two crops agree pixel for pixel;
    raises on any count difference. ``frames``: frame index -> image (to cut both crops)."""
    assert sorted(ours) == sorted(theirs)
    worst = {"keypoint_px": 0.0, "same_crop": 0.0, "other_crop": 0.0, "instances": 0, "other_crops": 0}
    for frame_idx, (their_poses, their_vectors) in theirs.items():
        poses, vectors = ours[frame_idx]
        assert len(poses) == len(their_poses), f"frame {frame_idx}: {len(poses)} vs {len(their_poses)} instances"
        for mine, their_pose, vector, their_vector in zip(poses, their_poses, vectors, their_vectors):
            assert np.array_equal(np.isnan(mine), np.isnan(their_pose)), frame_idx
            worst["instances"] += 1
            worst["keypoint_px"] = max(worst["keypoint_px"], float(np.nanmax(np.abs(mine - their_pose))))
            frame = frames[frame_idx]
            same = np.array_equal(our_crop(frame, crop_center(mine)), skia_crop(frame, crop_center(their_pose)))
            key = "same_crop" if same else "other_crop"
            worst["other_crops"] += not same
            worst[key] = max(worst[key], float(np.abs(vector - their_vector).max()))
    return worst


@pytest.fixture(scope="session")
def clip_frames(assets) -> dict:
    video = sio.load_video(str(VIDEO))
    return {i: video[i] for i in FRAMES}


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
@pytest.mark.parametrize("kind", KINDS)
def test_embedding_matches_sleap_nn(kind, suffix, artifact, embedding_reference, clip_frames, tmp_path):
    """Every 10th frame of the clip through `sleap-export predict`: centroids (or poses) and their vectors."""
    out = tmp_path / "out.slp"
    done = subprocess.run(
        [BIN / "sleap-export", "predict", artifact(KINDS[kind], suffix), VIDEO, "--frames", ",".join(map(str, FRAMES)), "-o", out],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    labels = sio.load_slp(str(out))
    assert [n.name for n in labels.skeletons[0].nodes] == (["centroid"] if kind == "centroid" else ["A", "B"])
    worst = compare(poses_and_vectors(labels), embedding_reference(kind), clip_frames)
    assert worst["instances"] >= 150, worst  # the clip's two flies on most frames
    if suffix == ".pt":
        assert worst["keypoint_px"] == 0, worst
    assert worst["keypoint_px"] <= PX and worst["same_crop"] <= SAME_CROP and worst["other_crop"] <= OTHER_CROP, worst
    # Most crops agree pixel for pixel (measured: 83 of 251 have a tie somewhere); a shifted crop would differ in all.
    assert worst["other_crops"] <= 0.4 * worst["instances"], worst


SWEEP_CASES = 150


def test_embedding_crops_over_a_sweep_of_frame_sizes(artifact):
    """150 frame sizes (real frames stretched by nearest-neighbour sampling, most resized to the runs'
    384 x 384): the ONNX artifact's vectors equal sleap-nn's embedding layer on sleap-nn's own size
    matching and Skia crop around the same centroids."""
    import torch
    from loguru import logger
    from sleap_nn.data.resizing import apply_sizematcher
    from sleap_nn.inference.predictor import Predictor

    import sleap_export

    logger.disable("sleap_nn")
    layer = Predictor.from_model_paths([str(model_dir(RUNS[1]))], device="cpu").layer
    runner = sleap_export.load(artifact(RUNS, ".onnx", peak_threshold=0.05))
    video = sio.load_video(str(VIDEO))
    rng = np.random.default_rng(3)
    worst = {"same_crop": 0.0, "other_crop": 0.0, "instances": 0, "other_crops": 0}
    for case in range(SWEEP_CASES):
        height, width = (int(round(np.exp(rng.uniform(np.log(64), np.log(1500))))) for _ in range(2))
        source = video[(case * 97) % len(video)]
        frame = np.ascontiguousarray(source[np.arange(height) * source.shape[0] // height][:, np.arange(width) * source.shape[1] // width])
        outputs = runner.predict(frame[None])[0]
        valid = np.flatnonzero(outputs.instance_valid)
        sized, ratio = apply_sizematcher(torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None], 384, 384)
        sized = sized[0].numpy().transpose(1, 2, 0)
        for slot in valid:
            center = (outputs.pred_centroids[slot] * np.float32(ratio)).astype(np.float32)
            crop = skia_crop(sized, center)
            with torch.no_grad():
                expected = layer.predict(torch.from_numpy(crop)[None]).pred_embeddings[0, 0].numpy()
            same = np.array_equal(our_crop(sized, center), crop)
            key = "same_crop" if same else "other_crop"
            worst["instances"] += 1
            worst["other_crops"] += not same
            worst[key] = max(worst[key], float(np.abs(outputs.pred_embeddings[slot] - expected).max()))
    assert worst["instances"] >= 150, f"the sweep must compare vectors, not empty frames ({worst})"
    assert worst["same_crop"] <= SAME_CROP and worst["other_crop"] <= OTHER_CROP, worst
    # Resized frames hold more rounding ties (measured: 56 of 213 crops differ somewhere, by one grey level).
    assert worst["other_crops"] <= 0.35 * worst["instances"], worst


def test_embedding_exports_and_outputs_that_cannot_hold_it_are_refused(artifact, tmp_path):
    """One line, exit 2, no file: a format without vectors (docs/bad-inputs.md: "embedding-format"),
    sleap-nn's folder layout ("embedding-layout")."""
    model = artifact(RUNS, ".onnx")
    out = tmp_path / "out.csv"
    done = subprocess.run([BIN / "sleap-export", "predict", model, VIDEO, "--frames", "0-3", "-o", out], capture_output=True, text=True)
    assert done.returncode == 2 and "keep none; write out.slp instead" in done.stderr, done.stderr
    for args, message in [
        (["-o", tmp_path / "folder", "--layout", "sleap-nn"], "export centroid_embedding as a sleap-export artifact"),
    ]:
        done = subprocess.run([BIN / "sleap-export", "onnx", *map(model_dir, RUNS), *args], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_embedding_through_check_live_bench_inspect_openvino_and_resume(artifact, tmp_path):
    """The pair as any artifact: check against sleap-nn, live writes vectors, bench times it, inspect
    names it, OpenVINO gives ONNX Runtime's vectors, and --resume keeps the vectors already written."""
    import sleap_export

    model = artifact(RUNS, ".onnx")
    check = [BIN / "sleap-export", "check", model, *[a for m in RUNS for a in ("-r", model_dir(m))], "-d", VIDEO, "-n", "8"]
    done = subprocess.run([*check, "--json", tmp_path / "check.json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "check.json").read_text())
    assert report["matched_instances"] >= 14 and report["keypoint_deviation_px"]["max"] <= PX, report
    out = tmp_path / "live.slp"
    done = subprocess.run(
        [BIN / "sleap-export", "live", model, "--source", VIDEO, "--duration", "2", "-o", out], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    frames = sio.load_slp(str(out)).labeled_frames
    assert frames and all(inst.identity_embedding is not None for lf in frames for inst in lf.instances)
    done = subprocess.run([BIN / "sleap-export", "bench", model, "-d", VIDEO, "-b", "2"], capture_output=True, text=True)
    assert done.returncode == 0 and "end-to-end" in done.stdout, done.stderr
    spec = json.loads(subprocess.run([BIN / "sleap-export", "inspect", model, "--json"], capture_output=True, text=True).stdout)
    assert spec["model_type"] == "centroid_embedding" and spec["stages"][1]["head_type"] == "embedding"
    video = sio.load_video(str(VIDEO))
    batch = np.stack([video[i] for i in range(0, 1100, 100)])
    onnx = sleap_export.load(model).predict(batch)
    openvino = sleap_export.load(model, runtime="openvino").predict(batch)
    for a, b in zip(onnx, openvino):
        assert np.array_equal(a.instance_valid, b.instance_valid)
        assert np.abs(a.pred_embeddings[a.instance_valid] - b.pred_embeddings[b.instance_valid]).max() <= OTHER_CROP

    # Resume: the first run's vectors are read back from its file, the rest predicted.
    out = tmp_path / "resumed.slp"
    first = [BIN / "sleap-export", "predict", model, VIDEO, "-o", out]
    assert subprocess.run([*first, "--frames", "0-9"], capture_output=True, text=True).returncode == 0
    done = subprocess.run([*first, "--frames", "0-19", "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    whole = tmp_path / "whole.slp"
    assert subprocess.run([BIN / "sleap-export", "predict", model, VIDEO, "-o", whole, "--frames", "0-19"]).returncode == 0
    resumed, uninterrupted = (poses_and_vectors(sio.load_slp(str(p))) for p in (out, whole))
    assert sorted(resumed) == sorted(uninterrupted) == list(range(20))
    for frame_idx, (points, vectors) in uninterrupted.items():
        assert np.array_equal(resumed[frame_idx][0], points) and np.array_equal(resumed[frame_idx][1], vectors)


# A lone embedding run on an existing .slp (sleap-nn's `predict_embeddings_to_slp`): the top-down pair's poses
# of frames 0-49 (sleap-nn's), each given its vector; the instances themselves are kept as they were.
LONE = ["new_embedding"]
POSE_RUNS = ["minimal_instance_centroid", "minimal_instance_centered_instance"]


@pytest.fixture(scope="session")
def labels_to_embed(assets, session_cache) -> Path:
    """sleap-nn's top-down poses of frames 0-49 of the clip, as a .slp (once per session)."""
    from sleap_export.evaluation.sleap_nn_reference import sleap_nn_predict

    def produce(path: Path) -> None:
        labels = sleap_nn_predict(str(VIDEO), [model_dir(m) for m in POSE_RUNS], frames=range(50), batch_size=REFERENCE_BATCH_SIZE)
        sio.save_slp(labels, str(path))

    return cached(session_cache, "topdown-poses-0-49.slp", produce)


@pytest.fixture(scope="session")
def lone_embedding_reference(labels_to_embed, session_cache) -> Path:
    """sleap-nn's ``predict_embeddings_to_slp`` of those poses with the lone embedding run."""

    def produce(path: Path) -> None:
        from loguru import logger
        from sleap_nn.inference.embedding import predict_embeddings_to_slp

        logger.disable("sleap_nn")
        predict_embeddings_to_slp(
            [str(model_dir(LONE[0]))], data_path=str(labels_to_embed), output_path=str(path), device="cpu",
            save_embeddings="slp", include_untracked=True,
        )

    return cached(session_cache, "topdown-poses-0-49.embeddings.slp", produce)


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_lone_embedding_embeds_a_slp_as_sleap_nn(suffix, artifact, labels_to_embed, lone_embedding_reference, tmp_path):
    """`sleap-export predict EMBEDDING LABELS.slp`: the input's instances kept (points, scores, tracks, skeleton),
    each with sleap-nn's vector (measured over 100 instances: <= 3.9e-7 where the crops agree pixel for pixel,
    ONNX Runtime and TorchScript; <= 4.9e-5 on the 39 crops with a Skia rounding tie)."""
    out = tmp_path / "out.slp"
    done = subprocess.run(
        [BIN / "sleap-export", "predict", artifact(LONE, suffix), labels_to_embed, "-o", out], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    ours, theirs, given = (sio.load_slp(str(p)) for p in (out, lone_embedding_reference, labels_to_embed))
    assert [n.name for n in ours.skeletons[0].nodes] == [n.name for n in given.skeletons[0].nodes] == ["A", "B"]
    video = sio.load_video(str(VIDEO))
    worst = {"same_crop": 0.0, "other_crop": 0.0, "instances": 0, "other_crops": 0}
    assert [lf.frame_idx for lf in ours] == [lf.frame_idx for lf in theirs] == [lf.frame_idx for lf in given]
    for mine, their, original in zip(ours.labeled_frames, theirs.labeled_frames, given.labeled_frames):
        assert len(mine.instances) == len(their.instances) == len(original.instances), mine.frame_idx
        frame = video[mine.frame_idx]
        for a, b, c in zip(mine.instances, their.instances, original.instances):
            assert type(a) is type(c) and a.score == c.score
            assert np.array_equal(a.numpy(scores=True), c.numpy(scores=True), equal_nan=True)
            assert (a.track and a.track.name) == (c.track and c.track.name)
            assert a.identity_embedding is not None and b.identity_embedding is not None
            center = crop_center(c.numpy().astype(np.float32))
            same = np.array_equal(our_crop(frame, center), skia_crop(frame, center))
            key = "same_crop" if same else "other_crop"
            worst["instances"] += 1
            worst["other_crops"] += not same
            worst[key] = max(worst[key], float(np.abs(a.identity_embedding.vector - b.identity_embedding.vector).max()))
    assert worst["instances"] == 100, worst  # the clip's two flies on each of the 50 frames
    assert worst["same_crop"] <= SAME_CROP and worst["other_crop"] <= OTHER_CROP, worst
    # Measured: 39 of 100 crops hold a Skia rounding tie somewhere (one grey level); a shifted crop would differ in all.
    assert worst["other_crops"] <= 0.45 * worst["instances"], worst


def test_lone_embedding_refuses_videos_and_outputs_without_vectors(artifact, labels_to_embed, tmp_path):
    """One line, exit 2, no file: a video input (the lone run embeds existing detections;
    docs/bad-inputs.md: "lone-embedding-video"), a .csv output ("embedding-format")."""
    model = artifact(LONE, ".onnx")
    for source, out, message in [
        (VIDEO, tmp_path / "out.slp", "centered_pair_small.mp4 is not a .slp: a lone embedding model embeds the instances"),
        (labels_to_embed, tmp_path / "out.csv", "An embedding model gives each instance an appearance vector and csv files keep none"),
    ]:
        done = subprocess.run([BIN / "sleap-export", "predict", model, source, "-o", out], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(tmp_path.iterdir()) == []


# Mask carriers: the lone run on sleap-nn's own masks (the segmentation tests' references): bottom-up masks on
# the heads' stride-2 grid (frames 0-49 at the run's 384 x 384, and 20 frames padded to 300 x 452, which the
# embedding run's size matching resizes), top-down crop masks at offsets. The shared run was trained on poses
# (detection_mode: pose), so on labels holding only masks it embeds the masks, as sleap-nn does.
MASK_INPUTS = {
    "bottomup": (["new_bottomup_segmentation"], None),
    "topdown": (["minimal_instance_centroid", "new_centered_instance_segmentation"], None),
    "bottomup-resized": (["new_bottomup_segmentation"], (300, 452)),
}
MASKS_EMBEDDED = {"bottomup": 383, "topdown": 100, "bottomup-resized": 142}
TIE_PIXEL = 1e-4  # per element, per crop pixel on the other side of a Skia rounding tie (measured <= 7.3e-5 each)


@pytest.fixture(scope="session")
def masks_to_embed(mask_reference, frame_sequence, session_cache):
    """``masks_to_embed(kind) -> (masks .slp, sleap-nn's embedding of it)``, once per session."""
    from conftest import Setting

    def compute(kind: str) -> tuple[Path, Path]:
        runs, other_size = MASK_INPUTS[kind]
        if other_size is None:
            clip, source, frames = "training-size", str(VIDEO), list(range(50))
        else:
            clip, source, frames = "other-size", frame_sequence(VIDEO.name, range(0, 100, 5), *other_size), None
        mask_reference(runs, Setting("default"), clip, source, frames)
        given = session_cache / f"masks-{'+'.join(runs)}-default-{clip}.slp"

        def produce(path: Path) -> None:
            from loguru import logger
            from sleap_nn.inference.embedding import predict_embeddings_to_slp

            logger.disable("sleap_nn")
            predict_embeddings_to_slp(
                [str(model_dir(LONE[0]))], data_path=str(given), output_path=str(path), device="cpu",
                save_embeddings="slp", include_untracked=True,
            )

        return given, cached(session_cache, f"{given.stem}.embeddings.slp", produce)

    return compute


def size_matched(frame: np.ndarray) -> np.ndarray:
    """The frame as the embedding run's size matching gives it to the crop (sleap-nn's `apply_sizematcher`)."""
    import torch
    from sleap_nn.data.resizing import apply_sizematcher

    image = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None]
    return apply_sizematcher(image, 384, 384)[0][0].numpy().transpose(1, 2, 0)


@pytest.mark.parametrize("kind", MASK_INPUTS)
def test_lone_embedding_embeds_masks_as_sleap_nn(kind, artifact, masks_to_embed):
    """Each mask's crop centred where sleap-nn centres it (its centre of mass; the bounding-box midpoint
    checked too; on resized frames, of the resized mask) to the last bit, and its vector within 1e-5 per
    element of sleap-nn's where the two crops agree pixel for pixel (measured <= 9.5e-7 over 625 masks), else
    within 1e-4 per crop pixel one grey level off (Skia's rounding ties; measured: 1-8 such pixels on a third
    to a half of the crops, vectors <= 1.7e-4 at 4 pixels)."""
    from sleap_nn.data.instance_cropping import clip_rects, mask_foreground_rects, mask_rects_center

    from sleap_export import Predictor
    from sleap_export.runtime.drivers.embedding_carriers import (
        CarrierWarning,
        frame_centre_of,
        mask_crop_centre,
        size_scale,
    )
    from sleap_export.runtime.drivers.resized_mask_centre import resized_mask_centre

    given, reference = masks_to_embed(kind)
    with pytest.warns(CarrierWarning, match="trained on poses and these labels hold none; embedding their"):
        ours = Predictor.from_model_paths(artifact(LONE, ".onnx")).predict(str(given), progress=None)
    theirs = sio.load_slp(str(reference))
    worst = {"masks": 0, "same_crop": 0.0, "tie_crops": 0}
    assert len(ours.labeled_frames) == len(theirs.labeled_frames) == (20 if MASK_INPUTS[kind][1] else 50)
    for mine, their in zip(ours.labeled_frames, theirs.labeled_frames):
        assert not mine.instances and len(mine.masks) == len(their.masks), mine.frame_idx
        frame = mine.image
        size = frame.shape[:2]
        for a, b in zip(mine.masks, their.masks):
            assert a.identity_embedding is not None and b.identity_embedding is not None
            if size == (384, 384):
                for centering in ("auto", "bbox"):
                    expected = mask_rects_center(clip_rects(mask_foreground_rects(b), size), centering, size)
                    assert np.array_equal(mask_crop_centre(a, size, centering), np.float32(expected)), centering
                centre = theirs_centre = mask_crop_centre(a, size, "auto")
                cropped = frame
            else:
                # sleap-nn's centre on the resized frame (tests/test_resized_mask_centre.py: bit for bit), as the
                # graph receives it: in frame pixels, scaled back in float32, which misses some by one ulp
                # (measured: 14 of 142, 1.5e-5 px).
                scale = size_scale(size, (384, 384))
                theirs_centre = resized_mask_centre(a, size, (384, 384), "auto")
                centre = np.float32(frame_centre_of(theirs_centre, scale) * scale)
                cropped = size_matched(frame)
            off = np.abs(our_crop(cropped, centre) - skia_crop(cropped, theirs_centre))
            deviation = float(np.abs(a.identity_embedding.vector - b.identity_embedding.vector).max())
            worst["masks"] += 1
            if not off.any():
                worst["same_crop"] = max(worst["same_crop"], deviation)
                continue
            worst["tie_crops"] += 1
            assert off.max() == 1 and deviation <= TIE_PIXEL * np.count_nonzero(off), (mine.frame_idx, deviation)
    assert worst["masks"] == MASKS_EMBEDDED[kind] and worst["same_crop"] <= SAME_CROP, worst
    assert worst["tie_crops"] <= 0.6 * worst["masks"], worst  # a shifted crop would differ in every pixel


def test_lone_embedding_embeds_the_carrier_sleap_nn_picks(artifact, tmp_path):
    """A file holding poses and masks: the run's own carrier (poses) is embedded, the masks are not, as sleap-nn's
    `predict_embeddings_to_slp` does (vectors within 1e-5). Without a recorded carrier, the one holding more
    detections (ties: masks): sleap-nn's `resolve_embedding_detection_mode` on every mix of 0-3 poses and masks."""
    from loguru import logger
    from sleap_nn.data.custom_datasets import resolve_embedding_detection_mode
    from sleap_nn.inference.embedding import predict_embeddings_to_slp

    from sleap_export import Predictor
    from sleap_export.runtime.drivers.embedding_carriers import Carriers

    both = DATA / "minimal_instance6_masks.pkg.slp"
    ours = Predictor.from_model_paths(artifact(LONE, ".onnx")).predict(str(both), progress=None)
    logger.disable("sleap_nn")
    predict_embeddings_to_slp(
        [str(model_dir(LONE[0]))], data_path=str(both), output_path=str(tmp_path / "theirs.slp"), device="cpu",
        save_embeddings="slp", include_untracked=True,
    )
    theirs = sio.load_slp(str(tmp_path / "theirs.slp"))
    lf, their_lf = ours.labeled_frames[0], theirs.labeled_frames[0]
    assert all(m.identity_embedding is None for m in [*lf.masks, *their_lf.masks])
    assert len(lf.instances) == len(their_lf.instances) == 2
    for a, b in zip(lf.instances, their_lf.instances):
        assert np.abs(a.identity_embedding.vector - b.identity_embedding.vector).max() <= SAME_CROP

    labels = sio.load_slp(str(both))
    poses, masks = list(labels[0].instances), list(labels[0].masks)
    for n_poses in range(4):
        for n_masks in range(4):
            if n_poses + n_masks == 0:
                continue
            labels[0].instances = [poses[i % 2] for i in range(n_poses)]
            labels[0].masks = [masks[i % 2] for i in range(n_masks)]
            expected = resolve_embedding_detection_mode([labels], lambda detection: True, preferred=None)
            assert Carriers.of(labels, None).chosen(None) == expected, (n_poses, n_masks)


def test_burn_in_runs_and_labels_without_detections_are_refused(artifact, tmp_path):
    """One line, exit 2, no file: a run trained with mask burn-in (docs/bad-inputs.md: "embedding-burn-in"; its
    crops would need the mask blanked in), and labels with nothing to embed ("lone-embedding-empty"). A run's
    mask-crop centring and trained carrier travel in its artifact's spec."""
    import shutil

    from sleap_export.exporting.checkpoints import load_run

    run = tmp_path / "burn_in_run"
    shutil.copytree(model_dir(LONE[0]), run)
    config = run / "training_config.yaml"
    text = config.read_text()
    run.chmod(0o755)
    config.chmod(0o644)
    config.write_text(text.replace("crop_centering: auto", "crop_centering: bbox"))
    stage = load_run(run).stage
    assert stage.crop_centering == "bbox" and stage.preferred_carrier == "pose"
    config.write_text(text.replace("burn_in: false", "burn_in: true"))
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    done = subprocess.run([BIN / "sleap-export", "onnx", run, "-o", outputs / "e.onnx"], capture_output=True, text=True)
    assert done.returncode == 2 and "was trained with mask burn-in (data_config.preprocessing.burn_in: true)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr

    labels = sio.load_slp(str(DATA / "minimal_instance6_masks.pkg.slp"))
    labels[0].instances, labels[0].masks = [], []
    empty = tmp_path / "empty.slp"
    labels.save(str(empty), embed=True)
    done = subprocess.run(
        [BIN / "sleap-export", "predict", artifact(LONE, ".onnx"), empty, "-o", outputs / "out.slp"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "empty.slp holds no pose instance with a visible node and no non-empty mask" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(outputs.iterdir()) == []


def test_a_detector_and_an_embedding_artifact_predict_then_embed_in_one_command(artifact, tmp_path):
    """`predict SEGMENTATION.onnx EMBEDDING.onnx video -o out.slp` (sleap-nn's fused `-m DETECTOR -m EMBEDDING`):
    the detector's output, each detection with the vector the two commands apart give it (equal bit for bit);
    --resume extends it and embeds it whole. --tracking (or --ray, --overlay) is refused in one line, exit 2,
    nothing written (docs/bad-inputs.md: "embedding-pair-option"), as is a format without vectors."""
    detector, embedding = artifact(["new_bottomup_segmentation"], ".onnx"), artifact(LONE, ".onnx")
    out, apart, masks = tmp_path / "out.slp", tmp_path / "apart.slp", tmp_path / "masks.slp"
    first = subprocess.run(
        [BIN / "sleap-export", "predict", detector, embedding, VIDEO, "--frames", "0-5", "-o", out], capture_output=True, text=True
    )
    assert first.returncode == 0 and f"detections embedded by {embedding.name}" in first.stdout, first.stderr
    for command in (
        [detector, embedding, VIDEO, "--frames", "0-9", "-o", out, "--resume"],
        [detector, VIDEO, "--frames", "0-9", "-o", masks],
        [embedding, masks, "-o", apart],
    ):
        done = subprocess.run([BIN / "sleap-export", "predict", *command], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    ours, theirs = sio.load_slp(str(out)), sio.load_slp(str(apart))
    assert [lf.frame_idx for lf in ours] == [lf.frame_idx for lf in theirs] == list(range(10))
    embedded = 0
    for mine, their in zip(ours.labeled_frames, theirs.labeled_frames):
        assert len(mine.masks) == len(their.masks)
        for a, b in zip(mine.masks, their.masks):
            assert np.array_equal(a.identity_embedding.vector, b.identity_embedding.vector)
            embedded += 1
    assert embedded > 50 and ours.provenance["sleap_export.model_type"] == "bottomup_segmentation"

    refused = tmp_path / "refused"
    refused.mkdir()
    for args, message in [
        (["-o", refused / "out.slp", "--tracking"], "--tracking: a detector + embedding pair predicts here, then embeds"),
        (["-o", refused / "out.csv"], "csv files keep none; write out.slp instead"),
    ]:
        done = subprocess.run([BIN / "sleap-export", "predict", detector, embedding, VIDEO, *args], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(refused.iterdir()) == []
