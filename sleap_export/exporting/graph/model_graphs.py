"""One traced wrapper per artifact type: uint8 frames in, decoded predictions out.

Each model type's record (`runtime.model_types`) names its wrapper here, and
every wrapper is built the same way, ``cls(stages, size_match)``, from its
stages in order (the centroid stage first). Their ``output_names`` are the
`Outputs` fields they fill, in order, so the runtime reads any artifact
without per-type code. Each network is a `Stage` with its own input scale,
strides and decoding, so a top-down graph keeps both models' settings.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch

from sleap_export.core.errors import InputError
from sleap_export.core.model_types import MASK_HEAD_TYPES
from sleap_export.core.spec import PostprocessSpec, StageSpec
from sleap_export.exporting.graph.box_crops import box_crop_windows, box_crops, points_from_crop, resampled_crops
from sleap_export.exporting.graph.box_decoding import (
    boxes_to_frame, centernet_detections, class_wise_nms, ssd_anchors, ssd_detections,
)
from sleap_export.exporting.graph.crops import centered_crops
from sleap_export.exporting.graph.paf import paf_line_scores
from sleap_export.exporting.graph.paf_grouping import group_in_graph
from sleap_export.exporting.graph.peaks import global_peaks, integral_offsets, local_peaks, nan_to_zero
from sleap_export.exporting.graph.preprocess import ScaleAndPad, SizeMatch, frames_to_images
from sleap_export.exporting.graph.shapes import shape_of
from sleap_export.exporting.graph.tiling import TiledHeads


class Stage(torch.nn.Module):
    """One network with its preprocessing contract and peak decoding."""

    def __init__(self, network, head_names: Sequence[str], spec: StageSpec, post: PostprocessSpec):
        super().__init__()
        self.network = network
        self.spec = spec
        self.head_names = tuple(head_names)
        # Box detectors have none.
        self.confmap_head = next((n for n in self.head_names if n.endswith("ConfmapsHead")), None)
        self.class_head = "ClassVectorsHead" if "ClassVectorsHead" in self.head_names else None
        # Segmentation's foreground head leaves as probabilities: sleap-nn's training modules apply
        # the sigmoid (before blending tiles, where they tile).
        self.probability_heads = ("SegmentationHead",) if spec.head_type in MASK_HEAD_TYPES else ()
        if spec.tiling is None:
            self.prepare = ScaleAndPad(spec.input_scale, spec.max_stride)
        else:
            # sleap-nn pads a tiled frame to the output stride only; the tiles pad it there.
            self.prepare = ScaleAndPad(spec.input_scale, 1)
            self.network = TiledHeads(network, spec.tiling, spec.output_stride, spec.max_stride, self.probability_heads)
            self.probability_heads = ()
        self.output_stride = float(spec.output_stride)
        self.input_scale = float(spec.input_scale)
        self.post = post
        # Exact comparisons, as sleap-nn; see `for_reordering_runtimes`.
        self.peak_tie_tolerance = 0.0

    def heads(self, images: torch.Tensor) -> dict:
        """Run the network on float32 whole-number images (before scaling)."""
        heads = self.network(self.prepare(images))
        return {name: torch.sigmoid(maps) if name in self.probability_heads else maps for name, maps in heads.items()}

    def refine(self, confmaps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Integral refinement of ``(B, C, K, 2)`` grid points where the spec asks; a flat top's
        fractional point is refined around the pixel it floors to, as sleap-nn does."""
        if self.post.refinement != "integral":
            return points
        anchors = torch.floor(points)
        return anchors + integral_offsets(confmaps, anchors, self.post.integral_patch_size)

    def to_input_pixels(self, grid_points: torch.Tensor) -> torch.Tensor:
        """Confidence-map grid -> this stage's input pixels (before its scaling)."""
        return grid_points * self.output_stride / self.input_scale

    def global_keypoints(self, confmaps: torch.Tensor):
        """One refined peak per node: ``(B, N, 2)`` input pixels and ``(B, N)`` values."""
        points, values = global_peaks(confmaps, self.post.peak_threshold)
        points = self.refine(confmaps, points.unsqueeze(2)).squeeze(2)
        return self.to_input_pixels(points), values


