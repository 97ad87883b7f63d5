"""A company's sentiment over time as a server-rendered SVG chart (numbers only; the template draws it).

The plot sits inside margins wide enough for its tick labels and axis titles: mean sentiment (-1 to 1) on
the left axis, negative articles per hour on the right, time (UTC) below."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 64, 30, 46  # margins: tick labels and axis titles live here
X_TICKS = 5


@dataclass
class Chart:
    width: int
    height: int
    left: float  # the plot area
    right: float
    top: float
    bottom: float
    line: str  # SVG polyline points: mean sentiment per hour, -1 (bottom) .. 1 (top)
    bars: list[dict]  # negatives per hour: x, y, w, h
    zero_y: float
    x_ticks: list[dict]  # x, text (times, made here from numbers: no outside text)
    y_ticks: list[dict]  # y, text: mean sentiment, left axis
    count_ticks: list[dict]  # y, text: negative articles per hour, right axis
    max_mentions: int
    points: int


def count_step(top: int) -> int:
    """A round step for the count axis: 1, 2, 5, 10, 20, 50 ... with at most five steps up to ``top``."""
    step = 1
    while top / step > 5:
        for factor in (2, 2.5, 2):
            step = int(step * factor)
            if top / step <= 5:
                break
    return step


def sentiment_chart(series: list, start: datetime, end: datetime) -> Chart:
    """``series`` rows carry hour, mentions, negatives, sentiment (see store.sentiment_series)."""
    span = max((end - start).total_seconds(), 3600.0)
    left, right, top_y, bottom_y = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    inner_w, inner_h = right - left, bottom_y - top_y
    top = max([int(r.negatives) for r in series] + [1])
    step = count_step(top)
    top = -(-top // step) * step  # the count axis ends on a tick
    bar_w = max(2.0, inner_w * 3600.0 / span - 1)

    def x(t: datetime) -> float:
        return round(left + inner_w * min(max((t - start).total_seconds() / span, 0.0), 1.0), 1)

    def y_sentiment(v: float) -> float:
        return round(top_y + inner_h * (1 - (max(-1.0, min(1.0, float(v))) + 1) / 2), 1)

    def y_count(c: float) -> float:
        return round(bottom_y - inner_h * c / top, 1)

    line = " ".join(f"{min(x(r.hour) + bar_w / 2, right):.1f},{y_sentiment(r.sentiment):.1f}" for r in series)
    bars = []
    for r in series:
        h = round(inner_h * int(r.negatives) / top, 1)
        bars.append({"x": x(r.hour), "y": round(bottom_y - h, 1), "w": round(min(bar_w, right - x(r.hour)), 1),
                     "h": h})
    times = [start + (end - start) * i / (X_TICKS - 1) for i in range(X_TICKS)]
    x_ticks = [{"x": x(t), "text": t.strftime("%d %b %H:%M")} for t in times]
    y_ticks = [{"y": y_sentiment(v), "text": f"{v:+.1f}" if v else "0"} for v in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    count_ticks = [{"y": y_count(c), "text": str(c)} for c in range(0, top + 1, step)]
    return Chart(WIDTH, HEIGHT, left, right, top_y, bottom_y, line, bars, y_sentiment(0.0), x_ticks, y_ticks,
                 count_ticks, top, len(series))
