"""``sleap-export bench --tracking``: our classic tracker's own speed against sleap-nn's
(`apply_tracking`, what ``sleap-nn predict --tracking`` runs after predicting) on the same predicted
labels, in one process and one run each, as frames per second and their ratio; with whether the two
gave the same tracks. Tracking only: the poses are predicted once, before either is timed."""

from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Sequence

import attrs
import sleap_io as sio

from sleap_export.core.errors import InputError, install_extra
from sleap_export.runtime.drivers.predictor import Predictor
from sleap_export.runtime.open_model import ModelOptions, open_model
from sleap_export.runtime.tracking import TrackingOptions
from sleap_export.runtime.tracking.labels_tracking import track_labels


@attrs.frozen
class TrackingSpeed:
    frames: int
    instances: int
    ours_s: float
    sleap_nn_s: float
    # The same instances on the same tracks (up to their names).
    same_tracks: bool

    @property
    def ours_fps(self) -> float:
        return self.frames / self.ours_s

    @property
    def sleap_nn_fps(self) -> float:
        return self.frames / self.sleap_nn_s

    @property
    def ratio(self) -> float:
        """Our frames/s over sleap-nn's."""
        return self.sleap_nn_s / self.ours_s

    def line(self) -> str:
        same = "same tracks" if self.same_tracks else "tracks differ"
        return (
            f"tracking (classic, default options), {self.frames} frames, {self.instances} instances: "
            f"ours {self.ours_fps:.0f} frames/s, sleap-nn {self.sleap_nn_fps:.0f} frames/s, "
            f"{self.ratio:.1f}x; {same}"
        )

    def as_dict(self) -> dict:
        return {**attrs.asdict(self), "ours_fps": self.ours_fps, "sleap_nn_fps": self.sleap_nn_fps, "ratio": self.ratio}


def _partition(labels: sio.Labels) -> list:
    """Per frame, its instances' points with their track renamed by order of first appearance."""
    names: dict = {}
    frames = []
    for lf in sorted(labels.labeled_frames, key=lambda lf: lf.frame_idx):
        entries = sorted((i.numpy().tobytes(), i.track.name if i.track else "") for i in lf.predicted_instances)
        frames.append([(points, names.setdefault(track, len(names))) for points, track in entries])
    return frames


def tracking_speed(models: Sequence[Path], data: Path, frames: int, options: ModelOptions) -> TrackingSpeed:
    """Predict the first ``frames`` frames of the video ``data``, then track those labels with ours and
    with sleap-nn's tracker (default options both), each timed alone."""
    if data is None:
        raise InputError("bench --tracking tracks the poses predicted on a video; add --data video.mp4.")
    if importlib.util.find_spec("sleap_nn") is None:
        raise InputError(f"bench --tracking compares with sleap-nn's tracker; install it: {install_extra('export')}.")
    from sleap_nn.inference.tracking import TrackerConfig, apply_tracking

    runner = open_model(list(models), attrs.evolve(options, throughput=True))
    with tempfile.TemporaryDirectory() as work:
        predicted = Path(work) / "predicted.slp"
        Predictor(runner).predict(str(data), frames=f"0-{frames - 1}", output=predicted, progress=None)
        ours, theirs = sio.load_slp(str(predicted)), sio.load_slp(str(predicted))
    started = time.perf_counter()
    track_labels(ours, TrackingOptions())
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = apply_tracking(theirs, TrackerConfig())
    sleap_nn_s = time.perf_counter() - started
    instances = sum(len(lf.predicted_instances) for lf in ours.labeled_frames)
    return TrackingSpeed(len(ours.labeled_frames), instances, ours_s, sleap_nn_s, _partition(ours) == _partition(theirs))
