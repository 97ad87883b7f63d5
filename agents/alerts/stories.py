"""Stories: near-duplicate news (reprints, "UPDATE 1-" versions, wire prefixes and outlet
suffixes, other casing, small edits) grouped into one story within a time horizon.

Method:
- A headline (the title, else the first 300 characters of the text) is normalised: Unicode
  NFKC, wire prefixes such as ``UPDATE 2-``, ``BRIEF-``, ``EXCLUSIVE-`` and outlet suffixes such
  as `` - Reuters`` or `` | Bloomberg`` removed, exchange-ticker tags (``(NASDAQ: AAPL)``,
  ``$AAPL``) removed, case folded, punctuation turned into spaces.
- Its shingles are the normalised words and word pairs (pairs keep the order, so "A beats B"
  and "B beats A" differ); a headline in a script written without spaces (Chinese, Japanese,
  Thai ...) is one run of characters, so its shingles are its character pairs instead. A MinHash of the shingles (``datasketch``, 128 permutations, a
  fixed seed) goes into a MinHash LSH index tuned to ``story_threshold``; each candidate the
  index returns is checked with the exact Jaccard similarity of the shingle sets, and the
  article joins the most similar story whose first article lies within ``story_horizon`` of
  its event time (ties: the earlier story, then the smaller id). Otherwise it founds a story
  whose id is the hash of its normalised headline and its horizon-long slice of event time: two
  workers that found the same reprint at the same moment found the same story. Every
  two seconds (``agents/news.py``) a worker also takes in the stories other workers founded.
- State is bounded: stories last seen more than two horizons before the newest event time
  are evicted. A restarted worker rebuilds the index from the ``stories`` table (stories last
  seen within two horizons of the newest one), so a restart does not split a story.

The precision and recall of the grouping are measured by ``sentinel eval-stories``
(``docs/MODELS.md``).
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from datasketch import MinHash, MinHashLSH
from sqlalchemy import Engine, text

NUM_PERM = 128
SEED = 16
HEADLINE_CHARS = 300

_PREFIX = re.compile(
    r"^\s*(?:(?:corrected|refile|rpt|update(?:\s*\d+)?|brief|exclusive|wrapup(?:\s*\d+)?|factbox|analysis|"
    r"instant view|breakingviews|explainer|timeline|press digest|buzz|hot stocks?|market talk|breaking|"
    r"corrected-update(?:\s*\d+)?)\s*[-:–—]+\s*)+",
    re.IGNORECASE)
# " - Reuters", " | Bloomberg", " — The Wall Street Journal": a separator then 1-5 capitalised words at the end.
_SUFFIX = re.compile(r"\s+[-|–—]\s+(?:[A-Z][\w.&']*|&|of|the|on|and)(?:\s+(?:[A-Z][\w.&']*|&|of|the|on|and)){0,4}\s*$")
_SOURCE_TAG = re.compile(r"\((?:reuters|ap|afp|bloomberg|dow jones)\)", re.IGNORECASE)
_TICKER_TAG = re.compile(r"\((?:nyse|nasdaq|lse|tsx|asx|otc|amex|nyse american|hkex|xetra|euronext)\s*:\s*[^)]{1,12}\)"
                         r"|\$[A-Za-z]{1,6}\b", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w]+")
SCHEME = "affine32"  # datasketch 2.x; sketches are never stored (the index is rebuilt from text)
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME).permutations


def normalize(headline: str) -> str:
    """The headline as stories compare it (see the module's docstring)."""
    s = unicodedata.normalize("NFKC", headline or "")[:HEADLINE_CHARS * 2]
    s = _PREFIX.sub("", s)
    s = _SUFFIX.sub("", s)
    s = _SOURCE_TAG.sub(" ", s)
    s = _TICKER_TAG.sub(" ", s)
    s = _NON_WORD.sub(" ", s.casefold()).replace("_", " ")
    return " ".join(s.split())[:HEADLINE_CHARS]


def headline_of(title: str | None, body: str | None) -> str:
    """What an article is grouped by: its title, else the start of its text."""
    return (title or "").strip() or (body or "").strip()[:HEADLINE_CHARS]


# Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, kana and Han): a headline in them is one
# "word", so any edit would make it another; it is compared by its character pairs instead.
_UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
                       r"\uf900-\ufaff]")


def shingles(normalized: str) -> frozenset[str]:
    """Words and word pairs; for a headline in an unspaced script, its character pairs (spaces left out)."""
    words = normalized.split()
    if not words:
        return frozenset()
    if _UNSPACED.search(normalized):
        chars = "".join(words)
        return frozenset(chars[i:i + 2] for i in range(max(1, len(chars) - 1)))
    return frozenset(words) | frozenset(f"{a} {b}" for a, b in zip(words, words[1:]))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class StoryEntry:
    id: str
    first_seen: datetime
    last_seen: datetime
    headline: str
    normalized: str
    shingles: frozenset


@dataclass
class Assignment:
    story_id: str
    new: bool  # this article founded the story
    headline: str  # the story's headline (its founder's)
    normalized: str  # the story's normalised headline
    similarity: float


