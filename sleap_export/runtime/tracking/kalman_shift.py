"""`KalmanShift`: sleap-nn's `--use_kalman` motion model (its `KalmanShiftTracker`) for the classic
tracker. Each track's last pose is the one candidate it is scored by, moved toward where a
constant-velocity Kalman filter puts the track in the new frame.

The steps, as sleap-nn takes them, frame by frame (online):

1. Warm-up: the first ``kf_init_frame_count`` frames with candidates are tracked without motion;
   every track's newest pose is recorded after each frame.
2. Then one filter per track is fit by EM (`LinearGaussianModel`) over the track's last
   ``kf_init_frame_count`` contiguous poses (at least 3; none from before a reset). It tracks the
   centroid of ``kf_node_indices`` (half of them visible, or the frame is missing), or with
   ``kf_track_features="keypoints"`` each of those nodes.
3. Each frame after: filters of tracks unseen for more than ``kf_reset_gap_size`` frames are
   dropped (refit once the track has that many fresh contiguous poses again); each filter takes the
   poses its track got since, coasting over missed frames, a pose farther than the gate from the
   prediction counting as a miss; tracks that lack a filter get one when they can; and each
   filtered track's candidate is its last pose translated by half the predicted centroid
   displacement (keypoints: each tracked node moved halfway to its prediction). Tracks without a
   filter keep their ordinary candidates.
"""

from __future__ import annotations

from collections import deque
from typing import Optional

import attrs
import numpy as np

from sleap_export.runtime.tracking.linear_gaussian import LinearGaussianModel
from sleap_export.runtime.tracking.poses import TrackedPose
from sleap_export.runtime.tracking.scoring import pose_feature

# sleap-nn's tuned constants (not options of its predict or TrackerConfig).
EM_ITERATIONS = 20
PREDICTION_BLEND = 0.5  # candidate = last pose + blend * predicted displacement
GATE_STEP_MULTIPLE = 8.0  # a pose farther than max(MIN_GATE_PX, 8 x median step) is a miss
MIN_GATE_PX = 40.0
VELOCITY_CAP_MULTIPLE = 3.0  # |velocity| at most max(MIN_VELOCITY_CAP_PX, 3 x median step)
MIN_VELOCITY_CAP_PX = 15.0
MIN_FIT_POSES = 3


@attrs.define
class TrackMotion:
    """One track's filter and its state after the last pose it took (``last_corrected``);
    ``last_seen``: the last frame whose pose passed the gate."""

    model: LinearGaussianModel
    mean: np.ndarray
    covariance: np.ndarray
    last_corrected: int
    last_seen: int
    median_step: float

    @property
    def velocity_cap(self) -> float:
        return max(MIN_VELOCITY_CAP_PX, VELOCITY_CAP_MULTIPLE * self.median_step)

    @property
    def gate(self) -> float:
        return max(MIN_GATE_PX, GATE_STEP_MULTIPLE * self.median_step)


def _capped(mean: np.ndarray, cap: float) -> np.ndarray:
    """The state with every velocity entry clipped to +-cap."""
    mean = np.array(mean, dtype=np.float64)
    mean[1::2] = np.clip(mean[1::2], -cap, cap)
    return mean


def _predicted_points(mean: np.ndarray) -> np.ndarray:
    """Positions (points, 2) of a ``[x, vx, y, vy, ...]`` state."""
    return np.asarray(mean)[::2].reshape(-1, 2)


