"""The order ``torch.topk(values, k)`` returns on the CPU, ties included, without torch.

torch (``aten/src/ATen/native/TopKImpl.h``, 2.14) puts ``(value, index)`` pairs through
libstdc++'s ``std::partial_sort`` when ``k * 64 <= n``, else ``std::nth_element`` at ``k - 1``
and ``std::sort`` of the first ``k - 1``, all comparing values only (larger first). Neither
algorithm is stable, so which of several equal values come first, and which of them survive
the cut at ``k``, is whatever those algorithms do: they are replayed here step by step
(introselect, introsort with insertion-sort finish, heap select and heap sort) so that
sleap-nn's ``max_instances`` cap keeps the same centers in the same order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# libstdc++'s _S_threshold: ranges up to this long are left to the final insertion sort.
_SORT_THRESHOLD = 16


def topk_order(values: Sequence[float], k: int) -> np.ndarray:
    """Indices of the ``k`` largest ``values`` as ``torch.topk(values, k)[1]`` gives them (CPU,
    ``sorted=True``); ``values`` hold no NaN (torch ranks NaN first; callers never pass one)."""
    n = len(values)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} outside 0..{n}")
    if k == 0:
        return np.zeros(0, np.int64)
    queue = _Queue([float(v) for v in values])
    if k * 64 <= n:
        queue.partial_sort(0, k, n)
    else:
        queue.nth_element(0, k - 1, n)
        queue.sort(0, k - 1)
    return np.asarray(queue.indices[:k], np.int64)


class _Queue:
    """Parallel value/index lists, permuted as libstdc++ permutes a vector of pairs."""

    def __init__(self, values: list[float]):
        self.values = values
        self.indices = list(range(len(values)))

    def before(self, i: int, j: int) -> bool:
        return self.values[i] > self.values[j]

    def swap(self, i: int, j: int) -> None:
        self.values[i], self.values[j] = self.values[j], self.values[i]
        self.indices[i], self.indices[j] = self.indices[j], self.indices[i]

    def get(self, i: int) -> tuple[float, int]:
        return self.values[i], self.indices[i]

    def put(self, i: int, item: tuple[float, int]) -> None:
        self.values[i], self.indices[i] = item

    # std::nth_element: introselect, depth limit 2 * floor(log2(n)).
    def nth_element(self, first: int, nth: int, last: int) -> None:
        if first == last or nth == last:
            return
        depth = 2 * _floor_log2(last - first)
        while last - first > 3:
            if depth == 0:
                self._heap_select(first, nth + 1, last)
                self.swap(first, nth)
                return
            depth -= 1
            cut = self._partition_around_median(first, last)
            if cut <= nth:
                first = cut
            else:
                last = cut
        self._insertion_sort(first, last)

    # std::sort: introsort down to short ranges, then one insertion sort over the whole range.
    def sort(self, first: int, last: int) -> None:
        if first == last:
            return
        self._introsort(first, last, 2 * _floor_log2(last - first))
        if last - first > _SORT_THRESHOLD:
            self._insertion_sort(first, first + _SORT_THRESHOLD)
            for i in range(first + _SORT_THRESHOLD, last):
                self._linear_insert(i)
        else:
            self._insertion_sort(first, last)

    # std::partial_sort: a heap of the best `middle - first`, then sorted out of the heap.
    def partial_sort(self, first: int, middle: int, last: int) -> None:
        self._heap_select(first, middle, last)
        while middle - first > 1:
            middle -= 1
            self._pop_heap(first, middle, middle)

    def _introsort(self, first: int, last: int, depth: int) -> None:
        while last - first > _SORT_THRESHOLD:
            if depth == 0:
                self.partial_sort(first, last, last)
                return
            depth -= 1
            cut = self._partition_around_median(first, last)
            self._introsort(cut, last, depth)
            last = cut

    def _partition_around_median(self, first: int, last: int) -> int:
        """The median of (first + 1, middle, last - 1) moved to ``first``, then Hoare's unguarded partition."""
        a, b, c = first + 1, first + (last - first) // 2, last - 1
        if self.before(a, b):
            median = b if self.before(b, c) else c if self.before(a, c) else a
        else:
            median = a if self.before(a, c) else c if self.before(b, c) else b
        self.swap(first, median)
        pivot, low, high = first, first + 1, last
        while True:
            while self.before(low, pivot):
                low += 1
            high -= 1
            while self.before(pivot, high):
                high -= 1
            if not low < high:
                return low
            self.swap(low, high)
            low += 1

    def _insertion_sort(self, first: int, last: int) -> None:
        for i in range(first + 1, last):
            if self.before(i, first):
                item = self.get(i)
                for j in range(i, first, -1):
                    self.put(j, self.get(j - 1))
                self.put(first, item)
            else:
                self._linear_insert(i)

    def _linear_insert(self, last: int) -> None:
        """Move ``last`` left past the items it precedes; unguarded: the range's first item stops it."""
        item = self.get(last)
        while item[0] > self.values[last - 1]:
            self.put(last, self.get(last - 1))
            last -= 1
        self.put(last, item)

    def _heap_select(self, first: int, middle: int, last: int) -> None:
        self._make_heap(first, middle)
        for i in range(middle, last):
            if self.before(i, first):
                self._pop_heap(first, middle, i)

    def _make_heap(self, first: int, last: int) -> None:
        length = last - first
        if length < 2:
            return
        for parent in range((length - 2) // 2, -1, -1):
            self._adjust_heap(first, parent, length, self.get(first + parent))

    def _pop_heap(self, first: int, last: int, result: int) -> None:
        item = self.get(result)
        self.put(result, self.get(first))
        self._adjust_heap(first, 0, last - first, item)

    def _adjust_heap(self, first: int, hole: int, length: int, item: tuple[float, int]) -> None:
        """Move the hole down along the preferred children to a leaf, then push ``item`` up from it."""
        top = hole
        child = hole
        while child < (length - 1) // 2:
            child = 2 * (child + 1)
            if self.before(first + child, first + child - 1):
                child -= 1
            self.put(first + hole, self.get(first + child))
            hole = child
        if length % 2 == 0 and child == (length - 2) // 2:
            child = 2 * (child + 1)
            self.put(first + hole, self.get(first + child - 1))
            hole = child - 1
        parent = (hole - 1) // 2
        while hole > top and self.values[first + parent] > item[0]:
            self.put(first + hole, self.get(first + parent))
            hole = parent
            parent = (hole - 1) // 2
        self.put(first + hole, item)


def _floor_log2(n: int) -> int:
    return n.bit_length() - 1
