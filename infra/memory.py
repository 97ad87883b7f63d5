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


# jemalloc returns freed pages to the kernel on its own (background threads, decay in one second) and
# keeps sizes apart in its own bins, so a worker that allocates a tensor of a new shape per batch stays
# flat where glibc's heaps fragment (docs/RELIABILITY.md, "Soak"). It has to be in place before the
# process starts: the worker re-executes itself with it preloaded.
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000"


def jemalloc() -> str | None:
    """The jemalloc shared library's name when it is installed (Debian: libjemalloc2), else None."""
    return ctypes.util.find_library("jemalloc")


def allocator_env(setting: str, environ: dict[str, str]) -> dict[str, str] | None:
    """The environment to re-execute with so that jemalloc is the allocator, or None to run as is
    (``system`` asked for, jemalloc not installed in ``auto``, or already preloaded)."""
    if setting == "system" or "jemalloc" in environ.get("LD_PRELOAD", ""):
        return None
    library = jemalloc()
    if library is None:
        if setting == "jemalloc":
            raise RuntimeError("SENTINEL_ALLOCATOR=jemalloc but jemalloc is not installed")
        return None
    preload = " ".join(p for p in (library, environ.get("LD_PRELOAD", "")) if p)
    return {**environ, "LD_PRELOAD": preload, "MALLOC_CONF": environ.get("MALLOC_CONF", JEMALLOC_CONF)}


def allocator_in_use() -> str:
    """``jemalloc`` when this process runs with jemalloc preloaded, else ``system``."""
    try:
        maps = open("/proc/self/maps").read()
    except OSError:
        return "system"
    return "jemalloc" if "libjemalloc" in maps else "system"