def _constant_velocity(n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Transition (4P, 4P) and observation (2P, 4P) matrices of P points moving at constant velocity."""
    transition = np.kron(np.eye(2 * n_points), np.array([[1.0, 1.0], [0.0, 1.0]]))
    observation = np.kron(np.eye(2 * n_points), np.array([[1.0, 0.0]]))
    return transition, observation


class KalmanShift:
    """The motion model of one video's classic tracker (`PoseTracker` with use_kalman)."""

    def __init__(self, track_features: str, init_frame_count: int, node_indices: Optional[tuple], reset_gap_size: int,
                 n_nodes: int):
        self.by_keypoints = track_features == "keypoints"
        self.init_frame_count = init_frame_count
        self.reset_gap_size = reset_gap_size
        self.n_nodes = n_nodes
        # sleap-nn keeps indices below the node count (negative ones index from the end).
        self.nodes = list(range(n_nodes)) if node_indices is None else [i for i in node_indices if i < n_nodes]
        # Each track's newest poses, one per frame: a fit reads at most the last max(init, 3).
        self.history: dict = {}
        self.history_length = max(init_frame_count, MIN_FIT_POSES)
        self.motions: dict = {}
        self.reset_frames: dict = {}
        self.frames_seen = 0
        self.initialized = False

    def observe(self, window) -> None:
        """After a frame is tracked: each track's newest pose in the candidates, if new."""
        for track in window.tracks():
            poses = window.candidates(track)
            if not poses:
                continue
            newest = max(poses, key=lambda pose: pose.frame_idx)
            history = self.history.setdefault(track, deque(maxlen=self.history_length))
            if not history or history[-1].frame_idx < newest.frame_idx:
                history.append(newest)

    def candidates(self, columns: list, window, frame_idx: int, features: str) -> dict:
        """Track -> [(feature, support)] for a frame with candidates: the moved last pose of a
        filtered track, the window's candidates otherwise (all of them during warm-up)."""
        if not self.initialized:
            self.frames_seen += 1
            if self.frames_seen < self.init_frame_count:
                return {track: [(c.feature, c.support) for c in window.candidates(track)] for track in columns}
            self.initialized = True
            if self.nodes:
                for track in list(self.history):
                    self._fit(track)
        self._reset_stale(frame_idx)
        self._correct()
        if self.nodes:
            for track in columns:
                if track not in self.motions and len(self._fresh_window(track)) >= self.init_frame_count:
                    self._fit(track)
        return {track: self._candidates(track, window, frame_idx, features) for track in columns}

    def _centroid(self, points: np.ndarray) -> np.ndarray:
        """Mean of the tracked nodes; NaN unless at least half of them are visible (a centroid of
        a changing few nodes would jump as they come and go)."""
        tracked = np.asarray(points)[self.nodes]
        visible = int((~np.isnan(tracked).any(axis=1)).sum())
        if visible == 0 or visible * 2 < len(tracked):
            return np.array([np.nan, np.nan])
        return np.nanmean(tracked, axis=0)

    def _observed(self, points: np.ndarray) -> np.ndarray:
        """What the filter observes of a pose: the centroid, or the tracked nodes (flat x, y pairs)."""
        return (np.asarray(points, np.float64)[self.nodes] if self.by_keypoints else self._centroid(points)).ravel()

    def _fresh_window(self, track) -> list[TrackedPose]:
        """The track's newest poses after its last reset, back to the first gap of a frame."""
        reset = self.reset_frames.get(track, -1)
        fresh = [pose for pose in self.history.get(track, ()) if pose.frame_idx > reset]
        start = len(fresh) - 1
        while start > 0 and fresh[start].frame_idx - fresh[start - 1].frame_idx == 1:
            start -= 1
        return fresh[max(start, 0):]

    def _median_step(self, window: list[TrackedPose]) -> float:
        """Per-frame centroid step: the displacement between the first and last visible centroids
        over the frames between them (robust to noise and dropped frames)."""
        visible = [(pose.frame_idx, c) for pose in window if not np.isnan(c := self._centroid(pose.points)).any()]
        if len(visible) < 2 or visible[-1][0] <= visible[0][0]:
            return 0.0
        return float(np.linalg.norm(visible[-1][1] - visible[0][1])) / (visible[-1][0] - visible[0][0])

    def _fit(self, track) -> None:
        """A filter for ``track`` by EM over its fresh window, when it has enough poses."""
        window = self._fresh_window(track)
        if len(window) < MIN_FIT_POSES:
            return
        window = window[-self.init_frame_count:]
        rows = np.array([self._observed(pose.points) for pose in window])
        if int((~np.isnan(rows).all(axis=1)).sum()) < 2:
            return
        median_step = self._median_step(window)
        cap = max(MIN_VELOCITY_CAP_PX, VELOCITY_CAP_MULTIPLE * median_step)
        # Seeds per coordinate: its first value, and its first one-frame difference (capped).
        first = np.full(rows.shape[1], np.nan)
        velocity = np.zeros(rows.shape[1])
        for c in range(rows.shape[1]):
            seen = np.flatnonzero(~np.isnan(rows[:, c]))
            if len(seen) == 0:
                continue
            first[c] = rows[seen[0], c]
            consecutive = [t for t in seen if t + 1 < len(rows) and not np.isnan(rows[t + 1, c])]
            if consecutive:
                velocity[c] = np.clip(rows[consecutive[0] + 1, c] - rows[consecutive[0], c], -cap, cap)
        # A coordinate never seen starts at its axis' mean (0 when the axis was never seen).
        for axis in (0, 1):
            values = first[axis::2]
            fill = np.nanmean(values) if not np.isnan(values).all() else 0.0
            first[axis::2] = np.where(np.isnan(values), fill, values)
        initial_mean = np.stack([first[0::2], velocity[0::2], first[1::2], velocity[1::2]], axis=1).ravel()
        model = LinearGaussianModel(*_constant_velocity(rows.shape[1] // 2), initial_mean).fit_noise(rows, EM_ITERATIONS)
        means, covariances = model.filter(rows)
        last = window[-1].frame_idx
        self.motions[track] = TrackMotion(model, _capped(means[-1], cap), covariances[-1], last, last, median_step)

    def _reset_stale(self, frame_idx: int) -> None:
        for track, motion in list(self.motions.items()):
            if frame_idx - motion.last_seen > self.reset_gap_size:
                del self.motions[track]
                self.reset_frames[track] = frame_idx

    def _correct(self) -> None:
        """Each filter takes its track's poses since the last: coasting over the frames between,
        a pose beyond the gate from the prediction taken as a miss."""
        for track, motion in self.motions.items():
            for pose in [p for p in self.history.get(track, ()) if p.frame_idx > motion.last_corrected]:
                mean, covariance = motion.mean, motion.covariance
                for _ in range(pose.frame_idx - motion.last_corrected - 1):
                    mean, covariance = motion.model.step(mean, covariance)
                    mean = _capped(mean, motion.velocity_cap)
                predicted_mean, predicted_covariance = motion.model.step(mean, covariance)
                predicted = _predicted_points(predicted_mean).mean(axis=0)
                observed = self._centroid(pose.points)
                gated_out = not np.isnan(observed).any() and float(np.linalg.norm(predicted - observed)) > motion.gate
                if gated_out:
                    mean, covariance = predicted_mean, predicted_covariance
                else:
                    mean, covariance = motion.model.step(mean, covariance, self._observed(pose.points))
                    motion.last_seen = pose.frame_idx
                motion.mean, motion.covariance = _capped(mean, motion.velocity_cap), covariance
                motion.last_corrected = pose.frame_idx

    def _candidates(self, track, window, frame_idx: int, features: str) -> list:
        motion = self.motions.get(track)
        history = self.history.get(track)
        if motion is None or not history:
            return [(c.feature, c.support) for c in window.candidates(track)]
        mean, covariance = motion.mean, motion.covariance
        for _ in range(max(1, frame_idx - motion.last_corrected)):
            mean, covariance = motion.model.step(mean, covariance)
            mean = _capped(mean, motion.velocity_cap)
        last = history[-1]
        points = np.asarray(last.points, np.float64)
        predicted = _predicted_points(mean)
        last_centroid = self._centroid(points)
        if np.isnan(last_centroid).any():
            moved = points  # too few nodes seen to place the pose: kept where it was
        elif self.by_keypoints:
            displacement = predicted - points[self.nodes]
            blended = points[self.nodes] + PREDICTION_BLEND * displacement
            moved = points.copy()
            moved[self.nodes] = np.where(np.isnan(blended), predicted, blended)
            # The other nodes move by the tracked nodes' mean displacement (half of them are seen).
            others = np.ones(self.n_nodes, dtype=bool)
            others[self.nodes] = False
            moved[others] = points[others] + PREDICTION_BLEND * np.nanmean(displacement, axis=0)
        else:
            moved = points + PREDICTION_BLEND * (predicted.mean(axis=0) - last_centroid)
        return [(pose_feature(moved, features), last.support)]
