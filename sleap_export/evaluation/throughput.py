"""``sleap-export bench``: throughput, latency and where the time goes, in one process.

Per batch size: the artifact (or training runs, eager PyTorch) alone on
pre-decoded frames ("network": the whole graph, pre- and post-processing fused),
end to end (decode -> Labels, through `Predictor`; its wall-clock ms per frame is
1000 / fps) with the busy time of each stage, and at batch 1 the latency
percentiles of one frame in, decoded poses out. ``vs`` times sleap-nn's own
checkpoint inference on the same frames in the same process; ``runners``
compares our runners (ONNX Runtime, TorchScript, eager PyTorch, torch.compile)
on the same frames. Ratios, not absolute numbers, are what carry across machines.
"""

from __future__ import annotations

import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import attrs
import numpy as np

from sleap_export.core.errors import InputError
from sleap_export.core.model_types import MODEL_TYPES, model_type_for_runs
from sleap_export.runtime.artifacts.formats import ONNX, find_format
from sleap_export.runtime.backends.runner import usable_cores
from sleap_export.runtime.drivers.batch_pipeline import in_order
from sleap_export.runtime.drivers.predictor import Predictor
from sleap_export.runtime.open_model import ModelOptions, check_models, is_artifact, model_name, open_model

# --runners that open the ONNX artifact itself, with these model options.
ONNX_RUNNERS = {
    "onnx": ModelOptions(),
    "openvino": ModelOptions(runtime="openvino"),
    "openvino-bf16": ModelOptions(runtime="openvino", precision="bf16"),
}
RUNNER_NAMES = (*ONNX_RUNNERS, "torchscript", "eager", "compile")


# Pipeline order, for the split table.
STAGES = ("decode", "host pre", "network", "host post", "labels")


@attrs.frozen
class BatchFigures:
    batch_size: int
    network_fps: float
    end_to_end_fps: float
    # Busy milliseconds per frame by stage, end to end: each stage's running time added over
    # the threads that run it ("decode" has its own, overlapped; the runner's stages run in as
    # many threads as batches at once), so they may add up to more than `wall_ms_per_frame`.
    split_ms: dict[str, float]

    @property
    def end_to_end_share(self) -> float:
        """End-to-end over network-only throughput (1.0: everything else hidden)."""
        return self.end_to_end_fps / self.network_fps

    @property
    def wall_ms_per_frame(self) -> float:
        """Wall-clock milliseconds per frame end to end: 1000 / fps."""
        return 1000 / self.end_to_end_fps


