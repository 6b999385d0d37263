"""sleap-nn's tiled inference in the graph: tiles cut, run as one batch and blended back.

References: ``sleap_nn/inference/layers/tiled.py`` (the tiled layers),
``sleap_nn/data/tiling.py`` (``generate_tile_grid``) and
``sleap_nn/inference/tile_merger.py`` (importance window, ACC / CNT merge).

sleap-nn pads the frame to the output stride, cuts square tiles on a grid that
depends on the frame's size (the last tile of each axis flush with the far
edge), zero-fills tiles that overrun a frame smaller than a tile, runs them,
and averages each head-map pixel over the tiles covering it, weighted by an
importance window: ``sum(map * w) / sum(w)``, added tile by tile in row-major
order. Here the grid is tensor arithmetic on the input's shape (the traced
graph stays dynamic in batch, height and width), every tile of every frame
runs in one network batch, and the blend gathers, for each map pixel, its
k-th covering tile along each axis. Summing those terms in (row, column)
order adds the same products in the same order as sleap-nn, so the merged
maps equal its own bit for bit given equal tile maps, and no scatter is needed:
the maps go through Gather, Pad, Reshape, Transpose, Mul, Add and Div only.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from sleap_export.core.tiling_spec import TilingSpec
from sleap_export.exporting.graph.preprocess import pad_bottom_right, pad_to_stride
from sleap_export.exporting.graph.shapes import shape_of


def tile_step(tiling: TilingSpec, output_stride: int, max_stride: int) -> int:
    """Distance between neighbouring tiles' origins in input pixels, as ``generate_tile_grid`` snaps it.

    The overlap is raised to ``min_overlap_fraction`` of the tile; the step is
    snapped down to the max stride where it is at least that and the max
    stride is a multiple of the output stride, else to the output stride, and
    never below the output stride. So it is always a multiple of the output
    stride, which keeps every origin on the output grid without further snapping.
    """
    overlap = max(tiling.overlap, round(tiling.min_overlap_fraction * tiling.tile_size))
    step = tiling.tile_size - overlap
    unit = max_stride if step >= max_stride and max_stride % output_stride == 0 else output_stride
    return max(step // unit * unit, output_stride)


def tile_origins(length: torch.Tensor, tile_size: int, step: int, output_stride: int) -> torch.Tensor:
    """Tile origins along one axis of ``length`` pixels (0-dim int64), sleap-nn's ``_axis_tile_origins``.

    Origins ``0, step, 2 step, ...`` while a tile ends short of the far edge,
    then the last origin snapped down to the output stride so the last tile
    ends at the edge, or within the stride of it (dropped if equal to the one
    before); a single origin 0 where the axis is no longer than a tile.
    """
    beyond = torch.clamp(length - tile_size, min=0)  # how far past the first tile the axis reaches
    stepped = torch.clamp((beyond + step - 1) // step, min=1)  # origins k * step < beyond (0 at least)
    last = beyond // output_stride * output_stride
    count = stepped + (last != (stepped - 1) * step).to(torch.int64)
    return torch.minimum(torch.arange(count) * step, last)


def importance_window(size: int, blend: str, sigma_scale: float) -> torch.Tensor:
    """sleap-nn's ``build_importance_window`` for a square ``(size, size)`` tile map, float32.

    Peak 1 at the centre; the smallest weight is raised to at least 1e-3 so
    every covered pixel has a positive total weight.
    """
    if blend == "gaussian":
        positions = torch.arange(-(size - 1) / 2.0, (size - 1) / 2.0 + 1)
        profile = torch.exp(positions**2 / (-2 * (sigma_scale * size) ** 2))
    elif blend == "pyramid":
        positions = torch.arange(1, size + 1, dtype=torch.float32)
        distances = torch.minimum(positions, size + 1 - positions)  # to the nearer edge, 1 at both ends
        profile = distances / distances.max()
    elif blend == "constant":
        profile = torch.ones(size)
    else:
        raise ValueError(f"blend must be gaussian, pyramid or constant, got {blend!r}")
    window = profile[:, None] * profile[None, :]
    return torch.clamp(window, min=max(window.min().item(), 1e-3))


def covering_tiles(origins: torch.Tensor, length: torch.Tensor, tile: int, depth: int):
    """For each of ``length`` map pixels along an axis, its ``depth`` first covering tiles.

    ``origins`` (n,) are the tiles' origins on the map grid, sorted, each tile
    ``tile`` pixels long. Returns ``(index, offset)``, each ``(depth, length)``:
    the pixel's place among the tiles laid end to end (``tile_number * tile +
    offset``) and its offset inside the tile. Where the k-th candidate does not
    cover the pixel they point one past the end (``n * tile`` and ``tile``),
    where the blend keeps a zero.
    """
    pixels = torch.arange(length)
    count = shape_of(origins)[0]
    # Tiles end in the order they start, so the covering ones follow the last tile ending at or before the pixel.
    first = (origins[None, :] + tile <= pixels[:, None]).to(torch.int64).sum(dim=1)
    candidates = first[None, :] + torch.arange(depth)[:, None]
    numbers = torch.clamp(candidates, max=count - 1)
    offset = pixels[None, :] - origins[numbers]
    covered = (candidates < count) & (offset >= 0)
    offset = torch.where(covered, offset, tile)
    return torch.where(covered, numbers * tile + offset, count * tile), offset


class TiledHeads(torch.nn.Module):
    """Run ``network`` on the tiles of whole frames; return its head maps blended per frame as sleap-nn does.

    Input: ``(B, C, H, W)`` float32 frames as sleap-nn's tiled layers hand
    them to the network's tiles: channels coerced, input-scaled, normalized
    to [0, 1], and NOT size-matched. They are padded here to the output
    stride, not the max stride (the tile size is a multiple of the max
    stride), because sleap-nn's tile grid is that of the output-stride padding.
    Output: ``{head name: (B, channels, ceil(H / s), ceil(W / s))}`` for each
    map the network returns (all at the output stride ``s``), the maps
    sleap-nn's tiled layers hand to decoding. ``sigmoid_heads``: heads whose
    logits sleap-nn's training module turns into probabilities before they
    are blended (semantic and bottom-up segmentation's ``SegmentationHead``).
    """

    def __init__(
        self,
        network: Callable[[torch.Tensor], dict],
        tiling: TilingSpec,
        output_stride: int,
        max_stride: int,
        sigmoid_heads: Sequence[str] = (),
    ):
        super().__init__()
        if tiling.tile_size % max_stride or tiling.tile_size % output_stride:
            raise ValueError(
                f"tile size {tiling.tile_size} must be a multiple of the max stride {max_stride} "
                f"and the output stride {output_stride}"
            )
        self.network = network
        self.tile_size = tiling.tile_size
        self.output_stride = int(output_stride)
        self.step = tile_step(tiling, self.output_stride, int(max_stride))
        self.map_tile = self.tile_size // self.output_stride
        # The most tiles covering one pixel along an axis: those stepped across a tile, and the last one.
        self.depth = math.ceil(self.tile_size / self.step) + 1
        self.sigmoid_heads = frozenset(sigmoid_heads)
        window = importance_window(self.map_tile, tiling.blend, tiling.sigma_scale)
        self.register_buffer("window", window, persistent=False)

    def forward(self, images: torch.Tensor) -> dict:
        images = pad_to_stride(images, self.output_stride)
        shape = shape_of(images)
        rows = tile_origins(shape[2], self.tile_size, self.step, self.output_stride)
        columns = tile_origins(shape[3], self.tile_size, self.step, self.output_stride)
        heads = self.network(self.cut_tiles(images, rows, columns))
        # One blend for all heads, as sleap-nn stitches them in one canvas.
        maps = torch.cat([torch.sigmoid(m) if n in self.sigmoid_heads else m for n, m in heads.items()], dim=1)
        height, width = shape[2] // self.output_stride, shape[3] // self.output_stride
        merged = self.blend(maps, shape[0], rows, columns, height, width)
        return dict(zip(heads, torch.split(merged, [m.shape[1] for m in heads.values()], dim=1)))

    def cut_tiles(self, images: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """``(B * rows * columns, C, tile, tile)`` tiles, frame by frame in row-major order.

        Frames smaller than a tile are zero-padded to it first, as sleap-nn
        zero-fills such tiles; larger frames hold every tile (the last ends at the edge).
        """
        shape = shape_of(images)
        images = pad_bottom_right(
            images, torch.clamp(shape[2], min=self.tile_size), torch.clamp(shape[3], min=self.tile_size)
        )
        span = torch.arange(self.tile_size)
        row_pixels = (rows[:, None] + span[None, :]).reshape(-1)
        column_pixels = (columns[:, None] + span[None, :]).reshape(-1)
        laid_out = images.index_select(2, row_pixels).index_select(3, column_pixels)  # (B, C, rows*tile, cols*tile)
        channels = images.shape[1]
        tiles = laid_out.reshape(
            shape[0], channels, shape_of(rows)[0], self.tile_size, shape_of(columns)[0], self.tile_size
        )
        return tiles.permute(0, 2, 4, 1, 3, 5).reshape(-1, channels, self.tile_size, self.tile_size)

    def blend(self, maps, batch, rows, columns, height, width) -> torch.Tensor:
        """``(B, ch, height, width)``: ``sum(map * window) / sum(window)`` over the tiles covering each pixel,
        in sleap-nn's order; ``rows`` and ``columns`` are the tiles' origins in input pixels.

        sleap-nn adds tile after tile in row-major order; the covering tiles of
        a pixel, taken by row candidate then column candidate, come in that
        order, and candidates that do not cover it add exact zeros.
        """
        channels, tile = maps.shape[1], self.map_tile
        n_rows, n_columns = shape_of(rows)[0], shape_of(columns)[0]
        row_index, row_offset = covering_tiles(rows // self.output_stride, height, tile, self.depth)
        column_index, column_offset = covering_tiles(columns // self.output_stride, width, tile, self.depth)
        laid_out = (
            (maps * self.window)
            .reshape(batch, n_rows, n_columns, channels, tile, tile)
            .permute(0, 3, 1, 4, 2, 5)
            .reshape(batch, channels, n_rows * tile, n_columns * tile)
        )
        # A zero row and column past the tiles (and the window), where candidates covering nothing point.
        laid_out = F.pad(laid_out, (0, 1, 0, 1))
        window = F.pad(self.window, (0, 1, 0, 1))
        # Every column candidate at once, then each row candidate: (B, ch, height, depth, width).
        columns = laid_out.index_select(3, column_index.reshape(-1))
        window_columns = window.index_select(1, column_offset.reshape(-1))
        total = weights = None
        for k in range(self.depth):
            values = columns.index_select(2, row_index[k]).reshape(batch, channels, height, self.depth, width)
            window_values = window_columns.index_select(0, row_offset[k]).reshape(height, self.depth, width)
            for j in range(self.depth):
                total = values[:, :, :, j] if total is None else total + values[:, :, :, j]
                weights = window_values[:, j] if weights is None else weights + window_values[:, j]
        return total / weights
