"""`OUTPUT_FORMATS`: the files predictions can be written to, one record per format.

A thin front over sleap-io's writers and readers (sleap-io's own style): the
format comes from the output's suffix (or ``--format`` for a folder's files),
and every format is written the same way, to a hidden sibling then renamed.
Only `.slp` keeps everything; the table in docs/output-formats.md says what
each of the others keeps and whether a finished file can be resumed.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Optional

import attrs
import sleap_io as sio

from sleap_export.core.atomic_files import written_atomically
from sleap_export.core.errors import InputError, SleapExportError


def _write_slp(labels: sio.Labels, path: str) -> None:
    with warnings.catch_warnings():
        # sleap-io moves provenance past HDF5's 64 kB attribute limit into a dataset of its own, and says so.
        warnings.filterwarnings("ignore", message="Labels metadata JSON")
        # Appearance vectors are written only when asked for (sleap-nn --save_embeddings slp asks). Videos as
        # LabelsWriter names them: sleap-io's default would swap a .pkg.slp for the source video it recorded.
        sio.save_slp(labels, path, save_embedding_vectors=True, restore_original_videos=False)


def _write_analysis_h5(labels: sio.Labels, path: str) -> None:
    sio.save_analysis_h5(labels, path, save_metadata=True)  # the metadata keeps the provenance resume checks


def _write_csv(labels: sio.Labels, path: str) -> None:
    # One file: sleap-io's metadata sidecar (a JSON beside it) would be a second file to write atomically.
    sio.save_csv(labels, path, format="sleap", include_score=True)


def _slot_tracks(labels: sio.Labels) -> sio.Labels:
    """``labels`` with each untracked instance on the track of its slot in its frame ("track_0", ...),
    as SLEAP's analysis HDF5 stores them: NWB keeps one series per track and node."""
    slots: dict[int, sio.Track] = {}
    frames = []
    for lf in labels.labeled_frames:
        instances, slot = [], 0
        for instance in lf.instances:
            track = instance.track
            if track is None:
                track = slots.setdefault(slot, sio.Track(name=f"track_{slot}"))
                slot += 1
            points = instance.numpy(scores=True)
            instances.append(sio.PredictedInstance.from_numpy(
                points_data=points[:, :2], point_scores=points[:, 2], score=float(instance.score),
                skeleton=instance.skeleton, track=track, tracking_score=instance.tracking_score,
            ))
        frames.append(sio.LabeledFrame(video=lf.video, frame_idx=lf.frame_idx, instances=instances))
    return sio.Labels(labeled_frames=frames, videos=labels.videos, skeletons=labels.skeletons,
                      tracks=[*labels.tracks, *slots.values()], provenance=labels.provenance)


