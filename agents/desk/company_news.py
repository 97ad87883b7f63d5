"""What the company pages read from PostgreSQL: the companies with news (``article_keys`` rows keyed
``company:<id>``), each one's negative share of the last day against its usual share, its latest story and its
alerts; and one company's stories with the sentiment toward it.

Shares count articles: of the articles naming the company in the last 24 h, how many read negative toward it
(``article_keys.is_negative``), against the same share over the 7 days before (the baseline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, text

from agents.alerts import lifecycle
from agents.alerts.spikes import COMPANY_PREFIX
from agents.desk import present
from agents.desk.store import reading_label

RECENT = timedelta(hours=24)
BASELINE = timedelta(days=7)
MAX_STORIES = 50
MAX_ALERTS = 50


def company_key(company_id: str) -> str:
    return COMPANY_PREFIX + company_id


@dataclass
class CompanySummary:
    id: str
    name: str
    tickers: list[str]
    watched: bool
    recent_articles: int  # the last 24 h
    recent_negatives: int
    baseline_articles: int  # the 7 days before
    baseline_negatives: int
    last_headline: str | None
    last_time: datetime | None
    open_alerts: int  # nobody has acknowledged them
    unresolved_alerts: int  # open or acknowledged

    @property
    def recent_share(self) -> float | None:
        return self.recent_negatives / self.recent_articles if self.recent_articles else None

    @property
    def baseline_share(self) -> float | None:
        return self.baseline_negatives / self.baseline_articles if self.baseline_articles else None

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "tickers": self.tickers, "watched": self.watched,
                "negative_share": self.recent_share, "articles": self.recent_articles,
                "negatives": self.recent_negatives, "baseline_share": self.baseline_share,
                "baseline_articles": self.baseline_articles, "baseline_negatives": self.baseline_negatives,
                "last_story": {"headline": self.last_headline,
                               "time": self.last_time.isoformat() if self.last_time else None},
                "open_alerts": self.open_alerts, "unresolved_alerts": self.unresolved_alerts}


def tickers_of(value) -> list[str]:
    """``SYMBOL`` or ``SYMBOL.EXCHANGE`` of the company master's ``tickers`` ([{"symbol", "exchange"}])."""
    out = []
    for t in value if isinstance(value, list) else []:
        if isinstance(t, dict) and t.get("symbol"):
            out.append(str(t["symbol"]) + (f".{t['exchange']}" if t.get("exchange") else ""))
    return out


# One statement, values as bound parameters: ``:pattern`` is ``company:%``, ``:skip`` where the id starts.
_SUMMARIES = text("""
with keyed as (
  select k.key,
         count(*) filter (where k.event_time >= :recent and k.event_time < :now) as recent_articles,
         count(*) filter (where k.event_time >= :recent and k.event_time < :now and k.is_negative) as recent_negatives,
         count(*) filter (where k.event_time >= :baseline and k.event_time < :recent) as baseline_articles,
         count(*) filter (where k.event_time >= :baseline and k.event_time < :recent and k.is_negative)
           as baseline_negatives
  from article_keys k where k.key like :pattern group by k.key
), alerted as (
  select key, count(*) filter (where acknowledged_at is null and resolved_at is null) as open_alerts,
         count(*) filter (where resolved_at is null) as unresolved_alerts
  from alerts where key like :pattern group by key
)
select substr(keyed.key, :skip) as id, c.name, c.tickers, keyed.*,
       coalesce(alerted.open_alerts, 0) as open_alerts, coalesce(alerted.unresolved_alerts, 0) as unresolved_alerts,
       latest.headline as last_headline, latest.event_time as last_time,
       exists (select 1 from watchlist_companies wc join watchlists w on w.id = wc.watchlist_id
               where wc.company_id = substr(keyed.key, :skip)
                 and (w.owner_id is null or w.owner_id = :user)) as watched
from keyed
left join companies c on c.id = substr(keyed.key, :skip)
left join alerted on alerted.key = keyed.key
left join lateral (
  select coalesce(s.headline, a.title, '') as headline, k.event_time
  from article_keys k join news_articles a on a.id = k.article_id left join stories s on s.id = k.story_id
  where k.key = keyed.key order by k.event_time desc, k.article_id limit 1) latest on true
order by watched desc, latest.event_time desc nulls last, id
limit :limit
""")