@attrs.frozen
class BenchReport:
    artifact: str
    model_type: str
    data: str
    frames: int
    batches: tuple[BatchFigures, ...]
    latency_ms: dict[str, float]
    peak_rss_mb: float
    machine: dict[str, str]
    versions: dict[str, str]
    reference_fps: Optional[float] = None
    reference_batch_size: Optional[int] = None
    runner_fps: dict[str, float] = attrs.Factory(dict)
    # Batches the runner runs at once (ONNX Runtime on a multi-core CPU: 2).
    parallel_batches: int = 1

    @property
    def speedup_vs_reference(self) -> Optional[float]:
        if self.reference_fps is None:
            return None
        ours = next(b for b in self.batches if b.batch_size == self.reference_batch_size)
        return ours.end_to_end_fps / self.reference_fps

    @property
    def predicts(self) -> str:
        """What a frame becomes: poses, a detector's boxes, or a segmentation model's masks (decoded on the host,
        run-length coded, as `Predictor` writes them; the end-to-end and latency figures include that)."""
        return predicted_kind(self.model_type)

    def as_dict(self) -> dict:
        values = attrs.asdict(self)
        values["speedup_vs_reference"] = self.speedup_vs_reference
        values["predicts"] = self.predicts
        for figures, batch in zip(values["batches"], self.batches):
            figures["end_to_end_share"] = batch.end_to_end_share
            figures["wall_ms_per_frame"] = batch.wall_ms_per_frame
        return values

    def render(self):
        """Two tables and notes, readable at 80 columns: throughput, then where the time goes."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        name = " + ".join(Path(part).name for part in self.artifact.split(" + "))
        throughput = Table(title=f"bench {name} ({self.model_type}), {self.frames} frames of {Path(self.data).name}")
        for column in ("batch", "network fps", "end-to-end fps", "ms/frame", "e2e/network"):
            throughput.add_column(column, justify="right")
        for b in self.batches:
            throughput.add_row(
                str(b.batch_size), f"{b.network_fps:.1f}", f"{b.end_to_end_fps:.1f}", f"{b.wall_ms_per_frame:.1f}",
                f"{b.end_to_end_share:.2f}",
            )
        found = {stage for b in self.batches for stage in b.split_ms}
        stages = [s for s in STAGES if s in found] + sorted(found - set(STAGES))
        split = Table(title="busy ms per frame by stage (added over threads)")
        for column in ("batch", *stages):
            split.add_column(column, justify="right")
        for b in self.batches:
            split.add_row(str(b.batch_size), *(f"{b.split_ms.get(s, 0.0):.2f}" for s in stages))
        at_once = f"{self.parallel_batches} batches run at once, each on its thread; " if self.parallel_batches > 1 else ""
        lines = [
            "network fps: frames per second through the graph alone (pre- and post-processing in it), on frames "
            "already decoded in memory, batches run as predict runs them, after a warm-up; end-to-end fps: the "
            "same frames read from the video, through the graph, decoded on the host and made into Labels. Both "
            "count frames over wall-clock time, so end to end is at most network (e2e/network <= 1, up to noise); "
            "ms/frame: end-to-end wall clock, 1000 / fps.",
            f"busy ms: the time each stage ran, per frame, added over the threads running it ({at_once}decoding "
            "on its own), so stages overlap and may add up to more than ms/frame.",
            f"latency at batch 1 (frame in, {self.predicts} out): "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in self.latency_ms.items()),
            f"peak RSS {self.peak_rss_mb:.0f} MB; {self.machine['cpu']} ({self.machine['cores']} cores), "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.versions.items()) if k in ("onnxruntime", "torch", "sleap-nn")),
        ]
        if self.reference_fps is not None:
            lines.append(
                f"sleap-nn checkpoint inference, same frames, batch {self.reference_batch_size}: "
                f"{self.reference_fps:.1f} fps -> {name} is {self.speedup_vs_reference:.2f}x"
            )
        if self.runner_fps:
            lines.append(
                "network fps by runner: " + ", ".join(f"{name} {fps:.1f}" for name, fps in self.runner_fps.items())
            )
        return Group(throughput, split, Text("\n".join(lines)))


def predicted_kind(model_type: str) -> str:
    """"poses", "boxes", "masks", or a lone embedding model's "vectors": what a model of this type predicts per frame."""
    kind = MODEL_TYPES[model_type]
    if model_type == "embedding":
        return "vectors"
    return "masks" if kind.segments else "boxes" if kind.detects_boxes and len(kind.runs) == 1 else "poses"


def model_type_of_models(models: Sequence[Path]) -> str:
    """The model type of an artifact (its spec) or of training runs (their configs), without loading weights."""
    from sleap_export.runtime.artifacts.formats import read_spec

    if is_artifact(models[0]):
        return read_spec(models[0]).model_type
    from sleap_export.core.training_runs import resolve_run_dir
    from sleap_export.exporting.checkpoints import model_type_of

    found = model_type_for_runs(model_type_of(resolve_run_dir(m)) for m in models)
    if found is None:  # open_model says which runs do not pair, in its own words
        return open_model(list(models)).spec.model_type
    return found.name


def _frames_and_source(spec, data: Optional[Path], frames: int):
    """Pre-decoded frames (N, H, W, C) and the source `Predictor` reads them from."""
    if data is None:
        from sleap_export.exporting.writers.verification import sample_frames

        array = sample_frames(spec, frames)
        return array, array, None, "synthetic blobs"
    from sleap_export.runtime.sources.video_inputs import open_video

    if not data.exists():
        raise InputError(f"{data} does not exist; pass a video (or leave --data out for synthetic frames).")
    video = open_video(data)
    indices = list(range(min(frames, video.shape[0])))
    array = np.stack([video[i] for i in indices])
    return array, str(data), indices, str(data)


