"""`TrackingStage`: tracking as a stage of prediction. Each frame's instances are tracked as the
frame is predicted (one `PoseTracker` per video); the whole-video passes run on the kept poses
when the labels are built, and the tracks land on the labels' instances."""

from __future__ import annotations

from typing import Optional

import numpy as np
import sleap_io as sio

from sleap_export.core.errors import InputError
from sleap_export.core.model_types import BOX_HEAD_TYPES
from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.tracking.poses import TrackedPose
from sleap_export.runtime.tracking.tracker import PoseTracker
from sleap_export.runtime.tracking.tracking_options import TrackingOptions


def refuse_untrackable(spec: ModelSpec) -> None:
    """Tracking needs instances without identities: not a detector's boxes, not a multi-class model's classes."""
    if spec.model_type in BOX_HEAD_TYPES:
        raise InputError(
            f"A {spec.model_type} detector predicts boxes, not poses, so there is nothing to track; drop --tracking."
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
        self.trackers: dict[int, PoseTracker] = {}  # by id of the video

    def add(self, video: sio.Video, outputs, image: Optional[np.ndarray]) -> list[TrackedPose]:
        """One predicted frame (its `Outputs`, and its image for optical flow): its kept poses,
        tracked; ``index`` is the instance's position among the frame's valid instances."""
        valid = np.flatnonzero(np.asarray(outputs.instance_valid))
        points = np.asarray(outputs.pred_keypoints, dtype=np.float64)[valid]
        scores = np.asarray(outputs.instance_scores, dtype=np.float64)[valid]
        return self.track(video, int(outputs.frame_idx), points, scores, image)

    def track(self, video: sio.Video, frame_idx: int, points: np.ndarray, scores: np.ndarray,
              image: Optional[np.ndarray]) -> list[TrackedPose]:
        """One frame's poses (instances, nodes, 2) and instance scores, tracked in ``video``'s tracker;
        ``image`` is read for optical flow only."""
        tracker = self.trackers.get(id(video))
        if tracker is None:
            tracker = self.trackers[id(video)] = PoseTracker(self.options, self.n_nodes)
        return tracker.track(frame_idx, points, scores, image if self.options.use_flow else None)

    def apply(self, labels: sio.Labels) -> sio.Labels:
        """The passes over each video's kept poses, then every tracked frame's instances given their
        track (``track_N``, numbered on across videos) and tracking score; dropped instances removed."""
        tracked = {
            (video, frame_idx): poses
            for video, tracker in self.trackers.items()
            for frame_idx, poses in zip(tracker.frame_indices, tracker.finish())
        }
        tracks: dict[int, sio.Track] = {}
        offsets, offset = {}, 0
        for video in labels.videos:
            if id(video) in self.trackers:
                offsets[id(video)] = offset
                offset += self.trackers[id(video)].candidates.tracks_started
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
            lf.instances = [*lf.user_instances, *(instances[pose.index] for pose in poses)]
        labels.tracks = [tracks[name] for name in sorted(tracks)]
        return labels