def summaries(engine: Engine, user_id: int, now: datetime, limit: int = 500) -> list[CompanySummary]:
    """The companies with news, the ones on the user's watchlists (their own or shared) first, then the latest
    news first."""
    params = {"pattern": COMPANY_PREFIX + "%", "skip": len(COMPANY_PREFIX) + 1, "now": now, "recent": now - RECENT,
              "baseline": now - RECENT - BASELINE, "user": user_id, "limit": limit}
    with engine.connect() as conn:
        rows = conn.execute(_SUMMARIES, params).all()
    return [CompanySummary(
        id=r.id, name=r.name or r.id, tickers=tickers_of(r.tickers), watched=bool(r.watched),
        recent_articles=r.recent_articles, recent_negatives=r.recent_negatives,
        baseline_articles=r.baseline_articles, baseline_negatives=r.baseline_negatives,
        last_headline=r.last_headline, last_time=r.last_time, open_alerts=r.open_alerts,
        unresolved_alerts=r.unresolved_alerts) for r in rows]


@dataclass
class Company:
    id: str
    name: str
    tickers: list[str]
    isin: str | None
    industries: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "tickers": self.tickers, "isin": self.isin,
                "industries": self.industries}


def company(engine: Engine, company_id: str) -> Company | None:
    """The company from the master, or (for a company no longer in it) its id as its name while it has news;
    None when it is unknown."""
    with engine.connect() as conn:
        row = conn.execute(text("select id, name, tickers, isin, industries from companies where id = :id"),
                           {"id": company_id}).first()
        if row is not None:
            return Company(row.id, row.name, tickers_of(row.tickers), row.isin,
                           [str(i) for i in row.industries or [] if isinstance(i, str)])
        seen = conn.execute(text("select 1 from article_keys where key = :k limit 1"),
                            {"k": company_key(company_id)}).first()
    return Company(company_id, company_id, [], None) if seen else None


_STORIES = text("""
select coalesce(k.story_id, k.article_id) as story, max(k.event_time) as last_time,
       avg(k.negative) as negative, avg(k.sentiment) as sentiment, count(*) as articles,
       (array_agg(a.url order by k.event_time) filter (where a.url is not null)) as urls,
       (array_agg(coalesce(a.title, '') order by k.event_time))[1] as title,
       array_agg(distinct a.source) filter (where a.source is not null) as sources,
       max(s.headline) as headline, max(s.copies) as copies, (array_agg(s.outlets))[1] as outlets
from article_keys k join news_articles a on a.id = k.article_id left join stories s on s.id = k.story_id
where k.key = :key and k.event_time >= :since
group by 1 order by last_time desc, story limit :limit
""")


def stories(engine: Engine, company_id: str, since: datetime, limit: int = MAX_STORIES) -> list[present.StoryRow]:
    """The company's stories since ``since``, newest first: each with the mean sentiment toward the company of its
    articles that name it (``article_keys``), its outlets and copies, and its first http(s) URL as the link."""
    with engine.connect() as conn:
        rows = conn.execute(_STORIES, {"key": company_key(company_id), "since": since, "limit": limit}).all()
    out = []
    for r in rows:
        outlets = [str(o) for o in (r.outlets if isinstance(r.outlets, list) else r.sources or []) if o is not None]
        url = next((u for u in r.urls or [] if present.http_url(u)), None)
        out.append(present.StoryRow(
            time=r.last_time, headline=r.headline or r.title or "", url=url, outlets=outlets[:20],
            outlet_count=len(outlets), copies=int(r.copies or r.articles), sentiment=reading_label(
                float(r.negative), float(r.sentiment)), score=float(r.sentiment), toward=True))
    return out


SELECT_ALERTS = f"select {lifecycle.COLUMNS} from alerts where key = :k order by opened_at desc limit :n"


def alerts(engine: Engine, company_id: str, limit: int = MAX_ALERTS) -> list:
    """The company's alerts, newest first (rows as ``lifecycle.list_alerts`` gives them)."""
    with engine.connect() as conn:
        return list(conn.execute(text(SELECT_ALERTS), {"k": company_key(company_id), "n": limit}))
