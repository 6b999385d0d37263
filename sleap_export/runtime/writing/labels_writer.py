"""`LabelsWriter`: one model's predictions as SLEAP labels, for every driver.

Batch predict, Ray jobs and live runs write their output through it, so the
skeleton, the class tracks, the provenance, resuming an earlier run's frames,
the lock and the atomic save are the same code for all three, in every output
format (`output_formats`: `.slp`, analysis HDF5, NWB, CSV).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
import sleap_io as sio

from sleap_export.core.errors import InputError
from sleap_export.core.model_types import BOX_HEAD_TYPES, MODEL_TYPES
from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.decoding.outputs import Outputs
from sleap_export.runtime.writing.destination import check_destination, exclusive_output
from sleap_export.runtime.writing.journal import PredictionJournal
from sleap_export.runtime.writing.output_formats import OutputFormat, check_videos, output_format


def output_skeleton(spec: ModelSpec) -> sio.Skeleton:
    """The skeleton the artifact's instances use (sleap-nn's centroid skeleton too)."""
    if spec.output_node_names != spec.skeleton.nodes:
        return sio.Skeleton(nodes=list(spec.output_node_names), name="centroid")
    nodes = [sio.Node(name) for name in spec.skeleton.nodes]
    return sio.Skeleton(
        nodes=nodes,
        edges=[sio.Edge(nodes[a], nodes[b]) for a, b in spec.skeleton.edges],
        symmetries=[sio.Symmetry({nodes[a], nodes[b]}) for a, b in spec.skeleton.symmetries],
        name=spec.skeleton.name,
    )


def class_tracks(spec: ModelSpec) -> list[sio.Track]:
    """One track per class of a multi-class model, named as in its training config."""
    if MODEL_TYPES[spec.model_type].detects_boxes:
        return []  # a detector's class names are its box categories
    return [sio.Track(name=name) for name in spec.class_names]


def provenance(spec: ModelSpec, artifact: Optional[str]) -> dict:
    """What a `.slp` records of the model that predicted it (and what resuming checks)."""
    return {
        "sleap_export.artifact": str(artifact) if artifact else None,
        "sleap_export.model_type": spec.model_type,
        "sleap_export.checkpoint_sha256": [s.checkpoint_sha256 for s in spec.stages],
        "sleap_export.versions": spec.versions,
    }


def save_labels_atomically(labels: sio.Labels, path: str | Path) -> Path:
    """Write ``labels`` in the format of ``path``'s suffix to a temporary sibling, then rename:
    no half-written file."""
    path = Path(path)
    return output_format(path).save(labels, path)


def _same_file(a, b) -> bool:
    """Two video file names that name one file (relative ones from the working folder); an image
    sequence's list of files as the journal writes it (its text)."""
    if isinstance(a, str) and isinstance(b, str):
        return os.path.abspath(a) == os.path.abspath(b)
    return str(a) == str(b)


def _input_video(videos: Sequence[sio.Video], filename, saved_in: Path) -> sio.Video:
    """The input video ``filename`` names (a .pkg.slp's, by the .pkg.slp or the source video it records, as an
    output may name either); refused when it is none of them."""
    found = next(
        (
            video for video in videos
            if any(_same_file(named.filename, filename) for named in (video, video.source_video) if named is not None)
        ),
        None,
    )
    if found is None:
        raise InputError(
            f"{saved_in} holds predictions for {filename}, which is not among the inputs; "
            "resume with the same inputs, or write to another file."
        )
    return found


