"""Frame sources: videos, .slp labels and arrays, and which of their frames to use.

Predict, check, calibration and bench all read frames through here: one
place for the one-line errors about unreadable inputs and frame ranges.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import re
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import attrs
import numpy as np
import sleap_io as sio

from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.runtime.sources.frame_arrays import as_batch

LABELS_SUFFIXES = (".slp",)


class UnreadableFrame(SleapExportError):
    """Frame ``frame_idx`` of ``video`` could not be read: the file is damaged or cut short there."""

    def __init__(self, video: sio.Video, frame_idx: int):
        self.video, self.frame_idx = video, frame_idx
        # An image sequence: the image file of that frame.
        self.filename = str(video.filename[frame_idx] if isinstance(video.filename, list) else video.filename)
        super().__init__(f"{self.problem}; repair or re-encode it.")

    @property
    def problem(self) -> str:
        return f"Frame {self.frame_idx} of {self.filename} could not be read (the file is damaged or cut short there)"


def video_frame(video: sio.Video, frame_idx: int) -> np.ndarray:
    """Frame ``frame_idx`` of ``video``; `UnreadableFrame` where decoding it fails."""
    try:
        return video[frame_idx]
    except Exception as err:
        raise UnreadableFrame(video, frame_idx) from err


@attrs.frozen
class FrameSource:
    """Frames of one video to predict on."""

    video: sio.Video
    frame_indices: tuple[int, ...]
    read: Callable[[int], np.ndarray]
    # Per-frame (K, 2) centroids of labeled instances, for centered-instance artifacts.
    centroids: Optional[Callable[[int], np.ndarray]] = None
    # The frames are a labels file's labeled frames, which --frames does not select.
    labeled: bool = False


def instance_centroids(lf: sio.LabeledFrame, anchor: Optional[int]) -> np.ndarray:
    """``(K, 2)`` centroids of a frame's instances: the anchor node where visible,
    else the mean of the visible nodes (sleap-nn's center-of-mass default)."""
    centroids = []
    for instance in lf.instances:
        points = instance.numpy()
        if anchor is not None and not np.isnan(points[anchor]).any():
            centroids.append(points[anchor])
        elif not np.isnan(points).all():
            centroids.append(np.nanmean(points, axis=0))
    return np.asarray(centroids, np.float32).reshape(-1, 2)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Hide what FFmpeg's C code prints for unreadable files; we report in one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def open_video(path: Path) -> sio.Video:
    """A video file (named by its absolute path, as the .slp files we write record it), with a
    one-line error for a missing, unreadable or empty one."""
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a video or .slp file.")
    if path.is_dir():
        raise InputError(f"{path} is a folder; pass the videos in it (predict takes a folder as its videos).")
    try:
        with _native_stderr_silenced():
            video = sio.load_video(os.path.abspath(path))
            shape = video.shape
    except Exception:
        shape = None
    if shape is None:
        raise InputError(f"{path} could not be opened as a video (empty, truncated or an unsupported codec); check the file.")
    if not shape[0]:
        raise InputError(f"{path} has no frames; pass a video with at least one frame.")
    return video


def parse_frame_ranges(text: str, n_frames: int) -> tuple[int, ...]:
    """``"0-999,2000-"`` -> frame indices (inclusive ranges; open end = last frame)."""
    indices: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d*))?", part)
        if match is None:
            raise InputError(f"Cannot read frame range {part!r}; write ranges like 0-999,2000-.")
        start = int(match.group(1))
        if match.group(2) is None:
            stop = start
        else:
            stop = int(match.group(2)) if match.group(2) else n_frames - 1
        if stop < start:
            raise InputError(f"Frame range {part} ends before it starts; write it as {stop}-{start}.")
        if stop > n_frames - 1 or start > n_frames - 1:
            raise InputError(f"Frame range {part} is outside the input's {n_frames} frames (valid: 0-{n_frames - 1}).")
        indices.extend(range(start, stop + 1))
    return tuple(indices)


def frame_ranges(indices: Sequence[int], n_frames: int) -> str:
    """Frame indices as `parse_frame_ranges` reads them: ``0-115,117-`` (a range to the last frame left open)."""
    runs: list[list[int]] = []
    for i in sorted(set(indices)):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(
        str(start) if start == stop else f"{start}-{'' if stop == n_frames - 1 else stop}" for start, stop in runs
    )


def select_frames(frames, n_frames: int) -> tuple[int, ...]:
    """The frames to predict: all, or ``frames`` (indices or ranges), each once (overlapping ranges
    are merged: a frame is never predicted or written twice), in the order first asked for."""
    if frames is None:
        return tuple(range(n_frames))
    indices = parse_frame_ranges(frames, n_frames) if isinstance(frames, str) else tuple(int(i) for i in frames)
    indices = tuple(dict.fromkeys(indices))
    bad = [i for i in indices if not 0 <= i < n_frames]
    if bad:
        raise InputError(f"Frame {bad[0]} is outside the input's {n_frames} frames.")
    if not indices:
        raise InputError("The frame selection is empty; check --frames.")
    return indices


