"""Check a freshly written artifact against the eager module before accepting it."""

from __future__ import annotations

from typing import Optional

import numpy as np

from sleap_export.core.errors import SleapExportError
from sleap_export.core.spec import ModelSpec

# Max |difference| between artifact and eager outputs, in pixels for keypoints
# (and in confidence units for values). Runtimes differ in convolution
# summation order only, which moves refined peaks by ~1e-4 px.
VERIFY_TOLERANCE = 1e-2
# Masks decided by exact comparisons of verified maps (thresholds, peak windows): on the flat
# backgrounds of sample frames, summation order flips tied pixels, so these may differ in a share of
# their pixels up to this.
TIED_MASKS = ("pred_foreground", "pred_center_candidates", "pred_crop_masks")
TIED_MASK_SHARE = 1e-2


def sample_frames(spec: ModelSpec, batch: int = 2, size: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Deterministic frames with smooth blobs, at ``size`` or the training size.

    Blobs give the networks peaked responses to decode, unlike noise or zeros.
    """
    stage = spec.stages[0]
    height, width = size or (stage.max_height or 256, stage.max_width or 256)
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width]
    frames = np.zeros((batch, height, width, stage.in_channels), np.uint8)
    for b in range(batch):
        image = np.full((height, width), 30.0)
        for _ in range(3):
            cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
            image += 200 * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * (0.04 * height) ** 2))
        frames[b] = np.clip(image, 0, 255).astype(np.uint8)[..., None]
    return frames


def sample_inputs(spec: ModelSpec, batch: int = 2, size: Optional[tuple[int, int]] = None) -> tuple[np.ndarray, ...]:
    """Sample values for every graph input: frames, plus centroids where taken."""
    frames = sample_frames(spec, batch, size)
    if "centroids" not in spec.input_names:
        return (frames,)
    height, width = frames.shape[1:3]
    centroids = np.array([[width * 0.3, height * 0.4], [width * 0.6, height * 0.55], [0, 0]], np.float32)
    centroids = np.repeat(centroids[None], batch, axis=0)
    valid = np.repeat(np.array([[True, True, False]]), batch, axis=0)
    return frames, centroids, valid


def verify_outputs(spec: ModelSpec, expected, actual, label: str) -> None:
    """Raise when the artifact's outputs differ from the eager module's."""
    for name, want, got in zip(spec.output_names, expected, actual):
        want, got = np.asarray(want), np.asarray(got)
        if want.shape != got.shape:
            raise SleapExportError(
                f"{label} output {name} has shape {got.shape}, expected {want.shape}; "
                "report this as a sleap-export bug."
            )
        if want.dtype == bool:
            diff = (want != got).astype(np.float64)
        else:
            both_nan = np.isnan(want) & np.isnan(got)
            diff = np.nan_to_num(np.where(both_nan, 0.0, np.abs(want.astype(np.float64) - got)), nan=np.inf)
        if name in TIED_MASKS:
            share = float(diff.mean()) if diff.size else 0.0
            if share > TIED_MASK_SHARE:
                raise SleapExportError(
                    f"{label} mask {name} differs from the eager model's at {share:.2%} of its pixels "
                    f"(tolerance {TIED_MASK_SHARE:.0%}); report this as a sleap-export bug."
                )
            continue
        error = float(diff.max(initial=0.0))
        if error > VERIFY_TOLERANCE:
            raise SleapExportError(
                f"{label} output {name} differs from the eager model by {error:.3g} at "
                f"{int((diff > VERIFY_TOLERANCE).sum())} of {diff.size} values "
                f"(tolerance {VERIFY_TOLERANCE}); report this as a sleap-export bug."
            )