class StoryIndex:
    """Near-duplicate grouping, in memory and bounded; rebuilt from PostgreSQL after a restart."""

    def __init__(self, threshold: float = 0.6, horizon_s: float = 48 * 3600.0):
        self.threshold = threshold
        self.horizon = timedelta(seconds=horizon_s)
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self._stories: dict[str, StoryEntry] = {}
        self._newest: datetime | None = None
        self._since_evict = 0
        self._lock = threading.Lock()  # build (event loop) and refresh (database thread)

    @classmethod
    def from_settings(cls, settings) -> StoryIndex:
        return cls(settings.story_threshold, settings.story_horizon)

    def __len__(self) -> int:
        return len(self._stories)

    @staticmethod
    def _minhash(sh: frozenset) -> MinHash:
        m = MinHash(num_perm=NUM_PERM, seed=SEED, permutations=_PERMUTATIONS, scheme=SCHEME)  # drawn once
        m.update_batch([s.encode("utf-8", "replace") for s in sorted(sh)])
        return m

    def assign(self, article_id: str, headline: str, event_time: datetime) -> Assignment:
        """The story of an article: the most similar story within the horizon, or a new one."""
        normalized = normalize(headline)
        sh = shingles(normalized)
        mh = self._minhash(sh) if sh else None
        founder_id = self.story_id(article_id, normalized, event_time)
        with self._lock:
            best: tuple | None = None
            known = self._stories.get(founder_id)
            if known is not None and (mh is None or abs(event_time - known.first_seen) <= self.horizon):
                best = ((-1.0, known.first_seen, known.id), known, 1.0)  # the same headline (or a replayed one)
            elif mh is not None:
                for sid in self._lsh.query(mh):
                    entry = self._stories.get(sid)
                    if entry is None or abs(event_time - entry.first_seen) > self.horizon:
                        continue
                    sim = jaccard(sh, entry.shingles)
                    if sim < self.threshold:
                        continue
                    rank = (-sim, entry.first_seen, entry.id)
                    if best is None or rank < best[0]:
                        best = (rank, entry, sim)
            if best is not None:
                entry = best[1]
                entry.last_seen = max(entry.last_seen, event_time)
                entry.first_seen = min(entry.first_seen, event_time)
                self._tick(event_time)
                return Assignment(entry.id, False, entry.headline, entry.normalized, best[2])
            entry = StoryEntry(founder_id, event_time, event_time, headline[:HEADLINE_CHARS * 2], normalized, sh)
            self._add(entry, mh)
            self._tick(event_time)
            return Assignment(entry.id, True, entry.headline, normalized, 1.0)

    def story_id(self, article_id: str, normalized: str, event_time: datetime) -> str:
        """The id a new story gets: its normalised headline's hash and its horizon-long slice of event time,
        so two workers that found the same reprint at once found one story (an empty headline: the
        article's own id)."""
        if not normalized:
            return article_id
        digest = hashlib.sha256(normalized.encode("utf-8", "replace")).hexdigest()[:24]
        return f"s{digest}-{math.floor(event_time.timestamp() / self.horizon.total_seconds())}"

    def _add(self, entry: StoryEntry, mh: MinHash | None) -> None:
        self._stories[entry.id] = entry
        if mh is not None:
            self._lsh.insert(entry.id, mh)

    def _tick(self, event_time: datetime) -> None:
        if self._newest is None or event_time > self._newest:
            self._newest = event_time
        self._since_evict += 1
        if self._since_evict >= 500:
            self._evict()

    def _evict(self) -> None:
        """Forget stories last seen more than two horizons before the newest event time."""
        self._since_evict = 0
        if self._newest is None:
            return
        before = self._newest - 2 * self.horizon
        for sid in [sid for sid, e in self._stories.items() if e.last_seen < before]:
            del self._stories[sid]
            if sid in self._lsh:
                self._lsh.remove(sid)

    def evict(self) -> None:
        with self._lock:
            self._evict()

    def load(self, engine: Engine, since: datetime | None = None) -> int:
        """Add the stories from the database last seen within two horizons of the newest (after a restart
        or a rebalance), or since ``since`` (other workers' new stories); returns how many were new."""
        with engine.connect() as conn:
            if since is None:
                rows = conn.execute(text("""
                    select id, first_seen, last_seen, headline, normalized from stories
                    where last_seen >= (select max(last_seen) from stories) - cast(:span as interval)
                    order by first_seen, id"""), {"span": 2 * self.horizon}).all()
            else:
                rows = conn.execute(text("""
                    select id, first_seen, last_seen, headline, normalized from stories where last_seen >= :since
                    order by first_seen, id"""), {"since": since}).all()
        added = 0
        with self._lock:
            for sid, first, last, headline, normalized in rows:
                known = self._stories.get(sid)
                if known is not None:
                    known.first_seen, known.last_seen = min(known.first_seen, first), max(known.last_seen, last)
                    continue
                sh = shingles(normalized)
                self._add(StoryEntry(sid, first, last, headline, normalized, sh), self._minhash(sh) if sh else None)
                if self._newest is None or last > self._newest:
                    self._newest = last
                added += 1
        return added


def recount(conn, story_ids: list[str]) -> None:
    """Copies, outlets and first/last seen of these stories, recounted from their stored articles."""
    if not story_ids:
        return
    conn.execute(text("""
        update stories s set copies = a.copies, outlets = a.outlets, first_seen = a.first_seen,
                             last_seen = a.last_seen
        from (select story_id, count(*) copies, min(event_time) first_seen, max(event_time) last_seen,
                     coalesce(jsonb_agg(distinct source order by source) filter (where source is not null),
                              '[]'::jsonb) outlets
              from news_articles where story_id = any(:ids) group by story_id) a
        where s.id = a.story_id"""), {"ids": sorted(set(story_ids))})
