"""Reduced precision: int8 calibration and quantization, and the accuracy gate.

int8 is static QDQ quantization of the network's ``Conv`` nodes, calibrated on
real frames; fp16 (traced from the graph, see ``HalfPrecisionNetwork``) needs
no calibration. Resizing, peak finding, refinement, crops and coordinate maths
stay fp32 in both. The gate runs the fp32 and reduced graphs on frames held
aside from calibration (a video), or on the labeled frames (a .slp, where
ground truth is compared too), and its figures travel in the spec.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import Optional

import attrs
import numpy as np

from sleap_export.errors import InputError, SleapExportError
from sleap_export.runtime.sources import first_labeled_frames, open_input, spread_indices
from sleap_export.spec import AccuracyGate

# Fewer calibration frames than this give ranges from too little of the data.
MIN_CALIBRATION_FRAMES = 32


@attrs.frozen
class CalibrationSet:
    """Frames to calibrate on, frames to gate on, and ground truth where labels gave it."""

    calibrate: list[np.ndarray]
    gate: list[np.ndarray]
    source: str
    truth: Optional[dict] = None  # (0, i) -> (instances, nodes, 2) for gate frame i

    def cache_key(self) -> str:
        digest = hashlib.sha256()
        for frame in self.calibrate:
            digest.update(np.ascontiguousarray(frame).tobytes())
        return digest.hexdigest()


def calibration_set(data: Optional[str | Path], count: int, precision: str = "int8") -> CalibrationSet:
    """``count`` calibration frames (a .slp: labeled frames first) and a gate set."""
    import sleap_io as sio

    if data is None:
        purpose = "to calibrate on and gate against fp32" if precision == "int8" else "to gate against fp32"
        raise InputError(f"{precision} needs real frames {purpose}: pass --calibration VIDEO or LABELS.slp.")
    data = Path(data)
    if not data.exists():
        raise InputError(f"Calibration data {data} does not exist; pass a video or .slp file.")
    if count < 1:
        raise InputError(f"--calibration-frames must be at least 1, got {count}.")
    source = open_input(data)
    if isinstance(source, sio.Labels):
        labeled = first_labeled_frames(source, count).labeled_frames
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
    return CalibrationSet(calibrate=calibrate, gate=gate, source=data.name, truth=truth or None)


def quantize_int8(
    fp32_path: Path, int8_path: Path, frames: list[np.ndarray], cache_path: Path, symmetric: bool = False
) -> None:
    """QDQ int8 of the Conv nodes only: per-channel weights; uint8 activations for the CPU
    provider, or ``symmetric`` int8 activations (zero point 0), the only kind TensorRT takes."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.remaining = iter(frames)

        def get_next(self):
            frame = next(self.remaining, None)
            return None if frame is None else {"frames": frame[None]}

    # ONNX Runtime's quantizer logs advice on the root logger; our gate reports instead.
    logging.disable(logging.WARNING)
    try:
        quantize_static(
            str(fp32_path),
            str(int8_path),
            Frames(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibration_cache_path=str(cache_path),
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
        )
    finally:
        logging.disable(logging.NOTSET)


def accuracy_gate(
    spec, fp32_path: Path, reduced_path: Path, calibration: CalibrationSet, max_deviation: Optional[float]
) -> AccuracyGate:
    """Compare the reduced artifact with fp32 on the gate frames; the measurement, or raise."""
    from sleap_export.compare import compare_poses, poses_by_frame
    from sleap_export.runtime.predictor import Predictor
    from sleap_export.runtime.runners import OnnxRunner

    if len({f.shape for f in calibration.gate}) > 1:
        raise InputError("Calibration frames differ in size; calibrate on one video or labels of one size.")
    frames = np.stack(calibration.gate)

    def poses(path: Path) -> dict:
        return poses_by_frame(Predictor(OnnxRunner(path, spec)).predict(frames))

    fp32, reduced = poses(fp32_path), poses(reduced_path)
    comparison = compare_poses(reduced, fp32)
    deviations = comparison.deviations
    mean = float(deviations.mean()) if deviations.size else 0.0
    p99 = comparison.deviation_at(99)
    labels_error = None
    if calibration.truth:
        truth = calibration.truth
        errors = [compare_poses({k: p[k] for k in truth if k in p}, truth).deviations for p in (reduced, fp32)]
        labels_error = (float(errors[0].mean()), float(errors[1].mean()))
    gate = AccuracyGate(
        precision=spec.precision,
        frames=comparison.frames,
        source=calibration.source,
        mean_px=mean,
        p99_px=float(p99),
        count_agreement=float(comparison.count_agreement),
        labels_error_px=labels_error,
    )
    if max_deviation is not None and p99 > max_deviation:
        raise SleapExportError(f"The {spec.precision} artifact fails its accuracy gate ({gate}; --max-deviation {max_deviation} px).")
    return gate