def _write_nwb(labels: sio.Labels, path: str) -> None:
    if not any(lf.instances for lf in labels.labeled_frames):
        # sleap-io's NWB writer has no way to store a prediction without instances.
        raise SleapExportError("No instance was predicted, and an NWB file cannot hold none; write .slp instead.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pynwb's and hdmf's notes on the defaults sleap-io fills in
        sio.save_nwb(_slot_tracks(labels), path, nwb_format="predictions")


@attrs.frozen
class OutputFormat:
    """One file format predictions can be written to.

    ``suffixes``: the first is what a folder's files are named with; ``writer``: the
    sleap-io function that writes it (docs/output-formats.md says what each keeps);
    ``one_video``: it holds one video's frames; ``not_resumable``: why a finished file
    cannot be resumed (None where sleap-io reads it back with the provenance resume checks).
    """

    name: str
    suffixes: tuple[str, ...]
    writer: str
    write: Callable[[sio.Labels, str], None] = attrs.field(repr=False, eq=False)
    read: Callable[[str], sio.Labels] = attrs.field(repr=False, eq=False)
    one_video: bool = False
    not_resumable: Optional[str] = None
    keeps_boxes: bool = False
    keeps_embeddings: bool = False
    keeps_masks: bool = False

    @property
    def suffix(self) -> str:
        return self.suffixes[0]

    @property
    def keeps_provenance(self) -> bool:
        """What resume checks is the provenance, so the formats that resume are those that keep it."""
        return self.not_resumable is None

    def save(self, labels: sio.Labels, path: Path) -> Path:
        """Write ``labels`` to ``path`` through a hidden sibling with the same suffix, then rename."""
        check_videos(self, path, len(labels.videos))
        try:
            with written_atomically(path, suffix=self.suffix) as partial:
                self.write(labels, str(partial))
        except OSError as err:
            raise SleapExportError(
                f"Could not write {path} ({err.strerror or err}); free space or choose another folder."
            ) from None
        return path

    def check_resumable(self, path: Path) -> None:
        """Refuse to resume a finished ``path`` of a format sleap-io cannot read back with its provenance."""
        if self.not_resumable is not None:
            raise InputError(
                f"{path} cannot be resumed ({self.not_resumable}); pass --overwrite, or predict to .slp and convert "
                f"(sio convert {self.stem(path)}.slp -o {path.name})."
            )

    def load(self, path: Path) -> sio.Labels:
        """A finished file read back to resume it; refused where the format cannot be."""
        self.check_resumable(path)
        try:
            return self.read(str(path))
        except Exception:
            raise InputError(f"{path} is not a readable {self.name} file, so it cannot be resumed; remove it or pass --overwrite.") from None

    def suffix_of(self, path: Path) -> str:
        """Which of the suffixes ``path`` ends with ("" if none)."""
        return next((s for s in self.suffixes if path.name.lower().endswith(s)), "")

    def stem(self, path: Path) -> str:
        """``path``'s name without this format's suffix."""
        return path.name[: len(path.name) - len(self.suffix_of(path))]


SLP = OutputFormat(
    "slp", (".slp",), "save_slp", _write_slp, sio.load_slp, keeps_boxes=True, keeps_embeddings=True, keeps_masks=True
)
OUTPUT_FORMATS: tuple[OutputFormat, ...] = (
    SLP,
    OutputFormat(
        "analysis.h5", (".analysis.h5", ".h5"), "save_analysis_h5", _write_analysis_h5, sio.load_analysis_h5, one_video=True
    ),
    OutputFormat("nwb", (".nwb",), "save_nwb", _write_nwb, sio.load_nwb, not_resumable="NWB keeps no model provenance"),
    OutputFormat(
        "csv", (".csv",), "save_csv", _write_csv, sio.load_csv, one_video=True, not_resumable="CSV keeps no model provenance"
    ),
)


def format_names() -> str:
    return ", ".join(f.name for f in OUTPUT_FORMATS)


def _all_suffixes() -> str:
    return ", ".join(s for f in OUTPUT_FORMATS for s in f.suffixes)


def format_named(name: str) -> OutputFormat:
    """The format ``--format NAME`` names; refused when it is none of them."""
    found = next((f for f in OUTPUT_FORMATS if f.name == name.lower().lstrip(".")), None)
    if found is None:
        raise InputError(f"--format {name} is not an output format; pass one of {format_names()}.")
    return found


def output_format_of(path: Path) -> Optional[OutputFormat]:
    """The format ``path``'s suffix names (``.analysis.h5`` before ``.h5``), or None."""
    return next((f for f in OUTPUT_FORMATS if f.suffix_of(Path(path))), None)


def output_format(path: Path, name: Optional[str] = None) -> OutputFormat:
    """The format of the output file ``path``, from its suffix; ``name`` (``--format``), when
    given, must agree with it."""
    found = output_format_of(path)
    if found is None:
        raise InputError(
            f"{path} is not a .slp file or another predictions format ({_all_suffixes()}); "
            f"name it {path.with_suffix(SLP.suffix).name}, or give it one of those suffixes."
        )
    if name is not None and format_named(name) is not found:
        wanted = format_named(name)
        raise InputError(
            f"{path.name} is a {found.name} file name and --format says {wanted.name}; "
            f"name it {found.stem(path)}{wanted.suffix}, or leave out --format."
        )
    return found


def check_videos(output_format: OutputFormat, output: Path, videos: int) -> None:
    """Refuse ``videos`` videos' predictions in one file of a format that holds one video."""
    if output_format.one_video and videos > 1:
        raise InputError(
            f"A {output_format.name} file holds one video and {output} would get {videos}; pass -o FOLDER "
            f"--format {output_format.name} for one file per video, or write .slp or .nwb."
        )
