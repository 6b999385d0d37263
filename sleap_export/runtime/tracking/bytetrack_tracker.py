"""`ByteTracker`: ByteTrack's association (Zhang et al. 2022) as sleap-nn runs it: high-score
detections first, then the still-unmatched tracked tracks against low-score detections, then
tentative tracks; a tracked and a lost track that overlap too much lose the shorter one."""

from __future__ import annotations

import numpy as np

from sleap_export.runtime.tracking.mot_detections import MIN_BOX_FRACTION, Detections
from sleap_export.runtime.tracking.mot_tracker import Association, MOTTracker, State, Track, assign, iou_matrix

# Pose pairs share at least this many visible nodes, spanning at least this many px, for
# their shared-node boxes to be compared.
MIN_SHARED_NODES = 2
MIN_SHARED_EXTENT = 1.0


def _padded(low: np.ndarray, high: np.ndarray, padding: float, min_side: float) -> tuple[np.ndarray, np.ndarray]:
    pad = padding * (high - low).max(axis=-1, keepdims=True)
    low, high = low - pad, high + pad
    grow = 0.5 * np.maximum(min_side - (high - low), 0.0)
    return low - grow, high + grow


def shared_node_iou(tracked: np.ndarray, detected: np.ndarray, padding: float, min_side: float) -> np.ndarray:
    """``(tracks, detections)`` IoU of padded boxes over the nodes visible in both poses of a
    pair (an occluded detection is compared with the same part of the track); NaN where too
    few nodes are shared or they span too little."""
    shared = np.isfinite(tracked).all(-1)[:, None, :] & np.isfinite(detected).all(-1)[None]
    select = shared[..., None]
    low_t = np.where(select, tracked[:, None], np.inf).min(axis=2)
    high_t = np.where(select, tracked[:, None], -np.inf).max(axis=2)
    low_d = np.where(select, detected[None], np.inf).min(axis=2)
    high_d = np.where(select, detected[None], -np.inf).max(axis=2)
    with np.errstate(invalid="ignore"):
        wide = ((high_t - low_t) >= MIN_SHARED_EXTENT).any(axis=-1) & ((high_d - low_d) >= MIN_SHARED_EXTENT).any(axis=-1)
    comparable = (shared.sum(axis=-1) >= MIN_SHARED_NODES) & wide
    out = np.full(shared.shape[:2], np.nan)
    if not comparable.any():
        return out
    low_t, high_t = _padded(low_t[comparable], high_t[comparable], padding, min_side)
    low_d, high_d = _padded(low_d[comparable], high_d[comparable], padding, min_side)
    inter = np.clip(np.minimum(high_t, high_d) - np.maximum(low_t, low_d), 0.0, None).prod(axis=-1)
    union = (high_t - low_t).prod(axis=-1) + (high_d - low_d).prod(axis=-1) - inter
    iou = np.zeros_like(inter)
    np.divide(inter, union, out=iou, where=union > 0)
    out[comparable] = np.clip(iou, 0.0, 1.0)
    return out


class ByteTracker(MOTTracker):
    """A new track starts at 1 hit, confirms at ``min_hits`` and dies at its first miss while
    tentative; a track not matched at the previous step predicts with no height velocity."""

    hits_start = 1
    tentative_dies_on_miss = True
    lost_zero_velocity = (7,)

    def similarity(self, tracks: list[Track], dets: Detections) -> np.ndarray:
        """IoU is the larger of the Kalman boxes' and the shared visible nodes' boxes'."""
        similarity = super().similarity(tracks, dets)
        if similarity.size == 0 or self.params.similarity != "iou":
            return similarity
        predicted, _ = self.predicted_poses(tracks, np.stack([t.mean for t in tracks]))
        shared = shared_node_iou(
            predicted, dets.keypoints, self.params.box_padding, MIN_BOX_FRACTION * self.calibration.body_size
        )
        return self.finish(np.fmax(similarity, shared), dets)

    def associate(self, dets: Detections) -> Association:
        p = self.params
        high = dets.valid & (dets.scores > p.track_high_threshold)
        low = dets.valid & (dets.scores > p.track_low_threshold) & (dets.scores < p.track_high_threshold)
        spawnable = high & (dets.scores >= p.new_track_threshold)
        result = Association(no_spawn=set(np.flatnonzero(~spawnable).tolist()))
        tracks = list(self.tracks)
        if not tracks:
            return result
        similarity = self.similarity(tracks, dets)
        rows = {id(t): i for i, t in enumerate(tracks)}

        def stage(stage_tracks, columns, max_cost, fused):
            if not stage_tracks or not len(columns):
                return stage_tracks, columns
            sub = similarity[np.ix_([rows[id(t)] for t in stage_tracks], columns)]
            cost = 1.0 - (sub * dets.scores[columns][None, :] if fused and p.fuse_score else sub)
            pairs = assign(cost, max_cost)
            result.matches += [(stage_tracks[r], int(columns[c]), float(sub[r, c])) for r, c in pairs]
            paired_rows, paired_cols = {r for r, _ in pairs}, {c for _, c in pairs}
            return (
                [t for i, t in enumerate(stage_tracks) if i not in paired_rows],
                np.array([j for i, j in enumerate(columns) if i not in paired_cols], dtype=np.int64),
            )

        left, left_high = stage(
            [t for t in tracks if t.state != State.TENTATIVE], np.flatnonzero(high), 1.0 - p.min_match_similarity, True
        )
        stage([t for t in left if t.state == State.CONFIRMED], np.flatnonzero(low), 1.0 - p.low_stage_min_similarity, False)
        _, left_high = stage(
            [t for t in tracks if t.state == State.TENTATIVE], left_high, 1.0 - p.unconfirmed_min_similarity, True
        )
        self._remove_duplicates(tracks, similarity, rows, dets, left_high, spawnable, result)
        return result

    def _remove_duplicates(self, tracks, similarity, rows, dets, left_high, spawnable, result: Association) -> None:
        """A matched track (or a detection about to start one: no history) and a surviving
        lost track overlapping beyond duplicate_similarity: the shorter history is removed
        (ties: the matched one, whose detection then stays untracked)."""
        p = self.params
        matched = {id(t) for t, _, _ in result.matches}
        lost = [
            t for t in tracks
            if t.state != State.TENTATIVE and id(t) not in matched and t.steps_unmatched <= p.track_buffer
        ]
        if not lost:
            return
        tracked = [(t, j, dets.frame_idx - t.start_frame) for t, j, _ in result.matches]
        tracked += [(None, int(j), 0) for j in left_high if spawnable[j]]
        if not tracked:
            return
        columns = [j for _, j, _ in tracked]
        if p.similarity == "oks":
            overlap = similarity[np.ix_([rows[id(t)] for t in lost], columns)]
        else:
            overlap = iou_matrix(self.kf.boxes(np.stack([t.mean for t in lost])), dets.boxes[columns])
        drop_tracked, drop_lost = set(), set()
        for q, k in np.argwhere(overlap > p.duplicate_similarity):
            if tracked[k][2] > lost[q].last_frame - lost[q].start_frame:
                drop_lost.add(int(q))
            else:
                drop_tracked.add(int(k))
        removed = {id(t): t for t in result.removed}
        for k in sorted(drop_tracked):
            track, j, _ = tracked[k]
            result.no_spawn.add(j)
            if track is not None:
                removed.setdefault(id(track), track)
        for q in sorted(drop_lost):
            removed.setdefault(id(lost[q]), lost[q])
        result.matches = [m for m in result.matches if id(m[0]) not in removed]
        result.removed = list(removed.values())
