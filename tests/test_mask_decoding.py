"""Torch-free mask decoding (runtime.decoding: instance_masks, fragment_merging, mask_geometry,
topk_order) against sleap-nn 0.3.5's own functions: identical masks, scores, centers, scales,
offsets and polygons.

Maps: the real `new_bottomup_segmentation` model's heads (run by sleap-nn's own layer) on frames
of the shared clip at the training size, at two other frame sizes (size matching, eff != 1) and
at two other input scales; thresholded and peak-tested in torch as the exported graph does; then
synthetic maps made for the edge cases (tied plateaus, tied vote distances, tied center values
beyond ``max_instances``, both of torch.topk's algorithms, empty foreground, no peaks, masks on the
right and bottom edges, odd sizes, input and size-matching scales != 1). Every `MaskOptions` knob
runs at two or more settings, and each setting is shown to change some output.
"""

from __future__ import annotations

import math
from collections import Counter

import attrs
import numpy as np
import pytest
import sleap_io as sio
import torch
import torch.nn.functional as F
from scipy import ndimage

from sleap_export.core.errors import InputError
from sleap_export.core.mask_options import MaskOptions
from sleap_export.runtime.decoding.fragment_merging import (
    fragment_affinities,
    merge_fragments,
)
from sleap_export.runtime.decoding.instance_masks import (
    InstanceMask,
    cell_centers,
    center_peaks,
    decode_instance_masks,
    group_instances,
)
from sleap_export.runtime.decoding.mask_geometry import (
    FrameGeometry,
    PlacedMask,
    at_frame_resolution,
    at_stride,
    nearest_source_indices,
    place_crop_mask,
    place_masks,
    predicted_masks,
    predicted_rois,
    semantic_mask,
)
from sleap_export.runtime.decoding.topk_order import topk_order

MODEL = "new_bottomup_segmentation"
VIDEO = "centered_pair_small.mp4"
STRIDE = 2
# Graph-side settings (fg_threshold, peak_threshold, center_nms_kernel): sleap-nn's defaults, then
# a wider window over a higher peak threshold, then a window of 1 (every pixel above the threshold
# is a candidate, so plateaus are whole regions with varying values).
DEFAULT_GRAPH = (0.5, 0.2, 3)
OTHER_GRAPHS = [(0.3, 0.4, 5), (0.7, 0.1, 1)]
SETTINGS = {
    "default": MaskOptions(),
    "cleanup": MaskOptions(mask_cleanup=True),
    "cleanup-r2": MaskOptions(mask_cleanup=True, mask_cleanup_radius=2),
    "gate-0.5": MaskOptions(distance_gate_alpha=0.5),
    "gate-1.5-max3": MaskOptions(distance_gate_alpha=1.5, max_instances=3),
    "max1": MaskOptions(max_instances=1),
    "greedy": MaskOptions(merge_fragments=True),
    "multicut": MaskOptions(merge_fragments=True, merge_method="multicut"),
    "greedy-knobs": MaskOptions(
        merge_fragments=True, merge_dilate=2, merge_w_valley=0.5, merge_w_offset=1.0, merge_thresholds=(0.7, 0.3)
    ),
    "contact-only": MaskOptions(merge_fragments=True, merge_w_valley=0.0, merge_w_offset=0.0, merge_dilate=0),
    "full-res": MaskOptions(full_res_masks=True),
    "area-40": MaskOptions(min_mask_area=40),
    "area-40-full-res": MaskOptions(min_mask_area=40, full_res_masks=True),
    "mixed": MaskOptions(
        mask_cleanup=True, mask_cleanup_radius=1, distance_gate_alpha=1.0, merge_fragments=True,
        merge_method="multicut", min_mask_area=10, max_instances=4,
    ),
}
OTHER_GRAPH_SETTINGS = ("default", "cleanup-r2", "greedy")


# ---------------------------------------------------------------------------------------------
# sleap-nn's side: its layer, the graph's thresholding in torch, the comparison
# ---------------------------------------------------------------------------------------------


def reference_layer(backend, graph, options: MaskOptions, stride: int = STRIDE):
    """sleap-nn's SegmentationLayer with these settings (as its predictor builds it)."""
    from sleap_nn.inference.layers.configs import PostprocessConfig
    from sleap_nn.inference.layers.segmentation import SegmentationLayer

    fg_threshold, peak_threshold, kernel = graph
    return SegmentationLayer(
        backend=backend, output_stride=stride, max_stride=16, fg_threshold=fg_threshold, center_nms_kernel=kernel,
        postprocess_config=PostprocessConfig(peak_threshold=peak_threshold), **attrs.asdict(options),
    )


