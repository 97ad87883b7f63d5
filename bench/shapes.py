"""Memory and speed over many batch shapes: bf16 against fp32 on CPU, with and without shape buckets.

oneDNN runs bf16 matmuls on the CPU's AMX units with kernels built for each shape it meets and
keeps memory for every one of them, so a worker that pads each batch to its own longest row (a new
shape almost every batch) grows. ``collate(buckets=True)``, which the runtime uses for bf16 on CPU,
rounds lengths up to a multiple of ``SEQUENCE_BUCKET`` (8) and rows up to a power of two. Each configuration runs in a
fresh process: the analyzer (the trunk, sentiment and entities) reads ``--batches`` batches of
random sizes (1-64 texts of 3-60 words, the same seeded texts for every configuration); the
process's resident memory is sampled every 100 batches.

Run: ``python -m bench.shapes [--batches 400]``. Writes ``docs/bench/shapes.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time

CONFIGS = (("float32", False), ("bfloat16", False), ("bfloat16", True))
WORDS = ("Shares of Acme Corp fell after the company cut its guidance on weak demand in Europe and Asia, "
         "said Jane Smith of Harrow Logistics (NASDAQ: HRWL) in Berlin").split()


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def one(dtype: str, buckets: bool, batches: int) -> dict:
    """One configuration, in this process."""
    from infra.settings import get_settings
    from models.analysis import Analyzer
    from models.runtime import BatchedModel

    BatchedModel.buckets = property(lambda self: buckets)  # this process only: the setting under test
    analyzer = Analyzer.from_settings(get_settings().model_copy(update={"dtype": dtype}))
    analyzer.warm_up()
    rng = random.Random(1)
    rss, texts_read = [round(_rss_mib())], 0
    started = time.perf_counter()
    for i in range(batches):
        texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 60))) for _ in range(rng.randint(1, 64))]
        analyzer.analyze_texts(texts)
        texts_read += len(texts)
        if (i + 1) % 100 == 0:
            rss.append(round(_rss_mib()))
    return {"dtype": dtype, "buckets": buckets, "batches": batches, "texts": texts_read,
            "texts_per_s": round(texts_read / (time.perf_counter() - started), 1),
            "rss_mib_every_100_batches": rss}


def main(batches: int = 400) -> dict:
    from bench.common import print_table, save
    from infra.progress import console, progress

    runs = []
    with progress() as bar:
        task = bar.add_task("configurations", total=len(CONFIGS), info="")
        for dtype, buckets in CONFIGS:
            bar.update(task, info=f"{dtype}, buckets {'on' if buckets else 'off'}")
            out = subprocess.run([sys.executable, "-m", "bench.shapes", "--one", dtype, str(int(buckets)),
                                  "--batches", str(batches)], capture_output=True, text=True, check=False)
            if out.returncode != 0:
                console.print(out.stderr[-2000:], highlight=False)
                raise SystemExit(f"error: the {dtype} run failed (above); fix it and run bench.shapes again")
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            bar.update(task, advance=1)
    result = {"runs": runs}
    print_table(f"{batches} batches of 1-64 random texts, analyzer (trunk: sentiment + entities)", {
        f"{r['dtype']}, buckets {'on' if r['buckets'] else 'off'}":
            f"{r['texts_per_s']} texts/s; RSS every 100 batches {r['rss_mib_every_100_batches']} MiB" for r in runs})
    console.print(f"written to {save('shapes', result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--one", nargs=2, metavar=("DTYPE", "BUCKETS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], bool(int(args.one[1])), args.batches)))
    else:
        main(args.batches)
