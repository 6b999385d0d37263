"""Predict on a Ray cluster: videos split into (video, frame range) chunks, run by
Ray actors that each load the artifact once and keep it for every chunk.

The artifact reaches the workers through Ray's object store (its bytes, put
once), not a shared path: every worker then runs exactly the bytes the driver
read and checked, even if the file is replaced during a long job or the nodes
share no file system for it. Videos are read by path on the workers (hundreds
of hours of video do not belong in the object store), so they must be on a
path every node sees.

The driver keeps at most ``IN_FLIGHT_PER_WORKER`` chunks submitted per worker
and writes each finished chunk at once (atomically) into a parts folder beside
the output, so its memory holds a few chunks' poses whatever the number of
videos, a job that dies keeps its finished chunks, and ``resume=True`` goes on
at chunk granularity. A video's output is built from its parts, the same way
local ``predict`` builds it from its frames, so the two are identical, in any
output format (`writing.output_formats`).

Ray is imported only here, and only when a job runs.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

import attrs
import numpy as np
import sleap_io as sio

from sleap_export.core.atomic_files import write_json_atomically, written_atomically
from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.runtime.artifacts.formats import ONNX, artifact_suffixes, find_format, format_of, read_spec
from sleap_export.runtime.drivers.batch_pipeline import background, decode_batches, in_order
from sleap_export.runtime.drivers.predictor import PredictionInterrupted, frame_image, track_labeled_frame
from sleap_export.runtime.drivers.progress import ProgressSink
from sleap_export.runtime.open_model import ModelOptions, check_mask_options, is_artifact, open_model
from sleap_export.runtime.sources.video_inputs import LABELS_SUFFIXES, FrameSource, open_video, select_frames, video_frame
from sleap_export.runtime.tracking.tracking_options import TrackingOptions
from sleap_export.runtime.tracking.tracking_stage import TrackingStage, refuse_untrackable
from sleap_export.runtime.writing.labels_writer import LabelsWriter
from sleap_export.runtime.writing.output_formats import check_videos, format_named, output_format_of
from sleap_export.runtime.writing.packed_outputs import pack, packable, unpack

DEFAULT_CHUNK_FRAMES = 500
# Chunks submitted per worker: one running, one queued, so a worker never waits
# for the driver; more would only grow the results waiting in the object store.
IN_FLIGHT_PER_WORKER = 2
# Runs of one chunk before its video is given up (a worker killed each time).
ATTEMPTS = 3
# The parts folder inside a -o DIR (a file output keeps OUTPUT.parts beside it).
DIR_PARTS = ".sleap-export-parts"
MANIFEST = "job.json"
# Workers that have not loaded the artifact by then are reported, not waited for forever.
WORKER_START_S = 600


def _at_least(least: int, what: str):
    def check(instance, attribute, value) -> None:
        if value is not None and value < least:
            raise InputError(f"{what} must be at least {least}, got {value}.")

    return check


@attrs.frozen
class RayCluster:
    """Where and how a job runs: the cluster at ``address`` (``"auto"``, ``"HOST:PORT"``,
    ``"ray://HOST:PORT"``, or None for an already initialized Ray, else a new local one);
    ``workers`` (default: what the cluster's CPUs hold) of ``threads`` CPU threads and
    ``gpus`` GPUs each; videos split into chunks of ``chunk_size`` frames."""

    address: Optional[str] = None
    workers: Optional[int] = attrs.field(default=None, validator=_at_least(1, "--workers"))
    threads: int = attrs.field(default=1, validator=_at_least(1, "The threads per worker"))
    gpus: float = 0.0
    chunk_size: int = attrs.field(default=DEFAULT_CHUNK_FRAMES, validator=_at_least(1, "The chunk size"))


@attrs.frozen
class Chunk:
    video_index: int
    frame_indices: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.video_index:05d}-{self.frame_indices[0]:09d}.npz"


@attrs.define
class VideoResult:
    """One input video of a job: where its poses went, or why it failed."""

    path: Path
    output: Optional[Path]
    frames: int = 0
    instances: int = 0
    error: Optional[str] = None
    # A segmentation model's masks and polygons written (its frames hold no instances).
    masks: int = 0
    polygons: int = 0


@attrs.define
class ClusterReport:
    videos: list[VideoResult]
    workers: int
    # Chunk runs lost with a worker process and run again.
    retried: int = 0
    # Frames predicted in this run (not kept from parts by resume).
    predicted: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[VideoResult]:
        return [v for v in self.videos if v.error is not None]

    def summary_lines(self) -> list[str]:
        """A table of every video: frames written, or its one-line error."""
        width = max(len(str(v.path)) for v in self.videos)
        lines = [f"{'video':<{width}}  {'frames':>7}  result"]
        for v in self.videos:
            result = f"failed: {v.error}" if v.error else f"wrote {v.output}"
            lines.append(f"{str(v.path):<{width}}  {v.frames:>7}  {result}")
        return lines


@attrs.frozen
class SharedArtifact:
    """The artifact's bytes in the object store (a reference in a list, which Ray
    passes on as is rather than fetching), and what names its copy on a node."""

    bytes_ref: list
    sha256: str
    suffix: str


class ChunkWorker:
    """A Ray actor's body: the artifact loaded once, then any number of chunks.

    The artifact comes with every call, not to the constructor: Ray restarts a
    killed actor by rerunning its constructor, and one that took object-store
    arguments may not find them again (ray-project/ray#53727). A restarted
    worker loads it on its first chunk.
    """

    def __init__(self, options: ModelOptions, batch_size: int):
        self.options, self.batch_size = options, batch_size
        self.runner = None
        self.video: tuple[str, Optional[sio.Video]] = ("", None)

    def ready(self, artifact: SharedArtifact) -> int:
        """Load the artifact; the worker's process id."""
        self._load(artifact)
        return os.getpid()

    def _load(self, artifact: SharedArtifact) -> None:
        if self.runner is not None:
            return
        import ray

        # One copy per node and artifact, shared by its workers and their restarts.
        path = Path(tempfile.gettempdir()) / "sleap-export-ray" / f"{artifact.sha256[:32]}{artifact.suffix}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with written_atomically(path, suffix=artifact.suffix) as partial:
                partial.write_bytes(ray.get(artifact.bytes_ref[0]))
        self.runner = open_model(path, self.options).activate()

    def predict(self, artifact: SharedArtifact, video_path: str, frame_indices: tuple[int, ...]) -> dict[str, np.ndarray]:
        self._load(artifact)
        # Chunks of one video tend to come to the same worker in a row: keep it open.
        if self.video[0] != video_path:
            self.video = (video_path, open_video(Path(video_path)))
        video = self.video[1]
        # A frame that cannot be read fails the chunk, and its video's row of the summary names it.
        source = FrameSource(video, tuple(frame_indices), functools.partial(video_frame, video))
        runner = self.runner

        def run(batch):
            return runner.predict(batch.frames, batch.frame_indices, 0, keep_images=False)

        outputs = []
        runs = in_order(run, background(decode_batches([source], self.batch_size), depth=4), runner.parallel_batches)
        with contextlib.closing(runs):
            for _, results in runs:
                # Held until the chunk is packed: only what is packed (masks run-length coded), never
                # a frame's dense grids.
                outputs.extend(packable(o) for o in results)
        return pack(outputs)


@attrs.define
class _Video:
    path: Path
    output: Optional[Path]  # this video's own file (-o DIR), else None
    frame_indices: tuple[int, ...] = ()
    error: Optional[str] = None
    remaining: int = 0  # chunks not yet in the parts folder


class RayPrediction:
    """One prediction job on a Ray cluster.

    ``output``: a file of an output format (`writing.output_formats`: one file, one video
    each, like local predict) or an existing folder (one ``STEM.slp`` per video, or the
    suffix of ``output_format``, a format's name as ``--format`` takes it, e.g. ``"nwb"``;
    for a file it must agree with the suffix). ``cluster``: a `RayCluster`;
    ``options``: how each worker opens the artifact (a `ModelOptions`; threads come
    from the cluster's per-worker threads). ``tracking``: a `TrackingOptions`; each video's
    frames are tracked on the driver, in frame order, as its output is built from its parts
    (the tracks local predict gives; optical flow reads the frames again there). After `run`,
    ``worker_pids`` holds the workers' process ids as they started.
    """

    def __init__(
        self,
        artifact: str | Path,
        inputs: Sequence[str | Path],
        output: str | Path,
        cluster: RayCluster = RayCluster(),
        options: ModelOptions = ModelOptions(),
        frames: Optional[str | Sequence[int]] = None,
        batch_size: int = 4,
        resume: bool = False,
        overwrite: bool = False,
        output_format: Optional[str] = None,
        tracking: Optional[TrackingOptions] = None,
    ):
        self.artifact = Path(artifact)
        self.tracking = tracking
        self.inputs = [Path(p) for p in inputs]
        self.output = Path(output)
        self.cluster, self.options = cluster, options
        self.frames, self.batch_size, self.resume, self.overwrite = frames, batch_size, resume, overwrite
        self.worker_pids: list[int] = []
        # Video index -> (frames, instances, masks, polygons) written for it.
        self.written: dict[int, tuple[int, int, int, int]] = {}
        self.format_name = output_format
        # A folder, or a name of no output format (refused unless a folder): one file per video, as local predict.
        self.per_video = self.output.is_dir() or output_format_of(self.output) is None
        self.suffix = format_named(output_format or "slp").suffix
        self._check_arguments()
        self.spec = read_spec(self.artifact)
        if "centroids" in self.spec.input_names:
            raise InputError(f"A {self.spec.model_type} artifact crops around given centroids; --ray predicts on videos only.")
        if tracking is not None:
            refuse_untrackable(self.spec)
        # Mask settings the model does not read are refused here, before the cluster is reached.
        check_mask_options(self.options.masks, self.spec)
        self.writer = LabelsWriter(self.spec, self.artifact)
        self.parts = self.output / DIR_PARTS if self.per_video else self.output.with_name(self.output.name + ".parts")
        self.videos = [_Video(p, self.output / f"{p.stem}{self.suffix}" if self.per_video else None) for p in self.inputs]
        self._check_outputs()

    def _check_arguments(self) -> None:
        if not is_artifact(self.artifact):
            raise InputError(
                f"--ray runs exported artifacts ({', '.join(artifact_suffixes())}) and {self.artifact} is not one; "
                f"export it first (sleap-export onnx {self.artifact} -o model.onnx)."
            )
        if not self.artifact.is_file():
            raise InputError(f"{self.artifact} does not exist; pass an exported artifact.")
        if self.options.runtime is not None or self.options.precision is not None:
            raise InputError("--ray workers run ONNX Runtime (or the artifact's own runtime); leave out --runtime and --precision.")
        if self.options.threads is not None:
            raise InputError("--ray workers take their threads from the cluster settings (--threads per worker), not the model options.")
        if self.resume and self.overwrite:
            raise InputError("--resume keeps the finished chunks and --overwrite replaces them; pass one of the two.")
        labels = [p for p in self.inputs if p.name.endswith(LABELS_SUFFIXES)]
        if labels:
            raise InputError(f"--ray predicts on video files and {labels[0]} is a labels file; predict it without --ray.")
        stems = collections.Counter(p.stem for p in self.inputs)
        if self.per_video and max(stems.values()) > 1:
            same = [p for p in self.inputs if stems[p.stem] > 1]
            raise InputError(
                f"{same[0]} and {same[1]} would both be written to {self.output / (same[0].stem + self.suffix)}; "
                "rename one, or write one file with -o all.slp."
            )

    def _check_outputs(self) -> None:
        if self.per_video and not self.output.is_dir():
            raise InputError(
                f"{self.output} is neither a .slp file nor an existing folder; name a .slp (or .analysis.h5, .nwb, .csv) "
                "for one file, or create the folder for one file per video."
            )
        targets = [v.output for v in self.videos] if self.per_video else [self.output]
        for target in targets:
            self.writer.check_destination(target, self.inputs, self.format_name)
        if not self.per_video:
            check_videos(output_format_of(self.output), self.output, len(self.inputs))
        if self.overwrite:
            return
        if self.parts.exists() and not self.resume:
            raise InputError(f"{self.parts} holds chunks of an unfinished job; pass --resume to finish it, or --overwrite.")
        if not self.parts.exists():
            existing = [t for t in targets if t.exists()]
            if existing:
                raise InputError(f"{existing[0]} already exists; pass --overwrite to replace it.")

    # The job ----------------------------------------------------------------
    def run(self, progress: Optional[ProgressSink] = None) -> ClusterReport:
        """Predict every chunk (resumed ones kept), write the outputs; failed videos are reported, not raised."""
        started = time.perf_counter()
        lock = self.parts if self.per_video else self.output
        with self.writer.locked(lock):
            chunks = self._plan()
            done = self._start_parts(chunks)
            todo = [c for c in chunks if c.name not in done]
            for chunk in todo:
                self.videos[chunk.video_index].remaining += 1
            good = [v for v in self.videos if v.error is None]
            total = sum(len(v.frame_indices) for v in good)
            if progress is not None:
                progress.start(total=total, done=total - sum(len(c.frame_indices) for c in todo))
            report = ClusterReport([], workers=0)
            for index, video in enumerate(self.videos):
                if video.error is None and video.remaining == 0 and self.per_video:
                    self._write_video(index)
            if todo:
                try:
                    self._run_chunks(todo, progress, report)
                except BaseException:
                    # A job that never ran a chunk (no cluster, workers that never started)
                    # leaves nothing that would hold up the next one.
                    if not any(self.parts.glob("*.npz")):
                        shutil.rmtree(self.parts, ignore_errors=True)
                    raise
            if not self.per_video and any(v.error is None for v in self.videos):
                self._write_all()
            report.videos = [self._result(v) for v in self.videos]
            if not report.failed:
                shutil.rmtree(self.parts, ignore_errors=True)
        report.seconds = time.perf_counter() - started
        return report

    def _plan(self) -> list[Chunk]:
        chunks = []
        for index, video in enumerate(self.videos):
            try:
                # Opened for its length only: an open reader holds ~10 MB of decoder
                # buffers, so the driver opens a video again just to write its .slp.
                opened = open_video(video.path)
                opened.close()
                video.frame_indices = select_frames(self.frames, opened.shape[0])
            except SleapExportError as err:
                video.error = str(err)
                continue
            indices = video.frame_indices
            size = self.cluster.chunk_size
            chunks.extend(Chunk(index, indices[start : start + size]) for start in range(0, len(indices), size))
        return chunks

    @functools.cached_property
    def _artifact_blob(self) -> tuple[bytes, str]:
        """The artifact's bytes and their sha256, read once: the manifest's hash is of the bytes the workers run."""
        blob = self.artifact.read_bytes()
        return blob, hashlib.sha256(blob).hexdigest()

    def _manifest(self) -> dict:
        record = self.writer.provenance
        return {
            "model_type": record["sleap_export.model_type"],
            "checkpoint_sha256": record["sleap_export.checkpoint_sha256"],
            # Other artifacts of one checkpoint (int8, fewer instance slots) predict otherwise:
            # parts of one are never finished with another.
            "artifact_sha256": self._artifact_blob[1],
            "inputs": [str(p) for p in self.inputs],
            "frames": self.frames if self.frames is None or isinstance(self.frames, str) else list(self.frames),
            "chunk_size": self.cluster.chunk_size,
        }

    def _start_parts(self, chunks: list[Chunk]) -> set[str]:
        """The names of the chunks already in the parts folder (resume), after checking it is this job's."""
        manifest = self._manifest()
        if self.parts.exists() and self.resume:
            try:
                saved = json.loads((self.parts / MANIFEST).read_text())
            except (OSError, ValueError):
                raise InputError(f"{self.parts} has no readable {MANIFEST}, so it cannot be resumed; pass --overwrite.") from None
            differ = [key for key in manifest if saved.get(key) != manifest[key]]
            if differ:
                raise InputError(
                    f"{self.parts} was started with another {', '.join(differ)}; resume with the same model, inputs, "
                    "--frames and --chunk-size, or pass --overwrite."
                )
            wanted = {c.name for c in chunks}
            return {p.name for p in self.parts.glob("*.npz")} & wanted
        shutil.rmtree(self.parts, ignore_errors=True)
        self.parts.mkdir()
        write_json_atomically(manifest, self.parts / MANIFEST)
        return set()

    def _run_chunks(self, todo: list[Chunk], progress, report: ClusterReport) -> None:
        ray, connected_here = _connect(self.cluster.address)
        try:
            actors = self._start_workers(ray)
            report.workers = len(actors)
            self._schedule(ray, actors, todo, progress, report)
        finally:
            # Our actors end with the connection; a caller's own ray.init stays.
            if connected_here:
                ray.shutdown()

    def _start_workers(self, ray) -> list:
        resources = ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
        threads = self.cluster.threads
        count = self.cluster.workers or max(1, int(cpus // threads))
        if count * threads > cpus or count * self.cluster.gpus > gpus:
            raise InputError(
                f"{count} workers x {threads} CPUs and {self.cluster.gpus} GPUs need more than the cluster's "
                f"{cpus:g} CPUs and {gpus:g} GPUs; pass fewer --workers or add nodes."
            )
        blob, sha256 = self._artifact_blob
        options = self.options
        if find_format(self.artifact) is ONNX:
            # One batch at a time on one thread: two would share the one core Ray reserved.
            options = attrs.evolve(options, threads=threads, parallel_batches=options.parallel_batches or (2 if threads >= 2 else 1))
        # Restarted without limit; a chunk is run at most ATTEMPTS times (see _finish).
        worker = ray.remote(ChunkWorker).options(
            num_cpus=threads, num_gpus=self.cluster.gpus, max_restarts=-1, max_task_retries=0
        )
        # Named by its format on the nodes, whatever its name here.
        self.shared = SharedArtifact([ray.put(blob)], sha256, format_of(self.artifact).suffixes[0])
        actors = [worker.remote(options, self.batch_size) for _ in range(count)]
        try:
            self.worker_pids = ray.get([a.ready.remote(self.shared) for a in actors], timeout=WORKER_START_S)
        except ray.exceptions.GetTimeoutError:
            raise SleapExportError(
                f"{count} Ray workers did not start within {WORKER_START_S} s; check `ray status` "
                "(other jobs holding the CPUs, nodes gone) or pass fewer --workers."
            ) from None
        except ray.exceptions.RayError as err:
            raise SleapExportError(f"The workers could not load {self.artifact}: {_one_line(err)}") from None
        return actors

    def _schedule(self, ray, actors: list, todo: list[Chunk], progress, report: ClusterReport) -> None:
        queue = collections.deque((chunk, 1) for chunk in todo)
        # Object ref -> (chunk, attempt, worker), or (None, 0, worker) for a probe of a restarting worker.
        running: dict = {}
        load = [0] * len(actors)
        # A worker whose process died gets no chunks until a probe says Ray has restarted it.
        healthy = [True] * len(actors)
        gone: set[int] = set()
        try:
            while queue or running:
                while queue:
                    free = [w for w in range(len(actors)) if healthy[w] and load[w] < IN_FLIGHT_PER_WORKER]
                    if not free:
                        break
                    chunk, attempt = queue.popleft()
                    if self.videos[chunk.video_index].error is not None:
                        continue
                    worker = min(free, key=load.__getitem__)
                    video = self.videos[chunk.video_index]
                    ref = actors[worker].predict.remote(self.shared, str(video.path), chunk.frame_indices)
                    running[ref] = (chunk, attempt, worker)
                    load[worker] += 1
                # A timeout, so Ctrl-C / SIGTERM is handled within a second.
                finished, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in finished:
                    chunk, attempt, worker = running.pop(ref)
                    if chunk is None:
                        self._probed(ray, ref, actors, worker, healthy, gone, running)
                        continue
                    load[worker] -= 1
                    if self._finish(ray, ref, chunk, attempt, queue, progress, report) and healthy[worker]:
                        healthy[worker] = False
                        running[actors[worker].ready.remote(self.shared)] = (None, 0, worker)
                if len(gone) == len(actors):
                    raise SleapExportError(
                        f"All {len(actors)} Ray workers are gone (their nodes left the cluster); "
                        "the finished chunks are kept, rerun with --resume."
                    )
        except KeyboardInterrupt:
            raise ChunksInterrupted(self.parts) from None

    def _probed(self, ray, ref, actors: list, worker: int, healthy: list, gone: set, running: dict) -> None:
        """A restarting worker's probe: back to work, probed again, or gone for good."""
        try:
            self.worker_pids[worker] = ray.get(ref)
            healthy[worker] = True
        except ray.exceptions.ActorDiedError:
            gone.add(worker)
        except ray.exceptions.RayActorError:
            time.sleep(0.2)  # still restarting: ask again shortly
            running[actors[worker].ready.remote(self.shared)] = (None, 0, worker)

    def _finish(self, ray, ref, chunk: Chunk, attempt: int, queue, progress, report: ClusterReport) -> bool:
        """Write a finished chunk, or requeue or fail it; True when its worker's process died."""
        video = self.videos[chunk.video_index]
        try:
            arrays = ray.get(ref)
        except ray.exceptions.RayActorError:
            # The worker's process died (killed, out of memory): Ray restarts it; run the chunk again.
            if attempt < ATTEMPTS:
                report.retried += 1
                queue.appendleft((chunk, attempt + 1))
            elif video.error is None:
                video.error = f"workers died {ATTEMPTS} times on frames {chunk.frame_indices[0]}-{chunk.frame_indices[-1]}"
            return True
        except ray.exceptions.RayTaskError as err:
            if video.error is None:
                video.error = _one_line(err)
            return False
        if video.error is not None:
            return False
        with written_atomically(self.parts / chunk.name, suffix=".npz") as partial:
            np.savez(partial, **arrays)
        report.predicted += len(chunk.frame_indices)
        video.remaining -= 1
        if progress is not None:
            progress.advance(len(chunk.frame_indices))
        if video.remaining == 0 and self.per_video:
            self._write_video(chunk.video_index)
        return False

    # Outputs ------------------------------------------------------------------
    def _labeled_frames(self, index: int, video: sio.Video) -> list[sio.LabeledFrame]:
        frames = []
        for part in sorted(self.parts.glob(f"{index:05d}-*.npz")):
            with np.load(part) as arrays:
                frames.extend(self.writer.frame(o, video) for o in unpack(arrays))
        return frames

    def _write(self, indices: list[int], output: Path) -> None:
        """The output of these videos from their parts, as local predict writes it; counts per video in ``written``."""
        videos = [open_video(self.videos[i].path) for i in indices]
        per_video = [self._labeled_frames(i, video) for i, video in zip(indices, videos)]
        labels = self.writer.labels([lf for frames in per_video for lf in frames], videos)
        if self.tracking is not None:
            self._track(labels, per_video)
        self.writer.save(labels, output)
        for i, video, frames in zip(indices, videos, per_video):
            self.written[i] = (
                len(frames), sum(len(lf.instances) for lf in frames), sum(len(lf.masks) for lf in frames),
                sum(len(lf.rois) for lf in frames),
            )
            video.close()

    def _track(self, labels: sio.Labels, per_video: list[list[sio.LabeledFrame]]) -> None:
        """Track each video's frames here, in frame order, as local predict tracks them as they come;
        optical flow reads the frames again on this machine."""
        stage = TrackingStage(self.tracking, len(self.writer.skeleton.nodes))
        for frames in per_video:
            for lf in sorted(frames, key=lambda lf: lf.frame_idx):
                image = frame_image(lf.video.__getitem__, lf.frame_idx) if self.tracking.use_flow else None
                track_labeled_frame(stage, lf, image)
        stage.apply(labels)

    def _write_video(self, index: int) -> None:
        self._write([index], self.videos[index].output)

    def _write_all(self) -> None:
        self._write([i for i, v in enumerate(self.videos) if v.error is None], self.output)

    def _result(self, video: _Video) -> VideoResult:
        index = self.videos.index(video)
        frames, instances, masks, polygons = self.written.get(index, (0, 0, 0, 0))
        output = None if video.error else (video.output or self.output)
        return VideoResult(video.path, output, frames, instances, video.error, masks, polygons)


class ChunksInterrupted(PredictionInterrupted):
    """Ctrl-C or SIGTERM during a Ray job: the finished chunks stay in the parts folder."""

    def __init__(self, parts: Path):
        KeyboardInterrupt.__init__(self, f"interrupted; the finished chunks are kept in {parts}; rerun with --resume to finish")
        self.output = parts


def _one_line(err: Exception) -> str:
    """A worker's error as one line: our own message, else the exception's type and first line."""
    cause = getattr(err, "cause", None) or err
    if isinstance(cause, SleapExportError):
        return str(cause)
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"


def _connect(address: Optional[str]):
    """``(ray, connected here)``: connected to the cluster at ``address`` (None: the Ray
    this process already initialized, else a new local one; ``"auto"``: the running
    cluster, else a new local one)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if address is None and ray.is_initialized():
        return ray, False
    # Workers' own output stays in their logs: errors come back as exceptions, in one line.
    settings = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        settings["include_dashboard"] = False
    # Ray's core worker installs its own SIGTERM handler (a stack dump, then exit 15);
    # ours, where one is set, saves and reports what is done first.
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        try:
            ray.init(address=address, **settings)
        except ConnectionError:
            if address != "auto":
                raise
            # "auto" with no cluster running: a local one, as ray.init() starts it.
            try:
                ray.init(**settings, include_dashboard=False)
            except Exception as err:  # Ray raises a bare Exception when its node misses its start-up time
                raise SleapExportError(
                    f"No Ray cluster runs here and a local one did not start ({_one_line(err)}); start one with "
                    "`ray start --head` (a busy machine may need a second try), or run without --ray."
                ) from None
    except (ConnectionError, RuntimeError, ValueError) as err:  # ValueError: ray:// without Ray's client
        where = address or "a new local cluster"
        raise SleapExportError(
            f"Could not connect to Ray at {where} ({_one_line(err)}); start one with `ray start --head` "
            "or pass its HOST:PORT."
        ) from None
    if callable(previous):
        signal.signal(signal.SIGTERM, previous)
    return ray, True
