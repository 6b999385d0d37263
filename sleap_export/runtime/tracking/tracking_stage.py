"""`TrackingStage`: tracking as a stage of prediction. Each frame's instances are filtered (sleap-nn's
pre-tracking filters) and, with the classic tracker, tracked as the frame is predicted (one
`PoseTracker` per video); the whole-video passes run on the kept poses when the labels are built,
and the tracks land on the labels' instances. A MOT tracker (SORT, ByteTrack) calibrates on the
whole video first, as sleap-nn does, so it tracks each video's kept poses when the labels are built."""

from __future__ import annotations

from typing import Optional

import numpy as np
import sleap_io as sio

from sleap_export.core.errors import InputError
from sleap_export.core.model_types import BOX_HEAD_TYPES, MODEL_TYPES
from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.tracking.bytetrack_tracker import ByteTracker
from sleap_export.runtime.tracking.instance_filters import kept_instances
from sleap_export.runtime.tracking.kalman import XYSRFilter, XYWHFilter
from sleap_export.runtime.tracking.mot_presets import mot_params
from sleap_export.runtime.tracking.poses import TrackedPose
from sleap_export.runtime.tracking.sort_tracker import SORTTracker
from sleap_export.runtime.tracking.tracker import PoseTracker
from sleap_export.runtime.tracking.tracking_options import TrackingOptions

MOT_TRACKERS = {"sort": (SORTTracker, XYSRFilter), "bytetrack": (ByteTracker, XYWHFilter)}


def refuse_untrackable(spec: ModelSpec) -> None:
    """Tracking needs instances without identities: not a detector's boxes, not a multi-class model's classes."""
    if spec.model_type in BOX_HEAD_TYPES:
        raise InputError(
            f"A {spec.model_type} detector predicts boxes, not poses, so there is nothing to track; drop --tracking."
        )
    if MODEL_TYPES[spec.model_type].segments:
        raise InputError(
            f"A {spec.model_type} model predicts masks, not poses, and sleap-export tracks poses; drop --tracking."
        )
    if spec.model_type.startswith("multi_class"):
        raise InputError(
            f"A {spec.model_type} model already gives each instance its identity (track) from its classes; drop --tracking."
        )


