"""Where masks lie on the frame, and their sleap-io forms, as sleap-nn writes them (torch-free).

References: ``sleap_nn/inference/layers/segmentation.py`` (``SegmentationLayer.postprocess``,
``_mask_to_stride``, ``_mask_to_original``; ``SemanticSegmentationLayer.postprocess``),
``layers/topdown_segmentation.py`` (``_run_stage_2``'s crop placement),
``inference/segmentation_convert.py`` (``build_predicted_segmentation_mask``,
``build_predicted_roi``) and ``inference/outputs.py`` (``to_masks``, ``to_labels``).

A frame went through the network as: size matching by ``size_scale`` (sleap-nn's per-frame
``eff_scale``, a float32), the model's ``input_scale``, then bottom-right padding; the heads'
grid is that padded input divided by ``output_stride``. A mask on that grid either keeps the
stride (default): cropped to the cells that overlap the frame's content, with the sio ``scale``
``cells / frame pixels`` per axis and offset 0; or (``full_res_masks``) is resampled to the
frame's pixels as torch's nearest ``F.interpolate`` does (source index ``floor(dst * (in /
out))`` in float32), with identity scale. ``min_mask_area`` is in frame pixels; at the stride it
becomes ``ceil(area * sx * sy)`` cells (at least 1: empty masks are always dropped).

The labels contract (sleap-nn's ``Outputs.to_labels`` for these models), for the writer:
each frame's ``sio.LabeledFrame`` gets ``instances=[]`` (no poses; ``Labels.skeletons`` keeps the
training skeleton), ``masks`` = the frame's `predicted_masks` in decoding order when
``mask_output`` is ``mask`` or ``both`` (else none), and ``rois`` = `predicted_rois` of those same
masks (built even when the masks themselves are not written) for ``polygon`` or ``both``. Masks
with no pixels are dropped there (top-down's empty crops), polygons with no outline too. Frames
with nothing are kept (``Predictor.predict`` keeps empty frames; ``--no_empty_frames`` drops them).
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import attrs
import numpy as np

from sleap_export.core.mask_options import MaskOptions


@attrs.frozen(eq=False)
class PlacedMask:
    """A mask with its placement on the frame: ``frame (x, y) = mask (x, y) / scale + offset``."""

    mask: np.ndarray
    score: float
    scale: tuple[float, float]
    offset: tuple[float, float] = (0.0, 0.0)


@attrs.frozen
class FrameGeometry:
    """How a frame reached the heads: its size ``(height, width)``, its size-matching scale (the
    graph's float32 ``pred_size_scale``), the model's input scale and the heads' stride."""

    frame_size: tuple[int, int]
    size_scale: float
    input_scale: float
    output_stride: int

    @property
    def scale(self) -> float:
        """Frame pixels -> network input pixels, as sleap-nn multiplies it (``eff * input_scale``)."""
        return float(self.size_scale) * float(self.input_scale)

    def content_size(self) -> tuple[int, int]:
        """The frame's extent in network input pixels, before the padding (at least 1 each)."""
        height, width = self.frame_size
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))


def at_stride(mask: np.ndarray, geometry: FrameGeometry) -> tuple[np.ndarray, tuple[float, float]]:
    """A grid mask cropped to the cells overlapping the frame's content (the trailing partial
    cell included), and the sio scale ``(sx, sy)`` that maps it back onto the frame."""
    height, width = geometry.frame_size
    stride = float(geometry.output_stride)
    content_h, content_w = geometry.content_size()
    cells_h = min(mask.shape[0], max(1, math.ceil(content_h / stride)))
    cells_w = min(mask.shape[1], max(1, math.ceil(content_w / stride)))
    cropped = np.ascontiguousarray(mask[:cells_h, :cells_w], dtype=bool)
    return cropped, (cells_w / float(width), cells_h / float(height))


def nearest_source_indices(size_in: int, size_out: int) -> np.ndarray:
    """torch's ``F.interpolate(mode="nearest")`` along one axis: for each output index, the input
    index ``min(floor(dst * (in / out)), in - 1)`` with the ratio and product in float32."""
    if size_in == size_out:
        return np.arange(size_out)
    ratio = np.float32(size_in) / np.float32(size_out)
    source = np.floor(np.arange(size_out, dtype=np.float32) * ratio).astype(np.int64)
    return np.minimum(source, size_in - 1)


def at_frame_resolution(mask: np.ndarray, geometry: FrameGeometry) -> np.ndarray:
    """A grid mask on the frame's pixels: upsampled to the padded input, cropped to the content,
    resized to the frame (each step torch's nearest resampling; composed as index maps)."""
    stride = geometry.output_stride
    padded_h, padded_w = mask.shape[0] * stride, mask.shape[1] * stride
    content_h, content_w = geometry.content_size()
    content_h, content_w = min(padded_h, content_h), min(padded_w, content_w)
    height, width = geometry.frame_size
    rows = nearest_source_indices(mask.shape[0], padded_h)[:content_h][nearest_source_indices(content_h, height)]
    cols = nearest_source_indices(mask.shape[1], padded_w)[:content_w][nearest_source_indices(content_w, width)]
    return np.ascontiguousarray(np.asarray(mask, bool)[np.ix_(rows, cols)])


