"""Stories: copies of one news event (reprints, "UPDATE 1-" versions, wire prefixes and outlet
suffixes, other casing, small edits, paraphrases) grouped into one story within a time horizon;
opposite events about one company ("to cut 300 jobs" / "to add 300 jobs") stay apart.

Method:
- A headline (the title, else the first 300 characters of the text) is normalised: Unicode
  NFKC, wire prefixes such as ``UPDATE 2-``, ``BRIEF-``, ``EXCLUSIVE-`` and outlet suffixes such
  as `` - Reuters`` or `` | Bloomberg`` removed, exchange-ticker tags (``(NASDAQ: AAPL)``,
  ``$AAPL``) removed, case folded, punctuation turned into spaces.
- Its shingles are the normalised words and word pairs (pairs keep the order, so "A beats B"
  and "B beats A" differ), words that say the same thing made one first (``story_events.event_words``:
  "cuts", "trims" and "axes"; "bln" and "billion"); a headline in a script written without spaces (Chinese, Japanese,
  Thai ...) is one run of characters, so its shingles are its character pairs instead. A MinHash of the shingles (``datasketch``, 128 permutations, a
  fixed seed) goes into a MinHash LSH index tuned to ``story_threshold``.
- The headline's embedding (the trunk's ``embedding`` head, unit length: from the pass that reads
  sentiment and entities when the headline is the whole text, else from a pass over the headline
  alone; ``Analyzer.analyze_texts(..., headline_ends=...)``) goes into an in-memory matrix of the
  stories' embeddings. Candidates are the stories the LSH index returns
  and those whose embedding has a cosine of at least ``story_cosine`` with the article's.
- A candidate whose first article lies within ``story_horizon`` of the article's event time is
  similar when the cosine reaches ``story_cosine`` or the exact Jaccard similarity of the shingle
  sets reaches ``story_threshold`` (unspaced scripts, and articles without an embedding: Jaccard
  only), and it tells the same event when ``story_events.between`` finds no conflict (opposite
  directions, negation, other numbers, periods, names or roles). The article joins the most
  similar such story (cosine, else Jaccard; ties: the earlier story, then the smaller id).
  Otherwise it founds a story
  whose id is the hash of its normalised headline and its horizon-long slice of event time: two
  workers that found the same reprint at the same moment found the same story. Every
  two seconds (``agents/news.py``) a worker also takes in the stories other workers founded.
- State is bounded: stories last seen more than two horizons before the newest event time
  are evicted. A restarted worker rebuilds the index from the ``stories`` table (stories last
  seen within two horizons of the newest one, with their founders' stored embeddings: no model
  runs), so a restart does not split a story.

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

import numpy as np
from datasketch import MinHash, MinHashLSH
from sqlalchemy import Engine, text

from agents.alerts.story_events import EventFacts, between, event_words, facts

NUM_PERM = 128
SEED = 16
HEADLINE_CHARS = 300
LSH_SLACK = 0.15

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


def strip_wire(headline: str) -> str:
    """The headline without wire prefixes, outlet suffixes, source and ticker tags; its case and punctuation kept."""
    s = unicodedata.normalize("NFKC", headline or "")[:HEADLINE_CHARS * 2]
    s = _PREFIX.sub("", s)
    s = _SUFFIX.sub("", s)
    s = _SOURCE_TAG.sub(" ", s)
    s = _TICKER_TAG.sub(" ", s)
    return " ".join(s.split())


def normalize(headline: str) -> str:
    """The headline as stories compare it (see the module's docstring)."""
    s = _NON_WORD.sub(" ", strip_wire(headline).casefold()).replace("_", " ")
    return " ".join(s.split())[:HEADLINE_CHARS]


def event_facts(headline: str) -> EventFacts:
    """What event the headline tells (``story_events``), read from its text without wire prefixes and suffixes."""
    return facts(strip_wire(headline)[:HEADLINE_CHARS])


def headline_of(title: str | None, body: str | None) -> str:
    """What an article is grouped by: its title, else the start of its text."""
    return (title or "").strip() or (body or "").strip()[:HEADLINE_CHARS]


def headline_end(title: str | None, content: str) -> int:
    """Where the headline (``headline_of``) ends in the models' text (the title, then the body)."""
    title = (title or "").strip()
    return len(title) if title else min(len(content), HEADLINE_CHARS)


# Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, kana and Han): a headline in them is one
# "word", so any edit would make it another; it is compared by its character pairs instead.
_UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
                       r"\uf900-\ufaff]")