class TrackingStage:
    """Tracks the instances of every frame of one prediction run, video by video, in the order given."""

    def __init__(self, options: TrackingOptions, n_nodes: int):
        self.options = options
        self.n_nodes = n_nodes
        self.trackers: dict[int, PoseTracker] = {}  # by id of the video (classic)
        # MOT: each video's frames (index, kept poses) in the order given, tracked in `apply`.
        self.mot_frames: dict[int, list[tuple[int, list[TrackedPose]]]] = {}

    def add(self, video: sio.Video, outputs, image: Optional[np.ndarray]) -> list[TrackedPose]:
        """One predicted frame (its `Outputs`, and its image for optical flow): its kept poses,
        tracked; ``index`` is the instance's position among the frame's valid instances."""
        valid = np.flatnonzero(np.asarray(outputs.instance_valid))
        points = np.asarray(outputs.pred_keypoints, dtype=np.float64)[valid]
        scores = np.asarray(outputs.instance_scores, dtype=np.float64)[valid]
        point_scores = None if outputs.pred_peak_values is None else np.asarray(outputs.pred_peak_values, np.float64)[valid]
        return self.track(video, int(outputs.frame_idx), points, scores, image, point_scores)

    def track(self, video: sio.Video, frame_idx: int, points: np.ndarray, scores: np.ndarray,
              image: Optional[np.ndarray], point_scores: Optional[np.ndarray] = None) -> list[TrackedPose]:
        """One frame's poses (instances, nodes, 2) and instance scores, filtered, then tracked in
        ``video``'s tracker (MOT: kept untracked until `apply`); ``image`` is read for optical flow
        only. ``point_scores`` (instances, nodes): what the MOT trackers score a pose by and
        --filter_min_mean_node_score reads (without them, the instance score)."""
        points = np.asarray(points, dtype=np.float64).reshape(len(points), self.n_nodes, 2)
        scores = np.asarray(scores, dtype=np.float64)
        rows = np.arange(len(points))
        if self.options.filters:
            rows = kept_instances(self.options, points, scores, point_scores)
        if self.options.is_mot:
            poses = [
                TrackedPose(points[i], float(scores[i]), frame_idx, int(i),
                            point_scores=None if point_scores is None else np.asarray(point_scores[i], np.float64))
                for i in rows
            ]
            self.mot_frames.setdefault(id(video), []).append((frame_idx, poses))
            return poses
        tracker = self.trackers.get(id(video))
        if tracker is None:
            tracker = self.trackers[id(video)] = PoseTracker(self.options, self.n_nodes)
        poses = tracker.track(frame_idx, points[rows], scores[rows], image if self.options.use_flow else None)
        for pose in poses:
            pose.index = int(rows[pose.index])
        return poses

    def _read_point_scores(self, labels: sio.Labels) -> None:
        """Point scores of the MOT poses given without them (frames tracked from labels), from
        the labels' instances they index."""
        frames = {(video, frame_idx): poses for video, frames in self.mot_frames.items() for frame_idx, poses in frames}
        for lf in labels.labeled_frames:
            poses = frames.get((id(lf.video), lf.frame_idx), ())
            instances = lf.predicted_instances
            for pose in poses:
                if pose.point_scores is None:
                    pose.point_scores = np.asarray(instances[pose.index].numpy(scores=True), np.float64)[:, 2]

    def _mot_tracked(self) -> tuple[dict, dict[int, int]]:
        """Each MOT-tracked video's frames, tracked now (frame order), and its tracks' count."""
        tracker_class, kalman = MOT_TRACKERS[self.options.tracker]
        params = mot_params(self.options, self.n_nodes)
        tracked, counts = {}, {}
        for video, frames in self.mot_frames.items():
            frames = sorted(frames, key=lambda frame: frame[0])
            tracker = tracker_class(params, self.n_nodes, kalman())
            tracker.track_video(frames)
            tracked.update({(video, frame_idx): poses for frame_idx, poses in frames})
            counts[video] = tracker.tracks_started
        return tracked, counts

    def apply(self, labels: sio.Labels) -> sio.Labels:
        """The passes over each video's kept poses, then every tracked frame's instances given their
        track (``track_N``, numbered on across videos) and tracking score; dropped instances removed."""
        if self.options.is_mot:
            self._read_point_scores(labels)
            tracked, counts = self._mot_tracked()
        else:
            tracked = {
                (video, frame_idx): poses
                for video, tracker in self.trackers.items()
                for frame_idx, poses in zip(tracker.frame_indices, tracker.finish())
            }
            counts = {video: tracker.candidates.tracks_started for video, tracker in self.trackers.items()}
        tracks: dict[int, sio.Track] = {}
        offsets, offset = {}, 0
        for video in labels.videos:
            if id(video) in counts:
                offsets[id(video)] = offset
                offset += counts[id(video)]
        for lf in labels.labeled_frames:
            poses = tracked.get((id(lf.video), lf.frame_idx))
            if poses is None:
                continue
            instances = lf.predicted_instances
            for pose in poses:
                instance = instances[pose.index]
                if pose.track is not None:
                    name = pose.track + offsets[id(lf.video)]
                    instance.track = tracks.setdefault(name, sio.Track(f"track_{name}"))
                    instance.tracking_score = float(pose.tracking_score)
                elif self.options.is_mot:
                    # A track that never confirmed leaves its poses untracked, as sleap-nn does.
                    instance.track, instance.tracking_score = None, 0.0
            lf.instances = [*lf.user_instances, *(instances[pose.index] for pose in poses)]
        labels.tracks = [tracks[name] for name in sorted(tracks)]
        return labels
