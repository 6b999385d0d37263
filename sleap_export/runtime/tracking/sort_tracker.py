"""`SORTTracker`: SORT's association (Bewley et al. 2016) as sleap-nn runs it: one pool of
every live track, one assignment on geometric similarity per frame."""

from __future__ import annotations

import numpy as np

from sleap_export.runtime.tracking.mot_detections import Detections
from sleap_export.runtime.tracking.mot_tracker import Association, MOTTracker, assign


class SORTTracker(MOTTracker):
    """A new track starts at 0 hits and confirms after ``min_hits`` more consecutive
    matches; tentative tracks coast through misses."""

    hits_start = 0
    confirm_on_streak = True
    tentative_dies_on_miss = False

    def associate(self, dets: Detections) -> Association:
        """Detections scoring at or below track_low_threshold are ignored. Pairs at least
        min_match_similarity alike are taken as they are when one-to-one, else assigned."""
        p = self.params
        ignored = dets.scores <= p.track_low_threshold
        result = Association(no_spawn=set(np.flatnonzero(ignored).tolist()))
        candidates = np.flatnonzero(dets.valid & ~ignored)
        if not self.tracks or not len(candidates):
            return result
        tracks = list(self.tracks)
        similarity = self.similarity(tracks, dets)[:, candidates]
        admissible = similarity >= p.min_match_similarity
        if admissible.any() and admissible.sum(axis=1).max() <= 1 and admissible.sum(axis=0).max() <= 1:
            pairs = [(int(r), int(c)) for r, c in np.argwhere(admissible)]
        else:
            pairs = assign(np.where(admissible, 1.0 - similarity, np.inf), 1.0 - p.min_match_similarity)
        result.matches = [(tracks[r], int(candidates[c]), float(similarity[r, c])) for r, c in pairs]
        return result
