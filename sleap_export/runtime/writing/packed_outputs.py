"""Frames' poses (and a detector's boxes, an embedding model's vectors) as a few flat arrays: what crosses Ray's object store, lands in a Ray
job's parts and in a local prediction's journal, and reads back as `Outputs`."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sleap_export.runtime.decoding.outputs import Outputs


def pack(outputs: Sequence[Outputs]) -> dict[str, np.ndarray]:
    """A chunk's poses as a few flat arrays (what crosses the object store and lands in a part)."""
    slots = [np.flatnonzero(np.asarray(o.instance_valid)) for o in outputs]
    arrays = {
        "frame_idx": np.asarray([o.frame_idx for o in outputs], np.int64),
        "counts": np.asarray([len(s) for s in slots], np.int64),
        "keypoints": np.concatenate([np.asarray(o.pred_keypoints)[s] for o, s in zip(outputs, slots)]),
        "peak_values": np.concatenate([np.asarray(o.pred_peak_values)[s] for o, s in zip(outputs, slots)]),
        "scores": np.concatenate([np.asarray(o.instance_scores)[s] for o, s in zip(outputs, slots)]),
    }
    if outputs[0].class_ids is not None:
        arrays["class_ids"] = np.concatenate([np.asarray(o.class_ids)[s] for o, s in zip(outputs, slots)])
        arrays["tracking_scores"] = np.concatenate(
            [np.asarray(o.instance_tracking_scores)[s] for o, s in zip(outputs, slots)]
        )
    if outputs[0].pred_embeddings is not None:
        arrays["embeddings"] = np.concatenate([np.asarray(o.pred_embeddings)[s] for o, s in zip(outputs, slots)])
    if outputs[0].pred_bboxes is not None:
        arrays["box_counts"] = np.asarray([len(o.pred_bboxes) for o in outputs], np.int64)
        for key, field in BOX_FIELDS.items():
            arrays[key] = np.concatenate([np.asarray(getattr(o, field)) for o in outputs])
    if outputs[0].pred_bbox_instance is not None:
        # Seeded slots renumbered among the frame's valid instances, as `unpack` keeps only those.
        arrays["box_instances"] = np.concatenate([
            np.asarray([np.searchsorted(s, slot) if slot in s else -1 for slot in o.pred_bbox_instance], np.int64)
            for o, s in zip(outputs, slots)
        ])
    return arrays


# A detector's completed box fields, by their packed names.
BOX_FIELDS = {"boxes": "pred_bboxes", "box_scores": "pred_bbox_scores", "box_classes": "pred_bbox_classes"}


def _boxes_of_frames(arrays) -> list[dict]:
    """Each frame's box fields from `pack`'s arrays (none without a detector's)."""
    if "box_counts" not in arrays:
        return [{} for _ in arrays["frame_idx"]]
    ends = np.cumsum(arrays["box_counts"])
    fields = dict(BOX_FIELDS, **({"box_instances": "pred_bbox_instance"} if "box_instances" in arrays else {}))
    return [
        {field: arrays[key][end - count : end] for key, field in fields.items()}
        for count, end in zip(arrays["box_counts"], ends)
    ]


def unpack(arrays) -> list[Outputs]:
    """`pack`'s frames back as `Outputs` holding only their valid instances, in slot order."""
    frames, start = [], 0
    for frame_idx, count, boxes in zip(arrays["frame_idx"], arrays["counts"], _boxes_of_frames(arrays)):
        kept = slice(start, start + int(count))
        start += int(count)
        identity = {}
        if "class_ids" in arrays:
            identity = {"class_ids": arrays["class_ids"][kept], "instance_tracking_scores": arrays["tracking_scores"][kept]}
        if "embeddings" in arrays:
            identity["pred_embeddings"] = arrays["embeddings"][kept]
        frames.append(
            Outputs(
                pred_keypoints=arrays["keypoints"][kept],
                pred_peak_values=arrays["peak_values"][kept],
                instance_scores=arrays["scores"][kept],
                instance_valid=np.ones(int(count), bool),
                frame_idx=int(frame_idx),
                **identity,
                **boxes,
            )
        )
    return frames
