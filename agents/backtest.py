"""The backtest: the spike detector run offline over a history of news events.

``sentinel backtest FILE.jsonl [--labels episodes.jsonl] [--json]`` reads the same JSON lines
the ``news`` topic takes and runs them through the worker's own code, without a broker:

- each line is parsed with the project's parser (``schemas.events.parse_news``); a line that
  does not parse stops the backtest with an error that names it;
- it goes to the partition the producer would choose (kafka-python's murmur2 of its ``id``
  key, ``topic_partitions`` partitions);
- sentiment and entities come from the line itself when it has a ``sentiment`` field (a label
  such as ``"negative"``, or the ``{"label", "score", "scores"}`` object ``news.enriched``
  carries; ``entities`` optional, as in ``news.enriched``), else from the real models (loaded
  only when a line needs them); the report says how many lines took which;
- stories, keys, event time and the spike decisions are ``NewsPipeline`` and ``SpikeDetector``
  themselves, committed batch by batch as the agent loop commits them;
- the file is played as if it arrived live: a line arrives at its ``received_at`` (an ISO time,
  the Kafka record time) when it has one, else at its ``published_at``, and a line without
  either, or dated after the backtest started, arrives with the line before it. Partition
  idleness is measured on that arrival clock, so a partition silent for
  ``alert_idle_timeout`` seconds of the history stops holding the watermark back, and a gap
  in the history (or its end) longer than that lets the detector decide the quiet wire's
  windows, as the live worker's timer does.

The detector keeps its state in PostgreSQL: a fresh schema in ``DATABASE_URL`` (dropped
afterwards) when it is set, else a throwaway embedded PostgreSQL in a temporary folder.

An alert's lead time is its time (the end of the first alerting window) minus the start of the
labelled episode it falls in, or, without labels, minus the first negative story of that window.
With labels (``{"key", "start", "end"}`` per line; a key without a prefix such as ``ticker:``
matches any prefix), an alert inside a labelled episode of its key is a hit, any other alert a
false alarm, and an episode without an alert a miss: precision is hits over alerts, recall the
episodes hit over the episodes.

``sentinel backtest-scenarios OUT_DIR`` writes the scenario files and their labels
(fixed seeds), ``sentinel backtest-sweep OUT_DIR`` runs them at the default
thresholds and their neighbours (the figures of ``docs/ALERTS.md``).
"""

from __future__ import annotations

import functools
import json
import math
import random
import shutil
import sys
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.schema import CreateSchema, DropSchema

from schemas import topics
from schemas.events import InvalidEvent, NewsEvent, decode_json, parse_news

LABELS = ("negative", "neutral", "positive")
BATCH = 32  # lines per committed batch
MAX_LINES = 2_000_000


class BacktestError(ValueError):
    """What stops a backtest, in one line (a bad line, a bad label, an unusable database)."""


# -- input ---------------------------------------------------------------------------------------------
@dataclass
class Line:
    number: int
    raw: bytes
    event: NewsEvent
    received_at: datetime | None
    result: tuple | None  # (Sentiment, entities) from the file, None: the models read it


def _short(value: str, limit: int = 120) -> str:
    value = "".join(c if c.isprintable() else "?" for c in str(value))
    return value if len(value) <= limit else value[:limit] + "..."