class LabelsWriter:
    """One model's predictions as labels: instances on the model's skeleton and class
    tracks, its provenance, the frames an earlier run saved (resume), one writer at a time,
    saved atomically in the output's format (`output_formats`).

    ``artifact``: what the provenance names as the model (a path, or runs joined by " + ").
    ``restore_source_videos``: an input .pkg.slp's frames are named by the video they were packed
    from, where it records one, instead of by the .pkg.slp (`output_video`).
    """

    def __init__(self, spec: ModelSpec, artifact: Optional[str | Path] = None, restore_source_videos: bool = False):
        self.spec = spec
        self.artifact = None if artifact is None else str(artifact)
        self.restore_source_videos = restore_source_videos
        self.skeleton = output_skeleton(spec)
        self.tracks = class_tracks(spec)
        # The provenance of the output `previous_frames` last read (what resuming it must respect).
        self.resumed_provenance: dict = {}

    @property
    def provenance(self) -> dict:
        return provenance(self.spec, self.artifact)

    # Frames ------------------------------------------------------------------
    def instances(self, outputs: Outputs) -> list[sio.PredictedInstance]:
        """The valid instances of one frame, in slot order, with their class's track."""
        instances = []
        for i in np.flatnonzero(np.asarray(outputs.instance_valid)):
            identity = {}
            if outputs.class_ids is not None and outputs.class_ids[i] >= 0:
                identity = {
                    "track": self.tracks[int(outputs.class_ids[i])],
                    "tracking_score": float(outputs.instance_tracking_scores[i]),
                }
            instance = sio.PredictedInstance.from_numpy(
                points_data=np.asarray(outputs.pred_keypoints[i], dtype=np.float64),
                point_scores=np.asarray(outputs.pred_peak_values[i], dtype=np.float64),
                score=float(outputs.instance_scores[i]),
                skeleton=self.skeleton,
                **identity,
            )
            if outputs.pred_embeddings is not None:
                # As sleap-nn --save_embeddings slp: the vector in the instance's re-ID slot.
                instance.identity_embedding = sio.Embedding(np.asarray(outputs.pred_embeddings[i], dtype=np.float32))
            instances.append(instance)
        return instances

    def frame(self, outputs: Outputs, video: sio.Video) -> sio.LabeledFrame:
        """One frame's completed outputs as a labeled frame of ``video`` (a detector's: its boxes)."""
        instances, boxes = self.instances(outputs), self.boxes(outputs)
        if outputs.pred_bbox_instance is not None:
            # Box-driven top-down: each box linked to the instance its crop gave, as sleap-nn links
            # them (an empty pose is not written, and its box links to nothing).
            by_slot = dict(zip(np.flatnonzero(np.asarray(outputs.instance_valid)), instances))
            for box, slot in zip(boxes, outputs.pred_bbox_instance):
                box.instance = by_slot.get(int(slot))
        return sio.LabeledFrame(
            video=video, frame_idx=int(outputs.frame_idx), instances=instances, bboxes=boxes,
            masks=list(outputs.masks), rois=list(outputs.rois),
        )

    def boxes(self, outputs: Outputs) -> list[sio.PredictedBoundingBox]:
        """A detector's boxes as sleap-nn writes them: score, and the category unless the detector
        has the single default one ("object"), whose boxes stay uncategorized."""
        if outputs.pred_bboxes is None:
            return []
        categories = self.spec.class_names
        named = list(categories) != ["object"]
        return [
            sio.PredictedBoundingBox(
                x1=float(box[0]), y1=float(box[1]), x2=float(box[2]), y2=float(box[3]), score=float(score),
                category=categories[int(category)] if named and 0 <= int(category) < len(categories) else None,
            )
            for box, score, category in zip(outputs.pred_bboxes, outputs.pred_bbox_scores, outputs.pred_bbox_classes)
        ]

    def labels(self, frames: Iterable[sio.LabeledFrame], videos: Sequence[sio.Video], extra_provenance: Optional[dict] = None) -> sio.Labels:
        """The labels of ``frames``, ordered by video (in ``videos`` order), then frame; the
        videos named by absolute paths, so the .slp finds them from any folder, and as
        `name_output_videos` names them."""
        order = {id(video): i for i, video in enumerate(videos)}
        for video in videos:
            name = video.filename
            if isinstance(name, str) and not os.path.isabs(name) and os.path.exists(name):
                video.replace_filename(os.path.abspath(name), open=False)
        labels = sio.Labels(
            labeled_frames=sorted(frames, key=lambda lf: (order[id(lf.video)], lf.frame_idx)),
            videos=list(videos),
            skeletons=[self.skeleton],
            tracks=self.tracks,
            provenance={**self.provenance, **(extra_provenance or {})},
        )
        self.name_output_videos(labels)
        return labels

    def output_video(self, video: sio.Video) -> sio.Video:
        """The video an output names for the input ``video``. A .pkg.slp's embedded frames are named by
        the .pkg.slp, where they are (as sleap-nn predict writes them, its --restore_source_videos off);
        with ``restore_source_videos``, by the video they were packed from, where the .pkg.slp records one."""
        if self.restore_source_videos and video.source_video is not None:
            return video.source_video
        return video

    def name_output_videos(self, labels: sio.Labels) -> None:
        """Point ``labels`` (in place) at the videos `output_video` chooses: the one place that decides
        which video an output of every driver and format names."""
        renamed = {video: self.output_video(video) for video in labels.videos}
        renamed = {old: new for old, new in renamed.items() if new is not old}
        if renamed:
            labels.replace_videos(video_map=renamed)

    # Files -------------------------------------------------------------------
    def check_destination(self, output: Path, inputs: Iterable, format_name: Optional[str] = None) -> OutputFormat:
        """Before any frame is predicted: a file of an output format (``format_name`` must agree) that is
        none of ``inputs``, in a writable folder, and that keeps what this model predicts; its format."""
        found = check_destination(output, [*inputs, self.artifact], format_name)
        if self.spec.model_type in BOX_HEAD_TYPES and not found.keeps_boxes:
            raise InputError(
                f"A {self.spec.model_type} detector predicts boxes and {found.name} files keep none; "
                f"write {found.stem(output)}.slp instead."
            )
        if MODEL_TYPES[self.spec.model_type].segments and not found.keeps_masks:
            raise InputError(
                f"A {self.spec.model_type} model predicts masks and {found.name} files keep none; "
                f"write {found.stem(output)}.slp instead."
            )
        if MODEL_TYPES[self.spec.model_type].embeds and not found.keeps_embeddings:
            article = "An" if self.spec.model_type[0] in "aeiou" else "A"
            raise InputError(
                f"{article} {self.spec.model_type} model gives each instance an appearance vector and {found.name} files keep "
                f"none; write {found.stem(output)}.slp instead."
            )
        return found

    @contextlib.contextmanager
    def locked(self, output: Path) -> Iterator[None]:
        """Hold ``OUTPUT.lock`` while writing ``output`` (a second writer is refused)."""
        with exclusive_output(output):
            yield

    def save(self, labels: sio.Labels, output: str | Path) -> Path:
        """Write ``labels`` atomically in the format of ``output``'s suffix."""
        return save_labels_atomically(labels, output)

    # Resume ------------------------------------------------------------------
    def previous_frames(self, output: str | Path, videos: Sequence[sio.Video]) -> list[sio.LabeledFrame]:
        """Frames an earlier run of this model saved in ``output``, moved onto ``videos`` (matched
        by file name); refused when another model wrote it or it holds other videos."""
        output = Path(output)
        self.resumed_provenance = {}
        if not output.exists():
            return []
        saved = output_format(output).load(output)
        self._check_resumable(saved, output)
        self.resumed_provenance = dict(saved.provenance or {})
        moved = []
        for lf in saved.labeled_frames:
            video = _input_video(videos, lf.video.filename, output)
            adopted = {id(i): self._adopt(i) for i in lf.instances}
            moved.append(sio.LabeledFrame(
                video=video, frame_idx=lf.frame_idx, instances=list(adopted.values()),
                bboxes=[self._adopt_box(b, adopted) for b in lf.bboxes], masks=list(lf.masks), rois=list(lf.rois),
            ))
        return moved

    def journal(self, output: Path, videos: Sequence[sio.Video]) -> PredictionJournal:
        """The journal that keeps this model's predictions for ``output`` as they are made; refused
        for more ``videos`` than the output's format holds (here, as the videos of .slp inputs are
        first known before any frame is predicted)."""
        check_videos(output_format(output), output, len(videos))
        model = {key: self.provenance[key] for key in ("sleap_export.model_type", "sleap_export.checkpoint_sha256")}
        return PredictionJournal(output, model, [str(video.filename) for video in videos])

    def journal_frames(self, journal: PredictionJournal, videos: Sequence[sio.Video]) -> list[sio.LabeledFrame]:
        """The frames a journal holds, on ``videos`` (matched by path)."""
        return [self.frame(outputs, _input_video(videos, name, journal.path)) for name, outputs in journal.read()]

    def _check_resumable(self, saved: sio.Labels, output: Path) -> None:
        """Refuse to resume ``output`` unless another run of this model wrote it."""
        recorded = saved.provenance or {}
        expected = provenance(self.spec, None)
        fix = "write to another file, or pass --overwrite to start again."
        if "sleap_export.model_type" not in recorded:
            raise InputError(f"{output} was not written by sleap-export predict, so it cannot be resumed; {fix}")
        if recorded["sleap_export.model_type"] != expected["sleap_export.model_type"]:
            raise InputError(
                f"{output} holds {recorded['sleap_export.model_type']} predictions and this artifact is "
                f"{expected['sleap_export.model_type']}; {fix}"
            )
        if list(recorded.get("sleap_export.checkpoint_sha256") or []) != expected["sleap_export.checkpoint_sha256"]:
            raise InputError(f"{output} was predicted by another model (other checkpoint sha256); {fix}")
        saved_nodes = [[n.name for n in s.nodes] for s in saved.skeletons]
        if saved_nodes and saved_nodes != [[n.name for n in self.skeleton.nodes]]:
            raise InputError(f"{output} has another skeleton ({', '.join(saved_nodes[0])}); {fix}")

    @staticmethod
    def _adopt_box(box: sio.PredictedBoundingBox, adopted: dict) -> sio.PredictedBoundingBox:
        """A saved box, linked to the adopted instance its saved instance became (``adopted``: by id)."""
        return sio.PredictedBoundingBox(
            x1=box.x1, y1=box.y1, x2=box.x2, y2=box.y2, score=box.score, category=box.category,
            instance=adopted.get(id(box.instance)) if box.instance is not None else None,
        )

    def _adopt(self, instance: sio.PredictedInstance) -> sio.PredictedInstance:
        """A saved instance on this writer's skeleton and tracks (matched by name)."""
        tracks = {t.name: t for t in self.tracks}
        points = instance.numpy(scores=True)
        adopted = sio.PredictedInstance.from_numpy(
            points_data=points[:, :2],
            point_scores=points[:, 2],
            score=float(instance.score),
            skeleton=self.skeleton,
            track=tracks.get(instance.track.name) if instance.track is not None else None,
            tracking_score=instance.tracking_score,
        )
        adopted.identity_embedding = instance.identity_embedding
        return adopted
