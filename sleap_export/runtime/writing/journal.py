"""`PredictionJournal`: predictions on disk as they are made, so that no crash loses them.

Each finished batch is appended to ``OUTPUT.journal`` (beside the ``.slp``) as
one record and flushed to the operating system before the next batch is taken:
a process killed at any point (``kill -9``, the OOM killer) loses at most the
batches in flight. A record whose writing was cut off is recognised and
dropped on reading, so ``--resume`` goes on from the last whole one.

The file is a header record (JSON: which model wrote it, which videos) and then
one record per batch (the batch's poses packed as `packed_outputs.pack` packs
them, with the video's index). A record is ``MAGIC``, its length (8 bytes,
little-endian) and its bytes.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Sequence

import numpy as np

from sleap_export.core.errors import InputError
from sleap_export.runtime.decoding.outputs import Outputs
from sleap_export.runtime.writing.packed_outputs import pack, unpack

JOURNAL_SUFFIX = ".journal"
MAGIC = b"SXJ1"
_LENGTH = struct.Struct("<Q")


def journal_path(output: Path) -> Path:
    """Where the journal of ``output`` lives: ``OUTPUT.journal`` beside it."""
    return output.with_name(output.name + JOURNAL_SUFFIX)


def _records(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """``(offset after the record, its bytes)`` of every whole record; stops at a cut-off one."""
    while True:
        head = stream.read(len(MAGIC) + _LENGTH.size)
        if len(head) < len(MAGIC) + _LENGTH.size or head[: len(MAGIC)] != MAGIC:
            return
        (length,) = _LENGTH.unpack(head[len(MAGIC):])
        body = stream.read(length)
        if len(body) < length:
            return
        yield stream.tell(), body


class PredictionJournal:
    """The append-only record of one output's predictions (see the module's docstring).

    ``model``: what the writing model records of itself (`LabelsWriter.provenance`'s
    model type and checkpoints); ``videos``: the videos' file names, in input order.
    """

    def __init__(self, output: Path, model: dict, videos: Sequence[str]):
        self.path = journal_path(Path(output))
        self.header = {"journal": 1, "model": model, "videos": list(videos)}
        self._file: Optional[BinaryIO] = None

    def exists(self) -> bool:
        return self.path.exists()

    # Reading -----------------------------------------------------------------
    def read(self) -> list[tuple[str, Outputs]]:
        """``(video file name, frame outputs)`` of every frame in whole records, in the order written;
        refused when another model wrote the journal."""
        if not self.path.exists():
            return []
        with open(self.path, "rb") as stream:
            records = _records(stream)
            first = next(records, None)
            if first is None:
                return []  # cut off before its header was whole: nothing was predicted into it
            header = json.loads(first[1])
            if header.get("model") != self.header["model"]:
                raise InputError(
                    f"{self.path} was written by another model; resume with the model that wrote it, "
                    "or pass --overwrite to start again."
                )
            frames = []
            for _, body in records:
                with np.load(io.BytesIO(body)) as arrays:
                    video = header["videos"][int(arrays["video"])]
                    frames.extend((video, outputs) for outputs in unpack(arrays))
            return frames

    # Writing -----------------------------------------------------------------
    def append(self, video_index: int, outputs: Sequence[Outputs]) -> None:
        """One finished batch of one video, on disk (in the OS's hands) when this returns; the first
        starts a new journal (an older one is replaced), so a run that fails before its first batch
        leaves none."""
        if self._file is None:
            self._file = open(self.path, "wb")
            self._append(json.dumps(self.header).encode())
        buffer = io.BytesIO()
        np.savez(buffer, video=np.int64(video_index), **pack(outputs))
        self._append(buffer.getvalue())

    def _append(self, body: bytes) -> None:
        self._file.write(MAGIC + _LENGTH.pack(len(body)) + body)
        # Out of this process: a killed process loses nothing flushed.
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        """Once its frames are in the output file."""
        self.close()
        self.path.unlink(missing_ok=True)
