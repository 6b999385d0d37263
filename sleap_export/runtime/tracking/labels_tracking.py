"""Tracking a `sio.Labels` whose instances were predicted without tracks (what
`sleap-nn predict --tracking` does to its predictions), one tracker per video."""

from __future__ import annotations

import numpy as np
import sleap_io as sio

from sleap_export.runtime.tracking.tracking_options import TrackingOptions
from sleap_export.runtime.tracking.tracking_stage import TrackingStage


def track_labels(labels: sio.Labels, options: TrackingOptions) -> sio.Labels:
    """Track the predicted instances of ``labels`` in place (frames in frame order per video), as
    `TrackingStage` tracks a prediction run: instances the tracker drops are removed, tracks named
    ``track_N`` across videos."""
    n_nodes = len(labels.skeletons[0].nodes) if labels.skeletons else 0
    stage = TrackingStage(options, n_nodes)
    for video in labels.videos:
        for lf in sorted((lf for lf in labels.labeled_frames if lf.video is video), key=lambda lf: lf.frame_idx):
            instances = lf.predicted_instances
            values = np.array([inst.numpy(scores=True) for inst in instances]).reshape(len(instances), n_nodes, 3)
            scores = np.array([inst.score for inst in instances])
            stage.track(video, lf.frame_idx, values[..., :2], scores, lf.image if options.use_flow else None, values[..., 2])
    return stage.apply(labels)