class PoseGraph(torch.nn.Module):
    """Base of the artifact graphs: built from the artifact's stages and the size matching."""

    input_names: tuple[str, ...] = ("frames",)
    output_names: tuple[str, ...] = ()
    # How many stages (networks) the graph runs.
    n_stages = 1

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__()
        if len(stages) != self.n_stages:
            raise ValueError(f"{type(self).__name__} takes {self.n_stages} stage(s), got {len(stages)}")
        self.size_match = size_match


class SingleInstanceGraph(PoseGraph):
    """Global peak per node; one instance per frame."""

    output_names = ("pred_keypoints", "pred_peak_values", "pred_raw_keypoints")

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.stage = stages[0]

    def forward(self, frames: torch.Tensor):
        sized, size_scale = self.size_match(frames_to_images(frames))
        confmaps = self.stage.heads(sized)[self.stage.confmap_head]
        raw, values = self.stage.global_keypoints(confmaps)
        keypoints = raw / size_scale
        return keypoints.unsqueeze(1), values.unsqueeze(1), raw.unsqueeze(1)


def find_centroids(stage: Stage, sized: torch.Tensor, max_instances: int):
    """Refined centroid peaks: ``(B, K, 2)`` sized-image pixels, values, validity."""
    confmaps = stage.heads(sized)[stage.confmap_head]
    points, values, valid = local_peaks(confmaps, stage.post.peak_threshold, max_instances, stage.peak_tie_tolerance)
    points = stage.refine(confmaps, points)
    return stage.to_input_pixels(points[:, 0]), values[:, 0], valid[:, 0]


class CentroidGraph(PoseGraph):
    """Local peaks of the centroid map, up to ``max_instances`` per frame."""

    output_names = ("pred_centroids", "pred_centroid_values", "instance_valid", "pred_raw_centroids")

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.stage = stages[0]

    def forward(self, frames: torch.Tensor):
        sized, size_scale = self.size_match(frames_to_images(frames))
        raw, values, valid = find_centroids(self.stage, sized, self.stage.post.max_instances)
        return raw / size_scale, values, valid, raw


def crop_size_of(spec: StageSpec) -> int:
    """The crop size a cropping stage was trained on; one line when its config lacks it."""
    if spec.crop_size is None:
        raise InputError(
            f"{spec.source} sets no crop_size in its training config; "
            "set data_config.preprocessing.crop_size to the size it was trained on."
        )
    return int(spec.crop_size)


def crop_slots(valid: torch.Tensor):
    """``(slots (n, 2), kept (n,))``: the ``(frame, slot)`` pairs of ``(B, K)`` ``valid`` to crop, and which of
    them are valid. A batch without any runs one placeholder crop (frame 0, slot 0; its results dropped):
    OpenVINO cannot run a network on zero crops."""
    shape = shape_of(valid)
    first_slot = (torch.arange(shape[0]) == 0)[:, None] & (torch.arange(shape[1]) == 0)[None, :]
    slots = torch.nonzero(valid | (first_slot & ~valid.any()))
    return slots, valid[slots[:, 0], slots[:, 1]]