def unspaced(normalized: str) -> bool:
    return bool(_UNSPACED.search(normalized))


def shingles(normalized: str) -> frozenset[str]:
    """Words and word pairs; for a headline in an unspaced script, its character pairs (spaces left out)."""
    words = normalized.split()
    if not words:
        return frozenset()
    if unspaced(normalized):
        chars = "".join(words)
        return frozenset(chars[i:i + 2] for i in range(max(1, len(chars) - 1)))
    words = event_words(normalized)
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
    facts: EventFacts
    embedding: np.ndarray | None = None  # unit length; None: compared by Jaccard only


@dataclass
class Assignment:
    story_id: str
    new: bool  # this article founded the story
    headline: str  # the story's headline (its founder's)
    normalized: str  # the story's normalised headline
    similarity: float
    embedding: list[float] | None = None  # the story's (its founder's) headline embedding, stored with it


class EmbeddingMatrix:
    """The stories' unit embeddings as rows of one matrix: the candidates of an embedding are one product.
    Rows of forgotten stories are zeroed and reused, so it holds at most as many rows as the index has stories."""

    def __init__(self):
        self._rows = np.zeros((0, 0), dtype=np.float32)
        self._ids: list[str | None] = []
        self._row_of: dict[str, int] = {}
        self._free: list[int] = []

    def add(self, story_id: str, embedding: np.ndarray) -> None:
        if self._rows.shape[1] not in (0, embedding.shape[0]):
            return  # another model's width (a stored story from an older trunk): Jaccard only
        if not self._free:
            grown = max(64, 2 * len(self._ids))
            rows = np.zeros((grown, embedding.shape[0]), dtype=np.float32)
            if self._ids:
                rows[:len(self._ids)] = self._rows[:len(self._ids)]
            self._free = list(range(grown - 1, len(self._ids) - 1, -1))
            self._ids += [None] * (grown - len(self._ids))
            self._rows = rows
        row = self._free.pop()
        self._rows[row] = embedding
        self._ids[row] = story_id
        self._row_of[story_id] = row

    def remove(self, story_id: str) -> None:
        row = self._row_of.pop(story_id, None)
        if row is not None:
            self._rows[row] = 0.0
            self._ids[row] = None
            self._free.append(row)

    def near(self, embedding: np.ndarray, threshold: float) -> list[str]:
        """The stories whose embedding has a cosine of at least ``threshold`` with ``embedding``."""
        if not self._row_of or self._rows.shape[1] != embedding.shape[0]:
            return []
        hits = np.flatnonzero(self._rows @ embedding >= threshold)
        return [sid for sid in (self._ids[i] for i in hits) if sid is not None]


def as_unit(embedding) -> np.ndarray | None:
    """A float32 unit vector of ``embedding`` (a tensor, array or list), or None for none or a zero vector."""
    if embedding is None:
        return None
    vector = np.asarray(embedding.tolist() if hasattr(embedding, "tolist") else embedding, dtype=np.float32)
    norm = float(np.linalg.norm(vector)) if vector.ndim == 1 and vector.size else 0.0
    return vector / norm if norm > 0 and math.isfinite(norm) else None


def _listed(vector: np.ndarray | None) -> list[float] | None:
    return None if vector is None else [round(float(x), 6) for x in vector]


