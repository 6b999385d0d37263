"""Reduced precision: int8 calibration and quantization, and the accuracy gate.

int8 is static QDQ quantization of the network's ``Conv`` nodes, calibrated on
real frames, with those of some roles (`convolution_roles`) left in fp32;
fp16 (traced from the graph, see ``HalfPrecisionNetwork``) needs no
calibration. Resizing, peak finding, refinement, crops and coordinate maths
stay fp32 in both. The gate runs the fp32 and reduced graphs on frames held
aside from calibration (a video), or on the labeled frames (a .slp, where
ground truth is compared too), holds them to `check`'s tolerance for the
precision (an embedding artifact's appearance vectors too), and its figures
and verdict travel in the spec.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import Callable, Optional

import attrs
import numpy as np

from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.exporting.options import require_calibration
from sleap_export.core.spec import AccuracyGate
from sleap_export.runtime.sources.video_inputs import first_labeled_frames, open_input, spread_indices

# Fewer calibration frames than this give ranges from too little of the data.
MIN_CALIBRATION_FRAMES = 32
# onnxruntime's names of the calibrators behind `spec.CALIBRATION_METHODS`.
_CALIBRATORS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@attrs.frozen
class CalibrationSet:
    """Frames to calibrate on, frames to gate on, and ground truth where labels gave it."""

    calibrate: list[np.ndarray]
    gate: list[np.ndarray]
    source: str
    truth: Optional[dict] = None  # (0, i) -> (instances, nodes, 2) for gate frame i
    # A .slp's labeled frames drawn (calibrate and gate): the detections a lone embedding run embeds.
    labels: Optional[object] = None  # sio.Labels

    def cache_key(self, centres: Optional[list[np.ndarray]] = None) -> str:
        """Names the calibration's ranges: its frames and, where the graph crops where it is told, the centres."""
        digest = hashlib.sha256()
        for frame in [*self.calibrate, *(centres or [])]:
            digest.update(np.ascontiguousarray(frame).tobytes())
        return digest.hexdigest()


def calibration_set(data: Optional[str | Path], count: int, precision: str = "int8") -> CalibrationSet:
    """``count`` calibration frames (a .slp: labeled frames first) and a gate set."""
    import sleap_io as sio

    data = require_calibration(precision, data)
    if count < 1:
        raise InputError(f"--calibration-frames must be at least 1, got {count}.")
    source = open_input(data)
    labels = None
    if isinstance(source, sio.Labels):
        labels = first_labeled_frames(source, count)
        labeled = labels.labeled_frames
        frames = [lf.image for lf in labeled]
        truth = {
            (0, i): np.stack([inst.numpy() for inst in lf.user_instances])
            for i, lf in enumerate(labeled)
            if lf.user_instances
        }
        calibrate, gate = frames, frames
    else:
        # Calibration and gate frames interleave, so the gate sees unseen frames of the same data.
        spread = spread_indices(source.shape[0], 2 * count)
        calibrate = [source[i] for i in spread[0::2]]
        gate = [source[i] for i in spread[1::2]] or calibrate
        truth = None
    if precision == "int8" and len(calibrate) < MIN_CALIBRATION_FRAMES:
        warnings.warn(
            f"Calibrating int8 on {len(calibrate)} frames; {MIN_CALIBRATION_FRAMES}+ give steadier ranges.",
            stacklevel=2,
        )
    return CalibrationSet(calibrate=calibrate, gate=gate, source=data.name, truth=truth or None, labels=labels)


def embedding_calibration(spec, calibration: CalibrationSet) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A lone embedding run's int8 calibration: the labeled frames holding a detection it embeds, and each
    one's ``(detections, 2)`` crop centres, chosen and centred as `LabelsEmbeddingPredictor` does."""
    from sleap_export.runtime.drivers.embedding_carriers import embedded_detections

    labels = calibration.labels
    owners = embedded_detections(labels, spec.stages[0])
    if not owners:
        raise InputError(
            f"{calibration.source} holds no detection to embed in its first labeled frames; calibrate on a .slp of "
            "detections (a pose or segmentation model's predictions, or labels)."
        )
    frames, centres = [], []
    for lf, image in zip(labels.labeled_frames, calibration.calibrate):
        if (id(lf.video), lf.frame_idx) in owners:
            frames.append(image)
            centres.append(owners[(id(lf.video), lf.frame_idx)][1])
    return frames, centres


