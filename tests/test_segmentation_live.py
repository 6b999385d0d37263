"""Segmentation models (issue 35) through live, Ray, resume and the journal, and overlays: the masks
(and polygons) each path gives equal local predict's, completed with the mask options given."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from conftest import DATA
from test_cli import assert_one_line_error, installed
from test_live import Recorder, clip, lockstep  # noqa: F401  (clip: the fixture, a short .mp4 played as a camera)
from test_ray import cluster, run_cli  # noqa: F401  (cluster: the fixture, a local Ray head with 2 CPUs)

BOTTOM_UP = ["new_bottomup_segmentation"]
SEMANTIC = ["new_semantic_segmentation"]
VIDEO = DATA / "centered_pair_small.mp4"


@pytest.fixture(scope="module")
def bottomup(artifact) -> Path:
    return artifact(BOTTOM_UP, ".onnx")


def mask_options(**fields):
    from sleap_export.core.mask_options import MaskOptions

    return MaskOptions(**fields)


def frame_masks(labels_or_frames) -> dict:
    """``frame index -> (masks, polygons)``, each as comparable tuples (run lengths, grid, placement, score;
    polygon as WKT, score)."""
    frames = labels_or_frames.labeled_frames if isinstance(labels_or_frames, sio.Labels) else labels_or_frames
    return {int(lf.frame_idx): (masks_key(lf.masks), rois_key(lf.rois)) for lf in frames}


def masks_key(masks) -> tuple:
    return tuple(
        (tuple(int(c) for c in m.rle_counts), m.height, m.width, tuple(m.scale), tuple(m.offset), m.score) for m in masks
    )


def rois_key(rois) -> tuple:
    return tuple((r.geometry.wkt, r.score) for r in rois)


def assert_same_masks(got: dict, expected: dict) -> int:
    """Equal frames, and on each the same masks and polygons in the same order; how many masks."""
    assert sorted(got) == sorted(expected)
    for frame, masks in expected.items():
        assert got[frame] == masks, f"frame {frame} differs"
    return sum(len(m) for m, _ in expected.values())


# Live ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("runs", [BOTTOM_UP, SEMANTIC], ids=["bottomup", "semantic"])
def test_the_live_hook_sees_masks_completed_with_the_mask_options(runs, artifact):
    """Every frame's hook call holds its masks and polygons as runner.predict gives them with the same
    mask options, and a recording keeps them."""
    from sleap_export.runtime import load
    from sleap_export.runtime.drivers.live import LiveRecording, LiveRunner
    from sleap_export.runtime.open_model import ModelOptions

    path = artifact(runs, ".onnx")
    options = mask_options(mask_output="both", min_mask_area=40)
    video = sio.load_video(str(VIDEO))
    frames = [video[i] for i in range(4)]
    done = threading.Event()

    class MaskHook(Recorder):
        def process(self, outputs, timestamps):
            self.seen.append((timestamps.index, (masks_key(outputs.masks), rois_key(outputs.rois))))
            self.done.set()

    hook = MaskHook(done)
    live = LiveRunner(path, lockstep(frames, done), processor=hook, options=ModelOptions(masks=options))
    recording = LiveRecording(live, path)
    for frame in live:
        recording.add(frame)
        assert not len(frame.outputs.instance_valid)  # masks, not poses
    reference = load(path, masks=options)
    expected = {}
    for index, frame in enumerate(frames):
        [outputs] = reference.predict(frame)
        expected[index] = (masks_key(outputs.masks), rois_key(outputs.rois))
    assert dict(hook.seen) == expected
    assert sum(len(m) for m, _ in expected.values()) >= 4 and all(len(m) == len(r) for m, r in expected.values())
    assert all(m[5] is not None and m[1] * m[2] > 0 for masks, _ in expected.values() for m in masks)
    assert frame_masks(recording.labels()) == expected


def test_live_command_keeps_the_masks_and_refuses_tracking_and_forecasts(bottomup, clip, tmp_path):
    """``live -o`` with predict's mask options: the .slp holds each posed frame's masks and polygons as
    predict gives them; --tracking, --forecast and a format without masks are refused in one line."""
    from sleap_export.runtime import load

    source = clip("centered_pair_small.mp4")
    output = tmp_path / "live.slp"
    installed("live", bottomup, "--source", source, "--fps", "30", "-o", output, "--mask-output", "both",
              "--min-mask-area", "40", "-q", check_rc=0)
    labels = sio.load_slp(str(output))
    assert labels.labeled_frames and all(lf.masks and len(lf.rois) == len(lf.masks) for lf in labels.labeled_frames)
    reference = load(bottomup, masks=mask_options(mask_output="both", min_mask_area=40))
    frames = sio.load_video(str(source))
    expected = {}
    for lf in labels.labeled_frames:
        [outputs] = reference.predict(frames[lf.frame_idx])
        expected[lf.frame_idx] = (masks_key(outputs.masks), rois_key(outputs.rois))
    assert_same_masks(frame_masks(labels), expected)

    refused = installed("live", bottomup, "--source", source, "--tracking")
    assert_one_line_error(refused, "predicts masks, not poses, and sleap-export tracks poses; drop --tracking")
    refused = installed("live", bottomup, "--source", source, "--forecast", "velocity")  # "live-forecast-masks"
    assert_one_line_error(refused, "--forecast predicts keypoints and a bottomup_segmentation model predicts masks")
    refused = installed("live", bottomup, "--source", source, "-o", tmp_path / "live.csv")
    assert_one_line_error(refused, "predicts masks and csv files keep none; write live.slp instead")
    refused = installed("live", bottomup, "--source", source, "--merge-method", "nearest")
    assert_one_line_error(refused, "--merge-method must be one of greedy, multicut")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.slp"]


# Ray -------------------------------------------------------------------------------------------------

def test_masks_over_ray_equal_local_predicts(cluster, bottomup, tmp_path):  # noqa: F811
    """Chunks carry their masks and polygons, packed, through the object store and the parts; the mask
    options reach the workers (their polygons are there, their small masks dropped)."""
    from sleap_export import Predictor

    options = mask_options(mask_output="both", min_mask_area=40)
    remote = tmp_path / "ray.slp"
    done = run_cli("predict", bottomup, VIDEO, "--frames", "0-39", "-o", remote, "--ray", cluster, "--workers", 2,
                   "--chunk-size", 10, "--mask-output", "both", "--min-mask-area", 40)
    assert "40 predicted at" in done.stdout and "on 2 Ray workers" in done.stdout
    local = Predictor.from_model_paths(bottomup, masks=options).predict(str(VIDEO), frames="0-39", progress=None)
    expected = frame_masks(local)
    compared = assert_same_masks(frame_masks(sio.load_slp(str(remote))), expected)
    assert compared >= 40 and all(len(m) == len(r) for m, r in expected.values())
    # Without the options the same frames give more masks: the workers did not run with the defaults.
    default = Predictor.from_model_paths(bottomup).predict(str(VIDEO), frames="0-7", progress=None)
    assert sum(len(lf.masks) for lf in default.labeled_frames) > sum(len(expected[f][0]) for f in range(8))


# Resume and the journal ------------------------------------------------------------------------------

class StopAfter:
    """A progress callback raising ``error`` once ``frames`` are done (journaled)."""

    def __init__(self, frames: int, error: BaseException):
        self.frames, self.error = frames, error

    def __call__(self, done: int, total: int) -> None:
        if done >= self.frames:
            raise self.error


def test_an_interrupted_mask_prediction_resumes_to_an_uninterrupted_runs_masks(bottomup, tmp_path):
    """A crash leaves the journal, a resumed run read from it is stopped by Ctrl-C (the .slp written
    from it), a last --resume finishes: masks and polygons equal one uninterrupted run's."""
    from sleap_export import Predictor
    from sleap_export.runtime.drivers.predictor import PredictionInterrupted

    predictor = Predictor.from_model_paths(bottomup, masks=mask_options(mask_output="both"), batch_size=4)
    whole = predictor.predict(str(VIDEO), frames="0-39", output=tmp_path / "whole.slp", progress=None)
    output = tmp_path / "resumed.slp"
    journal = tmp_path / "resumed.slp.journal"

    with pytest.raises(RuntimeError, match="crashed"):
        predictor.predict(str(VIDEO), frames="0-39", output=output, progress=StopAfter(12, RuntimeError("crashed")))
    assert journal.exists() and not output.exists()
    with pytest.raises(PredictionInterrupted):
        predictor.predict(str(VIDEO), frames="0-39", output=output, resume=True, progress=StopAfter(24, KeyboardInterrupt()))
    assert output.exists() and not journal.exists()
    assert 24 <= len(sio.load_slp(str(output)).labeled_frames) < 40
    predictor.predict(str(VIDEO), frames="0-39", output=output, resume=True, progress=None)

    expected = frame_masks(sio.load_slp(str(tmp_path / "whole.slp")))
    assert frame_masks(whole) == expected
    assert assert_same_masks(frame_masks(sio.load_slp(str(output))), expected) >= 40
    assert sum(len(r) for _, r in expected.values()) >= 40


