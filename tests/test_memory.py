"""Freed native memory goes back to the system (the worker calls this on a timer)."""

import os
import sys

import pytest

from infra.harness import rss_mib
from infra.memory import trim

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc are Linux's")


def test_trim_returns_the_free_pages_of_a_fragmented_heap():
    blocks = [bytearray(4096) for _ in range(60_000)]  # ~240 MiB from malloc (above pymalloc's 512 bytes)
    keep = blocks[::64]  # one block in 64 survives: the heap cannot shrink from its top
    del blocks
    before = rss_mib(os.getpid())
    assert trim()
    after = rss_mib(os.getpid())
    assert len(keep) == 938
    assert before - after > 100, (before, after)
