"""runtime.drivers.resized_mask_centre against sleap-nn 0.3.5's own pieces: where ``EmbeddingDataset._crop_mask``
centres a mask's crop on a frame its size matcher resizes, bit for bit.

Masks: the two user masks of each of the two small mask packages, and variants of them made with
``from_numpy`` (stored at half scale, cut to their box and placed at an offset, spilling off the frame,
entirely off it). Sizes: the run's size below the frame (antialiased downscale), above it (upscale), odd,
one side only, a None side; frames of the masks' own size and of other sizes (mask cut or padded).
"""

from __future__ import annotations

import numpy as np
import pytest
import sleap_io as sio
import torch
import torchvision.transforms.v2.functional as tvf
from sleap_nn.data.custom_datasets import _mask_bbox_midpoint
from sleap_nn.data.resizing import apply_sizematcher
from sleap_nn.data.segmentation_maps import _compute_mask_centroids
from sleap_nn.inference.segmentation_convert import decode_mask_to_image_res

from conftest import DATA
from sleap_export.runtime.drivers.resized_mask_centre import _resample_axis, resized_mask_centre

MASK_FILES = ("minimal_instance6_masks.pkg.slp", "minimal_instance_masks.pkg.slp")
FRAME_SIZES = ((384, 384), (300, 452), (401, 257))
RUN_SIZES = (
    (384, 384),
    (96, 96),
    (127, 131),
    (160, 384),
    (255, 255),
    (383, 384),
    (385, 390),
    (511, 517),
    (800, 790),
    (None, 200),
    (300, None),
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Torch's small resizes and pads run ~100x slower on two busy cores when threaded; results don't change."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sleap_nn_above_half(mask: sio.SegmentationMask, frame_hw, max_hw) -> np.ndarray:
    """The pixels ``EmbeddingDataset._crop_mask`` centres on for a frame its size matcher resizes, from
    sleap-nn's own pieces."""
    frame_h, frame_w = frame_hw
    decoded = decode_mask_to_image_res(mask)
    if decoded.shape[:2] != (frame_h, frame_w):
        on_frame = np.zeros((frame_h, frame_w), dtype=bool)
        h0, w0 = min(decoded.shape[0], frame_h), min(decoded.shape[1], frame_w)
        on_frame[:h0, :w0] = decoded[:h0, :w0]
        decoded = on_frame
    mask_t = torch.from_numpy(np.ascontiguousarray(decoded, dtype=np.float32))[None, None]
    mask_t, _ = apply_sizematcher(mask_t, max_height=max_hw[0], max_width=max_hw[1])
    return mask_t[0, 0].numpy() > 0.5


def sleap_nn_centre(above_half: np.ndarray, centering) -> np.ndarray:
    """``_crop_mask``'s centre of those pixels, as the float32 it builds its crop box from."""
    if centering == "bbox":
        cx, cy = _mask_bbox_midpoint(above_half)
    else:
        cx, cy = _compute_mask_centroids([above_half])[0]
    return torch.tensor([cx, cy], dtype=torch.float32).numpy()


def mask_variants() -> list[sio.SegmentationMask]:
    """The packages' user masks, each also stored at half scale, cut to its box at an offset, shifted to spill
    off the frame's top-left and bottom-right, and placed entirely off the frame."""
    variants = []
    for name in MASK_FILES:
        for mask in (m for lf in sio.load_slp(str(DATA / name)) for m in lf.masks):
            full = np.asarray(mask.data, bool)
            rows, cols = np.nonzero(full)
            box = full[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            make = sio.UserSegmentationMask.from_numpy
            variants += [
                mask,
                make(full[::2, ::2], scale=(0.5, 0.5)),
                make(box, offset=(float(cols.min()), float(rows.min()))),
                make(box[::2, ::2], scale=(0.5, 0.5), offset=(-7.4, -11.6)),
                make(box, offset=(380.0 - box.shape[1] / 2, 290.0)),
                make(box, offset=(1000.0, 1000.0)),
            ]
    return variants


def test_centres_match_sleap_nn_bit_for_bit_on_resized_frames():
    masks = mask_variants()
    # Every mask at every run size on its own frame; every other mask at a third of them on each other frame.
    cases = [(m, FRAME_SIZES[0], run) for m in masks for run in RUN_SIZES]
    cases += [(m, frame, run) for m in masks[::2] for frame in FRAME_SIZES[1:] for run in RUN_SIZES[::3]]
    assert len(cases) >= 200
    for mask, frame_hw, max_hw in cases:
        above_half = sleap_nn_above_half(mask, frame_hw, max_hw)
        for centering in (None, "bbox"):
            ours = resized_mask_centre(mask, frame_hw, max_hw, centering)
            theirs = sleap_nn_centre(above_half, centering)
            assert ours.dtype == np.float32
            assert ours.tobytes() == theirs.tobytes(), (frame_hw, max_hw, centering, ours, theirs)


def test_sweep_covers_downscales_upscales_and_empty_masks():
    ratios = {
        min((run[0] or frame[0]) / frame[0], (run[1] or frame[1]) / frame[1])
        for frame in FRAME_SIZES
        for run in RUN_SIZES
    }
    assert min(ratios) < 0.5 and max(ratios) > 2 and 1.0 in ratios
    off_frame = mask_variants()[5]
    centre = resized_mask_centre(off_frame, (384, 384), (255, 255), None)
    theirs = sleap_nn_centre(sleap_nn_above_half(off_frame, (384, 384), (255, 255)), None)
    assert centre.tolist() == [127.5, 127.5] == theirs.tolist()


@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() != "AVX2",
    reason="the replica's rounding of the second pass is that of ATen's AVX2 build",
)
@pytest.mark.parametrize("axis", [0, 1])
def test_each_resize_pass_is_atens_float32_arithmetic(axis):
    # Real masks rarely land within rounding of 0.5, so the passes are pinned on random floats: the
    # second pass reads such values, and its rounding (runs of 4 rounded products, then fused steps) shows.
    rng = np.random.default_rng(axis)
    for in_size, out_size in [(384, 96), (384, 127), (452, 255), (300, 383), (97, 384), (384, 1201), (257, 60)]:
        shape = (in_size, 8) if axis == 0 else (8, in_size)
        values = rng.random(shape).astype(np.float32)
        size = (out_size, 8) if axis == 0 else (8, out_size)
        theirs = tvf.resize(torch.from_numpy(values)[None, None], size=list(size))[0, 0].numpy()
        ours, start = _resample_axis(values, 0, in_size, out_size, axis)
        assert start == 0
        assert ours.tobytes() == theirs.tobytes(), (in_size, out_size)
