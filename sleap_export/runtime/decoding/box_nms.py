"""Class-wise IoU-NMS of box detections on the host, as torchvision's ``batched_nms`` in sleap-nn.

Greedy in descending score: a box suppresses the later boxes of its class whose
IoU with it exceeds the threshold (areas without the +1 of pixel-inclusive
conventions, as torchvision computes them).
"""

from __future__ import annotations

import numpy as np


def iou_with(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of ``boxes``."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


def class_wise_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept, in descending score."""
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(len(boxes), bool)
    kept = []
    for i in order:
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= (classes == classes[i]) & (iou_with(boxes[i], boxes) > iou_threshold)
    return np.asarray(kept, dtype=np.int64)
