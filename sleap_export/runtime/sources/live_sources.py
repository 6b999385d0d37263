"""Live frame sources: cameras and streams (OpenCV), video files played as a
simulated camera, and Python iterators.

A source is read on `runtime.live`'s capture thread: ``read(pool)`` blocks until
the next frame is there and writes it into a buffer from the pool (allocated
once, reused), RGB or grayscale ``(H, W, C)`` uint8. OpenCV is imported only by
the sources that use it.
"""

from __future__ import annotations

import abc
import os
import re
import stat
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
import sleap_io as sio

from sleap_export.core.errors import InputError
from sleap_export.runtime.sources.frame_arrays import as_batch
from sleap_export.runtime.sources.video_inputs import _native_stderr_silenced

SOURCE_HELP = "a camera index (0), a device path (/dev/video0), a stream URL (rtsp://...) or a video file"


class FramePool:
    """Frame buffers reused as frames pass from capture to inference.

    A frame is being captured, waiting or being inferred on, so three buffers of
    a size serve a whole run; new ones are made only when the frame size changes.
    """

    def __init__(self):
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.allocated = 0

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        with self._lock:
            for i, buffer in enumerate(self._free):
                if buffer.shape == shape:
                    return self._free.pop(i)
            self.allocated += 1
        return np.empty(shape, np.uint8)

    def give_back(self, buffer: np.ndarray) -> None:
        with self._lock:
            self._free.append(buffer)


class LiveSource(abc.ABC):
    """Where live frames come from."""

    # What the source is, for messages and the .slp written from it.
    name: str = "source"
    # Frames per second it delivers at, when known.
    fps: Optional[float] = None

    def open(self) -> tuple[int, int, int]:
        """Open the source (on the caller's thread, so errors surface there); the frame shape."""
        raise NotImplementedError

    @abc.abstractmethod
    def read(self, pool: FramePool) -> Optional[np.ndarray]:
        """The next frame in a buffer from ``pool``, or None when the source has ended."""

    def close(self) -> None:
        """Release the device or file (called on the capture thread when it stops)."""

    def video(self) -> sio.Video:
        """The video the poses' frame indices refer to in a .slp."""
        return sio.Video(filename=self.name, backend=None, open_backend=False)


def _pace(due: float) -> None:
    """Sleep until ``due`` (time.perf_counter seconds)."""
    remaining = due - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)


class _OpenCVSource(LiveSource):
    """Frames decoded by OpenCV (BGR), handed out as RGB."""

    def __init__(self):
        self._capture = None
        self._bgr: Optional[np.ndarray] = None

    def _open_capture(self, target, params: tuple[int, ...] = ()) -> bool:
        import cv2

        # OpenCV prints its backends' attempts to stderr; the refusal is ours, in one line.
        with _native_stderr_silenced():
            self._capture = cv2.VideoCapture(target, cv2.CAP_ANY, list(params))
            opened = self._capture.isOpened()
            grabbed = opened and self._grab()
        return grabbed

    def _grab(self) -> bool:
        ok, image = self._capture.read(self._bgr)
        if ok:
            self._bgr = image
        return bool(ok)

    def _to_rgb(self, pool: FramePool) -> np.ndarray:
        import cv2

        buffer = pool.take(self._bgr.shape)
        cv2.cvtColor(self._bgr, cv2.COLOR_BGR2RGB, dst=buffer)
        return buffer

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class CameraSource(_OpenCVSource):
    """A camera (index or device path) or a network stream (URL), through OpenCV.

    ``fps`` asks the camera for a frame rate (where its driver lets OpenCV set it).
    Frames stay RGB as the camera gives them (a grayscale model converts them as
    sleap-nn does).
    """

    def __init__(self, device: int | str, fps: Optional[float] = None):
        super().__init__()
        self.device = device
        self.requested_fps = fps
        self.name = _describe_device(device)

    def open(self):
        import cv2

        if not self._open_capture(self.device):
            self.close()
            raise InputError(
                f"Could not read from {self.name}; check that it is connected (or the URL is right) and not in use "
                f"by another program, or pass another --source ({SOURCE_HELP})."
            )
        # Backends that honour it hand out the newest frame, not one queued in the driver.
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.requested_fps:
            self._capture.set(cv2.CAP_PROP_FPS, self.requested_fps)
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or None
        return self._bgr.shape

    def read(self, pool):
        if self._capture is None or not self._grab():
            return None
        return self._to_rgb(pool)


