"""Our tracker against sleap-nn's `apply_tracking` on the same predicted labels: parity (instances,
frames, tracks, tie-decided matches) and speed (tracking only, one run each).

    python scripts/tracking_vs_sleap_nn.py PREDICTIONS.slp [PREDICTIONS2.slp ...]

PREDICTIONS: untracked `sleap-export predict` output (a multi-animal model's). Prints one line per
setting: frames, instances, tracks, matches decided by an exact tie, seconds for sleap-nn and for
us, and their ratio.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import sleap_io as sio
from sleap_nn.inference.tracking import TrackerConfig, apply_tracking

from sleap_export.runtime.tracking import TrackingOptions
from sleap_export.runtime.tracking import tracker as tracker_module
from sleap_export.runtime.tracking.labels_tracking import track_labels

SETTINGS = {
    "defaults (oks, fixed window 5, hungarian)": {},
    "iou on boxes": {"scoring_method": "iou", "features": "bboxes"},
    "greedy": {"track_matching_method": "greedy"},
    "max_tracks 2": {"max_tracks": 2},
    "optical flow": {"use_flow": True},
    "optical flow, max_tracks 2, cull 2": {"use_flow": True, "max_tracks": 2, "tracking_clean_instance_count": 2},
}


def tie_counting(counter: list):
    """PoseTracker._feasible wrapped to count kept matches whose cost equals another in its row or column."""
    feasible = tracker_module.PoseTracker._feasible

    def counted(self, poses, pairs, cost):
        kept = feasible(self, poses, pairs, cost)
        for row, col in kept:
            others = np.concatenate([np.delete(cost[row], col), np.delete(cost[:, col], row)])
            counter[0] += bool(np.isfinite(cost[row, col]) and (others == cost[row, col]).any())
        return kept

    return counted


def partition(labels: sio.Labels) -> list:
    """Per frame: (points bytes, track name) sorted, with track names replaced by first-seen order."""
    names: dict = {}
    frames = []
    for lf in sorted(labels.labeled_frames, key=lambda lf: lf.frame_idx):
        entries = sorted((inst.numpy().tobytes(), inst.track.name if inst.track else None) for inst in lf.predicted_instances)
        frames.append([(points, names.setdefault(track, len(names))) for points, track in entries])
    return frames


def main(paths: list[str]) -> None:
    for path in paths:
        for name, settings in SETTINGS.items():
            theirs = sio.load_slp(path)
            started = time.perf_counter()
            apply_tracking(theirs, TrackerConfig(**settings))
            their_seconds = time.perf_counter() - started
            ours = sio.load_slp(path)
            ties = [0]
            tracker_module.PoseTracker._feasible, plain = tie_counting(ties), tracker_module.PoseTracker._feasible
            started = time.perf_counter()
            track_labels(ours, TrackingOptions(**settings))
            our_seconds = time.perf_counter() - started
            tracker_module.PoseTracker._feasible = plain
            same = partition(ours) == partition(theirs)
            instances = sum(len(lf.predicted_instances) for lf in ours.labeled_frames)
            print(
                f"{path} | {name} | {len(ours.labeled_frames)} frames, {instances} instances, {len(ours.tracks)} tracks | "
                f"same tracks: {same} | tie-decided matches: {ties[0]} | sleap-nn {their_seconds:.2f} s, "
                f"ours {our_seconds:.2f} s: {their_seconds / our_seconds:.1f}x"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
