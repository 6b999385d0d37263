"""Comparing two embeddings of the same detections: counts per frame and per-element vector deviation.

Used by ``check`` of a lone embedding model. Both sides embed the detections of
the same .slp, so the detections they embed are the same ones in the same order:
pairs are taken in order, frame by frame, with no matching. Vectors are read
from pose instances and masks alike (``identity_embedding``), whichever carry one.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import attrs
import numpy as np
import sleap_io as sio

FrameVectors = Mapping[tuple[int, int], Sequence[np.ndarray]]  # (video, frame) -> vectors, in detection order


def embeddings_by_frame(labels: sio.Labels) -> dict[tuple[int, int], list[np.ndarray]]:
    """Each labeled frame's appearance vectors, instances then masks, keyed by ``(video index, frame index)``;
    frames where nothing carries one are left out."""
    videos = {id(v): i for i, v in enumerate(labels.videos)}
    found = {}
    for lf in labels.labeled_frames:
        detections = [*lf.instances, *(getattr(lf, "masks", None) or [])]
        vectors = [
            np.asarray(d.identity_embedding.vector, np.float64)
            for d in detections
            if getattr(d, "identity_embedding", None) is not None
        ]
        if vectors:
            found[(videos[id(lf.video)], int(lf.frame_idx))] = vectors
    return found


@attrs.frozen
class EmbeddingComparison:
    """Two embeddings of the same detections, paired in order on frames where both embed as many."""

    frames: int
    count_mismatches: tuple[tuple[int, int], ...]
    embedded: int
    embedded_reference: int
    paired: int
    # |ours - reference| of every element of every paired vector.
    deviations: np.ndarray = attrs.field(eq=False)

    @property
    def count_agreement(self) -> float:
        return 1.0 - len(self.count_mismatches) / max(self.frames, 1)

    @property
    def max_deviation(self) -> float:
        return float(self.deviations.max()) if self.deviations.size else 0.0


def compare_embeddings(ours: FrameVectors, reference: FrameVectors, frames: Sequence[tuple[int, int]]) -> EmbeddingComparison:
    """Pair the vectors of each of ``frames`` in order; a frame where the counts differ pairs none."""
    mismatched, deviations, paired = [], [], 0
    for key in frames:
        mine, theirs = list(ours.get(key, [])), list(reference.get(key, []))
        if len(mine) != len(theirs):
            mismatched.append(key)
            continue
        for a, b in zip(mine, theirs):
            # Vectors of different lengths are out of any tolerance.
            deviations.append(np.abs(a - b) if a.shape == b.shape else np.full(max(a.size, b.size), np.inf))
        paired += len(mine)
    return EmbeddingComparison(
        frames=len(frames),
        count_mismatches=tuple(mismatched),
        embedded=sum(len(ours.get(k, [])) for k in frames),
        embedded_reference=sum(len(reference.get(k, [])) for k in frames),
        paired=paired,
        deviations=np.concatenate(deviations) if deviations else np.zeros(0),
    )