def stride_area_floor(min_mask_area: int, scale: tuple[float, float]) -> int:
    """``min_mask_area`` frame pixels as a count of grid cells (ceil: the fewest cells whose frame
    area reaches it; at least 1)."""
    return max(1, math.ceil(max(1, min_mask_area) * scale[0] * scale[1]))


def place_mask(mask: np.ndarray, score: float, geometry: FrameGeometry, options: MaskOptions) -> Optional[PlacedMask]:
    """One grid mask placed on the frame as ``options`` ask, or None below the area floor."""
    if options.full_res_masks:
        placed = at_frame_resolution(mask, geometry)
        if int(placed.sum()) < max(1, options.min_mask_area):
            return None
        return PlacedMask(placed, float(score), (1.0, 1.0))
    placed, scale = at_stride(mask, geometry)
    if int(placed.sum()) < stride_area_floor(options.min_mask_area, scale):
        return None
    return PlacedMask(placed, float(score), scale)


def place_masks(instances: Iterable, geometry: FrameGeometry, options: MaskOptions) -> list[PlacedMask]:
    """A frame's decoded masks (anything with ``mask`` and ``score``, e.g. ``InstanceMask``) placed
    on the frame, in order, those below the area floor dropped."""
    placed = (place_mask(inst.mask, inst.score, geometry, options) for inst in instances)
    return [p for p in placed if p is not None]


def semantic_mask(foreground: np.ndarray, score: float, geometry: FrameGeometry,
                  options: MaskOptions) -> list[PlacedMask]:
    """Semantic segmentation's one mask per frame (the whole foreground, with the graph's float32
    score: the mean probability over it), or none when empty or below the area floor."""
    foreground = np.asarray(foreground) != 0
    if not foreground.any():
        return []
    placed = place_mask(foreground, float(score), geometry, options)
    return [] if placed is None else [placed]


def place_crop_mask(mask: np.ndarray, score: float, crop_origin: Sequence[int], size_scale: float,
                    input_scale: float, output_stride: int) -> PlacedMask:
    """Top-down: a crop's mask, kept whole (not cropped to the frame, no area floor), placed by the
    crop's first pixel ``(x, y)`` on the size-matched frame (integers), the frame's float32
    size-matching scale, the mask model's input scale and its stride: offset ``origin /
    size_scale``, scale ``size_scale * input_scale / stride``."""
    size_scale = float(size_scale)
    offset = (float(int(crop_origin[0])) / size_scale, float(int(crop_origin[1])) / size_scale)
    scale = (size_scale * float(input_scale)) / float(output_stride)
    return PlacedMask(np.ascontiguousarray(mask, dtype=bool), float(score), (scale, scale), offset)


def predicted_masks(placed: Iterable[PlacedMask]) -> list:
    """``sio.PredictedSegmentationMask``es (run-length coded) of the masks with any pixel, in order."""
    import sleap_io as sio

    return [
        sio.PredictedSegmentationMask.from_numpy(
            np.ascontiguousarray(p.mask, dtype=bool),
            score=float(p.score),
            scale=(float(p.scale[0]), float(p.scale[1])),
            offset=(float(p.offset[0]), float(p.offset[1])),
        )
        for p in placed
        if np.asarray(p.mask).any()
    ]


def predicted_rois(masks: Iterable, epsilon: float) -> list:
    """``mask_output`` polygon/both: each sio mask's outline in frame pixels (sio's ``to_polygon``,
    which honors scale and offset) as a ``sio.PredictedROI`` with the mask's score, simplified by
    Douglas-Peucker (topology kept) at ``epsilon`` times the perimeter of each separate part; masks
    without an outline give none."""
    import sleap_io as sio

    rois = []
    for mask in masks:
        outline = mask.to_polygon().geometry
        if outline is None or outline.is_empty:
            continue
        if epsilon > 0:
            simplified = _simplified(outline, float(epsilon))
            if not simplified.is_empty:
                outline = simplified
        rois.append(sio.PredictedROI(geometry=outline, score=float(mask.score)))
    return rois


def _simplified(outline, epsilon: float):
    from shapely.geometry import MultiPolygon

    if isinstance(outline, MultiPolygon):
        parts = (part.simplify(epsilon * part.length, preserve_topology=True) for part in outline.geoms)
        return MultiPolygon([part for part in parts if not part.is_empty])
    return outline.simplify(epsilon * outline.length, preserve_topology=True)
