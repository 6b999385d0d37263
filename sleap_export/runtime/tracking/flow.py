"""Optical-flow shift: candidates moved onto the new frame by pyramidal Lucas-Kanade flow
(OpenCV's calcOpticalFlowPyrLK, with sleap-nn's parameters), points flow loses set to NaN."""

from __future__ import annotations

import cv2
import numpy as np

from sleap_export.runtime.tracking.poses import TrackedPose
from sleap_export.runtime.tracking.scoring import pose_feature

# sleap-nn's termination: 30 iterations or a 0.01 px step.
_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)


def _flow_image(image: np.ndarray, scale: float) -> np.ndarray:
    """The image as sleap-nn hands it to OpenCV: uint8, singleton axes dropped, scaled."""
    if np.issubdtype(image.dtype, np.floating):
        image = image.astype("uint8")
    if image.ndim > 3:
        image = np.squeeze(image)
    if image.ndim > 2 and image.shape[0] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if scale != 1:
        image = cv2.resize(image, None, None, scale, scale)
    return image


def shifted_candidates(
    frames: list[list[TrackedPose]],
    images: dict[int, np.ndarray],
    new_image: np.ndarray,
    features: str,
    scale: float,
    window: int,
    levels: int,
) -> dict:
    """Track -> [(feature of the shifted pose, support of the pose it came from)], frames in order.

    ``frames``: candidate poses grouped by their frame; ``images``: each frame's image by index."""
    shifted: dict = {}
    new = _flow_image(new_image, scale)
    for poses in frames:
        reference = _flow_image(images[poses[0].frame_idx], scale)
        points = np.concatenate([p.points for p in poses], axis=0).astype("float32") * scale
        moved, status, _ = cv2.calcOpticalFlowPyrLK(
            reference, new, points, None, winSize=(window, window), maxLevel=levels, criteria=_CRITERIA
        )
        moved /= scale
        found = status.reshape(-1).astype(bool)
        moved[~found] = np.nan
        for pose, pose_points in zip(poses, np.split(moved, np.cumsum([len(p.points) for p in poses])[:-1])):
            shifted.setdefault(pose.track, []).append((pose_feature(pose_points, features), pose.support))
    return shifted
