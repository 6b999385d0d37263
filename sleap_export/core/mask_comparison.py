"""Comparing two sets of predicted masks frame by frame: counts, identical pixels, IoU.

Used by the segmentation parity tests and by ``check``. Masks are compared where
they are stored (sleap-io's run-length grid, with the scale and offset that place
it on the frame): a mask is identical when its pixels, scale and offset are. Pairs
are matched per frame by IoU on the frame's pixel grid (Hungarian), so an order
that differs between two decoders costs nothing.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import attrs
import numpy as np
import sleap_io as sio
from scipy.optimize import linear_sum_assignment

FrameMasks = Mapping[tuple[int, int], Sequence[sio.SegmentationMask]]  # (video, frame) -> masks


def masks_by_frame(labels: sio.Labels) -> dict[tuple[int, int], list[sio.SegmentationMask]]:
    """Each labeled frame's masks, keyed by ``(video index, frame index)``."""
    videos = {id(v): i for i, v in enumerate(labels.videos)}
    return {(videos[id(lf.video)], int(lf.frame_idx)): list(lf.masks) for lf in labels.labeled_frames if lf.masks}


def on_frame_grid(mask: sio.SegmentationMask, height: int, width: int) -> np.ndarray:
    """The mask on a ``(height, width)`` frame: each frame pixel takes the mask pixel it falls in
    (``mask = (frame - offset) * scale``, floored)."""
    pixels = np.asarray(mask.data, dtype=bool)
    (sx, sy), (ox, oy) = mask.scale, mask.offset
    rows = np.floor((np.arange(height) + 0.5 - oy) * sy).astype(np.int64)
    cols = np.floor((np.arange(width) + 0.5 - ox) * sx).astype(np.int64)
    inside_rows = (rows >= 0) & (rows < pixels.shape[0])
    inside_cols = (cols >= 0) & (cols < pixels.shape[1])
    grid = np.zeros((height, width), bool)
    grid[np.ix_(inside_rows, inside_cols)] = pixels[np.ix_(rows[inside_rows], cols[inside_cols])]
    return grid


def identical(a: sio.SegmentationMask, b: sio.SegmentationMask, placement_tolerance: float = 1e-6) -> bool:
    """Same pixels on the same grid, placed alike (scale and offset within ``placement_tolerance``)."""
    return (
        (a.height, a.width) == (b.height, b.width)
        and np.array_equal(np.asarray(a.rle_counts), np.asarray(b.rle_counts))
        and np.allclose(a.scale, b.scale, rtol=0, atol=placement_tolerance)
        and np.allclose(a.offset, b.offset, rtol=0, atol=placement_tolerance)
    )


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@attrs.frozen
class MaskComparison:
    """Agreement of two mask sets (``ours`` against ``reference``)."""

    frames: int
    count_mismatches: tuple[tuple[int, int], ...]
    matched: int
    identical: int
    # IoU of each matched pair that is not identical, on the frame grid.
    differing_ious: tuple[float, ...]
    max_score_difference: float
    min_identical_share: float = 0.999

    @property
    def count_agreement(self) -> float:
        return 1.0 - len(self.count_mismatches) / max(self.frames, 1)

    @property
    def identical_share(self) -> float:
        return self.identical / self.matched if self.matched else 1.0

    def __bool__(self) -> bool:
        return not self.count_mismatches and self.identical_share >= self.min_identical_share

    def summary(self) -> str:
        worst = f", worst IoU {min(self.differing_ious):.4f}" if self.differing_ious else ""
        return (
            f"{self.frames} frames, count agreement {self.count_agreement:.4f} ({len(self.count_mismatches)} differ), "
            f"{self.matched} masks matched: {self.identical} identical ({self.identical_share:.2%}), "
            f"{len(self.differing_ious)} differ{worst}; max score difference {self.max_score_difference:.2e}"
        )


def compare_masks(
    ours: FrameMasks, reference: FrameMasks, frame_size: tuple[int, int], min_identical_share: float = 0.999
) -> MaskComparison:
    """Match masks per frame by IoU on a ``frame_size`` (height, width) grid and measure."""
    count_mismatches, differing, score_differences = [], [], [0.0]
    matched = same = 0
    keys = sorted(set(ours) | set(reference))
    for key in keys:
        a, b = list(ours.get(key, ())), list(reference.get(key, ()))
        if len(a) != len(b):
            count_mismatches.append(key)
        if not a or not b:
            continue
        grids_a = [on_frame_grid(m, *frame_size) for m in a]
        grids_b = [on_frame_grid(m, *frame_size) for m in b]
        overlap = np.array([[iou(x, y) for y in grids_b] for x in grids_a])
        rows, cols = linear_sum_assignment(-overlap)
        for i, j in zip(rows, cols):
            matched += 1
            if identical(a[i], b[j]):
                same += 1
            else:
                differing.append(float(overlap[i, j]))
            if a[i].score is not None and b[j].score is not None:
                score_differences.append(abs(float(a[i].score) - float(b[j].score)))
    return MaskComparison(
        frames=len(keys),
        count_mismatches=tuple(count_mismatches),
        matched=matched,
        identical=same,
        differing_ious=tuple(differing),
        max_score_difference=max(score_differences),
        min_identical_share=min_identical_share,
    )
