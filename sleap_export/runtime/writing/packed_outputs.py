"""Frames' poses (and a detector's boxes, an embedding model's vectors, a segmentation model's masks)
as a few flat arrays: what crosses Ray's object store, lands in a Ray job's parts and in a local
prediction's journal, and reads back as `Outputs`. Masks stay run-length coded; their polygons travel
as well-known binary (no pickles)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import sleap_io as sio

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
    if any(o.masks or o.rois for o in outputs):
        arrays.update(_pack_masks(outputs))
    return arrays


def _pack_masks(outputs: Sequence[Outputs]) -> dict[str, np.ndarray]:
    """Each frame's masks (run lengths, grids, placement, scores) and polygons (WKB) as flat arrays."""
    import shapely

    masks = [m for o in outputs for m in o.masks]
    rois = [r for o in outputs for r in o.rois]
    wkb = [shapely.to_wkb(r.geometry) for r in rois]
    return {
        "mask_counts": np.asarray([len(o.masks) for o in outputs], np.int64),
        "mask_run_counts": np.asarray([len(m.rle_counts) for m in masks], np.int64),
        "mask_runs": np.concatenate([np.asarray(m.rle_counts, np.uint32) for m in masks] or [np.zeros(0, np.uint32)]),
        "mask_grids": np.asarray([(m.height, m.width) for m in masks], np.int64).reshape(-1, 2),
        "mask_scales": np.asarray([m.scale for m in masks], np.float64).reshape(-1, 2),
        "mask_offsets": np.asarray([m.offset for m in masks], np.float64).reshape(-1, 2),
        "mask_scores": np.asarray([m.score for m in masks], np.float64),
        "roi_counts": np.asarray([len(o.rois) for o in outputs], np.int64),
        "roi_wkb_lengths": np.asarray([len(b) for b in wkb], np.int64),
        "roi_wkb": np.frombuffer(b"".join(wkb), np.uint8),
        "roi_scores": np.asarray([r.score for r in rois], np.float64),
    }


def _masks_of_frames(arrays) -> list[dict]:
    """Each frame's ``masks`` and ``rois`` from `pack`'s arrays (none without a segmentation model's)."""
    if "mask_counts" not in arrays:
        return [{} for _ in arrays["frame_idx"]]
    import shapely

    run_ends = np.cumsum(arrays["mask_run_counts"])
    masks = [
        sio.PredictedSegmentationMask(
            rle_counts=arrays["mask_runs"][end - count : end], height=int(grid[0]), width=int(grid[1]),
            scale=tuple(map(float, scale)), offset=tuple(map(float, offset)), score=float(score),
        )
        for count, end, grid, scale, offset, score in zip(
            arrays["mask_run_counts"], run_ends, arrays["mask_grids"], arrays["mask_scales"], arrays["mask_offsets"],
            arrays["mask_scores"],
        )
    ]
    wkb_ends = np.cumsum(arrays["roi_wkb_lengths"])
    rois = [
        sio.PredictedROI(geometry=shapely.from_wkb(arrays["roi_wkb"][end - length : end].tobytes()), score=float(score))
        for length, end, score in zip(arrays["roi_wkb_lengths"], wkb_ends, arrays["roi_scores"])
    ]
    mask_ends, roi_ends = np.cumsum(arrays["mask_counts"]), np.cumsum(arrays["roi_counts"])
    return [
        {"masks": tuple(masks[m_end - m_count : m_end]), "rois": tuple(rois[r_end - r_count : r_end])}
        for m_count, m_end, r_count, r_end in zip(arrays["mask_counts"], mask_ends, arrays["roi_counts"], roi_ends)
    ]


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


# What `pack` reads of a frame's `Outputs`.
PACKED_FIELDS = (
    "frame_idx", "instance_valid", "pred_keypoints", "pred_peak_values", "instance_scores", "class_ids",
    "instance_tracking_scores", "pred_embeddings", *BOX_FIELDS.values(), "pred_bbox_instance", "masks", "rois",
)


def packable(outputs: Outputs) -> Outputs:
    """``outputs`` holding only what `pack` keeps: for frames gathered before they are packed (a Ray
    chunk), so that no frame keeps its graph's dense grids (a segmentation model's foreground,
    center heatmap and offsets: ~0.5 MB a frame at 384 x 384) or its image alive meanwhile."""
    return Outputs(**{name: getattr(outputs, name) for name in PACKED_FIELDS})


def unpack(arrays) -> list[Outputs]:
    """`pack`'s frames back as `Outputs` holding only their valid instances, in slot order."""
    # Read once: an ``np.load`` file reads (and decompresses) an array again at every lookup, so
    # per-frame lookups would read a chunk's arrays once per frame (44 s for 480 frames of masks).
    arrays = {key: np.asarray(arrays[key]) for key in arrays.keys()}
    frames, start = [], 0
    frame_fields = zip(arrays["frame_idx"], arrays["counts"], _boxes_of_frames(arrays), _masks_of_frames(arrays))
    for frame_idx, count, boxes, masks in frame_fields:
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
                **masks,
            )
        )
    return frames
