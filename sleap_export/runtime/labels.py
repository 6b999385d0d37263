"""Building `sio.Labels` from completed `Outputs`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import sleap_io as sio

from sleap_export.errors import SleapExportError
from sleap_export.files import written_atomically
from sleap_export.runtime.outputs import Outputs
from sleap_export.spec import ModelSpec


def output_skeleton(spec: ModelSpec) -> sio.Skeleton:
    """The skeleton the artifact's instances use (sleap-nn's centroid skeleton too)."""
    if spec.output_node_names != spec.skeleton.nodes:
        return sio.Skeleton(nodes=list(spec.output_node_names), name="centroid")
    nodes = [sio.Node(name) for name in spec.skeleton.nodes]
    return sio.Skeleton(
        nodes=nodes,
        edges=[sio.Edge(nodes[a], nodes[b]) for a, b in spec.skeleton.edges],
        symmetries=[sio.Symmetry({nodes[a], nodes[b]}) for a, b in spec.skeleton.symmetries],
        name=spec.skeleton.name,
    )


def class_tracks(spec: ModelSpec) -> list[sio.Track]:
    """One track per class of a multi-class model, named as in its training config."""
    return [sio.Track(name=name) for name in spec.class_names]


def predicted_instances(
    outputs: Outputs, skeleton: sio.Skeleton, tracks: Sequence[sio.Track] = ()
) -> list[sio.PredictedInstance]:
    """The valid instances of one frame, in slot order, with their class's track."""
    instances = []
    for i in np.flatnonzero(np.asarray(outputs.instance_valid)):
        identity = {}
        if outputs.class_ids is not None and outputs.class_ids[i] >= 0:
            identity = {
                "track": tracks[int(outputs.class_ids[i])],
                "tracking_score": float(outputs.instance_tracking_scores[i]),
            }
        instances.append(
            sio.PredictedInstance.from_numpy(
                points_data=np.asarray(outputs.pred_keypoints[i], dtype=np.float64),
                point_scores=np.asarray(outputs.pred_peak_values[i], dtype=np.float64),
                score=float(outputs.instance_scores[i]),
                skeleton=skeleton,
                **identity,
            )
        )
    return instances


def labeled_frame(
    outputs: Outputs, video: sio.Video, skeleton: sio.Skeleton, tracks: Sequence[sio.Track] = ()
) -> sio.LabeledFrame:
    return sio.LabeledFrame(
        video=video, frame_idx=int(outputs.frame_idx), instances=predicted_instances(outputs, skeleton, tracks)
    )


def save_labels_atomically(labels: sio.Labels, path: str | Path) -> Path:
    """Write ``.slp`` to a temporary sibling, then rename: no half-written file."""
    path = Path(path)
    try:
        with written_atomically(path, suffix=".slp") as partial:
            sio.save_slp(labels, str(partial))
    except OSError as err:
        raise SleapExportError(
            f"Could not write {path} ({err.strerror or err}); free space or choose another folder."
        ) from None
    return path


def provenance(spec: ModelSpec, artifact: Optional[str]) -> dict:
    return {
        "sleap_export.artifact": str(artifact) if artifact else None,
        "sleap_export.model_type": spec.model_type,
        "sleap_export.checkpoint_sha256": [s.checkpoint_sha256 for s in spec.stages],
        "sleap_export.versions": spec.versions,
    }
