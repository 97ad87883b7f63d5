"""A company's sentiment over time as a server-rendered SVG chart (numbers only; the template draws it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT, PAD = 640, 180, 28


@dataclass
class Chart:
    width: int
    height: int
    line: str  # SVG polyline points: mean sentiment per hour, -1 (bottom) .. 1 (top)
    bars: list[dict]  # negatives per hour: x, y, w, h
    zero_y: float
    labels: list[dict]  # x, text (times, made here from numbers: no outside text)
    max_mentions: int
    points: int


def sentiment_chart(series: list, start: datetime, end: datetime) -> Chart:
    """``series`` rows carry hour, mentions, negatives, sentiment (see store.sentiment_series)."""
    span = max((end - start).total_seconds(), 3600.0)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    top = max([int(r.mentions) for r in series] + [1])
    bar_w = max(2.0, inner_w * 3600.0 / span - 1)

    def x(t: datetime) -> float:
        return round(PAD + inner_w * min(max((t - start).total_seconds() / span, 0.0), 1.0), 1)

    def y_sentiment(v: float) -> float:
        return round(PAD + inner_h * (1 - (max(-1.0, min(1.0, float(v))) + 1) / 2), 1)

    line = " ".join(f"{x(r.hour) + bar_w / 2:.1f},{y_sentiment(r.sentiment):.1f}" for r in series)
    bars = []
    for r in series:
        h = round(inner_h * int(r.negatives) / top, 1)
        bars.append({"x": x(r.hour), "y": round(PAD + inner_h - h, 1), "w": round(bar_w, 1), "h": h})
    labels = [{"x": x(t), "text": t.strftime("%m-%d %H:%M")} for t in (start, start + (end - start) / 2, end)]
    return Chart(WIDTH, HEIGHT, line, bars, y_sentiment(0.0), labels, top, len(series))