def into_slots(values: torch.Tensor, slots: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-crop ``(n, ...)`` values in NaN-filled ``(B, K, ...)`` slots shaped like ``valid``. index_put_, not
    item assignment: assignment drops a leading 1 of the values' shape, which a trace on one crop would freeze."""
    shape = shape_of(valid)
    full = torch.full((shape[0], shape[1], *values.shape[1:]), float("nan"))
    return full.index_put_((slots[:, 0], slots[:, 1]), values)


class CroppedInstances(torch.nn.Module):
    """The centered-instance stage on crops around the valid centroids only.

    Crops are gathered on the size-matched frame (sleap-nn's crop grid), the
    stage runs on a dynamic number of crops, and results are scattered back
    into ``max_instances`` slots per frame.
    """

    def __init__(self, stage: Stage):
        super().__init__()
        self.stage = stage
        self.crop_size = crop_size_of(stage.spec)
        self.with_classes = stage.class_head is not None

    def forward(self, sized, size_scale, centroids_sized, valid):
        slots, kept = crop_slots(valid)
        crops, top_left = centered_crops(
            sized, nan_to_zero(centroids_sized[slots[:, 0], slots[:, 1]]), slots[:, 0], self.crop_size
        )
        heads = self.stage.heads(crops)
        keypoints, values = self.stage.global_keypoints(heads[self.stage.confmap_head])
        keypoints = torch.where(kept[:, None, None], (keypoints + top_left.unsqueeze(1)) / size_scale, float("nan"))
        values = torch.where(kept[:, None], values, float("nan"))
        full_keypoints, full_values = into_slots(keypoints, slots, valid), into_slots(values, slots, valid)
        if not self.with_classes:
            return full_keypoints, full_values
        vectors = torch.where(kept[:, None], heads[self.stage.class_head], float("nan"))
        return full_keypoints, full_values, into_slots(vectors, slots, valid)


class TopDownGraph(PoseGraph):
    """Centroid stage, crops, centered-instance stage and coordinate mapping in one graph."""

    output_names = (
        "pred_keypoints",
        "pred_peak_values",
        "pred_centroids",
        "pred_centroid_values",
        "instance_valid",
    )

    n_stages = 2

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.centroid = stages[0]
        self.instance = CroppedInstances(stages[1])

    def forward(self, frames: torch.Tensor):
        sized, size_scale = self.size_match(frames_to_images(frames))
        raw, values, valid = find_centroids(self.centroid, sized, self.centroid.post.max_instances)
        centroids = raw / size_scale
        # sleap-nn crops around centroids mapped to the frame and back.
        instances = self.instance(sized, size_scale, centroids * size_scale, valid)
        return (*instances[:2], centroids, values, valid, *instances[2:])


class MultiClassTopDownGraph(TopDownGraph):
    """Top-down with the class vectors of each instance (identity assigned on the host)."""

    output_names = TopDownGraph.output_names + ("pred_class_vectors",)


class CenteredInstanceGraph(PoseGraph):
    """The centered-instance stage alone, on centroids the caller supplies.

    Inputs: frames ``(B, H, W, C)`` uint8, centroids ``(B, K, 2)`` float32 in
    frame pixels, centroid_valid ``(B, K)`` bool.
    """

    input_names = ("frames", "centroids", "centroid_valid")
    output_names = ("pred_keypoints", "pred_peak_values", "instance_valid")

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.instance = CroppedInstances(stages[0])

    def forward(self, frames: torch.Tensor, centroids: torch.Tensor, centroid_valid: torch.Tensor):
        sized, size_scale = self.size_match(frames_to_images(frames))
        instances = self.instance(sized, size_scale, centroids * size_scale, centroid_valid)
        return (*instances[:2], centroid_valid, *instances[2:])


class MultiClassCenteredInstanceGraph(CenteredInstanceGraph):
    """The multi-class centered-instance stage alone, with class vectors."""

    output_names = CenteredInstanceGraph.output_names + ("pred_class_vectors",)


class RawHeadsGraph(PoseGraph):
    """One network's head maps (NCHW, model-input grid) after the artifact's preprocessing.

    Not a pose artifact: it exists to check the traced network against another
    framework's activations (SLEAP 1.x / TensorFlow) and to debug models.
    """

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.stage = stages[0]
        self.output_names = self.stage.head_names

    def forward(self, frames: torch.Tensor):
        sized, _ = self.size_match(frames_to_images(frames))
        heads = self.stage.heads(sized)
        return tuple(heads[name] for name in self.stage.head_names)


class BottomUpPeaks(PoseGraph):
    """Shared part of the bottom-up graphs: refined local peaks of every node."""

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.stage = stages[0]
        self.spec = self.stage.spec

    def peaks(self, frames: torch.Tensor):
        """``(heads, model-input pixel peaks (B, N, K, 2), values, valid, size_scale)``."""
        sized, size_scale = self.size_match(frames_to_images(frames))
        heads = self.stage.heads(sized)
        confmaps = heads[self.stage.confmap_head]
        post = self.stage.post
        points, values, valid = local_peaks(
            confmaps, post.peak_threshold, post.peaks_per_node, self.stage.peak_tie_tolerance
        )
        points = self.stage.refine(confmaps, points) * self.stage.output_stride
        return heads, points, values, valid, size_scale


class BottomUpGraph(BottomUpPeaks):
    """Peaks per node and PAF line scores of every candidate pair; grouping happens on the host."""

    output_names = ("pred_peaks", "pred_peak_values", "pred_peak_valid", "pred_line_scores")
    grouped_output_names = ("pred_keypoints", "pred_peak_values", "instance_scores", "instance_valid")

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        if self.stage.post.grouping == "graph":
            self.output_names = self.grouped_output_names

    def forward(self, frames: torch.Tensor):
        heads, points, values, valid, size_scale = self.peaks(frames)
        post = self.stage.post
        scores = paf_line_scores(
            heads["PartAffinityFieldsHead"],
            points,
            valid,
            self.spec.paf_edges,
            self.spec.paf_stride,
            post.n_line_points,
            post.max_edge_length_ratio,
            post.dist_penalty_weight,
        )
        keypoints = points / self.stage.input_scale / size_scale
        if post.grouping == "graph":
            return group_in_graph(
                keypoints, values, scores, self.spec.paf_edges, post.edge_order, post.min_line_scores, post.max_instances
            )
        return keypoints, values, valid, scores


class MultiClassBottomUpGraph(BottomUpPeaks):
    """Peaks per node and the class probabilities at each peak (nearest class-map pixel)."""

    output_names = ("pred_peaks", "pred_peak_values", "pred_peak_valid", "pred_class_probs")

    def forward(self, frames: torch.Tensor):
        heads, points, values, valid, size_scale = self.peaks(frames)
        class_maps = heads["ClassMapsHead"]  # (B, C, h, w)
        stride = float(self.spec.class_maps_stride)
        on_class_maps = points / stride
        shape = shape_of(class_maps)
        n_classes, height, width = shape[1], shape[2], shape[3]
        safe = torch.where(valid.unsqueeze(-1), on_class_maps, torch.zeros_like(on_class_maps))
        col = torch.minimum(torch.round(safe[..., 0]).to(torch.int64).clamp(min=0), width - 1)
        row = torch.minimum(torch.round(safe[..., 1]).to(torch.int64).clamp(min=0), height - 1)
        batch, nodes, slots = points.shape[0], points.shape[1], points.shape[2]
        pixel = (row * width + col).reshape(batch, 1, nodes * slots)
        flat = class_maps.reshape(batch, n_classes, height * width)
        probs = torch.gather(flat, 2, pixel.expand(batch, n_classes, nodes * slots))
        probs = probs.reshape(batch, n_classes, nodes, slots).permute(0, 2, 3, 1)
        keypoints = on_class_maps * stride / self.stage.input_scale / size_scale
        return keypoints, values, valid, probs


class BoxGraph(PoseGraph):
    """A box detector: frame boxes, scores, classes, the slots that hold a detection; and the
    model-input boxes with the slots that are NMS candidates (the host runs class-wise NMS on them)."""

    output_names = (
        "pred_bboxes", "pred_bbox_scores", "pred_bbox_classes", "pred_bbox_valid", "pred_bbox_input_boxes", "pred_bbox_candidates"
    )

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.stage = stages[0]

    def detections(self, heads: dict, input_height, input_width):
        """``(boxes, scores, classes, kept)`` in model-input pixels, in descending score."""
        raise NotImplementedError

    def forward(self, frames: torch.Tensor):
        images = frames_to_images(frames)
        frame_shape = shape_of(images)
        sized, size_scale = self.size_match(images)
        model_input = self.stage.prepare(sized)
        input_shape = shape_of(model_input)
        boxes, scores, classes, kept = self.detections(self.stage.network(model_input), input_shape[2], input_shape[3])
        frame_boxes, in_frame = boxes_to_frame(
            boxes, scores, kept, self.stage.input_scale, size_scale, frame_shape[2], frame_shape[3]
        )
        # Slots without a detection are emptied as sleap-nn pads them (NaN, class -1): what fills them
        # is the runtime's choice among equal scores.
        empty = torch.full_like(scores, float("nan"))
        return (
            torch.where(in_frame[..., None], frame_boxes, empty[..., None]),
            torch.where(kept, scores, empty),
            torch.where(kept, classes, torch.full_like(classes, -1)),
            in_frame,
            torch.where(kept[..., None], boxes, empty[..., None]),
            kept,
        )


class CenterNetBoxGraph(BoxGraph):
    """CenterNet: max-pool peaks of the center heatmap with the size and offset at each."""

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        # A module, so that `for_reordering_runtimes` gives ONNX Runtime torch's sigmoid.
        self.center_probability = torch.nn.Sigmoid()

    def detections(self, heads: dict, input_height, input_width):
        post = self.stage.post
        return centernet_detections(
            self.center_probability(heads["BBoxCenterHead"]), heads["BBoxSizeHead"], heads.get("BBoxOffsetHead"),
            self.stage.spec.output_stride, post.peak_threshold, post.max_instances, input_height, input_width,
        )


class SsdBoxGraph(BoxGraph):
    """SSD: per-anchor class probabilities and box deltas, anchors made for the input's size."""

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        from sleap_export.exporting.checkpoints import ssd_anchor_settings

        self.strides, shapes, self.variances = ssd_anchor_settings(self.stage.spec.training_config)
        self.level_shapes = [torch.tensor(level, dtype=torch.float32) for level in shapes]

    def detections(self, heads: dict, input_height, input_width):
        anchors = ssd_anchors(input_height, input_width, self.strides, self.level_shapes)
        return ssd_detections(
            heads["SSDHead"], anchors, self.variances, self.stage.post.peak_threshold, input_height, input_width
        )


class BoxSeededInstances(torch.nn.Module):
    """The centered-instance stage on the crops a detector's boxes seed (sleap-nn's ``TopDownLayer``
    behind a ``BBoxStageLayer``).

    The frame is size-matched to the centered-instance run's own training size; a run trained
    with ``crop_mode: bbox`` gets each box resized to its crop (`box_crops`), any other a
    fixed crop around the box center. Only the boxes marked ``seeded`` are cropped.
    """

    def __init__(self, stage: Stage):
        super().__init__()
        spec = stage.spec
        self.stage = stage
        self.crop_size = crop_size_of(spec)
        self.box_crop = spec.box_crop
        self.size_match = SizeMatch(spec.max_height, spec.max_width)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor, seeded: torch.Tensor):
        sized, size_scale = self.size_match(images)
        slots, kept = crop_slots(seeded)
        frame_boxes = nan_to_zero(boxes[slots[:, 0], slots[:, 1]])
        if self.box_crop is not None:
            windows, scales, keep_half = box_crop_windows(frame_boxes * size_scale, self.crop_size, self.box_crop)
            crops = box_crops(sized, windows, keep_half, slots[:, 0], self.crop_size, self.box_crop.aspect == "letterbox")
            keypoints, values = self.stage.global_keypoints(self.stage.heads(crops)[self.stage.confmap_head])
            keypoints = points_from_crop(keypoints, windows, scales)
        else:
            centers = torch.stack(
                [(frame_boxes[:, 0] + frame_boxes[:, 2]) / 2, (frame_boxes[:, 1] + frame_boxes[:, 3]) / 2], dim=-1
            )
            crops, top_left = centered_crops(sized, centers * size_scale, slots[:, 0], self.crop_size)
            keypoints, values = self.stage.global_keypoints(self.stage.heads(crops)[self.stage.confmap_head])
            keypoints = keypoints + top_left.unsqueeze(1)
        keypoints = torch.where(kept[:, None, None], keypoints / size_scale, float("nan"))
        values = torch.where(kept[:, None], values, float("nan"))
        return into_slots(keypoints, slots, seeded), into_slots(values, slots, seeded)