class SimulatedCamera(_OpenCVSource):
    """A video file played at its frame rate (or ``fps``), as a camera would deliver it.

    Frame k is handed out k / fps seconds after the first, never earlier; frames
    are read as sleap-io reads them (grayscale when the first frame's channels
    are equal), so live poses match ``predict`` on the same file. ``loop``
    starts again at the end, for runs longer than the video.
    """

    def __init__(self, path: str | Path, fps: Optional[float] = None, loop: bool = False):
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        self.requested_fps = fps
        self.loop = loop
        self._grayscale = False
        self._pending = False
        self._started: Optional[float] = None
        self._delivered = 0
        # Longest recent decode, so decoding starts just before a frame is due.
        self._decode_s = 0.0

    def open(self):
        import cv2

        if not self.path.exists():
            raise InputError(f"{self.path} does not exist; pass {SOURCE_HELP}.")
        # One decoding thread: decoding then happens when read() runs (see there), not on
        # FFmpeg's own threads at moments that overlap inference.
        if not self._open_capture(str(self.path), (cv2.CAP_PROP_N_THREADS, 1)):
            self.close()
            raise InputError(
                f"{self.path} could not be opened as a video (empty, truncated or an unsupported codec); check the file."
            )
        self.fps = self.requested_fps or self._capture.get(cv2.CAP_PROP_FPS) or None
        if not self.fps:
            self.close()
            raise InputError(f"{self.path} does not record its frame rate; pass --fps to play it at a rate.")
        self._grayscale = bool(np.array_equal(self._bgr[..., 0], self._bgr[..., -1]))  # sleap-io's rule
        self._pending = True  # the frame read to open the file is the first one delivered
        return self._bgr.shape[:2] + ((1,) if self._grayscale else (3,))

    def read(self, pool):
        import cv2

        if self._capture is None:
            return None
        if self._started is None:
            self._started = time.perf_counter()
        due = self._started + self._delivered / self.fps
        # Decoding is the simulation's cost, not a camera's (its frames arrive by DMA): do it
        # just before the frame is due, in the gap between inferences, not during one.
        _pace(due - 2 * self._decode_s)
        decode_started = time.perf_counter()
        if not self._pending and not self._grab():
            if not self.loop:
                return None
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            if not self._grab():
                return None
        self._pending = False
        if self._grayscale:
            frame = pool.take(self._bgr.shape[:2] + (1,))
            frame[..., 0] = self._bgr[..., 2]  # sleap-io keeps the first RGB channel
        else:
            frame = self._to_rgb(pool)
        self._decode_s = max(time.perf_counter() - decode_started, 0.95 * self._decode_s)
        _pace(due)
        self._delivered += 1
        return frame

    def video(self):
        if self.loop:  # indices run past the file's end (frame k is the file's k % length): not the file itself
            return sio.Video(filename=f"{self.path} (looped)", backend=None, open_backend=False)
        return sio.Video(filename=str(self.path), open_backend=False)


class IteratorSource(LiveSource):
    """Frames from any Python iterable (a camera SDK's generator, an array of frames).

    Each frame is taken when the capture thread asks for the next one; ``fps``
    paces an iterable that would otherwise hand out frames as fast as it can.
    """

    def __init__(self, frames: Iterable, fps: Optional[float] = None, name: str = "frames"):
        self._frames: Iterator = iter(frames)
        self.fps = fps
        self.name = name
        self._first: Optional[np.ndarray] = None
        self._started: Optional[float] = None
        self._delivered = 0

    def open(self):
        self._first = self._next()
        if self._first is None:
            raise InputError("The frame iterator is empty; pass at least one frame.")
        return self._first.shape

    def _next(self) -> Optional[np.ndarray]:
        frame = next(self._frames, None)
        if frame is None:
            return None
        batch = as_batch(frame if isinstance(frame, np.ndarray) else np.asarray(frame))
        if len(batch) != 1:
            raise InputError(f"Live frames come one at a time as (H, W, C); got a batch of shape {batch.shape}.")
        return batch[0]

    def read(self, pool):
        if self._first is not None:
            frame, self._first = self._first, None
        else:
            frame = self._next()
        if frame is None:
            return None
        if self.fps:
            if self._started is None:
                self._started = time.perf_counter()
            _pace(self._started + self._delivered / self.fps)
        self._delivered += 1
        buffer = pool.take(frame.shape)
        np.copyto(buffer, frame)
        return buffer


def _describe_device(device: int | str) -> str:
    """A camera or stream for messages and files (a URL without its password)."""
    if isinstance(device, int):
        return f"camera {device}"
    parts = urllib.parse.urlsplit(device)
    if parts.password is not None:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return device


def open_source(source, fps: Optional[float] = None, loop: bool = False) -> LiveSource:
    """A `LiveSource` for what the user gave (nothing is opened yet).

    A `LiveSource` as is; an int or a string of digits: that camera; a string
    with ``://``: a stream; a character device (``/dev/video0``): a camera; a
    ``.slp`` (or ``.pkg.slp``): refused, labels are not a live source; any other
    path: a video file played at its frame rate; an array ``(N, H, W, C)``
    or any other iterable: its frames.
    """
    if isinstance(source, LiveSource):
        resolved = source
    elif isinstance(source, int) or (isinstance(source, str) and re.fullmatch(r"\d+", source)):
        resolved = CameraSource(int(source), fps)
    elif isinstance(source, str) and "://" in source:
        resolved = CameraSource(source, fps)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"{path} does not exist; pass {SOURCE_HELP}.")
        if path.name.lower().endswith(".slp"):  # labels.slp and labels.pkg.slp: frames referenced or embedded
            raise InputError(
                f"{path} is a SLEAP labels file, not a video; live plays a video file, camera or stream: pass the "
                f"video it labels (sleap-export predict MODEL {path} -o out.slp predicts on labels)."
            )
        is_device = stat.S_ISCHR(os.stat(path).st_mode)
        resolved = CameraSource(str(path), fps) if is_device else SimulatedCamera(path, fps, loop)
    elif isinstance(source, np.ndarray):
        if source.ndim != 4:
            raise InputError(f"An array of live frames must be (N, H, W, C), got shape {source.shape}.")
        resolved = IteratorSource(source, fps)
    elif isinstance(source, Iterable):
        resolved = IteratorSource(source, fps)
    else:
        raise InputError(f"Cannot read live frames from a {type(source).__name__}; pass {SOURCE_HELP}, or an iterable of frames.")
    if loop and not isinstance(resolved, SimulatedCamera):
        raise InputError("--loop replays a video file; leave it out for cameras, streams and iterators.")
    return resolved