def synthetic_frames(rng) -> list:
    """Mask frames of every shape a journal meets: none, one, many (frame and stride grids, offsets),
    polygons alone (mask_output polygon), masks with polygons (a MultiPolygon among them)."""
    from shapely.geometry import MultiPolygon, Polygon

    from sleap_export.runtime.decoding.outputs import Outputs

    def mask(height, width, scale=(1.0, 1.0), offset=(0.0, 0.0)):
        pixels = rng.random((height, width)) > 0.6
        return sio.PredictedSegmentationMask.from_numpy(pixels, score=float(rng.random()), scale=scale, offset=offset)

    def roi(kind):
        square = Polygon([(0, 0), (4, 0), (4, 3), (0, 3)])
        shape = MultiPolygon([square, Polygon([(10, 10), (12.5, 10), (11, 14)])]) if kind else square
        return sio.PredictedROI(geometry=shape, score=float(rng.random()))

    def frame(index, masks=(), rois=()):
        return Outputs(
            pred_keypoints=np.zeros((0, 2, 2), np.float32), pred_peak_values=np.zeros((0, 2), np.float32),
            instance_scores=np.zeros(0, np.float32), instance_valid=np.zeros(0, bool), frame_idx=index,
            masks=tuple(masks), rois=tuple(rois),
        )

    many = [mask(96, 96, (0.25, 0.25)) for _ in range(12)] + [mask(40, 30, (0.5, 0.5), (100.0, 37.0))]
    return [
        [frame(0), frame(1, many), frame(2), frame(3, [mask(384, 384)])],
        [frame(4), frame(5)],  # a batch without one mask: packed without mask arrays
        [frame(6, rois=[roi(0), roi(1)]), frame(7, [mask(8, 8, (2.0, 2.0))], [roi(1)]), frame(8)],
    ]