def _time(value, what: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not an ISO time string")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} {_short(value, 40)!r} is not an ISO time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _file_result(obj: dict):
    """(Sentiment, entities) from a line's own fields, or None when it has no ``sentiment``."""
    from models.entities import Entity
    from models.sentiment import Sentiment

    given = obj.get("sentiment")
    if given is None:
        return None
    if isinstance(given, str):
        label, scores = given, None
    elif isinstance(given, dict):
        label, scores = given.get("label"), given.get("scores")
    else:
        raise ValueError("sentiment is neither a label nor an object with a label")
    if label not in LABELS:
        raise ValueError(f"sentiment label {_short(label, 40)!r} is not one of {', '.join(LABELS)}")
    if scores is None:
        scores = {k: (1.0 if k == label else 0.0) for k in LABELS}
    if not isinstance(scores, dict) or any(not isinstance(scores.get(k), (int, float)) or isinstance(
            scores.get(k), bool) or not 0 <= scores[k] <= 1 for k in LABELS):
        raise ValueError("sentiment scores need negative, neutral and positive between 0 and 1")
    scores = {k: float(scores[k]) for k in LABELS}
    entities = []
    given_entities = obj.get("entities", [])
    if not isinstance(given_entities, list) or len(given_entities) > 256:
        raise ValueError("entities is not a list (of at most 256)")
    for e in given_entities:
        try:
            entities.append(Entity(str(e["text"])[:256], str(e["label"])[:16], int(e["start"]), int(e["end"]),
                                   float(e.get("score", 1.0))))
        except (KeyError, TypeError, ValueError):
            raise ValueError("an entity lacks text, label, start or end") from None
    return Sentiment(label, scores[label], scores), entities


def _lines(path: Path):
    """(line number, line without its end) of each non-blank line; a file that cannot be read raises BacktestError."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise BacktestError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        for number, raw in enumerate(f, 1):
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield number, raw


def read_history(path: Path) -> list[Line]:
    """The file's events in order; the first bad line raises BacktestError naming it."""
    lines = []
    for number, raw in _lines(path):
        if len(lines) >= MAX_LINES:
            raise BacktestError(f"{path.name} has more than {MAX_LINES} events; split the history")
        try:
            event = parse_news(raw)
            obj = decode_json(raw)
            received = _time(obj["received_at"], "received_at") if obj.get("received_at") is not None else None
            result = _file_result(obj)
        except InvalidEvent as exc:
            raise BacktestError(f"{path.name} line {number} is not a news event: {exc.reason}: "
                                f"{_short(exc.detail)}") from None
        except ValueError as exc:
            raise BacktestError(f"{path.name} line {number}: {_short(exc)}") from None
        lines.append(Line(number, raw, event, received, result))
    if not lines:
        raise BacktestError(f"{path.name} holds no events")
    return lines


@dataclass
class Episode:
    key: str
    start: datetime
    end: datetime


def read_labels(path: Path) -> list[Episode]:
    episodes = []
    for number, raw in _lines(path):
        try:
            obj = decode_json(raw)
            key = obj.get("key")
            if not isinstance(key, str) or not key.strip() or len(key) > 256:
                raise ValueError("key is not a non-empty string")
            start, end = _time(obj.get("start"), "start"), _time(obj.get("end"), "end")
            if end < start:
                raise ValueError("end is before start")
        except InvalidEvent as exc:
            raise BacktestError(f"{path.name} line {number} is not a label: {exc.reason}: "
                                f"{_short(exc.detail)}") from None
        except ValueError as exc:
            raise BacktestError(f"{path.name} line {number} is not a label: {_short(exc)}") from None
        episodes.append(Episode(key.strip(), start, end))
    return episodes


def partition_of(key: bytes, partitions: int) -> int:
    """The producer's partition for a keyed record (kafka-python's default partitioner)."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


# -- the run -------------------------------------------------------------------------------------------
class ArrivalClock:
    """The idleness clock of the detector's watermarks: seconds of the history's arrival time."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Alert:
    key: str
    at: datetime  # the end of the first alerting window
    severity: str
    status: str
    closed_at: datetime | None
    stories: int
    negatives: int
    articles: int
    outlets: int
    tail: float
    first_negative: datetime | None  # the first negative story of the opening window
    lead_s: float | None = None
    episode: Episode | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        for name in ("at", "closed_at", "first_negative"):
            d[name] = d[name].isoformat() if d[name] else None
        d["episode"] = ({"key": self.episode.key, "start": self.episode.start.isoformat(),
                         "end": self.episode.end.isoformat()} if self.episode else None)
        return d


@dataclass
class Result:
    events: int
    from_file: int
    from_models: int
    model_version: str | None
    partitions: int
    rejected: list[int]  # line numbers the database refused (the worker would dead-letter them)
    alerts: list[Alert]
    thresholds: dict
    episodes: list[Episode] | None = None
    misses: list[Episode] = field(default_factory=list)

    @property
    def hits(self) -> int:
        return sum(1 for a in self.alerts if a.episode is not None)

    @property
    def false_alarms(self) -> int:
        return len(self.alerts) - self.hits

    @property
    def precision(self) -> float | None:
        return self.hits / len(self.alerts) if self.alerts else None

    @property
    def recall(self) -> float | None:
        if not self.episodes:
            return None
        return (len(self.episodes) - len(self.misses)) / len(self.episodes)

    def as_dict(self) -> dict:
        out = {"events": self.events, "sentiment_from_file": self.from_file, "sentiment_from_models": self.from_models,
               "model_version": self.model_version, "partitions": self.partitions, "rejected_lines": self.rejected,
               "thresholds": self.thresholds, "alerts": [a.as_dict() for a in self.alerts]}
        if self.episodes is not None:
            out.update(episodes=len(self.episodes), hits=self.hits, false_alarms=self.false_alarms,
                       misses=[{"key": e.key, "start": e.start.isoformat(), "end": e.end.isoformat()}
                               for e in self.misses],
                       precision=self.precision, recall=self.recall)
        return out


def thresholds(settings) -> dict:
    return {"alert_max_tail": settings.alert_max_tail, "alert_min_stories": settings.alert_min_stories,
            "alert_min_mentions": settings.alert_min_mentions,
            "alert_min_negative_share": settings.alert_min_negative_share,
            "story_threshold": settings.story_threshold, "story_horizon": settings.story_horizon,
            "alert_window": settings.alert_window, "alert_hop": settings.alert_hop}


def run(engine: Engine, lines: list[Line], settings, analyzer_factory=None, show_progress: bool = False,
        batch_size: int = BATCH) -> Result:
    """Feed the history through NewsPipeline and SpikeDetector on ``engine`` (a migrated, empty schema)."""
    from agents.alerts import stories
    from agents.alerts.spikes import SpikeDetector
    from agents.news import NewsPipeline
    from agents.pipeline import Received
    from agents.sinks import Batch, PostgresSink
    from infra.progress import progress
    from models.entity_keys import KeyResolver

    partitions = settings.topic_partitions
    clock = ArrivalClock()
    detector = SpikeDetector(engine, settings, clock=clock)
    resolver = KeyResolver(KeyResolver.read_map(settings.entity_map) if settings.entity_map else {}, {})
    universe = _default_universe()  # the company master a fresh worker starts with
    detector.companies = universe.companies
    pipeline = NewsPipeline(None, "backtest", resolver=resolver, detector=detector, engine=engine,
                            settings=settings, universe=universe)
    pipeline.story_refresh = math.inf  # one worker: no other worker's stories to take in
    sink = PostgresSink(engine, "news")
    started = datetime.now(UTC)
    analyzer = None
    offsets = [0] * partitions
    rejected: list[int] = []
    arrived: datetime | None = None
    from_models = 0
    bar = progress() if show_progress else None
    task = bar.__enter__().add_task("backtest", total=len(lines), info="") if bar else None
    try:
        for at in range(0, len(lines), batch_size):
            part = lines[at:at + batch_size]
            unread = [ln for ln in part if ln.result is None]
            if unread:
                if analyzer is None:
                    analyzer = _load_models(analyzer_factory)
                read = analyzer.analyze_texts([ln.event.content for ln in unread], headline_ends=[
                    stories.headline_end(ln.event.title, ln.event.content) for ln in unread])
                results = dict(zip((id(ln) for ln in unread), read))
                from_models += len(unread)
            batch = Batch(pipeline.parent, pipeline.children)
            built = {}
            first = part[0]
            coming = first.received_at or (first.event.published_at if first.event.published_at is not None
                                           and first.event.published_at <= started else None)
            if clock.now and coming is not None and coming.timestamp() - clock.now > settings.alert_idle_timeout:
                quiet_until(clock, detector, clock.now + settings.alert_idle_timeout + 1)  # a gap in the history
            for ln in part:
                published = ln.event.published_at
                arrival = ln.received_at or (published if published is not None and published <= started else None)
                arrived = arrival or arrived or started
                if clock.now == 0.0 or (arrival is not None and arrival.timestamp() > clock.now):
                    clock.now = arrived.timestamp()
                if detector.marks.assigned is None:
                    detector.assign(set(range(partitions)))  # at the first arrival: every partition starts live
                key = ln.event.id.encode()
                p = partition_of(key, partitions)
                m = Received(topics.NEWS.name, p, offsets[p], key, ln.raw, arrived.timestamp())
                offsets[p] += 1
                pipeline.model_version = "from the file" if ln.result is not None else analyzer.version
                b = pipeline.build(m, ln.event, ln.result if ln.result is not None else results[id(ln)])
                for table, row in b.rows:
                    batch.add(table, row, m)
                built[m] = (ln, b)
            refused = {source for source, _ in sink.write(batch)}
            rejected += [built[m][0].number for m in built if m in refused]
            pipeline.after_commit([b for m, (_, b) in built.items() if m not in refused])
            if bar:
                bar.update(task, advance=len(part), info=f"{at + len(part)} lines")
        if clock.now:
            quiet_until(clock, detector, clock.now + settings.alert_idle_timeout + 1)  # the wire goes quiet at the end
    finally:
        if bar:
            bar.__exit__(None, None, None)
    return Result(len(lines), len(lines) - from_models, from_models, analyzer.version if analyzer else None,
                  partitions, rejected, stored_alerts(engine, settings), thresholds(settings))


def quiet_until(clock: ArrivalClock, detector, then: float) -> None:
    """What the worker's timer does while nothing arrives: at ``then`` every partition is idle and the
    detector decides the quiet wire's windows (``SpikeDetector.tick``)."""
    clock.now = then
    detector.tick()


def _load_models(factory):
    try:
        if factory is not None:
            return factory()
        from models.analysis import Analyzer

        return Analyzer.from_settings()
    except Exception as exc:  # noqa: BLE001 - any failure to load is told in one line
        raise BacktestError(f"some lines carry no sentiment and the models did not load: {_short(exc)}; "
                            f"give every line a sentiment field, or train the models first") from None


def stored_alerts(engine: Engine, settings) -> list[Alert]:
    """The detector's spike alerts, with the first negative story of each one's opening window."""
    window = timedelta(seconds=settings.alert_window)
    with engine.connect() as conn:
        rows = conn.execute(text("""
            select a.key, a.opened_at, a.severity, a.status, a.closed_at, a.payload,
                   (select min(first) from (select min(k.event_time) first from article_keys k
                                            where k.key = a.key and k.event_time >= a.opened_at - :window
                                              and k.event_time < a.opened_at
                                            group by coalesce(k.story_id, k.article_id)
                                            having avg(k.is_negative::int) >= 0.5) s) first_negative
            from alerts a where a.kind = 'sentiment_spike' order by a.opened_at, a.key"""),
            {"window": window}).all()
    out = []
    for r in rows:
        w = r.payload.get("window", {})
        out.append(Alert(r.key, r.opened_at, r.severity, r.status, r.closed_at, int(w.get("stories", 0)),
                         int(w.get("negatives", 0)), int(w.get("articles", 0)), int(w.get("outlets", 0)),
                         float(r.payload.get("tail", 1.0)), r.first_negative))
    return out


def _same_key(label: str, key: str) -> bool:
    """A label's key names the alert's key: the same key, the key without its prefix, or a ticker (``ticker:X``
    or ``X``) of the ``company:<id>`` key's company."""
    if key.startswith("company:"):
        symbol = label.split(":", 1)[1] if label.casefold().startswith("ticker:") else label
        link = _default_universe().link(symbol, "TICKER") if ":" not in symbol else None
        if link is not None and key == "company:" + link.company.id:
            return True
    if ":" in label:
        return label.casefold() == key.casefold()
    return key.split(":", 1)[-1].casefold() == label.casefold()


@functools.cache
def _default_universe():
    from models.companies import default_universe
    from models.companies.linking import Universe

    return Universe(default_universe())


def score(result: Result, episodes: list[Episode] | None) -> Result:
    """Lead times, and with labels the hits, false alarms and misses (see the module's docstring)."""
    result.episodes = episodes
    hit: set[int] = set()
    for a in result.alerts:
        a.episode = None
        for i, e in enumerate(episodes or []):
            if _same_key(e.key, a.key) and e.start <= a.at <= e.end:
                a.episode = e
                hit.add(i)
                break
        since = a.episode.start if a.episode else (None if episodes else a.first_negative)
        a.lead_s = (a.at - since).total_seconds() if since else None
    result.misses = [e for i, e in enumerate(episodes or []) if i not in hit]
    return result


# -- the database ---------------------------------------------------------------------------------------
@contextmanager
def database(database_url: str = ""):
    """A migrated, empty schema: a fresh one in ``database_url`` (dropped afterwards), or a throwaway
    embedded PostgreSQL in a temporary folder (removed afterwards)."""
    from sqlalchemy.exc import SQLAlchemyError

    from infra.db import make_engine, migrate, normalise_url, redact

    if database_url:
        schema = f"sentinel_backtest_{uuid.uuid4().hex[:12]}"
        sep = "&" if "?" in database_url else "?"
        url = f"{normalise_url(database_url)}{sep}options=-csearch_path%3D{schema}"
        try:
            admin = make_engine(database_url, pool_size=1)
            with admin.begin() as conn:
                conn.execute(CreateSchema(schema))
        except (ValueError, SQLAlchemyError, OSError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise BacktestError(f"cannot use the database at {redact(database_url)}: "
                                f"{reason[0] if reason else type(exc).__name__}") from None
        engine = None
        try:
            migrate(url)
            engine = make_engine(url)
            yield engine
        finally:
            if engine is not None:
                engine.dispose()
            with admin.begin() as conn:
                conn.execute(DropSchema(schema, cascade=True, if_exists=True))
            admin.dispose()
        return
    from infra.embedded import EmbeddedPostgres

    folder = Path(tempfile.mkdtemp(prefix="sentinel-backtest-"))
    postgres = None
    try:
        try:
            postgres = EmbeddedPostgres(folder / "pgdata", delete_on_stop=True).start()
        except RuntimeError as exc:
            raise BacktestError(f"cannot start a throwaway PostgreSQL: {_short(exc, 300)}; "
                                f"or set DATABASE_URL") from None
        migrate(postgres.url)
        engine = make_engine(postgres.url)
        try:
            yield engine
        finally:
            engine.dispose()
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


def clear(engine: Engine) -> None:
    """Empty what a backtest wrote, for the next run on the same schema."""
    with engine.begin() as conn:
        conn.execute(text("truncate news_articles, entity_mentions, article_keys, entity_aliases, alerts, stories"))


# -- the report ------------------------------------------------------------------------------------------
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign, s = ("-" if seconds < 0 else ""), abs(int(round(seconds)))
    if s >= 3600:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{sign}{s // 60}m{s % 60:02d}s" if s % 60 else f"{sign}{s // 60}m"


def report(result: Result, name: str) -> str:
    t = result.thresholds
    models = f", {result.from_models} read by the models ({result.model_version})" if result.from_models else ""
    lines = [f"backtest of {_short(name)}: {result.events} events ({result.from_file} with their own sentiment"
             f"{models}), {result.partitions} partitions; max tail {t['alert_max_tail']:g}, "
             f"min negative stories {t['alert_min_stories']}, story threshold {t['story_threshold']:g}, "
             f"story horizon {duration(t['story_horizon'])}"]
    if result.rejected:
        lines.append(f"lines refused by the database (the worker would dead-letter them): "
                     f"{', '.join(map(str, result.rejected[:20]))}{' ...' if len(result.rejected) > 20 else ''}")
    by_key: dict[str, list[Alert]] = {}
    for a in result.alerts:
        by_key.setdefault(a.key, []).append(a)
    for key in sorted(by_key):
        lines.append(f"{_short(key, 80)}:")
        for a in by_key[key]:
            since = ("after the labelled start" if a.episode else "false alarm") if result.episodes is not None \
                else "after the first negative story"
            lines.append(f"  {a.at:%Y-%m-%d %H:%M} {a.severity:<8} peak window {a.negatives}/{a.stories} "
                         f"negative stories, {a.articles} articles from {a.outlets} outlets, tail {a.tail:.1e}; "
                         f"lead {duration(a.lead_s)} {since}")
    if not result.alerts:
        lines.append("no alerts")
    if result.episodes is not None:
        for e in result.misses:
            lines.append(f"missed: {_short(e.key, 80)} {e.start:%Y-%m-%d %H:%M} to {e.end:%Y-%m-%d %H:%M}")
        p, r = result.precision, result.recall
        lines.append(f"alerts {len(result.alerts)}, hits {result.hits}, false alarms {result.false_alarms}, "
                     f"episodes {len(result.episodes)}, misses {len(result.misses)}, "
                     f"precision {'-' if p is None else f'{p:.2f}'}, recall {'-' if r is None else f'{r:.2f}'}")
    return "\n".join(lines)


def backtest(file: Path, labels: Path | None = None, settings=None, show_progress: bool = True,
             analyzer_factory=None) -> Result:
    """Read, run on a throwaway schema or server, score."""
    from infra.settings import get_settings

    settings = settings or get_settings()
    lines = read_history(file)
    episodes = read_labels(labels) if labels is not None else None
    with database(settings.database_url) as engine, _quiet_alerts():
        result = run(engine, lines, settings, analyzer_factory, show_progress)
    return score(result, episodes)


@contextmanager
def _quiet_alerts():
    """The detector logs each alert it opens; the report lists them, so the log stays quiet meanwhile."""
    import logging

    logger = logging.getLogger("agents.alerts.spikes")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def command(file: Path, labels: Path | None, as_json: bool, fail) -> None:
    """``sentinel backtest``: the report on stdout, every error one line through ``fail``."""
    import typer
    from sqlalchemy.exc import SQLAlchemyError

    try:
        result = backtest(file, labels)
    except BacktestError as exc:
        fail(str(exc), "fix that line or file (see `sentinel backtest --help` and docs/ALERTS.md) and run again")
    except (SQLAlchemyError, OSError, RuntimeError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        fail(f"the backtest's database failed: {_short(reason[0] if reason else type(exc).__name__, 300)}",
             "check DATABASE_URL (or unset it for a throwaway embedded PostgreSQL) and run again")
    typer.echo(json.dumps(result.as_dict(), ensure_ascii=False) if as_json else report(result, file.name))


# -- scenarios ---------------------------------------------------------------------------------------------
DAY = datetime(2026, 3, 2, tzinfo=UTC)
NEGATIVE_WORDS = ("plunge", "fraud", "warning", "loss", "slump", "probe", "resigns", "junk", "breach", "default",
                  "recall", "lawsuit", "halts", "downgrade", "scandal", "layoffs", "collapse", "fine")
VOCAB = ("board market quarter plant contract order customers guidance outlook deal merger unit region "
         "investors analysts shares bonds pricing supply demand factory office digital cloud energy retail "
         "shipping fleet brand launch partner research results revenue margin costs capital program network "
         "service licence project tender rollout expansion upgrade platform system review audit").split()
COMPANIES = ["ACME", "BOLT", "CRUX", "DYNO", "EPIC", "FLUX", "GRID", "HRWL", "IONX", "JADE"]
OUTLETS = [f"Outlet {c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
BURST_TITLES = ["{c} shares plunge as auditors refuse to sign accounts", "Regulator opens fraud probe into {c}",
                "{c} issues profit warning after orders slump", "{c} chief executive resigns amid scandal",
                "{c} credit rating cut to junk by agency", "{c} announces layoffs across European depots",
                "Lenders fear {c} loan breach after missed payment", "{c} halts deliveries after warehouse fire",
                "Customers file lawsuit against {c} over lost parcels", "{c} bonds slide on default fears",
                "{c} faces record fine for safety failures", "Analysts see {c} quarterly loss doubling"]


def _event(i: str, title: str, company: str, t: datetime, outlet: str, negative: bool,
           received: datetime | None = None) -> dict:
    return {"id": i, "title": title, "text": title + ".", "source": outlet, "url": f"https://news.example/{i}",
            "published_at": t.isoformat(), "received_at": (received or t + timedelta(seconds=1)).isoformat(),
            "tickers": [company], "sentiment": "negative" if negative else "neutral"}


def calm(rng: random.Random, start: datetime = DAY, hours: int = 14, per_hour: int = 24,
         companies: list[str] = COMPANIES, negative_share: dict[str, float] | None = None) -> list[dict]:
    """Distinct stories over the companies, about one in five negative (or ``negative_share[company]``),
    every third one reprinted once."""
    events = []
    for n in range(hours * per_hour):
        t = start + timedelta(seconds=n * 3600 / per_hour)
        company = companies[n % len(companies)]
        words = rng.sample(VOCAB, 6)
        negative = rng.random() < (negative_share or {}).get(company, 0.2)
        if negative:
            words[2] = rng.choice(NEGATIVE_WORDS)
        title = f"{company} " + " ".join(words)
        tag = f"{start:%m%d}-{n:04d}"
        for copy in range(1 + (n % 3 == 0)):
            events.append(_event(f"calm-{tag}-{copy}", title if not copy else f"UPDATE 1-{title} - Reuters",
                                 company, t + timedelta(seconds=30 * copy), OUTLETS[(n + copy) % 6], negative))
    return events


def storm(start: datetime, company: str = "ACME", copies: int = 15, spacing_s: float = 80,
          edited: bool = False) -> list[dict]:
    """One mildly negative story reprinted by ``copies`` outlets (within 20 minutes by default); ``edited``:
    every other copy is a small edit (Jaccard 0.62 to 0.80 of the original's shingles)."""
    base = f"{company} warning on supply costs weighs on quarter outlook"
    variants = [base, f"UPDATE 1-{base}", f"BRIEF-{base}", base.upper(), f"{base} - Reuters", f"{base} | Bloomberg",
                base.lower(), f"UPDATE 2-{base} - Reuters", f"{base} (NYSE: {company})", f"{base} ${company}"]
    edits = [f"{base}, shares slip", base.replace("on quarter", "on its quarter"),
             base.replace("on supply", "on rising supply"), base.replace(company, f"{company}'s", 1),
             base.replace("on quarter", "on the quarterly"), base.replace("weighs on", "weighs heavily on"),
             base.replace("warning on", "warning over"), f"Update: {base} as shares fall"]
    titles = [edits[k // 2 % len(edits)] if edited and k % 2 else variants[k % len(variants)] for k in range(copies)]
    return [_event(f"storm-{company}-{start:%m%d%H}-{k:02d}", title, company,
                   start + timedelta(seconds=spacing_s * k), OUTLETS[k % len(OUTLETS)], True)
            for k, title in enumerate(titles)]


def burst(start: datetime, company: str = "HRWL", stories: int = 12, spacing_s: float = 200) -> list[dict]:
    """``stories`` distinct negative stories about one company from eight outlets."""
    return [_event(f"burst-{company}-{start:%m%d%H}-{k:02d}", BURST_TITLES[k % len(BURST_TITLES)].format(c=company),
                   company, start + timedelta(seconds=spacing_s * k), OUTLETS[k % 8], True) for k in range(stories)]


def episode(events: list[dict], after: timedelta = timedelta(hours=1)) -> dict:
    """The label of a burst: its company, from its first article to an hour (a window) after its last."""
    times = [datetime.fromisoformat(e["published_at"]) for e in events]
    return {"key": f"ticker:{events[0]['tickers'][0]}", "start": min(times).isoformat(),
            "end": (max(times) + after).isoformat()}


def far_future(n: int, arrive: datetime) -> list[dict]:
    """Articles dated 2099 (a poisoned clock) that arrive at ``arrive``."""
    rng = random.Random(2099)
    return [_event(f"future-{k:02d}", "JADE " + " ".join(rng.sample(VOCAB, 6)), "JADE",
                   datetime(2099, 1, 1, tzinfo=UTC) + timedelta(minutes=k), OUTLETS[k % 6], False,
                   received=arrive + timedelta(seconds=k)) for k in range(n)]


def _sorted(events: list[dict]) -> list[dict]:
    return sorted(events, key=lambda e: (e["received_at"], e["id"]))


def scenarios(partitions: int = 4) -> dict[str, tuple[list[dict], list[dict]]]:
    """Each scenario's events (in arrival order) and labelled episodes, from fixed seeds."""
    out = {}
    days = [DAY + timedelta(days=d) for d in range(3)]
    # three busy days (about five stories an hour per company); EPIC's news is twice as often negative
    out["calm"] = (_sorted([e for d, day in enumerate(days) for e in calm(random.Random(100 + d), day, per_hour=48,
                                                                          negative_share={"EPIC": 0.4})]), [])
    base = calm(random.Random(16))
    # ACME: 15 copies in 20 minutes, half of them small edits; GRID: 15 verbatim copies over three hours
    out["reprint_storm"] = (_sorted(base + storm(DAY + timedelta(hours=5), edited=True)
                                    + storm(DAY + timedelta(hours=10), "GRID", spacing_s=720)), [])
    hrwl = burst(DAY + timedelta(hours=9))
    slow = burst(DAY + timedelta(hours=4), "DYNO", stories=8, spacing_s=420)  # eight stories over 50 minutes
    out["burst"] = (_sorted(base + hrwl + slow), [episode(hrwl), episode(slow)])
    # low-volume names: KITE and LYNX appear twice a day; three negative KITE stories are not enough
    # evidence, six negative LYNX stories are an episode
    rng = random.Random(17)
    rare = [e for name, hour in (("KITE", 2), ("KITE", 7), ("LYNX", 3), ("LYNX", 8))
            for e in calm(rng, DAY + timedelta(hours=hour), hours=1, per_hour=1, companies=[name])]
    kite, lynx = burst(DAY + timedelta(hours=10), "KITE", stories=3), burst(DAY + timedelta(hours=11), "LYNX", 6)
    out["low_volume"] = (_sorted(base + rare + kite + lynx), [episode(lynx)])
    # far-future timestamps reach every partition between the storm and the burst
    future_events = far_future(4 * partitions, DAY + timedelta(hours=7))
    assert {partition_of(e["id"].encode(), partitions) for e in future_events} == set(range(partitions))
    out["far_future"] = (_sorted(base + storm(DAY + timedelta(hours=5)) + hrwl + future_events), [episode(hrwl)])
    # an idle partition: nothing ever arrives on the last partition
    idle = [e for e in base + hrwl if partition_of(e["id"].encode(), partitions) != partitions - 1]
    out["idle_partition"] = (_sorted(idle), [episode([e for e in hrwl if e in idle])])
    return out


def write_scenarios(folder: Path, partitions: int = 4) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (events, labels) in scenarios(partitions).items():
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        (folder / f"{name}.labels.jsonl").write_text("".join(json.dumps(e) + "\n" for e in labels))
        written.append(path)
    return written


# the default thresholds, then one neighbour at a time on each side
SWEEP = [("defaults", {}),
         ("alert_max_tail 1e-3", {"alert_max_tail": 1e-3}), ("alert_max_tail 1e-6", {"alert_max_tail": 1e-6}),
         ("alert_min_stories 3", {"alert_min_stories": 3}), ("alert_min_stories 8", {"alert_min_stories": 8}),
         ("story_threshold 0.4", {"story_threshold": 0.4}), ("story_threshold 0.9", {"story_threshold": 0.9}),
         ("story_horizon 10 min", {"story_horizon": 600.0}), ("story_horizon 2 h", {"story_horizon": 7200.0}),
         # what the far-future and idle-partition scenarios would do without their defences
         ("future_tolerance 100 years", {"future_tolerance": 100 * 365 * 86400.0}),
         ("alert_idle_timeout 30 days", {"alert_idle_timeout": 30 * 86400.0})]


def sweep(folder: Path, settings=None, configs=SWEEP) -> list[dict]:
    """Every scenario in ``folder`` at every configuration, on one throwaway database."""
    from infra.settings import get_settings

    settings = settings or get_settings()
    histories = sorted(p for p in folder.glob("*.jsonl") if not p.name.endswith(".labels.jsonl"))
    if not histories:
        raise BacktestError(f"no scenario files in {folder}; write them with `scenarios {folder}`")
    rows = []
    with database(settings.database_url) as engine, _quiet_alerts():
        for name, update in configs:
            s = settings.model_copy(update=update)
            for path in histories:
                clear(engine)
                labels = path.with_name(path.name.replace(".jsonl", ".labels.jsonl"))
                result = score(run(engine, read_history(path), s),
                               read_labels(labels) if labels.exists() else [])
                leads = [a.lead_s for a in result.alerts if a.episode is not None]
                rows.append({"config": name, "scenario": path.stem, "alerts": len(result.alerts),
                             "hits": result.hits, "false_alarms": result.false_alarms,
                             "episodes": len(result.episodes), "misses": len(result.misses),
                             "leads": leads, "keys": sorted({a.key for a in result.alerts}),
                             "false_keys": sorted({a.key for a in result.alerts if a.episode is None})})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def sweep_table(rows: list[dict]) -> str:
    """One row per configuration, one cell per scenario: alerts, false alarms, misses and lead times."""
    scenarios_seen = list(dict.fromkeys(r["scenario"] for r in rows))
    configs = list(dict.fromkeys(r["config"] for r in rows))
    cell = {(r["config"], r["scenario"]): r for r in rows}
    out = ["| configuration | " + " | ".join(scenarios_seen) + " | hits / episodes | false alarms |",
           "|---|" + "---|" * len(scenarios_seen) + "---|---|"]
    for c in configs:
        cells, hits, episodes, false = [], 0, 0, 0
        for name in scenarios_seen:
            r = cell[(c, name)]
            hits, episodes, false = hits + r["hits"], episodes + r["episodes"], false + r["false_alarms"]
            text_ = f"{r['alerts']} alert{'s' * (r['alerts'] != 1)}"
            if r["leads"]:
                text_ += f" (lead {', '.join(duration(s) for s in r['leads'])})"
            if r["false_alarms"]:
                text_ += f", {r['false_alarms']} false ({', '.join(r['false_keys'])})"
            if r["misses"]:
                text_ += f", {r['misses']} missed"
            cells.append(text_)
        out.append(f"| {c} | " + " | ".join(cells) + f" | {hits} / {episodes} | {false} |")
    return "\n".join(out)
