"""Tracking a `sio.Labels` whose instances were predicted without tracks (what
`sleap-nn predict --tracking` does to its predictions), one tracker per video."""

from __future__ import annotations

import numpy as np
import sleap_io as sio

from sleap_export.runtime.tracking.tracker import PoseTracker
from sleap_export.runtime.tracking.tracking_options import TrackingOptions


def track_labels(labels: sio.Labels, options: TrackingOptions) -> sio.Labels:
    """Track the predicted instances of ``labels`` in place (frames in frame order per video):
    instances the tracker drops are removed, tracks named ``track_N`` across videos."""
    n_nodes = len(labels.skeletons[0].nodes) if labels.skeletons else 0
    tracks: dict[int, sio.Track] = {}
    offset = 0
    for video in labels.videos:
        frames = sorted((lf for lf in labels.labeled_frames if lf.video is video), key=lambda lf: lf.frame_idx)
        tracker = PoseTracker(options, n_nodes)
        for lf in frames:
            instances = list(lf.predicted_instances)
            points = np.array([inst.numpy() for inst in instances]).reshape(len(instances), n_nodes, 2)
            scores = np.array([inst.score for inst in instances])
            tracker.track(lf.frame_idx, points, scores, lf.image if options.use_flow else None)
        for lf, poses in zip(frames, tracker.finish()):
            instances = list(lf.predicted_instances)
            kept = []
            for pose in poses:
                instance = instances[pose.index]
                if pose.track is not None:
                    name = pose.track + offset
                    instance.track = tracks.setdefault(name, sio.Track(f"track_{name}"))
                    instance.tracking_score = pose.tracking_score
                kept.append(instance)
            lf.instances = [*lf.user_instances, *kept]
        offset += tracker.candidates.tracks_started
    labels.tracks = [tracks[k] for k in sorted(tracks)]
    return labels
