"""Which detections of a .slp a lone embedding run embeds, and where each one's crop is centred.

sleap-nn embeds one carrier per file (``resolve_embedding_detection_mode``): pose instances or masks. A run
records the carrier it was trained on; that one is embedded whenever the file holds any, else the other.
A run that records none embeds the carrier holding more detections (ties: masks). A pose's crop is
centred on its anchor node or the mean of its visible nodes, a mask's on its centre of mass (or its
bounding box's midpoint under ``crop_centering: bbox``), as sleap-nn's ``EmbeddingDataset`` centres them.
"""

from __future__ import annotations

import warnings
from typing import Optional

import attrs
import numpy as np
import sleap_io as sio

from sleap_export.runtime.drivers.resized_mask_centre import mask_window_on_frame, resized_mask_centre

POSE = "pose"
MASK = "mask"


class CarrierWarning(UserWarning):
    """The run's own carrier is missing from the labels, so the other one is embedded."""


def pose_crop_centre(instance, anchor_part: Optional[str]) -> Optional[np.ndarray]:
    """Where sleap-nn centres a pose's crop (``generate_centroids`` in float32): its anchor node where the run
    names one its skeleton has and it is visible, else the mean of its visible nodes per axis; None for a pose
    with no visible node (sleap-nn gives it no vector)."""
    points = np.asarray(instance.numpy(), np.float64).astype(np.float32)
    names = [node.name for node in instance.skeleton.nodes]
    if anchor_part in names and not np.isnan(points[names.index(anchor_part)]).any():
        centre = points[names.index(anchor_part)]
    else:
        seen = ~np.isnan(points)
        with np.errstate(invalid="ignore", divide="ignore"):
            centre = (np.where(seen, points, 0).sum(axis=0, dtype=np.float32) / seen.sum(axis=0)).astype(np.float32)
    return centre if np.isfinite(centre).all() else None


def mask_has_pixels(mask: sio.SegmentationMask) -> bool:
    """Whether a mask covers at least one image pixel (sleap-nn embeds no empty mask: nothing to centre on)."""
    sx, sy = tuple(mask.scale or (1.0, 1.0))
    return float(mask.area) / max(float(sx) * float(sy), 1e-12) >= 1.0


def mask_crop_centre(mask: sio.SegmentationMask, frame_hw: tuple[int, int], centering: Optional[str]) -> np.ndarray:
    """``(x, y)`` of a mask's crop centre in frame pixels: the mask read at image resolution (its grid resampled
    nearest-neighbour to its image extent, placed at its rounded offset), cut to the frame; its centre of mass
    (coordinate sums are exact integers, one rounded quotient), or its bounding box's midpoint under "bbox";
    the frame's centre when nothing of it is on the frame."""
    placed = mask_window_on_frame(mask, *frame_hw)
    if placed is None:
        return np.array([frame_hw[1] / 2.0, frame_hw[0] / 2.0], np.float32)
    window, top, left = placed
    rows, cols = np.nonzero(window)
    rows, cols = rows.astype(np.int64) + top, cols.astype(np.int64) + left
    if centering == "bbox":
        return np.array([(cols.min() + cols.max()) / 2.0, (rows.min() + rows.max()) / 2.0], np.float32)
    return np.array([int(cols.sum()) / rows.size, int(rows.sum()) / rows.size], np.float32)


def size_scale(frame_hw: tuple[int, int], max_hw: tuple[Optional[int], Optional[int]]) -> np.float32:
    """The graph's float32 size-matching scale of a frame (``match_size``; 1 where the run matches no size)."""
    target = [frame_hw[i] if max_hw[i] is None else int(max_hw[i]) for i in (0, 1)]
    return np.float32(min(target[0] / frame_hw[0], target[1] / frame_hw[1]))


def frame_centre_of(resized_centre: np.ndarray, scale: np.float32) -> np.ndarray:
    """The frame-pixel centre the graph scales (``centre * scale`` in float32) back onto ``resized_centre``:
    the float32 quotient, or one of its neighbours where the product rounds away from it."""
    centre = (resized_centre.astype(np.float64) / np.float64(scale)).astype(np.float32)
    for axis in (0, 1):
        candidates = [centre[axis]]
        for direction in (-np.inf, np.inf):
            step = centre[axis]
            for _ in range(2):
                step = np.nextafter(step, np.float32(direction))
                candidates.append(step)
        products = [abs(float(np.float32(c * scale)) - float(resized_centre[axis])) for c in candidates]
        centre[axis] = candidates[int(np.argmin(products))]
    return centre


