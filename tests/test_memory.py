"""Freed native memory goes back to the system: malloc_trim on a timer, and jemalloc for the worker."""

import os
import sys

import pytest

from infra.harness import rss_mib
from infra.memory import allocator_env, jemalloc, trim

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


def test_allocator_env_preloads_jemalloc_once_and_only_when_asked():
    assert allocator_env("system", {}) is None
    assert allocator_env("auto", {"LD_PRELOAD": "libjemalloc.so.2"}) is None  # already in place: no loop
    if jemalloc() is None:
        assert allocator_env("auto", {}) is None
        with pytest.raises(RuntimeError, match="not installed"):
            allocator_env("jemalloc", {})
        return
    env = allocator_env("auto", {"LD_PRELOAD": "libother.so", "PATH": "/bin"})
    assert env["LD_PRELOAD"].split() == [jemalloc(), "libother.so"] and env["PATH"] == "/bin"
    assert "background_thread:true" in env["MALLOC_CONF"]


@pytest.mark.skipif(jemalloc() is None,
                    reason="jemalloc is not installed (CI installs libjemalloc2 with `make system-deps`)")
def test_the_worker_command_re_executes_itself_under_jemalloc():
    import subprocess

    code = "from agents.cli.stream import _use_allocator; _use_allocator('auto'); " \
           "from infra.memory import allocator_in_use; print(allocator_in_use())"
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["jemalloc"], out.stderr
    env["SENTINEL_ALLOCATOR"] = "system"
    code = code.replace("'auto'", "'system'")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["system"], out.stderr