def _embedding_inputs(spec, data: Optional[Path], frames: int):
    """A lone embedding model's inputs: the first ``frames`` labeled frames of a .slp holding detections, pre-decoded
    (N, H, W, C) with the crop centres of their detections (N, K, 2; NaN pads); those labels; and how many of
    their frames hold detections (what end to end embeds)."""
    import sleap_io as sio

    from sleap_export.runtime.drivers.embedding_carriers import embedded_detections
    from sleap_export.runtime.sources.video_inputs import first_labeled_frames

    if data is None or data.suffix.lower() != ".slp":
        given = "synthetic frames" if data is None else data.name
        raise InputError(
            f"bench times a lone embedding model on the detections of a .slp, not on {given}; pass -d LABELS.slp, "
            "or bench the embedding run exported with a centroid run (sleap-export onnx CENTROID_RUN EMBEDDING_RUN)."
        )
    if not data.exists():
        raise InputError(f"{data} does not exist; pass a .slp of detections to embed.")
    labels = first_labeled_frames(sio.load_slp(str(data)), frames)
    centres = embedded_detections(labels, spec.stages[0])
    if not centres:
        raise InputError(f"{data.name} holds no detection to embed; pass a .slp of a pose or segmentation model's predictions, or labels.")
    frame_sizes = {id(video): tuple(video.shape[1:3]) for video in labels.videos}
    videos = {id(video): video for video in labels.videos}
    first_size = frame_sizes[next(iter(centres))[0]]
    # The network is timed on one frame size: the frames of the first embedded frame's size.
    kept = [key for key in centres if frame_sizes[key[0]] == first_size]
    slots = max(len(centres[key][1]) for key in kept)
    centroids = np.full((len(kept), slots, 2), np.nan, np.float32)
    for row, key in enumerate(kept):
        centroids[row, : len(centres[key][1])] = centres[key][1]
    array = np.stack([videos[video][frame] for video, frame in kept])
    return array, centroids, labels, len(centres)


def _network_fps(runner, frames: np.ndarray, batch_size: int, centroids: Optional[np.ndarray] = None) -> float:
    """Frames per second through the graph alone, as many batches at once as `Predictor` runs; ``centroids``
    (N, K, 2) for a model that crops around given centres."""

    def infer(start: int):
        end = start + batch_size
        return runner.infer(frames[start:end], centroids=None if centroids is None else centroids[start:end])

    starts = range(0, len(frames), batch_size)
    # Warm-up as the timed pass runs: batches at once (a runtime's first concurrent runs grow its
    # memory) and the short last batch (a new shape is planned on its first run). End to end runs
    # after this and finds all of it warm; a cold network pass read slower than end to end.
    warm = [*starts[: runner.parallel_batches], *([starts[-1]] if len(frames) % batch_size else [])]
    for _ in in_order(infer, warm, runner.parallel_batches):
        pass
    started = time.perf_counter()
    for _ in in_order(infer, starts, runner.parallel_batches):
        pass
    return len(frames) / (time.perf_counter() - started)


def _latency_ms(runner, frames: np.ndarray, centroids: Optional[np.ndarray] = None, repeats: int = 50) -> dict[str, float]:
    samples = []
    for i in range(repeats + 1):
        given = None if centroids is None else centroids[i % len(frames)][None]
        started = time.perf_counter()
        runner.predict(frames[i % len(frames)][None], keep_images=False, centroids=given)
        samples.append((time.perf_counter() - started) * 1000)
    samples = np.array(samples[1:])
    return {f"p{q}": float(np.percentile(samples, q)) for q in (50, 90, 99)}


def _runner_for(name: str, artifact: Optional[Path], spec, model_dirs: Sequence[Path], workdir: Path, threads: Optional[int]):
    """A --runners runner: the ONNX artifact opened otherwise, or a graph built from the runs."""
    from sleap_export.exporting.options import ExportOptions

    if name in ONNX_RUNNERS:
        onnx = artifact is not None and find_format(artifact) is ONNX
        options = attrs.evolve(ONNX_RUNNERS[name], threads=threads, throughput=True)
        return open_model(artifact, options) if onnx else None
    if not model_dirs:
        raise InputError(f"--runners {name} builds from the run folders; pass them with --vs.")
    options = ExportOptions(postprocess=spec.postprocess)
    if name == "torchscript":
        from sleap_export.exporting.artifact_writer import write_artifact

        return open_model(write_artifact(list(model_dirs), workdir / "bench.pt", options=options))
    from sleap_export.exporting.eager_runner import eager_runner

    return eager_runner(list(model_dirs), compile=name == "compile", options=options)