class BoxTopDownGraph(PoseGraph):
    """A detector's boxes seeding the centered-instance stage, in one graph.

    The detections are final here (class-wise NMS in the graph, then the cap of
    ``max_instances``, then the boxes left in the frame), so the second stage runs
    on the crops of those boxes only, as sleap-nn's does.
    """

    output_names = ("pred_bboxes", "pred_bbox_scores", "pred_bbox_classes", "pred_bbox_valid", "pred_keypoints", "pred_peak_values")
    n_stages = 2
    detector_graph: type[BoxGraph]

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.detector = self.detector_graph(stages[:1], size_match)
        self.instance = BoxSeededInstances(stages[1])
        self.nms_iou = stages[0].post.box_nms_iou
        self.max_detections = stages[0].post.max_instances

    def forward(self, frames: torch.Tensor):
        boxes, scores, classes, in_frame, input_boxes, candidates = self.detector(frames)
        detections = in_frame
        if self.nms_iou is not None:
            # As sleap-nn: the first max_instances survivors, then those with a box left in the frame.
            detections = class_wise_nms(input_boxes, classes, candidates, self.nms_iou, self.max_detections) & in_frame
        empty = torch.full_like(scores, float("nan"))
        keypoints, values = self.instance(frames_to_images(frames), boxes, detections)
        return (
            torch.where(detections[..., None], boxes, empty[..., None]),
            torch.where(detections, scores, empty),
            torch.where(detections, classes, torch.full_like(classes, -1)),
            detections,
            keypoints,
            values,
        )