class StoryIndex:
    """Story grouping, in memory and bounded; rebuilt from PostgreSQL after a restart."""

    def __init__(self, threshold: float = 0.6, horizon_s: float = 48 * 3600.0, cosine: float = 0.88):
        self.threshold = threshold
        self.cosine = cosine
        self.horizon = timedelta(seconds=horizon_s)
        # the index is tuned below the threshold: MinHash only estimates Jaccard, and a story just above the
        # threshold must still come back as a candidate (the exact Jaccard decides)
        self._lsh = MinHashLSH(threshold=max(0.05, threshold - LSH_SLACK), num_perm=NUM_PERM)
        self._matrix = EmbeddingMatrix()
        self._stories: dict[str, StoryEntry] = {}
        self._newest: datetime | None = None
        self._since_evict = 0
        self._lock = threading.Lock()  # build (event loop) and refresh (database thread)

    @classmethod
    def from_settings(cls, settings) -> StoryIndex:
        return cls(settings.story_threshold, settings.story_horizon, settings.story_cosine)

    def __len__(self) -> int:
        return len(self._stories)

    @staticmethod
    def _minhash(sh: frozenset) -> MinHash:
        m = MinHash(num_perm=NUM_PERM, seed=SEED, permutations=_PERMUTATIONS, scheme=SCHEME)  # drawn once
        m.update_batch([s.encode("utf-8", "replace") for s in sorted(sh)])
        return m

    def similarity(self, entry: StoryEntry, sh: frozenset, embedding: np.ndarray | None,
                   is_unspaced: bool) -> float | None:
        """How similar an article is to a story, or None when it is not similar enough: the cosine of their
        embeddings when both have one (not in unspaced scripts), and the Jaccard similarity of their shingles."""
        jac = jaccard(sh, entry.shingles)
        cos = None
        if embedding is not None and entry.embedding is not None and not is_unspaced:
            cos = float(entry.embedding @ embedding)
        if cos is not None and cos >= self.cosine:
            return cos
        if jac >= self.threshold:
            return jac if cos is None else max(cos, jac)
        return None

    def assign(self, article_id: str, headline: str, event_time: datetime, embedding=None) -> Assignment:
        """The story of an article: the most similar story within the horizon that tells the same event,
        or a new one. ``embedding``: the headline's unit embedding (the trunk's ``embedding`` head), if read."""
        normalized = normalize(headline)
        sh = shingles(normalized)
        mh = self._minhash(sh) if sh else None
        is_unspaced = unspaced(normalized)
        vector = None if is_unspaced else as_unit(embedding)
        told = event_facts(headline)
        founder_id = self.story_id(article_id, normalized, event_time)
        with self._lock:
            best: tuple | None = None
            known = self._stories.get(founder_id)
            if known is not None:
                # the same headline in the same time slice (or a replayed one): its story, even where an earlier
                # reprint moved the story's first_seen back more than a horizon (its id cannot found a second one)
                best = ((-1.0, known.first_seen, known.id), known, 1.0)
            elif mh is not None:
                candidates = set(self._lsh.query(mh))
                if vector is not None:
                    candidates.update(self._matrix.near(vector, self.cosine))
                for sid in sorted(candidates):
                    entry = self._stories.get(sid)
                    if entry is None or abs(event_time - entry.first_seen) > self.horizon:
                        continue
                    sim = self.similarity(entry, sh, vector, is_unspaced)
                    if sim is None or between(told, entry.facts):
                        continue
                    rank = (-sim, entry.first_seen, entry.id)
                    if best is None or rank < best[0]:
                        best = (rank, entry, sim)
            if best is not None:
                entry = best[1]
                entry.last_seen = max(entry.last_seen, event_time)
                entry.first_seen = min(entry.first_seen, event_time)
                self._tick(event_time)
                return Assignment(entry.id, False, entry.headline, entry.normalized, best[2], _listed(entry.embedding))
            entry = StoryEntry(founder_id, event_time, event_time, headline[:HEADLINE_CHARS * 2], normalized, sh,
                               told, vector)
            self._add(entry, mh)
            self._tick(event_time)
            return Assignment(entry.id, True, entry.headline, normalized, 1.0, _listed(vector))

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
        if entry.embedding is not None:
            self._matrix.add(entry.id, entry.embedding)

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
            self._matrix.remove(sid)

    def evict(self) -> None:
        with self._lock:
            self._evict()

    def load(self, engine: Engine, since: datetime | None = None) -> int:
        """Add the stories from the database last seen within two horizons of the newest (after a restart
        or a rebalance), or since ``since`` (other workers' new stories); returns how many were new."""
        with engine.connect() as conn:
            if since is None:
                rows = conn.execute(text("""
                    select id, first_seen, last_seen, headline, normalized, embedding from stories
                    where last_seen >= (select max(last_seen) from stories) - cast(:span as interval)
                    order by first_seen, id"""), {"span": 2 * self.horizon}).all()
            else:
                rows = conn.execute(text("""
                    select id, first_seen, last_seen, headline, normalized, embedding from stories
                    where last_seen >= :since order by first_seen, id"""), {"since": since}).all()
        added = 0
        with self._lock:
            for sid, first, last, headline, normalized, embedding in rows:
                known = self._stories.get(sid)
                if known is not None:
                    known.first_seen, known.last_seen = min(known.first_seen, first), max(known.last_seen, last)
                    continue
                sh = shingles(normalized)
                vector = None if unspaced(normalized) else as_unit(embedding)
                self._add(StoryEntry(sid, first, last, headline, normalized, sh, event_facts(headline), vector),
                          self._minhash(sh) if sh else None)
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
