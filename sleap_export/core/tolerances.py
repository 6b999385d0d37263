"""How close to sleap-nn an artifact must come, by precision: one table for `check` and
for the export's accuracy gate alike."""

from __future__ import annotations

from typing import Optional

import attrs


@attrs.frozen
class Tolerance:
    """What an artifact must meet against the reference on the checked frames."""

    # Matched keypoint deviation at ``percentile``, in pixels.
    max_deviation_px: float
    # Share of frames with the same number of instances (and of matched instances with the same track).
    min_agreement: float
    percentile: float = 99.0
    # Worst cosine similarity of an appearance vector to its fp32 twin (embedding artifacts' gate).
    min_vector_cosine: float = 1.0


# fp32 differs from sleap-nn by float summation order only (~1e-4 px; near-tied
# peaks of weakly trained models flip on <1% of frames); reduced precision moves
# peaks by a fraction of a confidence-map pixel. fp32 TensorRT engines compute the
# resize weights in float32 (TensorRT has no float64): on resized frames at most 2
# grey levels on <0.5% of pixels (tests/test_exactness.py, emulated), which moved
# keypoints by <= 0.011 px (tests/test_tensorrt.py), inside the fp32 figure.
# Appearance vectors (unit length), cosine to fp32's at p1 (docs/precision.md, "Embedding models"):
# fp16 >= 0.99999; int8 0.92-0.97 for centroid crops, lowered mostly by int8 centroids moving the crop
# (the embedding network alone on the same crops: 0.984); an embedding network calibrated on black
# frames: worst -0.45. Two flies' fp32 vectors have cosine 0.93 (median) in this weak model.
DEFAULT_TOLERANCES = {
    "fp32": Tolerance(max_deviation_px=0.05, min_agreement=0.99),
    "fp16": Tolerance(max_deviation_px=1.0, min_agreement=0.95, min_vector_cosine=0.9999),
    "int8": Tolerance(max_deviation_px=3.0, min_agreement=0.90, min_vector_cosine=0.90),
    # OpenVINO's bf16 networks (a runtime choice): 8 mantissa bits to fp16's 11.
    "bf16": Tolerance(max_deviation_px=3.0, min_agreement=0.90),
}


@attrs.frozen
class MaskTieMargins:
    """How near one of sleap-nn's mask decisions a pixel's value may sit and still be rounded either way
    by another runtime (a tie, counted by `check` and not judged)."""

    # |foreground probability - fg_threshold|.
    foreground_probability: float = 1e-4
    # |distance to the nearest centre - distance to the next|, input pixels, where the pixel's offset points.
    vote_distance_px: float = 1e-3


# fp32 ONNX Runtime against sleap-nn's PyTorch on the shared bottom-up segmentation run (50 frames of
# centered_pair_small.mp4, AMD EPYC with AVX-512): foreground probabilities differ by up to 7.3e-6,
# offsets by up to 5.2e-5 px per axis, so a vote's gap between two centres moves by at most 1.5e-4 px:
# the margins are 14x and 7x those. One pixel at 0.4999982 (sleap-nn) / 0.5000005 (ONNX Runtime) flipped; within
# these margins of a decision sat 4 of the 50 frames' pixels (probability) and 6 votes.
MASK_TIE_MARGINS = MaskTieMargins()


def tolerance_for(precision: str, max_deviation: Optional[float] = None) -> Tolerance:
    """What an artifact of ``precision`` must meet, in `check` and in the export's accuracy gate alike;
    ``max_deviation`` replaces the pixel figure."""
    tolerance = DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["fp32"])
    return tolerance if max_deviation is None else attrs.evolve(tolerance, max_deviation_px=max_deviation)
