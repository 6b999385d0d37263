"""The prediction pipeline's plumbing: batches decoded on a thread, runs kept in order.

Frames are decoded on a background thread into a bounded queue, so decoding
overlaps inference and memory stays bounded on long videos; the runner may run
several batches at once (`in_order`), results kept in order.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar

import attrs
import numpy as np

from sleap_export.core.stage_clock import StageClock
from sleap_export.runtime.sources.frame_arrays import as_batch, stack_frames
from sleap_export.runtime.sources.video_inputs import FrameSource

Item = TypeVar("Item")
Result = TypeVar("Result")


@attrs.frozen
class Batch:
    video_index: int
    frame_indices: tuple[int, ...]
    frames: np.ndarray
    centroids: Optional[np.ndarray] = None  # (N, K, 2), NaN for empty slots


def _padded_centroids(per_frame: list[np.ndarray]) -> np.ndarray:
    slots = max(1, max(len(c) for c in per_frame))
    out = np.full((len(per_frame), slots, 2), np.nan, np.float32)
    for i, centroids in enumerate(per_frame):
        out[i, : len(centroids)] = centroids
    return out


def decode_batches(
    sources: Sequence[FrameSource],
    batch_size: int,
    anchor: Optional[int] = None,
    need_centroids: bool = False,
    clock: Optional[StageClock] = None,
) -> Iterator[Batch]:
    clock = clock or StageClock()
    for video_index, source in enumerate(sources):
        indices = source.frame_indices
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            with clock.section("decode"):
                images = [np.asarray(source.read(i)) for i in chunk]
            # Frames of one input may differ in size (image sequences): each run of
            # equal-size frames becomes its own batch; the graphs take any size.
            for _, group in itertools.groupby(zip(chunk, images), key=lambda pair: pair[1].shape):
                group = list(group)
                same_size = tuple(i for i, _ in group)
                centroids = None
                if need_centroids:
                    centroids = _padded_centroids([source.centroids(i, anchor) for i in same_size])
                yield Batch(video_index, same_size, as_batch(stack_frames([image for _, image in group])), centroids)


def background(iterator: Iterator, depth: int) -> Iterator:
    """Run ``iterator`` on a thread, handing items over through a bounded queue."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        handoff.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(done)
        except BaseException as err:  # re-raised in the consumer
            handoff.put(err)

    thread = threading.Thread(target=produce, name="sleap-export-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def in_order(fn: Callable[[Item], Result], items: Iterable[Item], parallel: int) -> Iterator[tuple[Item, Result]]:
    """``(item, fn(item))`` in item order, with up to ``parallel`` calls running at once.

    At most ``parallel`` items are taken ahead of the one yielded, so memory
    stays bounded; calls not yet started are cancelled when the consumer stops.
    """
    if parallel <= 1:
        yield from ((item, fn(item)) for item in items)
        return
    pool = ThreadPoolExecutor(parallel, thread_name_prefix="sleap-export-run")
    pending: collections.deque = collections.deque()
    try:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) > parallel:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
