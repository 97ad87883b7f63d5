"""Returning freed native memory to the system.

Torch allocates a tensor of a new shape for every padded batch; glibc keeps the freed
blocks in its heaps and arenas, and a fragmented heap cannot shrink from the top, so a
long-running worker's resident memory creeps upwards although nothing is leaked.
``malloc_trim(0)`` hands every free page of every arena back to the kernel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # glibc only
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def trim() -> bool:
    """Give free heap pages back to the kernel; False where the C library has no malloc_trim."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