def convolution_roles(model) -> dict[str, str]:
    """Conv node name -> ``entry`` (its network's first), ``heads`` (no convolution of its network
    after it) or ``body``. A network is the convolutions whose weights share a ``...network.``
    prefix, so a top-down graph's two networks each have their own entry and heads."""
    nodes = list(model.graph.node)
    producers = {out: i for i, node in enumerate(nodes) for out in node.output}
    convolutions = {i for i, node in enumerate(nodes) if node.op_type in ("Conv", "ConvTranspose")}

    def network(i: int) -> str:
        weight = nodes[i].input[1]
        return weight[: weight.index("network.")] if "network." in weight else ""

    upstream: list[frozenset[int]] = []  # node index -> convolutions it depends on (ONNX order is topological)
    for node in nodes:
        found: set[int] = set()
        for name in node.input:
            if name in producers:
                found |= upstream[producers[name]] | ({producers[name]} & convolutions)
        upstream.append(frozenset(found))
    same_network = {i: {j for j in upstream[i] if j in convolutions and network(j) == network(i)} for i in convolutions}
    followed = set().union(*same_network.values())
    roles = {}
    for i in sorted(convolutions):
        if nodes[i].op_type == "Conv":
            roles[nodes[i].name] = "entry" if not same_network[i] else "body" if i in followed else "heads"
    return roles


