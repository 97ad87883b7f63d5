"""Shared pieces of the benchmarks: hardware description and result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "bench"


def hardware() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "hardware": hardware(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def headlines(n: int, seed: int = 3) -> list[str]:
    """``n`` demo-feed texts of about 30 tokens (title plus a short body)."""
    from agents.demo.feed import generate
    from schemas.events import NewsEvent

    return [NewsEvent.model_validate(e).content for e in generate(n=n, burst_at=None, seed=seed, prefix="bench")]


def print_table(title: str, result: dict) -> None:
    """The figures of a run as a two-column table."""
    from rich.table import Table

    from infra.progress import console

    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in result.items():
        table.add_row(k, str(v))
    console.print(table)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def alternating_rates(runs: dict[str, Callable[[], object]], n: int, rounds: int, what: str = "rounds"
                      ) -> dict[str, float]:
    """Items per second of each run (``n`` items a call): ``rounds`` rounds that call every run once in turn, so a
    noisy machine slows them alike and their ratios hold; each run's median round. Call each once before (warm-up)."""
    from infra.progress import progress

    times: dict[str, list[float]] = {name: [] for name in runs}
    with progress() as bar:
        task = bar.add_task(what, total=rounds, info="")
        for _ in range(rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
            bar.update(task, advance=1)
    return {name: n / statistics.median(t) for name, t in times.items()}
