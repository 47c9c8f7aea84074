"""Memory tuning for CPU training: keep freed heap memory for reuse (glibc's ``mallopt``)."""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["retain_freed_memory"]

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses more on 64-bit systems


def retain_freed_memory() -> bool:
    """Let this process keep the heap memory it frees for its next allocations, instead of
    returning it to the kernel (glibc's ``mallopt``; True when set, False where the C library
    has no ``mallopt``, e.g. macOS or musl, which changes nothing else).

    A CPU training step frees and re-allocates the same hundreds of MB of activations each
    step. Under glibc's defaults much of that goes back to the kernel and returns as fresh
    pages, each a page fault and a zeroing: about 90k faults (350 MiB) per pixel SAC update at
    batch 128 and 740k at batch 512, a fifth to a third of its time (``python bench/curl.py
    speed``). Every block now comes from the heap (no block gets a mapping of its own, so
    tensors above glibc's largest mapping threshold, 32 MiB, are reused too), and the heap is
    never trimmed; the cost is that the process holds on to its peak heap until it exits.
    """
    if os.name != "posix" or sys.platform == "darwin":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(
        mallopt(param, value) == 1
        for param, value in (
            (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX),  # for any later mapping glibc makes
            (_M_MMAP_MAX, 0),  # no block of its own mapping: every block from the heap
            (_M_TRIM_THRESHOLD, 2**31 - 1),
            (_M_TOP_PAD, 256 << 20),  # each heap growth reserves this much more
        )
    )