def graph_outputs(raw: dict, b: int, graph):
    """What the exported graph hands the runtime for frame ``b``: foreground and candidates as uint8,
    heatmap and offsets as float32 (torch ops as the graph has them)."""
    fg_threshold, peak_threshold, kernel = graph
    heatmap = raw["InstanceCenterHead"][b : b + 1]
    window_max = F.max_pool2d(heatmap, kernel, stride=1, padding=kernel // 2)
    candidates = (heatmap >= window_max) & (heatmap > peak_threshold)
    foreground = raw["SegmentationHead"][b, 0] > fg_threshold
    return (
        foreground.numpy().astype(np.uint8), candidates[0, 0].numpy().astype(np.uint8),
        heatmap[0, 0].numpy(), raw["CenterOffsetHead"][b].numpy(),
    )


def decoded(raw, info, b, graph, options, stride=STRIDE):
    foreground, candidates, heatmap, offsets = graph_outputs(raw, b, graph)
    instances = decode_instance_masks(foreground, candidates, heatmap, offsets, stride, options)
    geometry = FrameGeometry(tuple(info.original_size), float(info.eff_scale[b]), float(info.input_scale), stride)
    return place_masks(instances, geometry, options)


def assert_same_masks(ours, theirs: list[dict], where: str) -> None:
    assert len(ours) == len(theirs), f"{where}: {len(ours)} masks, sleap-nn {len(theirs)}"
    for k, (mine, ref) in enumerate(zip(ours, theirs)):
        assert mine.mask.shape == ref["mask"].shape and np.array_equal(mine.mask, ref["mask"]), f"{where} mask {k}"
        assert mine.mask.dtype == bool
        assert (mine.score, mine.scale, mine.offset) == (ref["score"], ref["scale"], ref["offset"]), f"{where} mask {k}"


def signature(masks) -> tuple:
    return tuple((m.mask.shape, m.mask.tobytes(), m.score) for m in masks)


# ---------------------------------------------------------------------------------------------
# The real model's maps, once per module
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """sleap-nn's per-frame grouping makes many small torch calls: on shared cores a thread pool
    only spins (10x slower measured on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@attrs.frozen(eq=False)
class Maps:
    name: str
    raw: dict
    info: object


@pytest.fixture(scope="module")
def sleap_nn_segmentation(assets):
    from sleap_nn.inference.predictor import Predictor

    return Predictor.from_model_paths([str(assets / "models" / MODEL)], device="cpu").layer


@pytest.fixture(scope="module")
def real_maps(sleap_nn_segmentation, assets) -> list[Maps]:
    """Head maps of 8 frames at 384 x 384, 2 frames each at 300 x 452 and 251 x 397 (size matched to
    384), and 2 frames each at input scales 0.75 and 0.6 (padded to 16 after scaling)."""
    from sleap_nn.inference.layers.segmentation import SegmentationLayer

    video = sio.load_video(str(assets / "data" / VIDEO))
    frames = np.stack([video[i] for i in range(0, 80, 10)])
    base = sleap_nn_segmentation
    batches = [("384x384", frames, base.preprocess_config)]
    for height, width in ((300, 452), (251, 397)):
        other = np.zeros((2, height, width, 1), np.uint8)
        other[:, : min(height, 384), : min(width, 384)] = frames[:2, :height, :width]
        batches.append((f"{height}x{width}", other, base.preprocess_config))
    for scale in (0.75, 0.6):
        batches.append((f"input-scale-{scale}", frames[2:4], attrs.evolve(base.preprocess_config, scale=scale)))
    maps = []
    with torch.no_grad():
        for name, batch, preprocess in batches:
            layer = SegmentationLayer(backend=base.backend, output_stride=STRIDE, max_stride=16, preprocess_config=preprocess)
            x, info = layer.preprocess(batch)
            maps.append(Maps(name, {k: v.detach().cpu() for k, v in layer.backend(x).items()}, info))
    video.close()
    return maps


def test_real_maps_decode_to_sleap_nns_masks(real_maps, sleap_nn_segmentation):
    """Every setting on every frame: the same masks (count, order, pixels, shape), scores, scales
    and offsets as sleap-nn's SegmentationLayer.postprocess; each setting changes some frame."""
    backend = sleap_nn_segmentation.backend
    compared = masks = 0
    changed: Counter = Counter()
    sizes = {m.name: tuple(m.info.original_size) for m in real_maps}
    assert sizes["300x452"] == (300, 452) and float(real_maps[1].info.eff_scale[0]) != 1.0
    assert {float(m.info.input_scale) for m in real_maps} == {1.0, 0.75, 0.6}
    runs = [(DEFAULT_GRAPH, name) for name in SETTINGS] + [(g, n) for g in OTHER_GRAPHS for n in OTHER_GRAPH_SETTINGS]
    defaults = {}
    for graph, name in runs:
        options = SETTINGS[name]
        layer = reference_layer(backend, graph, options)
        for maps in real_maps:
            theirs = layer.postprocess(maps.raw, maps.info).pred_masks
            for b in range(len(theirs)):
                ours = decoded(maps.raw, maps.info, b, graph, options)
                assert_same_masks(ours, theirs[b], f"{name} {graph} {maps.name} frame {b}")
                compared += 1
                masks += len(ours)
                key = (graph, maps.name, b)
                if name == "default":
                    defaults[key] = signature(ours)
                elif signature(ours) != defaults[key]:
                    changed[name] += 1
    assert compared == 16 * (len(SETTINGS) + len(OTHER_GRAPHS) * len(OTHER_GRAPH_SETTINGS)) == 320
    assert masks > 1000
    assert set(changed) == set(SETTINGS) - {"default"}, f"settings that changed nothing: {set(SETTINGS) - set(changed)}"


def test_real_maps_centers_groups_and_merges_match_sleap_nns_functions(real_maps):
    """Below the layer, on every other frame: find_center_peaks, group_instances_from_offsets
    (centers included) and merge_instances (centers, scores, masks), at each graph setting."""
    from sleap_nn.inference.segmentation import (
        _build_merge_rag,
        find_center_peaks,
        group_instances_from_offsets,
        merge_instances,
    )

    compared = merged_away = 0
    for maps in real_maps:
        for b in range(0, maps.raw["SegmentationHead"].shape[0], 2):
            for graph in [DEFAULT_GRAPH, *OTHER_GRAPHS]:
                fg_threshold, peak_threshold, kernel = graph
                foreground, candidates, heatmap, offsets = graph_outputs(maps.raw, b, graph)
                peaks, values = find_center_peaks(maps.raw["InstanceCenterHead"][b : b + 1], peak_threshold, kernel)
                ours_peaks, ours_values = center_peaks(candidates, heatmap)
                assert np.array_equal(ours_peaks.astype(np.float32), peaks.numpy().reshape(-1, 2))
                assert np.array_equal(ours_values, values.numpy())
                for name in ("default", "cleanup-r2", "gate-1.5-max3"):
                    options = SETTINGS[name]
                    theirs = group_instances_from_offsets(
                        maps.raw["SegmentationHead"][b : b + 1], maps.raw["InstanceCenterHead"][b : b + 1],
                        maps.raw["CenterOffsetHead"][b : b + 1], fg_threshold=fg_threshold,
                        peak_threshold=peak_threshold, output_stride=STRIDE, max_instances=options.max_instances,
                        center_nms_kernel=kernel, mask_cleanup=options.mask_cleanup,
                        mask_cleanup_radius=options.mask_cleanup_radius,
                        distance_gate_alpha=options.distance_gate_alpha,
                    )
                    ours = group_instances(foreground, candidates, heatmap, offsets, STRIDE, options)
                    assert_same_instances(ours, theirs)
                    compared += 1
                    for merge in ("greedy", "multicut", "greedy-knobs", "contact-only"):
                        merge_options = SETTINGS[merge]
                        theirs_merged = merge_instances(
                            theirs, heatmap, offsets, STRIDE, method=merge_options.merge_method,
                            dilate_iters=merge_options.merge_dilate, w_valley=merge_options.merge_w_valley,
                            w_offset=merge_options.merge_w_offset, thresholds=merge_options.merge_thresholds,
                        )
                        ours_merged = merge_fragments(ours, heatmap, offsets, STRIDE, merge_options)
                        if merge != "multicut":  # multicut's graph is greedy's
                            assert fragment_affinities(ours, heatmap, offsets, STRIDE, merge_options) == _build_merge_rag(
                                theirs, heatmap, offsets, STRIDE, dilate_iters=merge_options.merge_dilate,
                                w_valley=merge_options.merge_w_valley, w_offset=merge_options.merge_w_offset,
                            )
                        assert_same_instances(ours_merged, theirs_merged)
                        merged_away += len(ours) - len(ours_merged)
                        compared += 1
    assert compared == 8 * 3 * 3 * 5 == 360
    assert merged_away > 100


def assert_same_instances(ours: list[InstanceMask], theirs: list[dict]) -> None:
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        assert np.array_equal(mine.mask, ref["mask"])
        assert (mine.score, mine.center) == (ref["score"], ref["center"])


# ---------------------------------------------------------------------------------------------
# Synthetic maps: ties and edges
# ---------------------------------------------------------------------------------------------


@attrs.frozen
class SyntheticFrame:
    raw: dict
    info: object
    graph: tuple
    stride: int


def synthetic_frame(rng: np.random.Generator, kind: str) -> SyntheticFrame:
    """Odd frame sizes, size-matching and input scales, a padded grid; centers with flat-topped
    plateaus at a few shared heights (tied maxima, tied center values); foreground disks that run
    off the content's right and bottom edges; offsets that point exactly at a center or exactly
    midway between two (tied vote distances), or near a center with noise."""
    from sleap_nn.inference.preprocess_info import PreprocInfo

    stride = 1 if kind == "many-peaks" else int(rng.choice([1, 2, 4]))
    height, width = (int(v) for v in (rng.integers(36, 61, 2) if kind == "many-peaks" else rng.integers(9, 95, 2)))
    eff = float(np.float32(rng.choice([1.0, rng.uniform(0.45, 1.7)])))
    input_scale = float(rng.choice([1.0, 0.5, 0.75, 1.25]))
    scale = eff * input_scale
    max_stride = stride * int(rng.choice([1, 2, 4]))
    content = [max(1, round(v * scale)) for v in (height, width)]
    padded = [math.ceil(c / max_stride) * max_stride + max_stride * int(rng.integers(0, 3)) for c in content]
    grid_h, grid_w = padded[0] // stride, padded[1] // stride
    cells_h, cells_w = (max(1, math.ceil(c / stride)) for c in content)
    levels = np.float32([0.35, 0.6, 0.85])
    heatmap = np.zeros((grid_h, grid_w), np.float32)
    centers = []
    if kind == "many-peaks":
        # Isolated single-pixel peaks on a lattice, beyond 64 per kept center: torch.topk's partial_sort.
        for cy in range(0, cells_h, 4):
            for cx in range(0, cells_w, 4):
                heatmap[cy, cx] = levels[rng.integers(0, len(levels))]
                centers.append((cx, cy))
    for _ in range(0 if kind == "many-peaks" else int(rng.integers(1, 8))):
        # Centers often in the last valid row / column: their masks touch the frame's edge.
        cy = int(rng.choice([rng.integers(0, cells_h), cells_h - 1]))
        cx = int(rng.choice([rng.integers(0, cells_w), cells_w - 1]))
        value = levels[rng.integers(0, len(levels))] if kind != "no-peaks" else np.float32(0.1)
        ph, pw = (int(v) for v in rng.integers(1, 4, 2))
        rows = np.arange(grid_h)[:, None]
        cols = np.arange(grid_w)[None, :]
        distance = np.maximum(np.maximum(cy - rows, rows - (cy + ph - 1)), np.maximum(cx - cols, cols - (cx + pw - 1)))
        heatmap = np.maximum(heatmap, (value - np.float32(0.1) * np.maximum(distance, 0)).astype(np.float32))
        centers.append((cx, cy))
    if kind == "noisy-heatmap":
        heatmap = (heatmap + rng.normal(0, 0.02, heatmap.shape)).astype(np.float32)
    foreground = np.full((grid_h, grid_w), 0.1, np.float32)
    if kind != "empty-foreground":
        rows, cols = np.mgrid[:grid_h, :grid_w]
        for cx, cy in centers[:: max(1, len(centers) // 12)]:
            radius = rng.uniform(1.0, 6.0)
            foreground[(rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2] = 0.9
        foreground[rng.random(foreground.shape) < 0.05] = 0.9
    center_px = np.float32(centers) * np.float32(stride) + np.float32(stride / 2)
    pixel_x = np.arange(grid_w, dtype=np.float32)[None, :] * np.float32(stride) + np.float32(stride / 2)
    pixel_y = np.arange(grid_h, dtype=np.float32)[:, None] * np.float32(stride) + np.float32(stride / 2)
    first = rng.integers(0, len(centers), (grid_h, grid_w))
    second = rng.integers(0, len(centers), (grid_h, grid_w))
    midway = rng.random((grid_h, grid_w)) < 0.4
    target = np.where(midway[..., None], (center_px[first] + center_px[second]) / np.float32(2), center_px[first])
    offsets = np.stack([target[..., 0] - pixel_x, target[..., 1] - pixel_y]).astype(np.float32)
    if kind == "noisy-offsets":
        offsets = (offsets + rng.normal(0, stride, offsets.shape)).astype(np.float32)
    raw = {
        "SegmentationHead": torch.from_numpy(foreground)[None, None],
        "InstanceCenterHead": torch.from_numpy(heatmap)[None, None],
        "CenterOffsetHead": torch.from_numpy(offsets)[None],
    }
    info = PreprocInfo(
        original_size=(height, width), processed_size=(padded[0], padded[1]),
        eff_scale=torch.tensor([eff], dtype=torch.float32), input_scale=input_scale, output_stride=stride,
    )
    graph = (0.5, 0.2, 3 if kind == "many-peaks" else int(rng.choice([1, 3, 3, 5])))
    return SyntheticFrame(raw, info, graph, stride)


SYNTHETIC_KINDS = ("ties", "ties", "noisy-offsets", "noisy-heatmap", "many-peaks", "empty-foreground", "no-peaks")


def test_synthetic_ties_and_edges_decode_to_sleap_nns_masks(sleap_nn_segmentation):
    rng = np.random.default_rng(20261204)
    extra = {
        "max2": MaskOptions(max_instances=2),
        "max1-area-3": MaskOptions(max_instances=1, min_mask_area=3),
        "cleanup-r1-greedy-low": MaskOptions(
            mask_cleanup=True, mask_cleanup_radius=1, merge_fragments=True, merge_thresholds=(0.5, 0.05)
        ),
    }
    options_pool = {**SETTINGS, **extra}
    names = sorted(options_pool)
    seen: Counter = Counter()
    compared = masks = 0
    for case in range(420):
        kind = SYNTHETIC_KINDS[case % len(SYNTHETIC_KINDS)]
        frame = synthetic_frame(rng, kind)
        name = names[case % len(names)] if kind != "many-peaks" else ("max1", "max2", "max1-area-3")[case % 3]
        options = options_pool[name]
        layer = reference_layer(sleap_nn_segmentation.backend, frame.graph, options, frame.stride)
        theirs = layer.postprocess(frame.raw, frame.info).pred_masks[0]
        ours = decoded(frame.raw, frame.info, 0, frame.graph, options, stride=frame.stride)
        assert_same_masks(ours, theirs, f"synthetic case {case} ({kind}, {name}, {frame.info})")
        compared += 1
        masks += len(ours)
        seen[kind, bool(ours)] += 1
        seen.update(edge_cases(frame, options))
    assert compared == 420 and masks > 400
    # The edge cases happened: frames with masks of each kind, and the empty ones empty.
    assert all(seen[kind, True] for kind in ("ties", "noisy-offsets", "noisy-heatmap", "many-peaks"))
    assert seen["empty-foreground", True] == seen["no-peaks", True] == 0
    assert min(seen[c] for c in ("plateau", "tied votes", "tie at the cap", "partial_sort")) >= 10, seen


def edge_cases(frame: SyntheticFrame, options: MaskOptions) -> list[str]:
    """Which ties a synthetic frame holds: a plateau of several candidates, a foreground pixel with
    two nearest centers, equal center values on both sides of the max_instances cut, and a cap
    small enough for torch.topk's partial_sort."""
    foreground, candidates, heatmap, offsets = graph_outputs(frame.raw, 0, frame.graph)
    found = []
    labels, count = ndimage.label(candidates)
    if count and np.bincount(labels.ravel())[1:].max() > 1:
        found.append("plateau")
    peaks, values = center_peaks(candidates, heatmap)
    if len(peaks) > 1 and foreground.any():
        rows, cols = np.nonzero(foreground)
        centers = cell_centers(peaks, frame.stride)
        x = cell_centers(cols, frame.stride) + offsets[0, rows, cols]
        y = cell_centers(rows, frame.stride) + offsets[1, rows, cols]
        nearest = np.sort((x[:, None] - centers[None, :, 0]) ** 2 + (y[:, None] - centers[None, :, 1]) ** 2, axis=1)
        if (nearest[:, 0] == nearest[:, 1]).any():
            found.append("tied votes")
    cap = options.max_instances
    if cap is not None and len(values) > cap:
        ranked = np.sort(values)[::-1]
        found += ["tie at the cap"] * bool(ranked[cap - 1] == ranked[cap]) + ["partial_sort"] * (cap * 64 <= len(values))
    return found


def test_plateaus_collapse_and_vote_ties_go_to_the_first_center():
    """Hand-made: a 2 x 2 plateau is one center at its first pixel; a pixel pointing exactly midway
    between two centers votes for the first; a flat region (window 1) centers at its first maximum."""
    from sleap_nn.inference.segmentation import (
        find_center_peaks,
        group_instances_from_offsets,
    )

    heatmap = np.zeros((8, 9), np.float32)
    heatmap[2:4, 1:3] = 0.8  # plateau: first pixel (x=1, y=2)
    heatmap[5, 6] = heatmap[5, 8] = 0.8  # two separate tied maxima further on
    candidates = ((heatmap >= F.max_pool2d(torch.from_numpy(heatmap)[None, None], 3, 1, 1)[0, 0].numpy())
                  & (heatmap > 0.2)).astype(np.uint8)
    peaks, values = center_peaks(candidates, heatmap)
    assert peaks.tolist() == [[1, 2], [6, 5], [8, 5]] and values.tolist() == [np.float32(0.8)] * 3
    reference, _ = find_center_peaks(torch.from_numpy(heatmap)[None, None], 0.2, 3)
    assert reference.tolist() == [[1.0, 2.0], [6.0, 5.0], [8.0, 5.0]]
    # Every pixel points at (x=7, y=5): midway between the centers at 6 and 8.
    foreground = np.ones((8, 9), np.uint8)
    offsets = np.stack(np.broadcast_arrays(np.float32(7.5) - (np.arange(9, dtype=np.float32) + 0.5)[None, :],
                                           np.float32(5.5) - (np.arange(8, dtype=np.float32) + 0.5)[:, None]))
    offsets = offsets.astype(np.float32)
    ours = group_instances(foreground, candidates, heatmap, offsets, 1, MaskOptions())
    theirs = group_instances_from_offsets(
        torch.ones(1, 1, 8, 9), torch.from_numpy(heatmap)[None, None], torch.from_numpy(offsets)[None], output_stride=1,
    )
    assert [inst.center for inst in ours] == [ref["center"] for ref in theirs] == [(6.5, 5.5)]
    assert ours[0].mask.all()
    # Window 1: the whole region above 0.2 is one group centered at its strongest pixel.
    ramp = np.where(heatmap > 0, heatmap, 0.3).astype(np.float32)
    ramp[4, 4] = 0.9
    peaks, values = center_peaks((ramp > 0.2).astype(np.uint8), ramp)
    assert peaks.tolist() == [[4, 4]] and values.tolist() == [np.float32(0.9)]


def test_merges_with_tied_scores_and_affinities_match_sleap_nn():
    """Fragments made to touch (a Voronoi split of blobs) with scores from two values: tied
    representatives, and with the contact-only blend many edges of affinity exactly 1 (ties for the
    strongest edge) and multicut costs summed in sleap-nn's order."""
    from sleap_nn.inference.segmentation import merge_instances

    rng = np.random.default_rng(17)
    compared = changed = 0
    settings = [SETTINGS[name] for name in ("greedy", "multicut", "greedy-knobs", "contact-only")]
    settings.append(MaskOptions(merge_fragments=True, merge_w_valley=0.0, merge_thresholds=(0.5, 0.2)))
    for case in range(100):
        stride = int(rng.choice([1, 2, 4]))
        height, width = (int(v) for v in rng.integers(12, 40, 2))
        rows, cols = np.mgrid[:height, :width]
        blobs = np.zeros((height, width), bool)
        for _ in range(int(rng.integers(1, 4))):
            cy, cx, radius = rng.integers(0, height), rng.integers(0, width), rng.uniform(3, 9)
            blobs |= (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
        seeds = np.stack([rng.integers(0, width, 9), rng.integers(0, height, 9)], axis=1)
        owner = ((cols[..., None] - seeds[:, 0]) ** 2 + (rows[..., None] - seeds[:, 1]) ** 2).argmin(axis=2)
        heatmap = rng.choice(np.float32([0.1, 0.5, 0.9]), (height, width))
        offsets = rng.normal(0, 3 * stride, (2, height, width)).astype(np.float32)
        ours = []
        for k, (x, y) in enumerate(seeds):
            mask = blobs & (owner == k)
            if mask.any():
                center = tuple(float(v) for v in np.float32([x, y]) * np.float32(stride) + np.float32(stride / 2))
                ours.append(InstanceMask(mask, float(rng.choice(np.float32([0.5, 0.7]))), center))
        theirs = [{"mask": inst.mask, "score": inst.score, "center": inst.center} for inst in ours]
        for options in settings:
            expected = merge_instances(
                theirs, heatmap, offsets, stride, method=options.merge_method, dilate_iters=options.merge_dilate,
                w_valley=options.merge_w_valley, w_offset=options.merge_w_offset, thresholds=options.merge_thresholds,
            )
            merged = merge_fragments(ours, heatmap, offsets, stride, options)
            assert_same_instances(merged, expected)
            compared += 1
            changed += len(merged) < len(ours)
    assert compared == 500 and changed > 200


def test_topk_order_is_torch_topks_with_ties():
    """torch.topk's CPU order, ties included, over both of its algorithms (nth_element + sort, and
    partial_sort when k * 64 <= n): random values drawn from few levels so most are tied."""
    rng = np.random.default_rng(7)
    compared = 0
    for n in [*range(1, 70), 100, 129, 200, 640, 1000]:
        for _ in range(12 if n < 200 else 3):
            values = rng.choice(rng.random(int(rng.integers(1, 6))).astype(np.float32), n)
            for k in {1, 2, 3, max(1, n // 64), max(1, n // 2), n - 1, n} - {0}:
                if k <= n:
                    assert topk_order(values, k).tolist() == torch.topk(torch.from_numpy(values), k)[1].tolist()
                    compared += 1
    assert compared > 4000


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


def test_nearest_resampling_indices_are_torchs():
    sizes = [*range(1, 70), 95, 96, 97, 191, 192, 193, 300, 383, 384, 452, 640, 720, 1023, 1080, 1920]
    compared = 0
    for size_in in sizes:
        source = torch.arange(size_in, dtype=torch.float32)[None, None, :, None]
        for size_out in sizes:
            theirs = F.interpolate(source, size=(size_out, 1), mode="nearest")[0, 0, :, 0].to(torch.int64)
            assert np.array_equal(nearest_source_indices(size_in, size_out), theirs.numpy()), (size_in, size_out)
            compared += 1
    assert compared == len(sizes) ** 2


def test_stride_and_full_resolution_placement_match_sleap_nn_over_sizes_and_scales():
    """sleap-nn's _mask_to_stride and _mask_to_original on random masks that touch the valid
    region's last cells, over odd frame sizes, strides, input scales and size-matching scales."""
    from sleap_nn.inference.layers.segmentation import SegmentationLayer
    from sleap_nn.inference.preprocess_info import PreprocInfo

    rng = np.random.default_rng(3)
    compared = 0
    for _ in range(500):
        stride = int(rng.choice([1, 2, 4, 8]))
        height, width = (int(v) for v in rng.integers(1, 160, 2))
        eff = float(np.float32(rng.choice([1.0, rng.uniform(0.2, 2.5)])))
        input_scale = float(rng.choice([1.0, 0.5, 0.6, 0.75, 1.5]))
        content = [max(1, round(v * eff * input_scale)) for v in (height, width)]
        padded = [math.ceil(c / (stride * 4)) * stride * 4 + stride * int(rng.integers(0, 5)) for c in content]
        mask = rng.random((padded[0] // stride, padded[1] // stride)) < 0.5
        info = PreprocInfo(
            original_size=(height, width), processed_size=tuple(padded),
            eff_scale=torch.tensor([eff], dtype=torch.float32), input_scale=input_scale, output_stride=stride,
        )
        geometry = FrameGeometry((height, width), eff, input_scale, stride)
        theirs, scale, offset = SegmentationLayer._mask_to_stride(None, mask, info, 0)
        ours, our_scale = at_stride(mask, geometry)
        assert np.array_equal(ours, theirs) and ours.shape == theirs.shape and (our_scale, (0.0, 0.0)) == (scale, offset)
        full = SegmentationLayer._mask_to_original(None, mask, info, 0)
        assert np.array_equal(at_frame_resolution(mask, geometry), full) and full.shape == (height, width)
        compared += 1
    assert compared == 500


def test_semantic_masks_match_sleap_nn():
    """SemanticSegmentationLayer.postprocess: one mask per frame, the score passed through, area
    floors at the stride (ceil) and at full resolution, empty frames without a mask."""
    from sleap_nn.inference.layers.segmentation import SemanticSegmentationLayer
    from sleap_nn.inference.preprocess_info import PreprocInfo

    rng = np.random.default_rng(11)
    compared = kept = 0
    for case in range(160):
        stride = int(rng.choice([1, 2, 4]))
        height, width = (int(v) for v in rng.integers(5, 120, 2))
        eff = float(np.float32(rng.choice([1.0, rng.uniform(0.4, 1.8)])))
        input_scale = float(rng.choice([1.0, 0.5, 0.75]))
        content = [max(1, round(v * eff * input_scale)) for v in (height, width)]
        padded = [math.ceil(c / (stride * 2)) * stride * 2 for c in content]
        probability = rng.random((padded[0] // stride, padded[1] // stride)).astype(np.float32) * (case % 5 != 0)
        options = MaskOptions(min_mask_area=int(rng.choice([0, 5, 60])), full_res_masks=bool(case % 2))
        info = PreprocInfo(
            original_size=(height, width), processed_size=tuple(padded),
            eff_scale=torch.tensor([eff], dtype=torch.float32), input_scale=input_scale, output_stride=stride,
        )
        layer = SemanticSegmentationLayer.__new__(SemanticSegmentationLayer)
        layer.__dict__.update(output_stride=stride, fg_threshold=0.7, min_mask_area=options.min_mask_area,
                              full_res_masks=options.full_res_masks)
        theirs = layer.postprocess({"SegmentationHead": torch.from_numpy(probability)[None, None]}, info).pred_masks[0]
        foreground = (probability > 0.7).astype(np.uint8)
        score = float(torch.from_numpy(probability)[torch.from_numpy(foreground.astype(bool))].mean()) if foreground.any() else 0.0
        ours = semantic_mask(foreground, score, FrameGeometry((height, width), eff, input_scale, stride), options)
        assert_same_masks(ours, theirs, f"semantic case {case}")
        compared += 1
        kept += len(ours)
    assert compared == 160 and 40 < kept < 140


def test_topdown_crop_masks_are_placed_as_sleap_nn_places_them():
    """TopDownSegmentationLayer._run_stage_2 with a stand-in stage 2 (random crop masks and scores):
    the scale and offset of each crop mask from its first pixel, over size-matching scales, input
    scales, strides, crop sizes and centroids near and beyond the frame's edges."""
    from sleap_nn.data.instance_cropping import make_centered_bboxes
    from sleap_nn.inference.layers.configs import PreprocessConfig
    from sleap_nn.inference.layers.topdown_segmentation import TopDownSegmentationLayer
    from sleap_nn.inference.outputs import Outputs

    class StageTwo:
        def __init__(self, masks, scores, stride, input_scale):
            self.masks, self.scores = masks, scores
            self.output_stride = stride
            self.preprocess_config = PreprocessConfig(scale=input_scale)

        def predict(self, crops):
            return Outputs(crops=self.masks, instance_scores=self.scores)

    rng = np.random.default_rng(5)
    compared = 0
    for _ in range(60):
        crop = int(rng.choice([32, 64, 96, 128]))
        stride = int(rng.choice([1, 2, 4]))
        input_scale = float(rng.choice([1.0, 0.5, 0.75]))
        frames, slots, height, width = 2, 3, 160, 200
        centroids = torch.from_numpy(rng.uniform(-30, 230, (frames, slots, 2)).astype(np.float32))
        valid = torch.from_numpy(rng.random((frames, slots)) < 0.8)
        eff = torch.from_numpy(np.float32(rng.uniform(0.3, 2.0, frames)))
        n_valid = int(valid.sum())
        side = max(1, int(crop * input_scale) // stride)
        masks = torch.from_numpy(rng.random((n_valid, 1, side, side)) < 0.3).float()
        scores = torch.from_numpy(rng.random((n_valid, 1)).astype(np.float32))
        layer = TopDownSegmentationLayer.__new__(TopDownSegmentationLayer)
        layer.__dict__.update(crop_size=(crop, crop), centered_instance_layer=StageTwo(masks, scores, stride, input_scale))
        theirs = layer._run_stage_2(torch.zeros(frames, 1, height, width), centroids, torch.ones(frames, slots), valid, eff)
        # The graph's crop origins: trunc(top-left + half) - half on the size-matched frame.
        top_left = make_centered_bboxes(centroids[valid], crop, crop)[:, 0, :]
        origins = ((top_left + crop // 2).to(torch.int64) - crop // 2).to(torch.float32).numpy()
        frame_of = valid.nonzero()[:, 0].numpy()
        for b in range(frames):
            rows = np.flatnonzero(frame_of == b)
            ours = [
                place_crop_mask(masks[k, 0].numpy() > 0.5, float(scores[k, 0]), origins[k], float(eff[b]), input_scale, stride)
                for k in rows
            ]
            assert_same_masks(ours, theirs.pred_masks[b], f"top-down crop {crop} stride {stride}")
            compared += len(ours)
    assert compared > 250


# ---------------------------------------------------------------------------------------------
# sleap-io forms: masks and polygons
# ---------------------------------------------------------------------------------------------


def test_sio_masks_and_polygons_are_sleap_nns(real_maps, sleap_nn_segmentation):
    """Outputs.to_masks and build_predicted_roi (as Outputs.to_labels calls them) on real decoded
    masks (stride and full resolution) and on ragged synthetic masks with holes and many parts, at
    polygon tolerances 0, 0.01 and 0.05; top-down masks with offsets; empty masks dropped."""
    from sleap_nn.inference.outputs import Outputs
    from sleap_nn.inference.segmentation_convert import build_predicted_roi

    placed = []
    for name in ("default", "full-res"):
        for maps in real_maps[1:3]:
            placed += decoded(maps.raw, maps.info, 0, DEFAULT_GRAPH, SETTINGS[name])
    rng = np.random.default_rng(9)
    for k in range(40):
        ragged = rng.random((int(rng.integers(3, 40)), int(rng.integers(3, 40)))) < 0.45
        scale = (float(rng.uniform(0.2, 1.0)),) * 2
        offset = (float(rng.uniform(-20, 50)), float(rng.uniform(-20, 50))) if k % 2 else (0.0, 0.0)
        placed.append(PlacedMask(ragged, float(rng.random()), (1.0, 1.0) if k % 7 == 0 else scale, offset))
    placed.append(place_crop_mask(np.zeros((6, 6), bool), 0.0, (3, 4), 1.0, 1.0, 2))
    outputs = Outputs(pred_masks=[[{"mask": p.mask, "score": p.score, "scale": p.scale, "offset": p.offset}
                                   for p in placed]])
    theirs = outputs.to_masks(0)
    ours = predicted_masks(placed)
    assert len(ours) == len(theirs) == len(placed) - 1
    for mine, ref in zip(ours, theirs):
        assert isinstance(mine, sio.PredictedSegmentationMask)
        assert np.array_equal(mine.rle_counts, ref.rle_counts)
        assert (mine.height, mine.width, mine.score, mine.scale, mine.offset) == (
            ref.height, ref.width, ref.score, ref.scale, ref.offset)
    compared = 0
    for epsilon in (0.0, 0.01, 0.05):
        ref_rois = [r for r in (build_predicted_roi(m, float(m.score), epsilon) for m in theirs) if r is not None]
        our_rois = predicted_rois(ours, epsilon)
        assert len(our_rois) == len(ref_rois)
        for mine, ref in zip(our_rois, ref_rois):
            assert isinstance(mine, sio.PredictedROI) and mine.score == ref.score
            assert mine.geometry.wkb == ref.geometry.wkb
            compared += 1
    assert compared > 200


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


def test_mask_options_have_sleap_nn_predicts_names_and_defaults():
    from sleap_nn.cli import predict

    defaults = {p.name: p.default for p in predict.params}
    ours = attrs.asdict(MaskOptions())
    assert ours == {name: defaults[name] for name in ours}


@pytest.mark.parametrize("bad", [
    {"min_mask_area": -1}, {"max_instances": 0}, {"mask_cleanup_radius": -2}, {"distance_gate_alpha": -0.5},
    {"merge_method": "louvain"}, {"merge_thresholds": "0.8,x"}, {"merge_thresholds": (0.8, 1.5)},
    {"merge_w_valley": -1.0}, {"merge_dilate": -1}, {"mask_output": "rle"}, {"polygon_epsilon": -0.1},
])
def test_mask_options_refuse_bad_values_in_one_line(bad):
    with pytest.raises(InputError) as raised:
        MaskOptions(**bad)
    message = str(raised.value)
    assert "\n" not in message and next(iter(bad)).replace("_", "-") in message


def test_mask_options_read_sleap_nns_comma_separated_thresholds():
    assert MaskOptions(merge_thresholds="0.9, 0.5,0.3").merge_thresholds == (0.9, 0.5, 0.3)
    assert MaskOptions(mask_output="both").writes_masks and MaskOptions(mask_output="both").writes_polygons
    assert not MaskOptions(mask_output="polygon").writes_masks