def mask_centre_for_graph(
    mask: sio.SegmentationMask, frame_hw: tuple[int, int], max_hw: tuple[Optional[int], Optional[int]],
    centering: Optional[str],
) -> np.ndarray:
    """A mask's crop centre in frame pixels as the artifact takes it. On a frame the run's size matching
    leaves as it is, the mask's own centre; on one it resizes, sleap-nn centres the crop on the resized
    mask (`resized_mask_centre`), which is not the scaled centre of the mask."""
    scale = size_scale(frame_hw, max_hw)
    if scale == 1:
        return mask_crop_centre(mask, frame_hw, centering)
    return frame_centre_of(resized_mask_centre(mask, frame_hw, max_hw, centering), scale)


@attrs.frozen
class Carriers:
    """Every frame's embeddable detections: ``{(id(video), frame): [detection, ...]}`` per carrier."""

    poses: dict
    masks: dict

    @classmethod
    def of(cls, labels: sio.Labels, anchor_part: Optional[str]) -> "Carriers":
        poses, masks = {}, {}
        for lf in labels.labeled_frames:
            key = (id(lf.video), lf.frame_idx)
            found = [i for i in lf.instances if pose_crop_centre(i, anchor_part) is not None]
            if found:
                poses[key] = found
            found = [m for m in (getattr(lf, "masks", None) or []) if mask_has_pixels(m)]
            if found:
                masks[key] = found
        return cls(poses, masks)

    def count(self, carrier: str) -> int:
        return sum(map(len, (self.poses if carrier == POSE else self.masks).values()))

    def chosen(self, preferred: Optional[str]) -> str:
        """The carrier sleap-nn embeds for a run trained on ``preferred`` (None: not recorded)."""
        counts = {POSE: self.count(POSE), MASK: self.count(MASK)}
        if preferred is None:
            return POSE if counts[MASK] == 0 or counts[MASK] < counts[POSE] else MASK
        other = MASK if preferred == POSE else POSE
        if counts[preferred] == 0 and counts[other] > 0:
            warnings.warn(
                CarrierWarning(
                    f"the embedding run was trained on {preferred}s and these labels hold none; embedding their "
                    f"{counts[other]} {other}s instead, as sleap-nn does"
                ),
                stacklevel=3,
            )
            return other
        return preferred

    def centres(
        self, carrier: str, anchor_part: Optional[str], frame_sizes: dict, max_hw: tuple, centering: Optional[str]
    ) -> dict:
        """``{(id(video), frame): (detections, (n, 2) float32 crop centres)}`` of ``carrier``; ``frame_sizes``:
        each video's ``(height, width)``, ``max_hw``: the run's size matching."""
        if carrier == POSE:
            return {
                key: (found, np.stack([pose_crop_centre(i, anchor_part) for i in found]))
                for key, found in self.poses.items()
            }
        return {
            key: (found, np.stack([mask_centre_for_graph(m, frame_sizes[key[0]], max_hw, centering) for m in found]))
            for key, found in self.masks.items()
        }


def embedded_detections(labels: sio.Labels, stage) -> dict:
    """``{(id(video), frame): (detections, (n, 2) float32 crop centres in frame pixels)}`` of the carrier a
    lone embedding ``stage`` (`StageSpec`) embeds in ``labels``; empty when they hold nothing to embed."""
    carriers = Carriers.of(labels, stage.anchor_part)
    if not carriers.poses and not carriers.masks:
        return {}
    carrier = carriers.chosen(stage.preferred_carrier)
    frame_sizes = {id(video): tuple(video.shape[1:3]) for video in labels.videos} if carrier == MASK else {}
    return carriers.centres(
        carrier, stage.anchor_part, frame_sizes, (stage.max_height, stage.max_width), stage.crop_centering
    )
