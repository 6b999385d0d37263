"""`MOTTracker`: the track lifecycle sleap-nn's MOT trackers share (Kalman prediction,
tentative -> confirmed -> lost -> removed, labels given retroactively at confirmation);
`SORTTracker` and `ByteTracker` add their association. One tracker tracks one video, whose
poses it sees all at once (`track_video`): the calibration needs the whole video."""

from __future__ import annotations

import enum
from typing import Optional

import attrs
import numpy as np
from scipy.optimize import linear_sum_assignment

from sleap_export.runtime.tracking.kalman import BoxKalmanFilter
from sleap_export.runtime.tracking.mot_detections import Calibration, Detections, calibrate, detections
from sleap_export.runtime.tracking.mot_presets import MOTParams
from sleap_export.runtime.tracking.poses import TrackedPose

# An infeasible pair is priced just above the cost cap, so the solver never gives up a
# confident match to make more matches.
CAP_MARGIN = 1e-5
OKS_EPSILON = np.spacing(1)


class State(enum.IntEnum):
    TENTATIVE = 0
    CONFIRMED = 1
    LOST = 2


@attrs.define(eq=False)
class Track:
    """One track: its Kalman state, counters and latest observation; ``members``: the poses
    matched while tentative (labeled when it confirms), with their similarities."""

    number: int
    mean: np.ndarray
    cov: np.ndarray
    start_frame: int
    last_frame: int
    last_box: np.ndarray
    last_raw_box: np.ndarray
    last_keypoints: np.ndarray
    center_at_update: np.ndarray
    hits: int
    hit_streak: int
    state: State = State.TENTATIVE
    steps_unmatched: int = 0
    members: list = attrs.field(factory=list)
    public_id: Optional[int] = None


@attrs.define
class Association:
    """A frame's association: ``matches`` (track, detection, geometric similarity);
    detections that may not start a track; tracks removed this frame."""

    matches: list = attrs.field(factory=list)
    no_spawn: set = attrs.field(factory=set)
    removed: list = attrs.field(factory=list)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(n, 4)`` and ``(m, 4)`` ``xyxy`` boxes; a box with a non-finite side scores 0."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    a = np.where(np.isfinite(a).all(axis=1)[:, None], a, 0.0)
    b = np.where(np.isfinite(b).all(axis=1)[:, None], b, 0.0)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return np.clip(out, 0.0, 1.0)


def oks_matrix(detected: np.ndarray, tracked: np.ndarray, areas: np.ndarray, stddev: float) -> np.ndarray:
    """``(tracks, detections)`` OKS over the nodes visible in both, the tracks' areas the scale."""
    areas = np.where(np.isfinite(areas), np.maximum(areas, 1.0), 1.0)
    d2 = ((detected[:, None] - tracked[None]) ** 2).sum(axis=-1)  # (dets, tracks, nodes)
    shared = np.isfinite(d2)
    e = np.where(shared, d2, 0.0) / (2.0 * stddev) ** 2 / (areas[None, :, None] + OKS_EPSILON) / 2.0
    n_shared = shared.sum(axis=-1)
    oks = np.where(shared, np.exp(-e), 0.0).sum(axis=-1) / np.maximum(n_shared, 1)
    return np.where(n_shared > 0, np.clip(oks, 0.0, 1.0), 0.0).T


