"""Keep glibc from returning and re-mapping large buffers on every batch.

PyTorch's CPU allocator frees big activations back to glibc, which by default
unmaps them (and trims the heap); the next batch maps them again and page-
faults through them. sleap-nn's checkpoint path spends most of its time in
the kernel because of this. Raising the thresholds once keeps them mapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_LARGE = 1 << 30
_MMAP_MAX_THRESHOLD = 32 << 20  # glibc caps the mmap threshold at 32 MiB on 64-bit

_tuned = False


def keep_large_buffers_mapped() -> bool:
    """Apply the thresholds once per process; False where libc is not glibc."""
    global _tuned
    if _tuned:
        return True
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, _LARGE)
    mallopt(_M_TOP_PAD, 256 << 20)
    _tuned = True
    return True
