"""`MOTParams`: the settings a MOT tracker runs with: sleap-nn's "animal" preset for the
tracker, then the options the user set."""

from __future__ import annotations

import attrs

MOT_TRACKERS = ("sort", "bytetrack")
# sleap-nn's animal preset (scores normalized per video; ByteTrack's Kalman filter on
# [cx, cy, w, h]); fields not listed keep the MOTParams defaults.
ANIMAL_PRESETS = {
    "sort": dict(
        kalman="xysr", min_hits=3, track_buffer=30, track_high_threshold=0.1, track_low_threshold=0.1,
        new_track_threshold=0.1, min_match_similarity=0.3,
    ),
    "bytetrack": dict(
        kalman="xywh", min_hits=2, track_buffer=30, track_high_threshold=0.5, track_low_threshold=0.1,
        new_track_threshold=0.6, min_match_similarity=0.2,
    ),
}
# --scoring_method -> the MOT similarity.
SIMILARITIES = {"oks": "oks", "iou": "iou", "euclidean_dist": "centroid"}


@attrs.frozen
class MOTParams:
    """``similarity``: iou (padded boxes), oks (against the predicted pose) or centroid
    (Gaussian of the center distance, scale half the body size)."""

    tracker: str
    kalman: str
    similarity: str
    min_hits: int
    track_buffer: int
    track_high_threshold: float
    track_low_threshold: float
    new_track_threshold: float
    min_match_similarity: float
    oks_stddev: float = 0.1
    box_padding: float = 0.1
    normalize_scores: bool = True
    low_stage_min_similarity: float = 0.5
    unconfirmed_min_similarity: float = 0.3
    duplicate_similarity: float = 0.85
    fuse_score: bool = True


def mot_params(options, n_nodes: int) -> MOTParams:
    """The preset of ``options.tracker`` with the MOT options ``options`` sets (`TrackingOptions`).
    A one-node skeleton is compared by centroid distance (oks has no extent there)."""
    values = dict(ANIMAL_PRESETS[options.tracker])
    for name in ("min_hits", "track_buffer", "track_high_threshold", "track_low_threshold",
                 "new_track_threshold", "min_match_similarity", "oks_stddev"):
        if getattr(options, name) is not None:
            values[name] = getattr(options, name)
    similarity = SIMILARITIES[options.scoring_method] if options.scoring_method else ("centroid" if n_nodes == 1 else "iou")
    if similarity == "oks" and n_nodes == 1:
        similarity = "centroid"
    return MOTParams(tracker=options.tracker, similarity=similarity, fuse_score=options.tracker == "bytetrack", **values)
