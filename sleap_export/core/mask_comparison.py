"""Comparing two sets of predicted masks frame by frame: counts, identical pixels, IoU, ties.

Used by the segmentation parity tests and by ``check``. Masks are compared where
they are stored (sleap-io's run-length grid, with the scale and offset that place
it on the frame): a mask is identical when its pixels, scale and offset are. Pairs
are matched per frame by IoU on the frame's pixel grid (Hungarian), so an order
that differs between two decoders costs nothing.

Given each frame's tie pixels (`TiePixels`: where the reference's value sat within
a rounding margin of a decision, so two runtimes may round it either way), a pixel
that differs there is counted as a tie and not judged; a mask's other differing
pixels are judged against ``mask_tolerance``, and a mask one side lacks is excused
when it lies wholly on ties.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

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
    return placed_alike(a, b, placement_tolerance) and np.array_equal(np.asarray(a.rle_counts), np.asarray(b.rle_counts))


@attrs.frozen(eq=False)
class TiePixels:
    """One frame's tie pixels, stored as that frame's masks are (a grid with the scale and offset that
    place it), so they line up pixel for pixel with every mask placed alike."""

    pixels: np.ndarray  # (rows, cols) bool
    scale: tuple[float, float]
    offset: tuple[float, float]

    def under(self, mask: sio.SegmentationMask, placement_tolerance: float = 1e-6) -> Optional[np.ndarray]:
        """The tie pixels on ``mask``'s grid; None when ``mask`` is placed otherwise."""
        placed_alike = (
            self.pixels.shape == (mask.height, mask.width)
            and np.allclose(self.scale, mask.scale, rtol=0, atol=placement_tolerance)
            and np.allclose(self.offset, mask.offset, rtol=0, atol=placement_tolerance)
        )
        return self.pixels if placed_alike else None


def placed_alike(a: sio.SegmentationMask, b: sio.SegmentationMask, placement_tolerance: float = 1e-6) -> bool:
    return (
        (a.height, a.width) == (b.height, b.width)
        and np.allclose(a.scale, b.scale, rtol=0, atol=placement_tolerance)
        and np.allclose(a.offset, b.offset, rtol=0, atol=placement_tolerance)
    )


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@attrs.frozen
class MaskComparison:
    """Agreement of two mask sets (``ours`` against ``reference``).

    Truthy when mask counts agree on every frame (a mask one side lacks that lies wholly on
    ties excused) and at least ``min_identical_share`` of the matched masks are within
    tolerance: identical, or differing from their match in at most ``mask_tolerance`` pixels
    that are not ties (placed alike). Without ties and at tolerance 0 that is: identical.
    """

    frames: int
    count_mismatches: tuple[tuple[int, int], ...]
    matched: int
    identical: int
    # IoU of each matched pair that is not identical, on the frame grid.
    differing_ious: tuple[float, ...]
    max_score_difference: float
    min_identical_share: float = 0.999
    # Most differing pixels outside ties a matched mask may have, in the pixels of its stored grid.
    mask_tolerance: int = 0
    # Matched masks that differ from their match on tie pixels only.
    tied: int = 0
    # For each matched mask that differs beyond ties: how many of its differing pixels are not ties.
    beyond_ties: tuple[int, ...] = ()
    # Matched masks whose grid, scale or offset differ (never a tie).
    misplaced: int = 0
    # Differing pixels that sit on ties, and the masks holding them (matched, or one side's only).
    tie_pixels: int = 0
    masks_with_ties: int = 0
    # Masks one side has and the other lacks that lie wholly on ties.
    lone_tie_masks: int = 0

    @property
    def count_agreement(self) -> float:
        return 1.0 - len(self.count_mismatches) / max(self.frames, 1)

    @property
    def identical_share(self) -> float:
        return self.identical / self.matched if self.matched else 1.0

    @property
    def within_tolerance(self) -> int:
        """Matched masks identical, identical but for ties, or within ``mask_tolerance`` beyond them."""
        return self.identical + self.tied + sum(1 for n in self.beyond_ties if n <= self.mask_tolerance)

    @property
    def within_tolerance_share(self) -> float:
        return self.within_tolerance / self.matched if self.matched else 1.0

    @property
    def worst_beyond_ties(self) -> int:
        """The most differing pixels outside ties of any matched mask placed alike (0: none)."""
        return max(self.beyond_ties, default=0)

    def __bool__(self) -> bool:
        return not self.count_mismatches and self.within_tolerance_share >= self.min_identical_share

    def summary(self) -> str:
        worst = f", worst IoU {min(self.differing_ious):.4f}" if self.differing_ious else ""
        return (
            f"{self.frames} frames, count agreement {self.count_agreement:.4f} ({len(self.count_mismatches)} differ), "
            f"{self.matched} masks matched: {self.identical} identical ({self.identical_share:.2%}), "
            f"{len(self.differing_ious)} differ{worst}, {self.tied} only on ties, {len(self.beyond_ties)} beyond ties "
            f"(worst {self.worst_beyond_ties} px), {self.misplaced} placed otherwise; ties: {self.tie_pixels} pixels in "
            f"{self.masks_with_ties} masks ({self.lone_tie_masks} lone); max score difference {self.max_score_difference:.2e}"
        )

    @classmethod
    def combined(cls, parts: Sequence["MaskComparison"]) -> "MaskComparison":
        """Comparisons of disjoint frames (e.g. one per video) as one; rules from the first."""
        rules = {"min_identical_share": parts[0].min_identical_share, "mask_tolerance": parts[0].mask_tolerance} if parts else {}
        return cls(
            frames=sum(p.frames for p in parts),
            count_mismatches=tuple(k for p in parts for k in p.count_mismatches),
            matched=sum(p.matched for p in parts),
            identical=sum(p.identical for p in parts),
            differing_ious=tuple(v for p in parts for v in p.differing_ious),
            max_score_difference=max((p.max_score_difference for p in parts), default=0.0),
            tied=sum(p.tied for p in parts),
            beyond_ties=tuple(n for p in parts for n in p.beyond_ties),
            misplaced=sum(p.misplaced for p in parts),
            tie_pixels=sum(p.tie_pixels for p in parts),
            masks_with_ties=sum(p.masks_with_ties for p in parts),
            lone_tie_masks=sum(p.lone_tie_masks for p in parts),
            **rules,
        )