def test_a_journal_of_mask_frames_reads_back_identically(bottomup, tmp_path):
    from sleap_export.runtime.writing.journal import PredictionJournal

    batches = synthetic_frames(np.random.default_rng(35))
    journal = PredictionJournal(tmp_path / "p.slp", {"model": "bottomup_segmentation"}, ["a.mp4", "b.mp4"])
    for video, batch in enumerate(batches):
        journal.append(video % 2, batch)
    journal.close()
    with open(journal.path, "ab") as cut_off:  # a record a kill cut off: dropped on reading
        cut_off.write(b"SXJ1\x00\x10\x00\x00\x00\x00\x00\x00partial")
    read = journal.read()
    written = [(["a.mp4", "b.mp4"][video % 2], o) for video, batch in enumerate(batches) for o in batch]
    assert [(name, o.frame_idx) for name, o in read] == [(name, o.frame_idx) for name, o in written]
    for (_, got), (_, sent) in zip(read, written):
        assert masks_key(got.masks) == masks_key(sent.masks) and rois_key(got.rois) == rois_key(sent.rois)
        assert all(g.geometry.equals_exact(s.geometry, 0) for g, s in zip(got.rois, sent.rois))
        assert not len(got.instance_valid) and got.pred_keypoints.shape == (0, 2, 2)
    assert [len(o.masks) for _, o in read] == [0, 13, 0, 1, 0, 0, 0, 1, 0]


def test_unpacking_reads_each_packed_array_once():
    """An ``np.load`` file reads an array again at every lookup: unpack looks each up once, not once per
    frame (480 frames of masks took 44 s, now 0.1 s)."""
    from sleap_export.runtime.writing.packed_outputs import pack, packable, unpack

    frames = [o for batch in synthetic_frames(np.random.default_rng(7)) for o in batch]

    class CountingArrays(dict):
        lookups: dict = {}

        def __getitem__(self, key):
            self.lookups[key] = self.lookups.get(key, 0) + 1
            return super().__getitem__(key)

    arrays = CountingArrays(pack([packable(o) for o in frames] * 20))
    unpacked = unpack(arrays)
    assert len(unpacked) == 180 and set(CountingArrays.lookups.values()) == {1}
    assert [masks_key(o.masks) for o in unpacked] == [masks_key(o.masks) for o in frames] * 20


