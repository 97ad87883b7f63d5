"""Progress for long jobs: a live bar on a terminal, a line every 10% in logs and CI."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


class _LineProgress:
    """Same calls as rich's Progress; prints plain lines where no terminal shows a live bar."""

    def __init__(self):
        self.tasks: dict[int, dict] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description: str, total: float | None = None, info: str = "", **_) -> int:
        key = len(self.tasks)
        self.tasks[key] = {"description": description, "total": total, "done": 0, "next": 0.1,
                           "start": time.monotonic(), "info": info}
        return key

    def update(self, key: int, advance: float = 0, info: str | None = None, completed: float | None = None,
               **_) -> None:
        task = self.tasks[key]
        task["done"] = completed if completed is not None else task["done"] + advance
        if info is not None:
            task["info"] = info
        total = task["total"]
        if total and (task["done"] / total >= task["next"] or task["done"] >= total):
            elapsed = time.monotonic() - task["start"]
            console.print(f"{task['description']}: {task['done']:.0f}/{total:.0f} "
                          f"({100 * task['done'] / total:.0f}%) {task['info']} [{elapsed:.0f}s]", highlight=False)
            while task["next"] <= task["done"] / total:
                task["next"] += 0.1


def progress():
    if not console.is_terminal:
        return _LineProgress()
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console)
