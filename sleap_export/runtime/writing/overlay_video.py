"""Overlay videos: every predicted frame drawn with its predictions, encoded as it comes.

Drawn by sleap-io's renderer (skia) and encoded by FFmpeg through imageio-ffmpeg,
both installed with sleap-io, so no OpenCV is needed. Frames go to FFmpeg one
at a time (memory stays flat on any length of video), into a hidden sibling
renamed onto the overlay when the run ends, Ctrl-C included: a reader never
sees a half-written video. One draw function per kind of prediction
(`DRAWERS`: masks and polygons, boxes, poses); a new kind is one more function there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from sleap_export.core.atomic_files import refuse_inputs_as_output
from sleap_export.core.errors import InputError, SleapExportError
from sleap_export.runtime.decoding.outputs import Outputs

# Containers FFmpeg writes H.264 into, as the suffix names them.
OVERLAY_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")
# --overlay FOLDER: one STEM.overlay.mp4 per video.
FOLDER_OVERLAY_SUFFIX = ".overlay.mp4"
# Frame rate of a source that records none (image sequences, arrays).
FALLBACK_FPS = 30.0
# Without a frame rate (a camera that reports none), the first frames' capture times give it.
FRAMES_TO_MEASURE_FPS = 30
PALETTE = "standard"


# Drawing -----------------------------------------------------------------------------------------

def _colour_indices(outputs: Outputs, valid: np.ndarray) -> list[int]:
    """Palette index per valid instance: its track (class) where it has one, so an animal keeps
    its colour from frame to frame; otherwise its place in the frame, after the tracks' colours."""
    if outputs.class_ids is None:
        return list(range(len(valid)))
    tracks = 0 if outputs.pred_class_vectors is None else np.asarray(outputs.pred_class_vectors).shape[-1]
    ids = np.asarray(outputs.class_ids)[valid]
    return [int(c) if c >= 0 else tracks + i for i, c in enumerate(ids)]


def draw_poses(image: np.ndarray, outputs: Outputs) -> np.ndarray:
    """Keypoints and skeleton edges of each valid instance, one colour per instance (per track)."""
    from sleap_io.rendering.core import render_frame

    if outputs.pred_keypoints is None or outputs.instance_valid is None:
        return image
    valid = np.flatnonzero(np.asarray(outputs.instance_valid))
    if not len(valid):
        return image
    size = min(image.shape[:2])
    return render_frame(
        image,
        [np.asarray(outputs.pred_keypoints[i], np.float64) for i in valid],
        list(outputs.edges),
        list(outputs.node_names),
        color_by="track",
        track_indices=_colour_indices(outputs, valid),
        palette=PALETTE,
        # Sized to the frame: visible on 1080p, not covering the animal on 384 px.
        marker_size=max(2.0, size / 128),
        line_width=max(1.0, size / 256),
    )


