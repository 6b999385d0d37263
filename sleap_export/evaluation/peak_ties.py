"""How many local peaks on the checked frames sit on a tie: check's report says so,
because a check that samples frames can pass without meeting one.

A peak sits on a tie when, in the confidence map the graph computes eagerly (torch,
as sleap-nn does), it is a flat top of equal pixels, or pixels within
`PEAK_TIE_TOLERANCE` of each other decide it. There a runtime that rounds
differently (ONNX Runtime, TensorRT, reduced precision) may legitimately put the peak
on another pixel of the top, or make a flat top of a strict peak.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import attrs
import numpy as np


@attrs.frozen
class PeakTies:
    """Local peaks the graph found on the checked frames, and how many of them sit on a tie."""

    peaks: int = 0
    tied: int = 0

    def __add__(self, other: "PeakTies") -> "PeakTies":
        return PeakTies(self.peaks + other.peaks, self.tied + other.tied)

    def describe(self) -> str:
        return (
            f"{self.tied} of {self.peaks} local peaks sit on an exact or near tie "
            "(equal pixels, or within 8 ulps: runtimes may round them to either answer)"
        )


def ties_in_map(confmaps, threshold: float) -> PeakTies:
    """Peaks of ``(B, C, H, W)`` maps by sleap-nn's rule, and those a tie decides."""
    from sleap_export.exporting.graph.model_graphs import PEAK_TIE_TOLERANCE
    from sleap_export.exporting.graph.peaks import peak_map

    exact, exact_joins = peak_map(confmaps, threshold)
    near, near_joins = peak_map(confmaps, threshold, PEAK_TIE_TOLERANCE)
    exact_top = exact & (exact_joins[0] | exact_joins[1] | exact_joins[2] | exact_joins[3])
    near_top = near & (near_joins[0] | near_joins[1] | near_joins[2] | near_joins[3])
    tied = exact_top | near_top | (exact ^ near)
    return PeakTies(peaks=int((exact | near).sum()), tied=int(tied.sum()))


def count_peak_ties(model_paths: Sequence[str | Path], batches: Iterable[np.ndarray]) -> PeakTies:
    """`PeakTies` of the runs' graph on ``batches`` of uint8 frames; zero peaks for model types
    without local peaks (single instance, boxes, segmentation). Only the first map searched per
    batch is counted (a top-down graph's centroids; a bottom-up graph's nodes): the graph stops there."""
    import torch

    from sleap_export.exporting.graph.peaks import observing_peak_maps
    from sleap_export.exporting.graph_builder import build_graph

    built = build_graph(model_paths)
    found = PeakTies()
    if tuple(built.spec.input_names) != ("frames",):  # crops around given centres: global peaks only
        return found
    graph = built.module.eval()

    class MapSeen(Exception):
        """Ends the forward pass once the map is counted."""

    def count(confmaps, threshold: float) -> None:
        nonlocal found
        found = found + ties_in_map(confmaps, threshold)
        raise MapSeen

    with torch.inference_mode(), observing_peak_maps(count):
        for batch in batches:
            try:
                graph(torch.from_numpy(np.ascontiguousarray(batch)))
            except MapSeen:
                pass
    return found


def checked_frames(source, indices: Optional[Sequence[int]]) -> Iterator[np.ndarray]:
    """One ``(1, H, W, C)`` batch per checked frame: ``indices`` of a video, or a .slp's labeled frames (None)."""
    if indices is None:
        for labeled_frame in source.labeled_frames:
            yield np.asarray(labeled_frame.image)[None]
    else:
        for index in indices:
            yield np.asarray(source[int(index)])[None]