def frame_sources(source, frames: Optional[Sequence[int] | str] = None) -> list[FrameSource]:
    """Resolve a path, `sio.Video`, `sio.Labels` or numpy array to frame sources."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        source = open_input(path)
    if isinstance(source, np.ndarray):
        array = as_batch(source)
        video = sio.Video(filename="array", backend=None, open_backend=False)
        indices = select_frames(frames, len(array))
        return [FrameSource(video, indices, lambda i: array[i])]
    if isinstance(source, sio.Video):
        indices = select_frames(frames, source.shape[0])
        return [FrameSource(source, indices, functools.partial(video_frame, source))]
    if isinstance(source, sio.Labels):
        by_video: dict[int, list] = {}
        for lf in source.labeled_frames:
            by_video.setdefault(id(lf.video), []).append(lf)
        sources = []
        for lfs in by_video.values():
            if not lfs[0].video.exists():
                raise InputError(
                    f"The labels refer to video {lfs[0].video.filename}, which does not exist; put it "
                    "there, or point the labels at it (sleap-io's Labels.replace_filenames)."
                )
            by_frame = {lf.frame_idx: lf for lf in lfs}
            sources.append(
                FrameSource(
                    lfs[0].video,
                    tuple(sorted(by_frame)),
                    functools.partial(video_frame, lfs[0].video),
                    lambda i, anchor, frames=by_frame: instance_centroids(frames[i], anchor),
                    labeled=True,
                )
            )
        if not sources:
            raise InputError("The labels file has no labeled frames to predict on.")
        return sources
    raise InputError(
        f"Cannot predict on a {type(source).__name__}; pass a video or .slp path, "
        "sio.Video, sio.Labels or a uint8 array."
    )


def refuse_repeated_videos(videos: Sequence[sio.Video | str | Path]) -> None:
    """A video given twice would be predicted, and written, twice: refused in one line."""
    seen = set()
    for video in videos:
        name = video.filename if isinstance(video, sio.Video) else str(video)
        if not isinstance(name, str) or name == "array":
            continue
        key = os.path.abspath(name)
        if key in seen:
            raise InputError(f"{name} is given twice; pass each video once (its frames would be predicted twice).")
        seen.add(key)


# Files a folder input contributes: the video formats sleap-io reads, and labels.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mj2", ".mpg", ".mpeg", ".h264", ".m4v")


def expand_inputs(paths: Sequence[Path]) -> list[Path]:
    """Inputs as given, with a folder standing for its videos and .slp files (sorted by name) and a
    quoted glob (``"videos/*.mp4"``, which no shell expanded) for its matches."""
    expanded: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and (p.suffix.lower() in VIDEO_SUFFIXES or p.name.endswith(LABELS_SUFFIXES)))
            if not found:
                raise InputError(
                    f"{path} is a folder with no videos ({', '.join(VIDEO_SUFFIXES[:4])}, ...) or .slp files in it; "
                    "pass the folder that holds them, or the files themselves."
                )
            expanded += found
        elif not path.exists() and glob.has_magic(str(path)):
            found = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
            if not found:
                raise InputError(f"No file matches {path}; check the pattern.")
            expanded += found
        else:
            expanded.append(path)
    return expanded


def open_labels(path: Path) -> sio.Labels:
    """A .slp labels file, with a one-line error for a missing or unreadable one."""
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a video or .slp file.")
    try:
        return sio.load_slp(str(path))
    except Exception:
        raise InputError(f"{path} is not a readable .slp labels file; pass a labels file or a video.") from None


def open_input(path: str | Path) -> sio.Video | sio.Labels:
    """A video, or the labels of a .slp file."""
    path = Path(path)
    return open_labels(path) if path.name.endswith(LABELS_SUFFIXES) else open_video(path)


def spread_indices(total: int, count: int) -> tuple[int, ...]:
    """Up to ``count`` frame indices spread evenly over ``total`` frames, first and last included."""
    return tuple(sorted({int(i) for i in np.linspace(0, total - 1, min(count, total)).round()}))


def first_labeled_frames(labels: sio.Labels, count: int) -> sio.Labels:
    """The labels' first ``count`` labeled frames, as labels; refuses labels without any."""
    kept = labels.labeled_frames[:count]
    if not kept:
        raise InputError("The labels file has no labeled frames; pass labels with frames, or a video.")
    return sio.Labels(labeled_frames=kept, videos=labels.videos, skeletons=labels.skeletons, tracks=labels.tracks)
