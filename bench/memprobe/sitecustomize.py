"""A memory probe for benchmarks: put this folder on PYTHONPATH and set SENTINEL_MEMPROBE_FILE.

Once the file ``<SENTINEL_MEMPROBE_FILE>.start`` appears (tracing a worker while it loads its
models would slow the load many times over), the process traces Python allocations
(tracemalloc, 3 frames) and appends, every SENTINEL_MEMPROBE_EVERY seconds, one JSON line: the
traced Python heap and the ten allocation sites that grew most since the first sample. A flat Python heap under a
growing RSS points at native memory (torch, the allocator), not at Python objects.
"""

import json
import os
import threading
import time
import tracemalloc

_path = os.environ.get("SENTINEL_MEMPROBE_FILE")

def _short(filename: str) -> str:
    """A file's path without this machine's folders: from site-packages, the project or the stdlib."""
    for marker in ("site-packages/", os.getcwd() + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return "stdlib/" + os.path.basename(filename) if filename.startswith("/") else filename


if _path:

    def _probe(path: str, every: float) -> None:
        while not os.path.exists(path + ".start"):
            time.sleep(1)
        tracemalloc.start(3)
        first = None
        started = time.time()
        while True:
            time.sleep(every)
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)])
            if first is None:
                first = snapshot
            growth = snapshot.compare_to(first, "traceback")[:10]
            current, peak = tracemalloc.get_traced_memory()
            line = {"t_s": round(time.time() - started, 1), "python_heap_mib": round(current / 2**20, 2),
                    "python_peak_mib": round(peak / 2**20, 2),
                    "top_growth": [{"kib": round(s.size_diff / 1024, 1), "count": s.count_diff,
                                    "where": [f"{_short(f.filename)}:{f.lineno}" for f in s.traceback[-3:]]}
                                   for s in growth]}
            with open(path, "a") as f:
                f.write(json.dumps(line) + "\n")

    threading.Thread(target=_probe, args=(_path, float(os.environ.get("SENTINEL_MEMPROBE_EVERY", "60"))),
                     daemon=True, name="memprobe").start()