def centroid_similarity(a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    d2 = ((a[:, None] - b[None]) ** 2).sum(axis=-1)
    finite = np.isfinite(d2)
    return np.where(finite, np.exp(-np.where(finite, d2, 0.0) / (2.0 * scale**2)), 0.0)


def box_area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def assign(cost: np.ndarray, max_cost: float) -> list[tuple[int, int]]:
    """Minimum-cost pairs at most ``max_cost`` each (non-finite: infeasible), by row."""
    if cost.size == 0:
        return []
    feasible = np.isfinite(cost) & (cost <= max_cost)
    if not feasible.any():
        return []
    rows, cols = linear_sum_assignment(np.where(feasible, cost, max_cost + CAP_MARGIN))
    return [(int(r), int(c)) for r, c in zip(rows, cols) if feasible[r, c]]


class MOTTracker:
    """The shared lifecycle. Subclasses set the class attributes and `associate`.

    ``hits_start``: a new track's hits and streak; ``confirm_on_streak``: confirm on the
    streak (SORT) rather than the hit count; ``tentative_dies_on_miss``: a tentative track is
    removed at its first miss; ``lost_zero_velocity``: state entries zeroed before predicting
    a track not matched at the previous step."""

    hits_start: int = 1
    confirm_on_streak: bool = False
    tentative_dies_on_miss: bool = True
    lost_zero_velocity: tuple[int, ...] = ()

    def __init__(self, params: MOTParams, n_nodes: int, kalman: BoxKalmanFilter):
        self.params = params
        self.n_nodes = n_nodes
        self.kf = kalman
        self.tracks: list[Track] = []
        self.tracks_started = 0  # public ids minted (confirmed tracks)
        self._next_number = 0
        self._step = -1
        self._last_frame: Optional[int] = None
        self.calibration: Optional[Calibration] = None

    def track_video(self, frames: list[tuple[int, list[TrackedPose]]]) -> None:
        """Every frame of one video in frame order: calibrate on them, then track each;
        ``track`` (a public id or None) and ``tracking_score`` land on the poses."""
        p = self.params
        raw = [detections(i, poses, self.n_nodes, p.box_padding, None, None) for i, poses in frames]
        if not raw:
            return
        self.calibration = calibration = calibrate(raw, p.normalize_scores)
        for frame_idx, poses in frames:
            for pose in poses:
                pose.track, pose.tracking_score = None, 0.0
            body = calibration.body_size
            self._track_frame(detections(frame_idx, poses, self.n_nodes, p.box_padding, body, calibration.score_divisor))

    # -- one frame

    def _track_frame(self, dets: Detections) -> None:
        p = self.params
        self._advance(dets.frame_idx)
        result = self.associate(dets) if len(dets) else Association()
        removed = {id(t) for t in result.removed}
        matched, used, applied = set(), set(), []
        for track, j, similarity in result.matches:
            if id(track) in matched or j in used or not dets.valid[j]:
                continue
            matched.add(id(track))
            used.add(j)
            similarity = min(max(float(similarity), 0.0), 1.0) if np.isfinite(similarity) else 0.0
            self._apply_match(track, dets, j, similarity)
            applied.append((track, j, similarity))
        for track in list(self.tracks):
            if id(track) not in matched and id(track) not in removed:
                self._missed(track)
        for track in result.removed:
            self._remove(track)
        for j in range(len(dets)):
            if j not in used and j not in result.no_spawn and dets.valid[j] and dets.scores[j] >= p.new_track_threshold:
                self._spawn(dets, j)
        for track in self.tracks:
            if track.state == State.TENTATIVE and track.steps_unmatched == 0:
                if (track.hit_streak if self.confirm_on_streak else track.hits) >= p.min_hits:
                    self._confirm(track)
        self.tracks = [t for t in self.tracks if t.steps_unmatched <= p.track_buffer]
        for track, j, similarity in applied:
            if track.state == State.CONFIRMED and track.public_id is not None:
                dets.poses[j].track, dets.poses[j].tracking_score = track.public_id, similarity

    def _advance(self, frame_idx: int) -> None:
        """The clock to ``frame_idx``: every live track predicted over the steps since the
        last frame; a gap acts as that many empty frames before this one."""
        if self._step < 0:
            self._step, self._last_frame = 0, frame_idx
            return
        n_steps = self.calibration.steps(frame_idx - self._last_frame)
        self._step += n_steps
        self._last_frame = frame_idx
        buffer = self.params.track_buffer
        self.tracks = [
            t
            for t in self.tracks
            if not (
                t.steps_unmatched + n_steps - 1 > buffer
                or (n_steps > 1 and self.tentative_dies_on_miss and t.state == State.TENTATIVE)
            )
        ]
        if not self.tracks:
            return
        means = np.stack([t.mean for t in self.tracks])
        covs = np.stack([t.cov for t in self.tracks])
        unmatched = np.array([t.steps_unmatched for t in self.tracks])
        zeroed = list(self.lost_zero_velocity)
        for k in range(n_steps):
            if zeroed:
                missed = unmatched + k > 0
                means[np.ix_(missed, zeroed)] = 0.0
            means, covs = self.kf.predict(means, covs)
        for i, track in enumerate(self.tracks):
            track.mean, track.cov = means[i], covs[i]
            track.steps_unmatched += n_steps
            if track.steps_unmatched > 1:
                track.hit_streak = 0
            if n_steps > 1 and track.state == State.CONFIRMED:
                track.state = State.LOST

    def _apply_match(self, track: Track, dets: Detections, j: int, similarity: float) -> None:
        box = np.array(dets.boxes[j])
        track.mean, track.cov = self.kf.update(track.mean, track.cov, box)
        track.hits += 1
        track.hit_streak += 1
        track.steps_unmatched = 0
        track.last_frame = dets.frame_idx
        track.last_box = box
        track.last_raw_box = np.array(dets.raw_boxes[j])
        track.last_keypoints = np.array(dets.keypoints[j])
        track.center_at_update = np.array(track.mean[:2])
        if track.state == State.LOST:
            track.state = State.CONFIRMED
        if track.public_id is None:
            track.members.append((dets.poses[j], similarity))

    def _missed(self, track: Track) -> None:
        if track.state == State.CONFIRMED:
            track.state = State.LOST
        elif track.state == State.TENTATIVE and self.tentative_dies_on_miss:
            self._remove(track)

    def _remove(self, track: Track) -> None:
        self.tracks = [t for t in self.tracks if t is not track]

    def _spawn(self, dets: Detections, j: int) -> None:
        box = np.array(dets.boxes[j])
        mean, cov = self.kf.initiate(box)
        self.tracks.append(
            Track(
                number=self._next_number,
                mean=mean,
                cov=cov,
                start_frame=dets.frame_idx,
                last_frame=dets.frame_idx,
                last_box=box,
                last_raw_box=np.array(dets.raw_boxes[j]),
                last_keypoints=np.array(dets.keypoints[j]),
                center_at_update=np.array(mean[:2]),
                hits=self.hits_start,
                hit_streak=self.hits_start,
                members=[(dets.poses[j], 1.0)],
            )
        )
        self._next_number += 1

    def _confirm(self, track: Track) -> None:
        track.state = State.CONFIRMED
        track.public_id = self.tracks_started
        self.tracks_started += 1
        for pose, similarity in track.members:
            pose.track, pose.tracking_score = track.public_id, similarity
        track.members.clear()

    # -- similarity

    def associate(self, dets: Detections) -> Association:
        raise NotImplementedError

    def similarity(self, tracks: list[Track], dets: Detections) -> np.ndarray:
        """``(tracks, detections)`` similarity of the tracks' predictions to the detections,
        in [0, 1]; invalid detections score 0."""
        if not tracks or not len(dets):
            return np.zeros((len(tracks), len(dets)))
        means = np.stack([t.mean for t in tracks])
        kind = self.params.similarity
        if kind == "oks":
            predicted, areas = self.predicted_poses(tracks, means)
            similarity = oks_matrix(dets.keypoints, predicted, areas, self.params.oks_stddev)
        elif kind == "centroid":
            similarity = centroid_similarity(means[:, :2], dets.centroids, 0.5 * self.calibration.body_size)
        else:
            similarity = iou_matrix(self.kf.boxes(means), dets.boxes)
        return self.finish(similarity, dets)

    @staticmethod
    def finish(similarity: np.ndarray, dets: Detections) -> np.ndarray:
        similarity = np.clip(np.nan_to_num(similarity, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)
        similarity[:, ~dets.valid] = 0.0
        return similarity

    def predicted_poses(self, tracks: list[Track], means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each track's last pose moved by its Kalman center's motion since, and its last
        extent's area scaled as its box's area changed (the OKS scale)."""
        poses = np.stack([t.last_keypoints for t in tracks])
        poses = poses + (means[:, :2] - np.stack([t.center_at_update for t in tracks]))[:, None, :]
        last_area = box_area(np.stack([t.last_box for t in tracks]))
        ratio = np.ones(len(tracks))
        np.divide(box_area(self.kf.boxes(means)), last_area, out=ratio, where=last_area > 0)
        return poses, box_area(np.stack([t.last_raw_box for t in tracks])) * ratio
