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
# (the embedding network alone on the same crops: 0.984); an embedding network calibrated on blank
# frames: worst 0.26 or below. Two flies' fp32 vectors have cosine 0.93 (median) in this weak model.
DEFAULT_TOLERANCES = {
    "fp32": Tolerance(max_deviation_px=0.05, min_agreement=0.99),
    "fp16": Tolerance(max_deviation_px=1.0, min_agreement=0.95, min_vector_cosine=0.9999),
    "int8": Tolerance(max_deviation_px=3.0, min_agreement=0.90, min_vector_cosine=0.90),
    # OpenVINO's bf16 networks (a runtime choice): 8 mantissa bits to fp16's 11.
    "bf16": Tolerance(max_deviation_px=3.0, min_agreement=0.90),
}


def tolerance_for(precision: str, max_deviation: Optional[float] = None) -> Tolerance:
    """What an artifact of ``precision`` must meet, in `check` and in the export's accuracy gate alike;
    ``max_deviation`` replaces the pixel figure."""
    tolerance = DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["fp32"])
    return tolerance if max_deviation is None else attrs.evolve(tolerance, max_deviation_px=max_deviation)
