"""Where a frame's poses look for their tracks: the poses of the last ``window_size`` frames
(`FixedWindow`), or the last ``window_size`` poses of each track, at most ``max_tracks`` of them
(`LocalQueues`). Both keep sleap-nn's order of tracks and candidates, which decides ties."""

from __future__ import annotations

from collections import deque
from typing import Optional

from sleap_export.runtime.tracking.poses import TrackedPose


class FixedWindow:
    """Candidates: every tracked pose of the last ``window_size`` frames; tracks never capped."""

    def __init__(self, window_size: int, min_new_track_points: int):
        self.min_new_track_points = min_new_track_points
        self.frames: deque[list[TrackedPose]] = deque(maxlen=window_size)
        self.next_track = 0

    def is_empty(self) -> bool:
        return not self.frames

    def tracks(self) -> list:
        """The tracks in the window, as ``list(set)`` orders them (the columns of the cost matrix)."""
        found = set()
        for poses in self.frames:
            found.update(pose.track for pose in poses)
        return list(found)

    def candidates(self, track) -> list[TrackedPose]:
        """The first pose of ``track`` in each window frame, oldest first."""
        return [next(p for p in poses if p.track == track) for poses in self.frames if any(p.track == track for p in poses)]

    def reference_frames(self) -> list[list[TrackedPose]]:
        """The window's poses grouped by frame, for optical flow."""
        return [poses for poses in self.frames if poses]

    def spawn_slots(self) -> Optional[int]:
        return None

    @property
    def tracks_started(self) -> int:
        return self.next_track

    def _spawn(self, poses: list[TrackedPose]) -> bool:
        spawned = False
        for pose in poses:
            if pose.track is None and pose.support > self.min_new_track_points:
                pose.track, pose.tracking_score = self.next_track, 1.0
                self.next_track += 1
                spawned = True
        return spawned

    def first(self, poses: list[TrackedPose]) -> list[TrackedPose]:
        """An empty window: every pose with support starts a track; the frame joins the window if one did."""
        if self._spawn(poses):
            self.frames.append(poses)
        return [p for p in poses if p.track is not None]

    def update(self, poses: list[TrackedPose], pairs: list[tuple[int, int]], columns: list, scores: list) -> list[TrackedPose]:
        """Matched poses take their column's track; the frame joins the window (empty or not); the rest spawn."""
        for (row, col), score in zip(pairs, scores):
            poses[row].track, poses[row].tracking_score = columns[col], score
        self.frames.append(poses)
        if len(pairs) < len(poses):
            self._spawn(poses)
        return [p for p in poses if p.track is not None]


class LocalQueues:
    """Candidates: the last ``window_size`` poses of every track ever started; new tracks stop at
    ``max_tracks`` (a pose that would need one more is dropped)."""

    def __init__(self, window_size: int, min_new_track_points: int, max_tracks: Optional[int]):
        self.window_size = window_size
        self.min_new_track_points = min_new_track_points
        self.max_tracks = max_tracks
        self.queues: dict[int, deque[TrackedPose]] = {}

    def is_empty(self) -> bool:
        return not self.queues

    def tracks(self) -> list:
        return list(self.queues)  # 0, 1, ... in order: a column is its track

    def candidates(self, track) -> list[TrackedPose]:
        return list(self.queues[track])

    def reference_frames(self) -> list[list[TrackedPose]]:
        """The queued poses grouped by frame, frames in the order the queues first show them."""
        frames: dict[int, list[TrackedPose]] = {}
        for queue in self.queues.values():
            for pose in queue:
                frames.setdefault(pose.frame_idx, []).append(pose)
        return list(frames.values())

    def _next_track(self) -> Optional[int]:
        if not self.queues:
            return 0
        track = len(self.queues)
        return None if self.max_tracks is not None and track >= self.max_tracks else track

    @property
    def tracks_started(self) -> int:
        return len(self.queues)

    def spawn_slots(self) -> Optional[int]:
        return None if self.max_tracks is None else max(0, self.max_tracks - len(self.queues))

    def _spawn(self, pose: TrackedPose) -> bool:
        """Start a track for ``pose`` if it has support; False when the cap drops it."""
        if pose.support <= self.min_new_track_points:
            return True  # kept, untracked
        track = self._next_track()
        if track is None:
            return False
        pose.track, pose.tracking_score = track, 1.0
        self.queues[track] = deque([pose], maxlen=self.window_size)
        return True

    def first(self, poses: list[TrackedPose]) -> list[TrackedPose]:
        """No track yet: every pose with support starts one; poses without stay, untracked."""
        return [pose for pose in poses if self._spawn(pose)]

    def update(self, poses: list[TrackedPose], pairs: list[tuple[int, int]], columns: list, scores: list) -> list[TrackedPose]:
        """Matched poses join their track's queue; the rest start tracks (untracked ones are dropped)."""
        kept = []
        for (row, col), score in zip(pairs, scores):
            poses[row].track, poses[row].tracking_score = columns[col], score
            kept.append(poses[row])
        for pose in poses:
            if pose.track is not None:
                self.queues[pose.track].append(pose)
        matched = {row for row, _ in pairs}
        for row, pose in enumerate(poses):
            if row not in matched and self._spawn(pose):
                kept.append(pose)
        return [p for p in kept if p.track is not None]
