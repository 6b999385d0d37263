"""One prediction as a request: the models, the inputs, where the predictions go and how. `plan`
classifies every path once and checks every rule that crosses options, before a model loads; the
plan then runs here (`PredictionPlan.predict_into`, `PredictionPlan.embed_into`) or on a Ray
cluster (`PredictionPlan.ray_job`). The CLI's ``predict`` parses into a request and prints;
`sleap_export.predict` builds one from keywords and does what the CLI does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import attrs

from sleap_export.core.errors import InputError
from sleap_export.runtime.open_model import ModelOptions, detector_and_embedding, split_models_and_inputs
from sleap_export.runtime.sources.video_inputs import expand_inputs, refuse_repeated_videos
from sleap_export.runtime.writing.destination import check_destination, refuse_replacing, refuse_resume_with_overwrite
from sleap_export.runtime.writing.output_formats import check_videos, format_named

if TYPE_CHECKING:
    import sleap_io as sio

    from sleap_export.runtime.drivers.predictor import Predictor
    from sleap_export.runtime.drivers.ray_cluster import RayCluster, RayPrediction
    from sleap_export.runtime.tracking.tracking_options import TrackingOptions


@attrs.frozen(kw_only=True)
class PredictionRequest:
    """What one predict is asked to do (the CLI's arguments, typed).

    ``paths``: the model(s) then the inputs, as given (``MODEL [MODEL2] INPUT...``: a top-down pair of
    runs, or a detector artifact then a lone embedding artifact that embeds what it finds). ``output``: a
    predictions file, or an existing folder for one file per input in ``output_format``. ``cluster``: run
    on this Ray cluster instead of here.
    """

    paths: tuple[Path, ...] = attrs.field(converter=lambda paths: tuple(Path(p) for p in paths))
    output: Path = attrs.field(converter=Path)
    output_format: Optional[str] = None
    frames: Optional[str | Sequence[int]] = None
    batch_size: int = 4
    options: ModelOptions = ModelOptions()
    video_index: Optional[int] = None
    overwrite: bool = False
    resume: bool = False
    restore_source_videos: bool = False
    overlay: Optional[Path] = attrs.field(default=None, converter=lambda path: None if path is None else Path(path))
    tracking: Optional["TrackingOptions"] = None
    cluster: Optional["RayCluster"] = None

    def plan(self) -> "PredictionPlan":
        """Every path classified and every rule checked, in the order the CLI has always reported them."""
        refuse_resume_with_overwrite(self.resume, self.overwrite)
        models, inputs = split_models_and_inputs(self.paths)
        models, embedding = detector_and_embedding(models)
        if embedding is not None:
            for option, given in (("--ray", self.cluster), ("--tracking", self.tracking), ("--overlay", self.overlay)):
                if given is not None:
                    raise InputError(
                        f"{option}: a detector + embedding pair predicts here, then embeds what it wrote; predict "
                        f"{models[0].name} with {option}, then embed its .slp (sleap-export predict {embedding.name} OUT.slp "
                        "-o EMBEDDED.slp)."
                    )
        inputs = expand_inputs(inputs)
        refuse_repeated_videos(inputs)
        if self.cluster is not None:
            if self.video_index is not None:
                raise InputError("--video-index picks a video for local predict; with --ray, pass only the videos to predict.")
            if self.overlay is not None:
                raise InputError(
                    "--overlay draws the frames on this machine and --ray predicts them on the cluster; drop --ray, or leave out --overlay."
                )
            return PredictionPlan(self, models, inputs, embedding=None, destinations=())
        self.options.check_applies_to(models[0])
        destinations = self._destinations(models, inputs)
        if self.overlay is not None:
            self._check_overlay(models, inputs)
        plan = PredictionPlan(self, models, inputs, embedding, destinations)
        if embedding is not None:
            for given, output in destinations:
                plan.embedder.writer.check_destination(output, [*given, models[0]])
        return plan

    def _destinations(self, models, inputs) -> tuple[tuple[tuple[Path, ...], Path], ...]:
        """``(inputs, output file)`` pairs: all inputs into one file, or with -o FOLDER one STEM file per
        input in ``output_format`` (default slp; as --ray writes them); each checked before the model loads."""
        output = self.output
        if output.is_dir():
            if self.video_index is not None:
                raise InputError("--video-index picks one video of one output; with -o FOLDER, pass only the videos to predict.")
            stems = {}
            suffix = format_named(self.output_format or "slp").suffix
            for path in inputs:
                target = output / f"{path.name.removesuffix('.slp') if path.name.endswith('.slp') else path.stem}{suffix}"
                if target in stems:
                    raise InputError(
                        f"{stems[target]} and {path} would both be written to {target}; rename one, or write one file with -o all.slp."
                    )
                stems[target] = path
            pairs = [((path,), target) for target, path in stems.items()]
        elif not output.suffix and not output.exists() and output.parent.is_dir():
            raise InputError(
                f"{output} is neither a .slp file nor an existing folder; name a .slp (or .analysis.h5, .nwb, .csv) "
                "for one file, or create the folder for one file per video."
            )
        else:
            pairs = [(tuple(inputs), output)]
        for sources, target in pairs:
            found = check_destination(target, [*sources, *models], self.output_format)
            check_videos(found, target, len(sources))
            refuse_replacing(target, found, self.resume, self.overwrite)
            if self.resume and target.exists():
                found.check_resumable(target)
        return tuple(pairs)

    def _check_overlay(self, models, inputs) -> None:
        """--overlay refused before the model loads: a file type FFmpeg cannot write, an input,
        several videos into one file, or an existing file without --overwrite."""
        from sleap_export.runtime.writing.overlay_video import check_overlay, input_video_filenames, overlay_paths

        check_overlay(self.overlay, [*inputs, *models])
        videos = input_video_filenames(inputs)
        if self.video_index is not None:
            videos = videos[self.video_index : self.video_index + 1]  # out of range: refused by the predictor, in its words
        for path in overlay_paths(self.overlay, videos) if videos else []:
            if path.exists() and not self.overwrite:
                fix = "remove it or name another --overlay" if self.resume else "pass --overwrite to replace it, or name another --overlay"
                raise InputError(f"{path} already exists; {fix}.")


@attrs.define
class PredictionPlan:
    """A checked `PredictionRequest`: its models, its inputs (folders and globs expanded), the lone
    embedding artifact that embeds what the models find (or None), and each output with its inputs."""

    request: PredictionRequest
    models: list[Path]
    inputs: list[Path]
    embedding: Optional[Path]
    destinations: tuple[tuple[tuple[Path, ...], Path], ...]
    _predictor: Optional["Predictor"] = None
    _embedder: Optional["Predictor"] = None

    @property
    def predictor(self) -> "Predictor":
        """The models' predictor, opened on first use."""
        from sleap_export.runtime.drivers.predictor import Predictor

        if self._predictor is None:
            self._predictor = Predictor.from_model_paths(self.models, batch_size=self.request.batch_size, options=self.request.options)
        return self._predictor

    @property
    def embedder(self) -> "Predictor":
        """The lone embedding artifact's predictor (runs on the CPU threads the models were given)."""
        from sleap_export.runtime.drivers.predictor import Predictor

        if self._embedder is None:
            options = self.request.options
            self._embedder = Predictor.from_model_paths(
                [self.embedding], batch_size=self.request.batch_size,
                options=ModelOptions(device=options.device, runtime=options.runtime, precision=options.precision, threads=options.threads),
            )
        return self._embedder

    def predict_into(self, inputs: Sequence[Path], output: Path, progress=None) -> "sio.Labels":
        """Predict ``inputs`` into ``output``, one of the plan's destinations (journal, resume, overlay, tracking)."""
        request = self.request
        return self.predictor.predict(
            list(inputs), frames=request.frames, output=output, progress=progress, resume=request.resume,
            video_index=request.video_index, overlay=request.overlay, tracking=request.tracking,
            restore_source_videos=request.restore_source_videos, overwrite=request.overwrite,
        )

    def embed_into(self, output: Path, progress=None) -> "sio.Labels":
        """The embedding artifact's vectors for every detection the models wrote into ``output``."""
        return self.embedder.embed_output(output, progress=progress)

    def ray_job(self) -> "RayPrediction":
        """The request as a Ray job (one exported artifact, videos only)."""
        from importlib.util import find_spec

        from sleap_export.core.errors import install_extra

        if len(self.models) != 1:
            raise InputError("--ray runs one exported artifact; export the runs first (sleap-export onnx RUN... -o model.onnx).")
        if find_spec("ray") is None:
            raise InputError(f"--ray needs Ray; {install_extra('ray')}.")
        from sleap_export.runtime.drivers.ray_cluster import RayPrediction

        request = self.request
        return RayPrediction(
            self.models[0], self.inputs, request.output, request.cluster, request.options, frames=request.frames,
            batch_size=request.batch_size, resume=request.resume, overwrite=request.overwrite,
            output_format=request.output_format, tracking=request.tracking,
        )

    def run(self, progress="auto") -> Iterator[tuple[Path, Optional["sio.Labels"]]]:
        """Predict into each output (then embed, with an embedding artifact) and yield ``(output, labels)``
        as each is written; a Ray job yields each video's output once the job is done, without labels
        (they were written on the cluster)."""
        if self.request.cluster is not None:
            report = self.ray_job().run(None if progress == "auto" else progress)
            if report.failed:
                from sleap_export.core.errors import SleapExportError

                raise SleapExportError(
                    f"{len(report.failed)} of {len(report.videos)} videos failed ({'; '.join(report.summary_lines())}); "
                    "the others are written, and resume=True after a fix predicts only what is missing."
                )
            for video in report.videos:
                yield video.output, None
            return
        for inputs, output in self.destinations:
            labels = self.predict_into(inputs, output, progress)
            if self.embedding is not None:
                labels = self.embed_into(output, progress)
            yield output, labels


def predict(
    models: str | Path | Sequence[str | Path],
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    output_format: Optional[str] = None,
    frames: Optional[str | Sequence[int]] = None,
    batch_size: int = 4,
    options: ModelOptions = ModelOptions(),
    video_index: Optional[int] = None,
    overwrite: bool = False,
    resume: bool = False,
    restore_source_videos: bool = False,
    overlay: Optional[str | Path] = None,
    tracking: Optional["TrackingOptions"] = None,
    ray: Optional["RayCluster"] = None,
    progress="auto",
) -> dict[Path, Optional["sio.Labels"]]:
    """What ``sleap-export predict MODELS INPUTS -o OUTPUT`` does, from Python, with the same rules and
    messages: an existing output or journal is kept unless ``overwrite=True`` (replace it) or
    ``resume=True`` (finish it); ``output`` may be an existing folder (one file per input, in
    ``output_format``); a detector artifact followed by a lone embedding artifact predicts, then
    embeds; ``ray`` runs the videos on a Ray cluster (`RayCluster`). Each output is journaled as it is
    predicted, so a process killed outright loses at most the batches in flight and ``resume=True``
    goes on. Returns each output written with its labels (None for Ray's, written on the cluster).
    """
    plan = PredictionRequest(
        paths=[*_paths(models), *_paths(inputs)], output=output, output_format=output_format, frames=frames,
        batch_size=batch_size, options=options, video_index=video_index, overwrite=overwrite, resume=resume,
        restore_source_videos=restore_source_videos, overlay=overlay, tracking=tracking, cluster=ray,
    ).plan()
    return dict(plan.run(progress))


def _paths(given: str | Path | Sequence[str | Path]) -> list[str | Path]:
    return [given] if isinstance(given, (str, Path)) else list(given)
