"""Validating user frames and matching them to the model's channel count."""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np

from sleap_export.core.errors import InputError


def stack_frames(images: Sequence[np.ndarray]) -> np.ndarray:
    """Equal-shape frames -> one contiguous ``(N, H, W, C)`` batch.

    sleap-io's OpenCV reader hands out RGB frames as reversed views of OpenCV's
    BGR buffers; numpy copies those byte by byte (~1 ms for a 560x320 frame),
    OpenCV's vectorized channel swap in ~0.1 ms. OpenCV is only used when it is
    already loaded, which it is whenever such views come from sleap-io.
    """
    first = images[0]
    if first.dtype != np.uint8 or any(image.shape != first.shape for image in images):
        return np.stack(images)  # as_batch names the problem
    cv2 = sys.modules.get("cv2")
    batch = np.empty((len(images),) + first.shape, np.uint8)
    for slot, image in zip(batch, images):
        if cv2 is not None and image.ndim == 3 and image.shape[-1] == 3 and image[..., ::-1].flags.c_contiguous:
            cv2.cvtColor(image[..., ::-1], cv2.COLOR_BGR2RGB, dst=slot)
        else:
            slot[...] = image
    return batch


def as_batch(frames) -> np.ndarray:
    """``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)`` uint8 -> contiguous ``(N, H, W, C)``."""
    if not isinstance(frames, np.ndarray):
        if hasattr(frames, "detach"):  # a torch tensor
            frames = frames.detach().cpu().numpy()
        else:
            raise InputError(f"Frames must be a numpy uint8 array, got {type(frames).__name__}.")
    if frames.dtype != np.uint8:
        raise InputError(_not_uint8(frames))
    if frames.ndim == 2:
        frames = frames[None, :, :, None]
    elif frames.ndim == 3:
        if frames.shape[-1] not in (1, 3):
            if frames.shape[0] in (1, 3):
                raise InputError(
                    f"The frame looks channel-first, (C, H, W) = {frames.shape}; pass (H, W, C): frame.transpose(1, 2, 0)."
                )
            raise InputError(
                f"A single frame must be (H, W, C) with C 1 or 3, got shape {frames.shape}; "
                "pass a batch as (N, H, W, C)."
            )
        frames = frames[None]
    elif frames.ndim == 4 and frames.shape[-1] not in (1, 3) and frames.shape[1] in (1, 3):
        raise InputError(
            f"Frames look channel-first, (N, C, H, W) = {frames.shape}; pass (N, H, W, C): frames.transpose(0, 2, 3, 1)."
        )
    elif frames.ndim != 4:
        raise InputError(f"Frames must be (N, H, W, C), got shape {frames.shape}.")
    if frames.shape[0] == 0:
        raise InputError("Got an empty batch of frames; pass at least one frame.")
    return np.ascontiguousarray(frames)


def _not_uint8(frames: np.ndarray) -> str:
    """What is wrong with frames of another dtype, and the conversion that keeps their content."""
    if frames.dtype.kind == "f":
        if np.isnan(frames).any():
            return f"Frames must be uint8 in 0-255, got {frames.dtype} (it holds NaN); replace the NaN, then convert to uint8."
        # All zeros read the same either way; anything brighter but at most 1 is a [0, 1] image.
        if frames.size and frames.min() >= 0 and 0 < frames.max() <= 1:
            return (
                f"Frames must be uint8 in 0-255, got {frames.dtype} in [0, 1]; scale them: "
                "(frames * 255).round().astype(np.uint8)."
            )
    return f"Frames must be uint8 in 0-255, got {frames.dtype}; convert with np.clip(frames, 0, 255).astype(np.uint8)."


def match_channels(frames: np.ndarray, channels: int) -> np.ndarray:
    """Convert RGB<->grayscale the way sleap-nn does; refuse ambiguous counts."""
    have = frames.shape[-1]
    if have == channels:
        return frames
    if have == 1 and channels == 3:
        return np.repeat(frames, 3, axis=-1)
    if have == 3 and channels == 1:
        # torchvision's rgb_to_grayscale in float32, truncated back to uint8.
        rgb = frames.astype(np.float32)
        gray = rgb[..., 0] * np.float32(0.2989) + rgb[..., 1] * np.float32(0.587) + rgb[..., 2] * np.float32(0.114)
        return gray.astype(np.uint8)[..., None]
    raise InputError(
        f"Frames have {have} channels but the model takes {channels}; pass grayscale "
        "(1) or RGB (3) frames."
    )