def run_bench(
    artifact: str | Path | Sequence[str | Path],
    data: Optional[str | Path] = None,
    batch_sizes: Sequence[int] = (1, 4, 16),
    frames: int = 200,
    vs: Sequence[str | Path] = (),
    runners: Sequence[str] = (),
    options: ModelOptions = ModelOptions(),
) -> BenchReport:
    """Bench an artifact, or training run(s) (a folder, its best.ckpt, a top-down pair) run eagerly;
    ``options`` open the model (`open_model`: ``threads``, ``runtime``, ``precision``)."""
    models = check_models([artifact] if isinstance(artifact, (str, Path)) else artifact)
    options.check_applies_to(models[0])
    artifact = models[0] if is_artifact(models[0]) else None
    if not batch_sizes or min(batch_sizes) < 1:
        raise InputError("--batch-size takes positive sizes, e.g. 1,4,16.")
    unknown = set(runners) - set(RUNNER_NAMES)
    if unknown:
        raise InputError(f"Unknown runner(s) {', '.join(sorted(unknown))}; choose from {', '.join(RUNNER_NAMES)}.")
    runner = open_model(models, attrs.evolve(options, throughput=True))
    spec = runner.spec
    lone_embedding = spec.model_type == "embedding"
    if "centroids" in spec.input_names and not lone_embedding:
        raise InputError("bench runs models that find their own instances; bench the top-down model instead.")
    data = None if data is None else Path(data)
    if lone_embedding:  # the labels' detections embedded: their frames, each with its crop centres
        if len(vs) > 1:
            raise InputError(f"--vs: a lone embedding model is timed against its one run, got {len(vs)}; pass that run alone.")
        array, centroids, source, timed = _embedding_inputs(spec, data, frames)
        indices, data_name = None, str(data)
    else:
        array, source, indices, data_name = _frames_and_source(spec, data, frames)
        centroids, timed = None, len(array)
    batches = []
    with runner:
        for batch_size in batch_sizes:
            network = _network_fps(runner, array, batch_size, centroids)
            predictor = Predictor._for(runner)(runner, batch_size=batch_size)
            runner.clock.reset()
            started = time.perf_counter()
            predictor.predict(source, frames=indices, progress=None)
            end_to_end = timed / (time.perf_counter() - started)
            seconds = {**runner.clock.seconds, **predictor.clock.seconds}
            split = {stage: 1000 * s / timed for stage, s in seconds.items()}
            batches.append(BatchFigures(batch_size, network, end_to_end, split))
    # Closed-loop use: one frame at a time with every thread on it.
    with runner if runner.parallel_batches == 1 else open_model(models, options) as latency_runner:
        latency = _latency_ms(latency_runner, array, centroids)

    reference_fps = reference_batch = None
    if vs:
        from sleap_export.evaluation.sleap_nn_reference import reference_settings, sleap_nn_embed, sleap_nn_predict

        reference_batch = next((b for b in batch_sizes if b > 1), batch_sizes[0])
        started = time.perf_counter()
        if lone_embedding:
            sleap_nn_embed(source, vs[0], batch_size=reference_batch)
        else:
            sleap_nn_predict(source, vs, frames=indices, batch_size=reference_batch, **reference_settings(spec))
        reference_fps = timed / (time.perf_counter() - started)

    runner_fps = {}
    runs = models if artifact is None else []  # what --runners builds from when --vs is left out
    batch = next((b for b in batch_sizes if b > 1), batch_sizes[0])
    with tempfile.TemporaryDirectory() as workdir:
        for name in runners:
            other = _runner_for(name, artifact, spec, [Path(v) for v in vs] or runs, Path(workdir), options.threads)
            if other is not None:
                with other:
                    runner_fps[name] = _network_fps(other, array, batch, centroids)

    return BenchReport(
        artifact=model_name(models),
        model_type=spec.model_type,
        data=data_name,
        frames=timed,
        batches=tuple(batches),
        latency_ms=latency,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        machine={"cpu": platform.processor() or platform.machine(), "cores": str(usable_cores()), "python": platform.python_version()},
        versions=_versions(spec),
        reference_fps=reference_fps,
        reference_batch_size=reference_batch,
        runner_fps=runner_fps,
        parallel_batches=runner.parallel_batches,
    )


def _versions(spec) -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("sleap-export", "onnxruntime", "openvino", "torch", "sleap-nn"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    found["exported with"] = ", ".join(f"{k} {v}" for k, v in sorted(spec.versions.items()) if k in ("torch", "sleap-nn"))
    return found
