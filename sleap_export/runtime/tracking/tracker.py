"""`PoseTracker`: sleap-nn's classic tracker, one frame at a time (online), and the passes over a
whole video (culling, connecting single breaks) at its end."""

from __future__ import annotations

from typing import Optional

import numpy as np

from sleap_export.runtime.tracking.candidates import FixedWindow, LocalQueues
from sleap_export.runtime.tracking.flow import shifted_candidates
from sleap_export.runtime.tracking.kalman_shift import KalmanShift
from sleap_export.runtime.tracking.matching import MATCHERS
from sleap_export.runtime.tracking.poses import TrackedPose
from sleap_export.runtime.tracking.post_passes import (
    connect_single_breaks,
    cull,
    poses_over_count,
)
from sleap_export.runtime.tracking.scoring import (
    pose_feature,
    reduction_function,
    similarity_function,
)
from sleap_export.runtime.tracking.tracking_options import TrackingOptions


class PoseTracker:
    """Tracks one video: `track` each frame's poses in frame order, then `finish` once.

    ``n_nodes``: the skeleton's node count (a one-node skeleton scores centroids by distance,
    as sleap-nn does unless features/scoring are set). Track ids count from 0."""

    def __init__(self, options: TrackingOptions, n_nodes: int):
        self.options = options = options.resolved(n_nodes)
        if options.uses_local_queues:
            self.candidates = LocalQueues(options.window_size, options.min_new_track_points, options.max_tracks)
        else:
            self.candidates = FixedWindow(options.window_size, options.min_new_track_points)
        self.similarity = similarity_function(options.scoring_method, options.oks_stddev)
        self.reduce = reduction_function(options.scoring_reduction, options.robust_best_instance)
        self.match = MATCHERS[options.track_matching_method]
        self.motion: Optional[KalmanShift] = None
        if options.use_kalman:
            self.motion = KalmanShift(
                options.kf_track_features, options.kf_init_frame_count, options.kf_node_indices, options.kf_reset_gap_size,
                n_nodes,
            )
        # Images of the frames candidates come from (optical flow only), pruned as they leave.
        self.images: dict[int, np.ndarray] = {}
        # Every frame's index and kept poses, for the passes at the end (points, score and track only).
        self.frame_indices: list[int] = []
        self.frames: list[list[TrackedPose]] = []
        self._finished: Optional[list[list[TrackedPose]]] = None

    def track(
        self, frame_idx: int, points: np.ndarray, scores: np.ndarray, image: Optional[np.ndarray] = None
    ) -> list[TrackedPose]:
        """One frame's poses (instances, nodes, 2) with instance ``scores``: the poses kept, tracked.
        A pose's ``index`` is its row in ``points``; ``image`` (H, W, C) is needed with use_flow."""
        options = self.options
        poses = [TrackedPose(np.asarray(p, np.float64), float(s), frame_idx, i) for i, (p, s) in enumerate(zip(points, scores))]
        if options.pre_culls:
            extra = {
                id(p)
                for p in poses_over_count(poses, options.tracking_target_instance_count, options.tracking_pre_cull_iou_threshold)
            }
            poses = [p for p in poses if id(p) not in extra]
        for pose in poses:
            pose.feature = pose_feature(pose.points, options.features)
        if self.candidates.is_empty():
            kept = self.candidates.first(poses)
        else:
            columns = self.candidates.tracks()
            cost = -self._scores(poses, columns, frame_idx, image)
            cost[np.isnan(cost)] = np.inf
            pairs = self._feasible(poses, self.match(cost), cost)
            kept = self.candidates.update(poses, pairs, columns, [-cost[r, c] for r, c in pairs])
        if options.use_flow:
            self.images[frame_idx] = image
            referenced = {poses[0].frame_idx for poses in self.candidates.reference_frames()}
            self.images = {i: im for i, im in self.images.items() if i in referenced}
        if self.motion is not None:
            self.motion.observe(self.candidates)
        self.frame_indices.append(frame_idx)
        self.frames.append(kept)
        return kept

    def _scores(self, poses: list[TrackedPose], columns: list, frame_idx: int, image) -> np.ndarray:
        """Rows: poses; columns: tracks; each the reduced similarity to the track's candidates with
        more than min_match_points visible points (NaN for none)."""
        options = self.options
        if options.use_flow:
            by_track = shifted_candidates(
                self.candidates.reference_frames(),
                self.images,
                image,
                options.features,
                options.of_img_scale,
                options.of_window_size,
                options.of_max_levels,
            )
        elif self.motion is not None:
            by_track = self.motion.candidates(columns, self.candidates, frame_idx, options.features)
        else:
            by_track = {track: [(c.feature, c.support) for c in self.candidates.candidates(track)] for track in columns}
        matchable = [
            [feature for feature, support in by_track.get(track, ()) if support > options.min_match_points] for track in columns
        ]
        scores = np.zeros((len(poses), len(columns)))
        for row, pose in enumerate(poses):
            for col, features in enumerate(matchable):
                scores[row, col] = self.reduce(self.similarity(pose.feature, features))
        return scores

    def _feasible(self, poses: list[TrackedPose], pairs: list[tuple[int, int]], cost: np.ndarray) -> list[tuple[int, int]]:
        """Pairs at infinite cost (no candidate to compare) are dropped so the pose starts a track,
        unless it cannot (no support, or no track left under max_tracks): then it keeps the pair."""
        infeasible = [p for p in pairs if not np.isfinite(cost[p])]
        if not infeasible:
            return pairs
        minimum = self.candidates.min_new_track_points
        slots = self.candidates.spawn_slots()
        if slots is not None:
            # Poses the matcher left unpaired spawn first, from the same slots.
            paired = {row for row, _ in pairs}
            slots = max(0, slots - sum(1 for row, p in enumerate(poses) if row not in paired and p.support > minimum))
        dropped = 0
        forced = set()
        for pair in infeasible:
            if poses[pair[0]].support > minimum and (slots is None or dropped < slots):
                dropped += 1
            else:
                forced.add(pair)
        return [p for p in pairs if np.isfinite(cost[p]) or p in forced]

    def finish(self) -> list[list[TrackedPose]]:
        """The passes over the whole video, on the kept poses only: cull to
        tracking_clean_instance_count (then connect single breaks), and connect single breaks when
        post_connect_single_breaks. Every frame's final poses, in the order tracked (the passes run once)."""
        if self._finished is None:
            self._finished = self._passes()
        return self._finished

    def _passes(self) -> list[list[TrackedPose]]:
        options = self.options
        frames = self.frames
        if options.tracking_clean_instance_count > 0:
            frames = cull(frames, options.tracking_clean_instance_count, options.tracking_clean_iou_threshold)
            if not options.post_connect_single_breaks:
                connect_single_breaks(frames)
        if options.post_connect_single_breaks:
            connect_single_breaks(frames)
        return frames