def compare_masks(
    ours: FrameMasks,
    reference: FrameMasks,
    frame_size: tuple[int, int],
    min_identical_share: float = 0.999,
    ties: Optional[Mapping[tuple[int, int], TiePixels]] = None,
    mask_tolerance: int = 0,
) -> MaskComparison:
    """Match masks per frame by IoU on a ``frame_size`` (height, width) grid and measure; with
    ``ties`` (the reference's tie pixels per frame), differing pixels on ties are counted apart."""
    count_mismatches, differing, score_differences, beyond = [], [], [0.0], []
    matched = same = tied = misplaced = tie_pixels = masks_with_ties = lone_tie_masks = 0
    keys = sorted(set(ours) | set(reference))
    for key in keys:
        a, b = list(ours.get(key, ())), list(reference.get(key, ()))
        frame_ties = (ties or {}).get(key)
        rows = cols = ()
        if a and b:
            grids_a = [on_frame_grid(m, *frame_size) for m in a]
            grids_b = [on_frame_grid(m, *frame_size) for m in b]
            overlap = np.array([[iou(x, y) for y in grids_b] for x in grids_a])
            rows, cols = linear_sum_assignment(-overlap)
        for i, j in zip(rows, cols):
            matched += 1
            if a[i].score is not None and b[j].score is not None:
                score_differences.append(abs(float(a[i].score) - float(b[j].score)))
            if identical(a[i], b[j]):
                same += 1
                continue
            differing.append(float(overlap[i, j]))
            if not placed_alike(a[i], b[j]):
                misplaced += 1
                continue
            differ = np.asarray(a[i].data, bool) ^ np.asarray(b[j].data, bool)
            tie = None if frame_ties is None else frame_ties.under(b[j])
            on_ties = int((differ & tie).sum()) if tie is not None else 0
            tie_pixels += on_ties
            masks_with_ties += on_ties > 0
            rest = int(differ.sum()) - on_ties
            if rest:
                beyond.append(rest)
            else:
                tied += 1
        # A mask one side lacks is excused when every one of its pixels sits on a tie.
        paired_a, paired_b = set(rows), set(cols)
        lone = [m for k, m in enumerate(a) if k not in paired_a] + [m for k, m in enumerate(b) if k not in paired_b]
        untied_lone = 0
        for mask in lone:
            pixels = np.asarray(mask.data, bool)
            tie = None if frame_ties is None else frame_ties.under(mask)
            if tie is not None and pixels.any() and tie[pixels].all():
                lone_tie_masks += 1
                masks_with_ties += 1
                tie_pixels += int(pixels.sum())
            else:
                untied_lone += 1
        if untied_lone:
            count_mismatches.append(key)
    return MaskComparison(
        frames=len(keys),
        count_mismatches=tuple(count_mismatches),
        matched=matched,
        identical=same,
        differing_ious=tuple(differing),
        max_score_difference=max(score_differences),
        min_identical_share=min_identical_share,
        mask_tolerance=mask_tolerance,
        tied=tied,
        beyond_ties=tuple(beyond),
        misplaced=misplaced,
        tie_pixels=tie_pixels,
        masks_with_ties=masks_with_ties,
        lone_tie_masks=lone_tie_masks,
    )