def test_packable_outputs_keep_no_dense_grids(bottomup):
    """What a Ray worker holds of each frame until its chunk is packed: masks, never the graph's grids."""
    from sleap_export.runtime import load
    from sleap_export.runtime.decoding.outputs import ARRAY_FIELDS
    from sleap_export.runtime.writing.packed_outputs import pack, packable

    [outputs] = load(bottomup).predict(sio.load_video(str(VIDEO))[0], frame_indices=[0])
    assert outputs.pred_foreground is not None and outputs.masks
    kept = packable(outputs)

    def held(o) -> int:
        return sum(np.asarray(getattr(o, name)).nbytes for name in ARRAY_FIELDS if getattr(o, name) is not None)

    assert held(outputs) > 400_000 and held(kept) < 100  # the grids (and image) of a 384 x 384 frame, then none
    assert kept.masks == outputs.masks
    assert {k: v.tolist() for k, v in pack([kept]).items()} == {k: v.tolist() for k, v in pack([outputs]).items()}


# Overlays --------------------------------------------------------------------------------------------

def covered_pixels(masks, shape) -> np.ndarray:
    from sleap_export.core.mask_comparison import on_frame_grid

    covered = np.zeros(shape, bool)
    for mask in masks:
        covered |= on_frame_grid(mask, *shape)
    return covered


def grown(pixels: np.ndarray, by: int) -> np.ndarray:
    """``pixels`` grown by ``by`` pixels in every direction (a square neighbourhood)."""
    out = pixels.copy()
    for dy in range(-by, by + 1):
        for dx in range(-by, by + 1):
            out |= np.roll(np.roll(pixels, dy, axis=0), dx, axis=1)
    return out


def test_masks_are_drawn_over_their_pixels_and_nowhere_else(bottomup):
    """Each mask's pixels take a translucent colour of their own; every other pixel is the frame's.
    Polygons (mask_output both) add their outlines along the masks' edges only (simplified outlines cut
    corners by up to 1% of their length, 2-3 px here)."""
    from sleap_export.runtime import load
    from sleap_export.runtime.writing.overlay_video import draw_predictions

    frame = np.asarray(sio.load_video(str(VIDEO))[0])
    [masks_only] = load(bottomup).predict(frame)
    drawn = draw_predictions(frame, masks_only).astype(int)
    covered = covered_pixels(masks_only.masks, frame.shape[:2])
    changed = (drawn != frame.astype(int)).any(axis=-1)
    assert covered.sum() > 1000 and np.array_equal(changed, covered)
    # One colour per mask: the first two masks' pixels are tinted apart.
    first, second = (covered_pixels([m], frame.shape[:2]) & ~covered_pixels(masks_only.masks[2:], frame.shape[:2])
                     for m in masks_only.masks[:2])
    tint = [(drawn[p] - frame[p].astype(int)).mean(axis=0) for p in (first, second)]
    assert np.abs(tint[0] - tint[1]).max() > 10

    [both] = load(bottomup, masks=mask_options(mask_output="both")).predict(frame)
    outlined = (draw_predictions(frame, both).astype(int) != frame.astype(int)).any(axis=-1)
    assert (outlined & ~covered).sum() > 50  # outlines reach just past the masks' pixels ...
    assert not (outlined & ~grown(covered, 4)).any()  # ... and no farther


def colourfulness(frame: np.ndarray) -> np.ndarray:
    frame = frame.astype(np.int16)
    return frame.max(axis=-1) - frame.min(axis=-1)


def test_predict_overlay_draws_the_masks(bottomup, tmp_path):
    output, overlay = tmp_path / "masks.slp", tmp_path / "masks.mp4"
    installed("predict", bottomup, VIDEO, "--frames", "0-2", "-o", output, "--overlay", overlay, "-q", check_rc=0)
    labels, drawn = sio.load_slp(str(output)), sio.load_video(str(overlay))
    assert drawn.shape[0] == len(labels.labeled_frames) == 3
    for image, lf in zip(drawn, labels.labeled_frames):
        covered = covered_pixels(lf.masks, image.shape[:2])
        inside = covered & ~grown(~covered, 2)  # away from the edges H.264's chroma blurs
        colour = colourfulness(image)
        assert inside.sum() > 500 and np.median(colour[inside]) > 30
        assert np.percentile(colour[~grown(covered, 4)], 99.9) < 20