class CenterNetTopDownGraph(BoxTopDownGraph):
    detector_graph = CenterNetBoxGraph


class SsdTopDownGraph(BoxTopDownGraph):
    detector_graph = SsdBoxGraph


def pose_centers(keypoints: torch.Tensor) -> torch.Tensor:
    """``(..., 2)`` crop centres of ``(..., nodes, 2)`` poses as sleap-nn's ``generate_centroids`` without an
    anchor: the mean of the visible nodes per axis (NaN for a pose with none)."""
    seen = ~torch.isnan(keypoints)
    counts = seen.sum(dim=-2).clamp(min=1).to(keypoints.dtype)
    means = torch.where(seen, keypoints, torch.zeros_like(keypoints)).sum(dim=-2) / counts
    return torch.where(seen.any(dim=-1).any(dim=-1, keepdim=True), means, float("nan"))


# sleap-nn standardizes each embedding crop over its pixels (0-255 scale), its std floored at one grey level.
EMBEDDING_STD_EPS = 1e-5
EMBEDDING_STD_FLOOR = 1.0


class EmbeddedInstances(torch.nn.Module):
    """The embedding (re-ID) stage on a crop around each valid centroid, as sleap-nn's
    ``EmbeddingDataset`` cuts it for a pose detection.

    The frame is size-matched to the embedding run's own training size; the crop is sleap-nn's
    centered box (``crop_size - 1`` pixels between its corner pixels' centers) resampled to ``crop_size``
    pixels as its Skia crop does (bilinear at each output pixel's center, edge fade, rounded to
    whole grey levels); each crop is standardized and the network gives its vector.
    """

    def __init__(self, stage: Stage):
        super().__init__()
        spec = stage.spec
        self.stage = stage
        self.crop_size = crop_size_of(spec)
        self.size_match = SizeMatch(spec.max_height, spec.max_width)
        self.head = stage.head_names[0]

    def forward(self, images: torch.Tensor, centroids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``(B, K, D)`` vectors of the ``(B, K, 2)`` frame-pixel centroids marked ``valid``; NaN elsewhere."""
        sized, size_scale = self.size_match(images)
        slots, kept = crop_slots(valid)
        centers = nan_to_zero(centroids[slots[:, 0], slots[:, 1]]) * size_scale
        # sleap-nn's centered box, in its float32 steps: corners at half the crop, then moved 0.5 in.
        half = self.crop_size / 2
        windows = torch.cat([(centers - half) + 0.5, (centers + half) - 0.5], dim=-1)
        crops = resampled_crops(sized, windows, slots[:, 0], self.crop_size)
        pixels = float(self.crop_size * self.crop_size)
        mean = crops.sum(dim=(2, 3), keepdim=True) / pixels  # exact: a sum of whole numbers under 2**24
        # The squares summed in float64: a float32 sum's error depends on its order, which runtimes choose
        # (ONNX Runtime's moved the std 1e-5 from torch's and the vectors 4e-5).
        squares = ((crops - mean).to(torch.float64) ** 2).sum(dim=(2, 3), keepdim=True)
        std = (squares / pixels).to(torch.float32).sqrt() + EMBEDDING_STD_EPS
        vectors = self.stage.network((crops - mean) / std.clamp(min=EMBEDDING_STD_FLOOR))[self.head]
        return into_slots(torch.where(kept[:, None], vectors, float("nan")), slots, valid)


class CentroidEmbeddingGraph(PoseGraph):
    """Centroids, and an appearance vector for each from the embedding run, in one graph
    (sleap-nn's fused ``predict -m CENTROID -m EMBEDDING --save_embeddings slp``)."""

    output_names = CentroidGraph.output_names + ("pred_embeddings",)
    n_stages = 2

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.centroid = stages[0]
        self.embedding = EmbeddedInstances(stages[1])

    def forward(self, frames: torch.Tensor):
        images = frames_to_images(frames)
        sized, size_scale = self.size_match(images)
        raw, values, valid = find_centroids(self.centroid, sized, self.centroid.post.max_instances)
        centroids = raw / size_scale
        return centroids, values, valid, raw, self.embedding(images, centroids, valid)


class TopDownEmbeddingGraph(PoseGraph):
    """Top-down poses, and an appearance vector for each from the embedding run's crop centred on the
    mean of the pose's visible nodes (sleap-nn's fused ``predict -m CENTROID -m CENTERED_INSTANCE -m
    EMBEDDING --save_embeddings slp``)."""

    output_names = TopDownGraph.output_names + ("pred_embeddings",)
    n_stages = 3

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        if stages[2].spec.anchor_part is not None:
            raise InputError(
                f"{stages[2].spec.source} centres its crops on the anchor node {stages[2].spec.anchor_part!r}, which "
                "sleap-export crops behind a centroid run only; pair it with the centroid run alone, or retrain with "
                "anchor_part: null."
            )
        self.topdown = TopDownGraph(stages[:2], size_match)
        self.embedding = EmbeddedInstances(stages[2])

    def forward(self, frames: torch.Tensor):
        keypoints, values, centroids, centroid_values, valid = self.topdown(frames)
        centers = pose_centers(keypoints)
        posed = valid & ~torch.isnan(centers).any(dim=-1)
        vectors = self.embedding(frames_to_images(frames), centers, posed)
        return keypoints, values, centroids, centroid_values, valid, vectors


class EmbeddingGraph(PoseGraph):
    """The embedding run alone, on crop centres the caller supplies: the vector of each given instance
    (sleap-nn's ``predict_embeddings_to_slp`` with a lone embedding model, on an existing .slp's poses).

    Inputs: frames ``(B, H, W, C)`` uint8, centroids ``(B, K, 2)`` float32 in frame pixels (each pose's
    crop centre: its anchor node, else the mean of its visible nodes), centroid_valid ``(B, K)`` bool.
    """

    input_names = ("frames", "centroids", "centroid_valid")
    output_names = ("pred_centroids", "instance_valid", "pred_embeddings")

    def __init__(self, stages: Sequence[Stage], size_match: SizeMatch):
        super().__init__(stages, size_match)
        self.embedding = EmbeddedInstances(stages[0])

    def forward(self, frames: torch.Tensor, centroids: torch.Tensor, centroid_valid: torch.Tensor):
        vectors = self.embedding(frames_to_images(frames), centroids, centroid_valid)
        return torch.where(centroid_valid[..., None], centroids, float("nan")), centroid_valid, vectors


class HalfPrecisionNetwork(torch.nn.Module):
    """A network run in fp16: its input cast down, its head maps cast back to fp32.

    Everything around it (resizing, peaks, refinement, coordinates) stays fp32.
    """

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network.half()

    def forward(self, images: torch.Tensor) -> dict:
        heads = self.network(images.to(torch.float16))
        return {name: maps.to(torch.float32) for name, maps in heads.items()}


def with_half_precision_networks(graph: torch.nn.Module) -> torch.nn.Module:
    """``graph`` with every stage's network wrapped in `HalfPrecisionNetwork` (in place)."""
    for stage in graph.modules():
        if isinstance(stage, Stage) and not isinstance(stage.network, HalfPrecisionNetwork):
            stage.network = HalfPrecisionNetwork(stage.network)
    return graph


class SaturatingSigmoid(torch.nn.Module):
    """``1 / (1 + exp(-x))``, the formula of torch's float32 sigmoid kernel, as plain ops.

    ONNX Runtime's Sigmoid kernel approximates the logistic function: where
    torch saturates a confident class probability to exactly 1.0, it gives
    0.99999994 on some pixels, and sleap-nn's identity assignment breaks those
    exact ties by order. Spelled out, the saturation matches torch's (measured on
    3 M logits); values below 1 stay within 1 ulp.
    """

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.reciprocal(1.0 + torch.exp(-logits))


# Relative margin a local peak must clear in runtimes that round differently
# from torch: 8 float32 ulps. ONNX Runtime spreads the values of a plateau
# (exactly equal in torch) over up to 1.5e-7 at 0.47 (5 ulps, measured).
PEAK_TIE_TOLERANCE = 2.0**-20


def for_reordering_runtimes(graph: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``graph`` for runtimes whose float rounding differs from torch's
    (ONNX Runtime, TensorRT), so that sleap-nn's exact ties stay ties there.

    Sigmoids become `SaturatingSigmoid`; local peaks must clear
    `PEAK_TIE_TOLERANCE`. TorchScript keeps the graph as is, bit for bit.
    """
    graph = copy.deepcopy(graph)
    for module in list(graph.modules()):
        if isinstance(module, Stage):
            module.peak_tie_tolerance = PEAK_TIE_TOLERANCE
        for name, child in module.named_children():
            if isinstance(child, torch.nn.Sigmoid):
                setattr(module, name, SaturatingSigmoid())
    return graph