def draw_boxes(image: np.ndarray, outputs: Outputs) -> np.ndarray:
    """A detector's boxes with their scores, one colour per category."""
    import sleap_io as sio
    from sleap_io.rendering.colors import get_palette
    from sleap_io.rendering.overlays import draw_bboxes

    if outputs.pred_bboxes is None or not len(outputs.pred_bboxes):
        return image
    categories = [int(c) for c in np.asarray(outputs.pred_bbox_classes)]
    palette = get_palette(PALETTE, max(categories) + 1)
    boxes = [
        sio.PredictedBoundingBox(x1=float(b[0]), y1=float(b[1]), x2=float(b[2]), y2=float(b[3]), score=float(s))
        for b, s in zip(np.asarray(outputs.pred_bboxes), np.asarray(outputs.pred_bbox_scores))
    ]
    return draw_bboxes(image, boxes, colors=[palette[c] for c in categories], line_width=max(1, min(image.shape[:2]) // 256))


# A mask's colour over its pixels: translucent, so the animal stays visible under it.
MASK_OPACITY = 0.4


def draw_masks(image: np.ndarray, outputs: Outputs) -> np.ndarray:
    """A segmentation model's masks, each in a translucent colour of its own over the pixels it
    covers on the frame (placed by its scale and offset), and its polygons (``mask_output``
    polygon or both) outlined in the same colours: the frame's i-th polygon is its i-th mask's."""
    if not outputs.masks and not outputs.rois:
        return image
    from sleap_io.rendering.colors import get_palette
    from sleap_io.rendering.overlays import draw_rois

    from sleap_export.core.mask_comparison import on_frame_grid

    palette = get_palette(PALETTE, max(len(outputs.masks), len(outputs.rois)))
    height, width = image.shape[:2]
    for mask, colour in zip(outputs.masks, palette):
        covered = on_frame_grid(mask, height, width)
        blended = image[covered] * (1 - MASK_OPACITY) + np.asarray(colour, np.float32) * MASK_OPACITY
        image[covered] = np.round(blended).astype(np.uint8)
    if outputs.rois:
        image = draw_rois(image, list(outputs.rois), colors=palette[: len(outputs.rois)],
                          line_width=max(1, min(height, width) // 256))
    return image


# Each kind of prediction draws itself over the ones before it.
DRAWERS = (draw_masks, draw_boxes, draw_poses)


def draw_predictions(image: np.ndarray, outputs: Outputs) -> np.ndarray:
    """``image`` ((H, W), (H, W, 1) or (H, W, 3) uint8) in colour, with ``outputs`` drawn on it."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    canvas = np.ascontiguousarray(np.broadcast_to(image, image.shape[:2] + (3,)), dtype=np.uint8)
    for draw in DRAWERS:
        canvas = draw(canvas, outputs)
    return canvas


# Where overlays go -------------------------------------------------------------------------------

def check_overlay(overlay: Path, inputs: Iterable) -> None:
    """Before the model loads: ``overlay`` is an existing writable folder (one overlay per video)
    or a video file (`OVERLAY_SUFFIXES`) in one, and none of ``inputs``."""
    if overlay.is_dir():
        _check_writable(overlay)
        return
    if overlay.suffix.lower() not in OVERLAY_SUFFIXES:
        raise InputError(
            f"--overlay {overlay} is neither a video file nor an existing folder; name a "
            f"{', '.join(OVERLAY_SUFFIXES)} file, or a folder for one STEM{FOLDER_OVERLAY_SUFFIX} per video."
        )
    refuse_inputs_as_output(overlay, inputs, "the overlay")
    if not overlay.parent.is_dir():
        raise InputError(f"Overlay folder {overlay.parent} does not exist; create it first.")
    _check_writable(overlay.parent)


def _check_writable(folder: Path) -> None:
    try:
        # A file made and removed, not os.access: that passes for root on folders it cannot write to.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".overlay-probe-"):
            pass
    except OSError:
        raise InputError(f"Overlay folder {folder} is not writable; choose another --overlay.") from None


def _video_stem(filename) -> str:
    """A video's name without its suffix; an image sequence's (a list of files): its folder's."""
    if isinstance(filename, (list, tuple)):
        return Path(filename[0]).parent.name if filename else "frames"
    return Path(str(filename)).stem


def overlay_paths(overlay: Path, video_filenames: Sequence) -> list[Path]:
    """The overlay of each video: ``overlay`` itself for one video, ``overlay/STEM.overlay.mp4``
    per video for a folder; refused where two videos would share one, or one is an input."""
    if not overlay.is_dir():
        if len(video_filenames) != 1:
            raise InputError(
                f"--overlay {overlay} is one video and the inputs hold {len(video_filenames)}; pass an existing "
                f"folder for one STEM{FOLDER_OVERLAY_SUFFIX} per video, or one video (--video-index)."
            )
        return [overlay]
    paths: dict[Path, object] = {}
    for filename in video_filenames:
        path = overlay / f"{_video_stem(filename)}{FOLDER_OVERLAY_SUFFIX}"
        if path in paths:
            raise InputError(
                f"{paths[path]} and {filename} would both be drawn into {path}; rename one, or predict them separately."
            )
        paths[path] = filename
    for path in paths:
        refuse_inputs_as_output(path, [f for f in video_filenames if isinstance(f, str)], "the overlay")
    return list(paths)


def input_video_filenames(inputs: Sequence[Path]) -> list:
    """The videos ``Predictor.predict`` draws for these inputs, in its order, without opening them:
    a video file, or each video of a .slp that has labeled frames."""
    import sleap_io as sio

    filenames = []
    for path in inputs:
        if path.name.endswith(".slp"):
            labels = sio.load_slp(str(path), open_videos=False)
            filenames += list({id(lf.video): lf.video.filename for lf in labels.labeled_frames}.values())
        else:
            filenames.append(str(path))
    return filenames


# Writing -----------------------------------------------------------------------------------------

class OverlayVideo:
    """One overlay video, written as frames are added.

    ``fps``: the source's frame rate, settable until the first frame; None measures it from
    the first frames' ``time_ns`` (a camera that reports none). Frames of another size than the first are cropped or
    padded (bottom, right) to it, so keypoints stay where they were drawn. `close` renames
    the finished video onto ``path``; `discard` removes it. Used as a context manager, it
    closes when the block ends or is interrupted (Ctrl-C keeps the frames so far) and
    discards on an error.
    """

    def __init__(self, path: str | Path, fps: Optional[float] = None):
        # Imported now, not at the first frame: a live run would drop the frames that come meanwhile.
        import imageio_ffmpeg  # noqa: F401
        import sleap_io.rendering.core  # noqa: F401

        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self._partial = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}{self.path.suffix}")
        self._encoder = None
        self._size: Optional[tuple[int, int]] = None  # (height, width)
        # Drawn frames and their times, held only until the frame rate is measured.
        self._measuring: list[tuple[np.ndarray, Optional[int]]] = []

    def add(self, image: np.ndarray, outputs: Outputs, time_ns: Optional[int] = None) -> None:
        """Draw ``outputs`` on ``image`` (the frame they were predicted on) and write it."""
        drawn = draw_predictions(image, outputs)
        if self._size is None:
            self._size = drawn.shape[:2]
        elif drawn.shape[:2] != self._size:
            drawn = _fitted(drawn, self._size)
        self.frames += 1
        if self.fps is None:
            self._measuring.append((drawn, time_ns))
            if len(self._measuring) >= FRAMES_TO_MEASURE_FPS:
                self._flush_measured()
            return
        self._write(drawn)

    def close(self) -> Optional[Path]:
        """Finish the video and move it onto ``path``; None when no frame was added (no file)."""
        if self._measuring:
            self._flush_measured()
        if self._encoder is None:
            return None
        encoder, self._encoder = self._encoder, None
        try:
            encoder.close()
            os.replace(self._partial, self.path)
        except OSError as err:
            self._partial.unlink(missing_ok=True)
            raise SleapExportError(f"Could not write {self.path} ({err}); free space or choose another --overlay.") from None
        return self.path

    def discard(self) -> None:
        """Stop writing and remove the unfinished video."""
        self._measuring.clear()
        encoder, self._encoder = self._encoder, None
        try:
            if encoder is not None:
                encoder.close()
        except OSError:
            pass  # FFmpeg already gone: its file is removed below all the same
        finally:
            self._partial.unlink(missing_ok=True)

    def __enter__(self) -> "OverlayVideo":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None or issubclass(kind, KeyboardInterrupt):
            self.close()
        else:
            self.discard()

    def _flush_measured(self) -> None:
        times = [t for _, t in self._measuring if t is not None]
        span_s = (times[-1] - times[0]) / 1e9 if len(times) >= 2 else 0.0
        self.fps = (len(times) - 1) / span_s if span_s > 0 else FALLBACK_FPS
        for drawn, _ in self._measuring:
            self._write(drawn)
        self._measuring.clear()

    def _write(self, drawn: np.ndarray) -> None:
        if self._encoder is None:
            self._encoder = self._open_encoder(drawn.shape[1], drawn.shape[0])
        try:
            self._encoder.send(np.ascontiguousarray(drawn))
        except OSError as err:
            self.discard()
            raise SleapExportError(f"Could not write {self.path} ({err}); free space or choose another --overlay.") from None

    def _open_encoder(self, width: int, height: int):
        import imageio_ffmpeg

        # 4:2:0 plays everywhere but needs even sides; odd ones keep their size in 4:4:4.
        pixel_format = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        encoder = imageio_ffmpeg.write_frames(
            str(self._partial), (width, height), fps=self.fps, codec="libx264", pix_fmt_out=pixel_format,
            macro_block_size=1, quality=None, output_params=["-crf", "20", "-preset", "veryfast"],
        )
        encoder.send(None)  # starts FFmpeg
        return encoder


def _fitted(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` cropped or padded with black (bottom, right) to ``size``."""
    fitted = np.zeros(size + image.shape[2:], np.uint8)
    height, width = min(size[0], image.shape[0]), min(size[1], image.shape[1])
    fitted[:height, :width] = image[:height, :width]
    return fitted


class OverlayVideos:
    """One `OverlayVideo` per video of a run, each closed once the run moves past its video."""

    def __init__(self, paths: Sequence[Path], fps: Sequence[Optional[float]]):
        self.videos = [OverlayVideo(path, rate) for path, rate in zip(paths, fps)]
        self.written: list[Path] = []
        self._open: Optional[int] = None

    def add(self, video_index: int, image: np.ndarray, outputs: Outputs) -> None:
        if self._open is not None and self._open != video_index:
            self._close_open()
        self._open = video_index
        self.videos[video_index].add(image, outputs)

    def _close_open(self) -> None:
        written = self.videos[self._open].close()
        if written is not None:
            self.written.append(written)
        self._open = None

    def __enter__(self) -> "OverlayVideos":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._open is None:
            return
        if kind is None or issubclass(kind, KeyboardInterrupt):
            self._close_open()
        else:
            self.videos[self._open].discard()
