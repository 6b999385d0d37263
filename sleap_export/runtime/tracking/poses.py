"""`TrackedPose`: one detected pose as the tracker sees it, and what the tracker gives it."""

from __future__ import annotations

from typing import Optional

import attrs
import numpy as np


@attrs.define(eq=False)
class TrackedPose:
    """One instance of one frame: its points (nodes, 2; NaN where unseen), instance score;
    ``track`` and ``tracking_score`` once assigned.
    ``index`` is its position among the frame's instances as given; ``point_scores`` (nodes,)
    where known (the MOT trackers score a pose by them)."""

    points: np.ndarray
    score: float
    frame_idx: int
    index: int
    feature: object = None
    track: Optional[int] = None
    tracking_score: Optional[float] = None
    point_scores: Optional[np.ndarray] = None

    @property
    def support(self) -> int:
        """Visible points: gates spawning (min_new_track_points) and matching (min_match_points)."""
        return int((~np.isnan(self.points).any(axis=1)).sum())