def quantize_int8(
    fp32_path: Path,
    int8_path: Path,
    frames: list[np.ndarray],
    cache_path: Path,
    symmetric: bool = False,
    method: str = "minmax",
    fp32_roles: tuple[str, ...] = (),
    fp32_nodes: tuple[str, ...] = (),
    centres: Optional[list[np.ndarray]] = None,
) -> None:
    """QDQ int8 of the Conv nodes only, but those of ``fp32_roles`` (`convolution_roles`) and
    ``fp32_nodes``: per-channel weights; uint8 activations for the CPU provider, or ``symmetric``
    int8 activations (zero point 0), the only kind TensorRT takes. The cache holds the ranges of
    every convolution, so one serves any choice of fp32 layers (not another ``method``).
    ``centres``: each frame's ``(K, 2)`` crop centres, for graphs that crop where they are told
    (`embedding_calibration`)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    roles = convolution_roles(onnx.load(str(fp32_path), load_external_data=False))
    excluded = [name for name, role in roles.items() if role in fp32_roles] + list(fp32_nodes)

    class Frames(CalibrationDataReader):
        """One frame per calibration run; ``set_range`` hands out the frames of one stride."""

        def __init__(self):
            self.set_range(0, len(frames))

        def __len__(self):
            return len(frames)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.remaining = iter(range(start_index, min(end_index, len(frames))))

        def get_next(self):
            i = next(self.remaining, None)
            if i is None:
                return None
            if centres is None:
                return {"frames": frames[i][None]}
            count = len(centres[i])
            return {
                "frames": frames[i][None],
                "centroids": np.asarray(centres[i], np.float32)[None],
                "centroid_valid": np.ones((1, count), bool),
            }

    # ONNX Runtime's quantizer logs advice on the root logger; our gate reports instead.
    logging.disable(logging.WARNING)
    try:
        quantize_static(
            str(fp32_path),
            str(int8_path),
            Frames(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            nodes_to_exclude=excluded,
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, _CALIBRATORS[method]),
            calibration_cache_path=str(cache_path),
            extra_options={
                "ActivationSymmetric": symmetric,
                "WeightSymmetric": True,
                # Folded into the ranges one frame at a time: the calibrator holds one frame's tensors, and
                # the histogram calibrators take top-down crops, whose count differs from frame to frame.
                "CalibStridedMinMax": 1,
            },
        )
    finally:
        logging.disable(logging.NOTSET)
    # The quantizer saves the shapes it inferred. From them ONNX Runtime's reshape fusion
    # rewrites a top-down crop reshape to (0, C, -1), which fails on a batch with no instance
    # (zero crops); the fp32 graph carries no inferred shapes and runs such batches.
    quantized = onnx.load(str(int8_path))
    del quantized.graph.value_info[:]
    onnx.save(quantized, str(int8_path))


def vectors_by_frame(labels) -> dict[tuple[int, int], list[np.ndarray]]:
    """``(video index, frame index) -> [appearance vector]`` of the detections that carry one, instances
    (in `poses_by_frame`'s order) then masks."""
    videos = {id(v): i for i, v in enumerate(labels.videos)}
    return {
        (videos[id(lf.video)], lf.frame_idx): [
            np.asarray(d.identity_embedding.vector, np.float64)
            for d in [*lf.instances, *(getattr(lf, "masks", None) or [])]
            if d.identity_embedding is not None
        ]
        for lf in labels.labeled_frames
    }


def paired_vectors(reduced: dict, fp32: dict, reduced_poses: dict, fp32_poses: dict, in_order: bool) -> list:
    """``(reduced, fp32)`` vectors of the same detections, from `vectors_by_frame` and `poses_by_frame` of
    each. ``in_order``: both embedded the same given detections (a lone embedding run), paired slot by slot.
    Otherwise the detections are paired as the pose comparison pairs them (Hungarian on mean keypoint
    distance), on frames where their counts agree: there every detection has its twin; a frame where they
    differ is held by the count agreement instead."""
    from sleap_export.core.comparison import match_instances

    pairs = []
    for key in sorted(set(reduced) & set(fp32)):
        a, b = reduced[key], fp32[key]
        if len(a) != len(b) or not a:
            continue
        if in_order:
            pairs.extend(zip(a, b))
            continue
        rows, cols, _ = match_instances(reduced_poses[key], fp32_poses[key])
        pairs.extend((a[i], b[j]) for i, j in zip(rows, cols))
    return pairs


def cosine_similarities(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Each pair's cosine similarity; a zero vector has no direction, so it is as far from any other as
    vectors get (-1), and from another zero vector not at all (1)."""
    found = []
    for a, b in pairs:
        norms = float(np.linalg.norm(a) * np.linalg.norm(b))
        found.append(float(a @ b) / norms if norms > 0 else 1.0 if not (a.any() or b.any()) else -1.0)
    return np.array(found, np.float64)


def accuracy_gate(
    spec,
    fp32_path: Path,
    reduced_path: Path,
    calibration: CalibrationSet,
    max_deviation: Optional[float] = None,
    keep_inaccurate: bool = False,
    open_runner: Optional[Callable[[Path], object]] = None,
) -> AccuracyGate:
    """Compare the reduced artifact with fp32 on the gate frames and hold it to its precision's
    tolerance; the measurement and verdict, or raise when it fails (unless ``keep_inaccurate``).
    An embedding artifact's appearance vectors are held too (`paired_vectors`).
    ``open_runner(path)``: the runner of either (default: ONNX Runtime on an ONNX file)."""
    from sleap_export.core.comparison import boxes_by_frame, compare_poses, poses_by_frame
    from sleap_export.core.model_types import BOX_HEAD_TYPES, MODEL_TYPES
    from sleap_export.core.tolerances import tolerance_for
    from sleap_export.runtime.backends.onnx_runner import OnnxRunner
    from sleap_export.runtime.drivers.predictor import Predictor

    if len({f.shape for f in calibration.gate}) > 1:
        raise InputError("Calibration frames differ in size; calibrate on one video or labels of one size.")
    # A lone embedding run embeds the given detections of the labels, in place (each run overwrites the vectors).
    embeds_given = spec.model_type == "embedding"
    source = calibration.labels if embeds_given else np.stack(calibration.gate)

    # A detector's boxes are held to the gate as two-corner poses (`boxes_by_frame`).
    detector = spec.model_type in BOX_HEAD_TYPES
    points_of = boxes_by_frame if detector else poses_by_frame

    def predictions(path: Path) -> tuple[dict, dict]:
        """Points and appearance vectors by frame (read at once: a lone embedding run's labels are reused)."""
        runner = open_runner(path) if open_runner is not None else OnnxRunner(path, spec)
        labels = Predictor(runner).predict(source, progress=None)
        return points_of(labels), vectors_by_frame(labels)

    (fp32, fp32_vectors), (reduced, reduced_vectors) = predictions(fp32_path), predictions(reduced_path)
    comparison = compare_poses(reduced, fp32)
    deviations = comparison.deviations
    mean = float(deviations.mean()) if deviations.size else 0.0
    p99 = comparison.deviation_at(99)
    labels_error = None
    if calibration.truth and not detector and not embeds_given:
        truth = calibration.truth
        errors = [compare_poses({k: p[k] for k in truth if k in p}, truth).deviations for p in (reduced, fp32)]
        labels_error = (float(errors[0].mean()), float(errors[1].mean()))
    tolerance = tolerance_for(spec.precision, max_deviation)
    passed = p99 <= tolerance.max_deviation_px and comparison.count_agreement >= tolerance.min_agreement
    vectors = {}
    if MODEL_TYPES[spec.model_type].embeds:
        pairs = paired_vectors(reduced_vectors, fp32_vectors, reduced, fp32, in_order=embeds_given)
        cosines = cosine_similarities(pairs)
        vectors = dict(vectors=len(pairs), min_vector_cosine=tolerance.min_vector_cosine)
        if pairs:
            vectors.update(
                vector_cosine_p1=float(np.percentile(cosines, 100 - tolerance.percentile)),
                worst_vector_cosine=float(cosines.min()),
                max_vector_deviation=max(float(np.abs(a - b).max()) for a, b in pairs),
            )
        # No vector compared proves nothing about them.
        passed = passed and bool(pairs) and vectors.get("vector_cosine_p1", -1.0) >= tolerance.min_vector_cosine
    gate = AccuracyGate(
        precision=spec.precision,
        frames=comparison.frames,
        source=calibration.source,
        mean_px=mean,
        p99_px=float(p99),
        count_agreement=float(comparison.count_agreement),
        labels_error_px=labels_error,
        max_deviation_px=tolerance.max_deviation_px,
        min_count_agreement=tolerance.min_agreement,
        passed=bool(passed),
        **vectors,
    )
    if not passed and not keep_inaccurate:
        raise SleapExportError(
            f"The {spec.precision} artifact fails its accuracy gate ({attrs.evolve(gate, passed=None)}; needs "
            f"{gate.describe_tolerance()}); nothing was written. Calibrate on more frames like those you will "
            "predict (--calibration-frames), try --calibration-method, export fp16 or fp32, or pass "
            "--keep-inaccurate to write it anyway."
        )
    return gate
