"""Passes over a whole video's tracked poses (or one frame's before tracking): culling to an
instance count (overlaps first, by box NMS, then the lowest scores) and connecting single-frame
breaks, as sleap-nn runs them."""

from __future__ import annotations

import numpy as np

from sleap_export.runtime.tracking.poses import TrackedPose
from sleap_export.runtime.tracking.scoring import pose_feature


def _nms_keep(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, target: int) -> list[int]:
    """Greedy NMS from the best score (overlap over the other box's area, +1 px boxes); suppressed
    boxes come back, best first, while fewer than ``target`` remain."""
    if len(boxes) < target:
        return list(range(len(boxes)))
    x0, y0, x1, y1 = boxes.T
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = np.argsort(scores)
    picked, suppressed = [], []
    while len(order) > 0:
        best, rest = order[-1], order[:-1]
        picked.append(best)
        w = np.maximum(0, np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]) + 1)
        h = np.maximum(0, np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]) + 1)
        over = np.where((w * h) / area[rest] > iou_threshold)[0]
        suppressed.extend(rest[over])
        order = np.delete(order, over)[:-1]
    if suppressed and len(picked) < target:
        suppressed.sort(key=lambda i: -scores[i])
        picked.extend(suppressed[: target - len(picked)])
    return picked


def poses_over_count(poses: list[TrackedPose], count: int, iou_threshold: float) -> list[TrackedPose]:
    """The poses to remove to keep ``count``: overlapping ones first (if ``iou_threshold``), then the lowest scores."""
    if len(poses) <= count:
        return []
    kept, extra = poses, []
    if iou_threshold:
        boxes = np.array([pose_feature(p.points, "bboxes") for p in poses])
        picks = set(_nms_keep(boxes, np.array([p.score for p in poses]), iou_threshold, count))
        kept = [p for i, p in enumerate(poses) if i in picks]
        extra = [p for i, p in enumerate(poses) if i not in picks]
    if len(kept) > count:
        extra += sorted(kept, key=lambda p: p.score)[: len(kept) - count]
    return extra


def cull(frames: list[list[TrackedPose]], count: int, iou_threshold: float) -> list[list[TrackedPose]]:
    """Each frame's poses over ``count`` removed (order kept)."""
    culled = []
    for poses in frames:
        extra = {id(p) for p in poses_over_count(poses, count, iou_threshold)}
        culled.append([p for p in poses if id(p) not in extra])
    return culled


def connect_single_breaks(frames: list[list[TrackedPose]]) -> None:
    """Where exactly one track went missing and exactly one new one appeared, the new one takes
    the missing one's place (from then on); in place, frames in order."""
    if not frames:
        return
    renamed: dict = {}
    last_good = {p.track for p in frames[0]}
    for poses in frames:
        tracks = {p.track for p in poses}
        if tracks & set(renamed):
            for pose in poses:
                if pose.track in renamed and renamed[pose.track] not in tracks:
                    pose.track = renamed[pose.track]
                    tracks = {p.track for p in poses}
        extra, missing = tracks - last_good, last_good - tracks
        if len(extra) == 1 and len(missing) == 1:
            new = next(p for p in poses if p.track in extra)
            renamed[new.track] = missing.pop()
            new.track = renamed[new.track]
        elif len(tracks) >= len(last_good):
            last_good = tracks
