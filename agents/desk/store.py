"""The desk's reads and writes in PostgreSQL: people, sessions, drafts and their decisions.

A decision is one transaction: the draft's status moves from ``pending`` (under a row lock, so two
reviewers or two clicks cannot both move it), the decision is stored in ``reply_reviews`` as
training signal, and an approved reply is stored in ``outbound_replies`` with its ``chat.outbound``
record in the outbox (``agents/outbox.py``), which the worker's sweep sends: the desk never talks to
Kafka and holds no lock across a send. Approving a draft that is already sent changes nothing;
approving it with other text is refused (409, with the text that was sent).

Claims: a reviewer who opens a pending draft for editing claims it (``claimed_by``, ``claimed_at``; it lapses
after ``claim_ttl`` seconds unless renewed, or on release or decision). While someone else's claim is live a
decision is refused (409) unless the reviewer takes the draft over, explicitly. A take-over and a decision move
the draft's ``version``: a decision sent with the version its page was read at is refused once that moved, so
the reviewer who was taken over cannot overwrite the draft silently either (optimistic concurrency).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text
from sqlalchemy.dialects.postgresql import insert

from agents import outbox
from agents.desk.security import ROLES, hash_password, new_token, token_digest, verify_password
from schemas.records import OutboundReply

MAX_REPLY = 4000
MAX_REASON = 1000
MAX_INTENT = 128
MAX_SEARCH = 128
CLAIM_TTL = 300.0  # seconds; the desk passes SENTINEL_DESK_CLAIM_TTL
STATUSES = ("pending", "sent", "rejected")
DRAFT_COLUMNS = ("d.message_id, d.conversation_id, m.text, d.draft, d.intent, d.intent_score, d.escalate, "
                 "d.escalation_reason, d.retrieved, d.status, d.decided_by, d.decided_at, d.created_at, "
                 "m.customer_id, m.channel, m.sentiment_label, m.customer_state, m.event_time, o.text as sent_text, "
                 "o.created_at as sent_at, d.version, d.claimed_at, "
                 # the live claim only: a lapsed one is nobody's
                 "case when d.claimed_at > now() - make_interval(secs => :ttl) then d.claimed_by end as editor")


class DecisionError(ValueError):
    """A decision that cannot be taken; ``code`` is the HTTP status that says why."""

    def __init__(self, message: str, code: int, sent_text: str | None = None):
        super().__init__(message)
        self.code = code
        self.sent_text = sent_text  # the reply that was sent, when an edit came too late


@dataclass
class User:
    id: int
    username: str
    role: str


class Outbound(OutboundReply):
    """A stored outbound reply: its ``chat.outbound`` fields and whether the outbox has produced it."""

    produced: bool

    def record(self) -> OutboundReply:
        """The ``chat.outbound`` record."""
        return OutboundReply(**self.model_dump(exclude={"produced"}))


def now() -> datetime:
    return datetime.now(UTC)


# -- people -------------------------------------------------------------------------------------------
def add_user(engine: Engine, username: str, password: str, role: str) -> int:
    username = username.strip()
    if not 1 <= len(username) <= 64 or any(c.isspace() or not c.isprintable() for c in username):
        raise ValueError("a username is 1 to 64 printable characters without spaces")
    if role not in ROLES:
        raise ValueError(f"a role is one of {', '.join(ROLES)}")
    hashed = hash_password(password)
    with engine.begin() as conn:
        row = conn.execute(text(
            "insert into desk_users (username, password_hash, role) values (:u, :h, :r) "
            "on conflict (username) do nothing returning id"), {"u": username, "h": hashed, "r": role}).first()
    if row is None:
        raise ValueError(f"user {username!r} already exists")
    return row.id


def check_password(engine: Engine, username: str, password: str) -> User | None:
    """The user when the password is theirs and they are not disabled (a disabled user's password is still
    checked, so it costs the same time as any other)."""
    with engine.connect() as conn:
        row = conn.execute(text("select id, username, role, password_hash, disabled from desk_users "
                                "where username = :u"), {"u": username[:64]}).first()
    ok = verify_password(row.password_hash if row else None, password)
    return User(row.id, row.username, row.role) if ok and row and not row.disabled else None


def _user_id(conn, username: str) -> int:
    row = conn.execute(text("select id from desk_users where username = :u for update"), {"u": username}).first()
    if row is None:
        raise LookupError(f"no desk user {username!r}")
    return row.id


def remove_user(engine: Engine, username: str) -> None:
    """Delete the user and (by cascade) every session and token of theirs; their decisions keep their name."""
    with engine.begin() as conn:
        conn.execute(text("delete from desk_users where id = :id"), {"id": _user_id(conn, username)})


def set_disabled(engine: Engine, username: str, disabled: bool) -> int:
    """Disable the user (no sign-in; every session and token revoked) or enable them again; the sessions
    revoked."""
    with engine.begin() as conn:
        user_id = _user_id(conn, username)
        conn.execute(text("update desk_users set disabled = :d where id = :id"), {"d": disabled, "id": user_id})
        if not disabled:
            return 0
        return conn.execute(text("delete from desk_sessions where user_id = :id"), {"id": user_id}).rowcount


def reset_password(engine: Engine, username: str, password: str) -> int:
    """Set a new password and revoke every session and token of the user (the sessions revoked)."""
    hashed = hash_password(password)
    with engine.begin() as conn:
        user_id = _user_id(conn, username)
        conn.execute(text("update desk_users set password_hash = :h where id = :id"), {"h": hashed, "id": user_id})
        return conn.execute(text("delete from desk_sessions where user_id = :id"), {"id": user_id}).rowcount


def revoke_sessions(engine: Engine, username: str) -> int:
    """Revoke every session and token of the user (the sessions revoked)."""
    with engine.begin() as conn:
        user_id = _user_id(conn, username)
        return conn.execute(text("delete from desk_sessions where user_id = :id"), {"id": user_id}).rowcount


# -- sign-in attempts -----------------------------------------------------------------------------------
# One row per key: the attempts since ``window_start``; a key whose window has passed starts again at 1.
# The increment and its result are one statement, so parallel attempts (from any desk process) each get
# their own count and no more than the limit get past it.
_COUNT_ATTEMPTS = text(
    "insert into desk_login_attempts as a (key, window_start, count) "
    "select k, now(), 1 from unnest(cast(:keys as text[])) as k order by k "
    "on conflict (key) do update set "
    "count = case when a.window_start <= now() - make_interval(secs => :w) then 1 else a.count + 1 end, "
    "window_start = case when a.window_start <= now() - make_interval(secs => :w) then now() "
    "else a.window_start end "
    "returning key, count, extract(epoch from a.window_start + make_interval(secs => :w) - now()) as retry_after")


def count_attempt(engine: Engine, keys: list[str], window: float) -> dict[str, tuple[int, float]]:
    """Count one sign-in attempt under each key: key → (attempts in its window, this one included; seconds
    until its window ends). Stale rows of any key are deleted as they are passed."""
    with engine.begin() as conn:
        conn.execute(text("delete from desk_login_attempts where window_start <= now() - make_interval(secs => :w)"),
                     {"w": window})
        rows = conn.execute(_COUNT_ATTEMPTS, {"keys": sorted(keys), "w": window}).all()
    return {r.key: (r.count, max(0.0, float(r.retry_after))) for r in rows}


def forgive_attempt(engine: Engine, clear: list[str], refund: list[str]) -> None:
    """After a successful sign-in: forget the attempts of the keys in ``clear`` and take this attempt back
    from those in ``refund``."""
    with engine.begin() as conn:
        conn.execute(text("delete from desk_login_attempts where key = any(cast(:k as text[]))"), {"k": clear})
        conn.execute(text("update desk_login_attempts set count = greatest(count - 1, 0) "
                          "where key = any(cast(:k as text[]))"), {"k": refund})


def open_session(engine: Engine, user: User, kind: str, lifetime: float) -> str:
    token = new_token()
    with engine.begin() as conn:
        conn.execute(text("delete from desk_sessions where expires_at < now()"))  # expired ones go as new ones come
        conn.execute(text("insert into desk_sessions (token_sha256, user_id, kind, expires_at) "
                          "values (:t, :u, :k, :e)"),
                     {"t": token_digest(token), "u": user.id, "k": kind,
                      "e": now() + timedelta(seconds=lifetime)})
    return token


def session_user(engine: Engine, token: str | None, kind: str) -> User | None:
    """The user of an unexpired session of this kind (cookie or bearer), or None."""
    if not token or len(token) > 256:
        return None
    with engine.connect() as conn:
        row = conn.execute(text(
            "select u.id, u.username, u.role from desk_sessions s join desk_users u on u.id = s.user_id "
            "where s.token_sha256 = :t and s.kind = :k and s.expires_at > now() and not u.disabled"),
            {"t": token_digest(token), "k": kind}).first()
    return User(row.id, row.username, row.role) if row else None


def close_session(engine: Engine, token: str | None) -> None:
    if token:
        with engine.begin() as conn:
            conn.execute(text("delete from desk_sessions where token_sha256 = :t"), {"t": token_digest(token)})


# -- drafts -------------------------------------------------------------------------------------------
def draft_dict(row) -> dict:
    """A draft as the API shows it."""
    return {"message_id": row.message_id, "conversation_id": row.conversation_id, "text": row.text,
            "draft": row.draft, "intent": row.intent, "intent_score": row.intent_score, "escalate": row.escalate,
            "escalation_reason": row.escalation_reason, "retrieved": row.retrieved, "status": row.status,
            "sent_text": row.sent_text, "decided_by": row.decided_by,
            "decided_at": row.decided_at.isoformat() if row.decided_at else None,
            "created_at": row.created_at.isoformat() if row.created_at else None, "channel": row.channel,
            "customer_id": row.customer_id, "editor": row.editor, "version": row.version}


# One statement per tab order (values, filters included, always travel as bound parameters; a filter left as
# None matches everything). Pending: escalated first, then the longest waiting; decided: the latest first.
_DRAFTS_FROM = (f"select {DRAFT_COLUMNS} from reply_drafts d join chat_messages m on m.id = d.message_id "
                "left join outbound_replies o on o.message_id = d.message_id ")
SELECT_DRAFT = _DRAFTS_FROM + "where d.message_id = :id"
_FILTERS = ("(cast(:e as boolean) is null or d.escalate = cast(:e as boolean)) "
            "and (cast(:intent as text) is null or d.intent = cast(:intent as text)) "
            "and (cast(:channel as text) is null or m.channel = cast(:channel as text)) "
            "and (cast(:q as text) is null or d.conversation_id ilike cast(:q as text) escape '\\' "
            "or m.customer_id ilike cast(:q as text) escape '\\') ")
QUEUE_ORDER = "d.escalate desc, d.created_at asc, d.message_id"
SELECT_DRAFTS = {
    pending: _DRAFTS_FROM + "where d.status = :s and " + _FILTERS + "order by "
    + (QUEUE_ORDER if pending else "d.decided_at desc nulls last, d.message_id") + " limit :limit"
    for pending in (True, False)}
COUNT_DRAFTS = ("select d.status, count(*) from reply_drafts d join chat_messages m on m.id = d.message_id "
                "where " + _FILTERS + "group by d.status")


@dataclass(frozen=True)
class DraftFilter:
    """What the queue shows: escalated only (or not), one intent, one channel, and a conversation or
    customer id that starts with ``search`` (any case)."""
    escalated: bool | None = None
    intent: str | None = None
    channel: str | None = None
    search: str | None = None

    def params(self) -> dict:
        q = (self.search or "").strip()[:MAX_SEARCH]
        like = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" if q else None
        return {"e": self.escalated, "intent": self.intent or None, "channel": self.channel or None, "q": like}


def list_drafts(engine: Engine, status: str = "pending", limit: int = 100, escalated: bool | None = None,
                where: DraftFilter | None = None, claim_ttl: float = CLAIM_TTL) -> list:
    if status not in STATUSES:
        raise ValueError(f"status is one of {', '.join(STATUSES)}")
    where = where or DraftFilter(escalated=escalated)
    with engine.connect() as conn:
        return list(conn.execute(text(SELECT_DRAFTS[status == "pending"]),
                                 {"s": status, "limit": limit, "ttl": claim_ttl, **where.params()}))


def count_drafts(engine: Engine, where: DraftFilter | None = None) -> dict[str, int]:
    """How many drafts each tab holds under the filter: status → count (every status, zeros included)."""
    with engine.connect() as conn:
        counts = dict(conn.execute(text(COUNT_DRAFTS), (where or DraftFilter()).params()).all())
    return {s: int(counts.get(s, 0)) for s in STATUSES}


def channels(engine: Engine, limit: int = 50) -> list[str]:
    """The channels drafts came in on (for the queue's filter)."""
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text(
            "select distinct m.channel from reply_drafts d join chat_messages m on m.id = d.message_id "
            "where m.channel is not null order by 1 limit :n"), {"n": limit})]


def get_draft(engine: Engine, message_id: str, claim_ttl: float = CLAIM_TTL):
    with engine.connect() as conn:
        return conn.execute(text(SELECT_DRAFT), {"id": message_id, "ttl": claim_ttl}).first()


# -- claims -------------------------------------------------------------------------------------------
@dataclass
class Claim:
    """A draft's claim after a claim or release: who holds it (None: nobody), since when, the draft's
    version, and whether the caller holds it now."""
    message_id: str
    editor: str | None
    since: datetime | None
    version: int
    granted: bool


def _claim_live(row, at: datetime, ttl: float) -> bool:
    return row.claimed_by is not None and row.claimed_at is not None and row.claimed_at > at - timedelta(seconds=ttl)


def _pending_for_update(conn, message_id: str):
    row = conn.execute(text("select message_id, status, claimed_by, claimed_at, version from reply_drafts "
                            "where message_id = :id for update"), {"id": message_id}).first()
    if row is None:
        raise DecisionError(f"no draft for message {message_id!r}", 404)
    if row.status != "pending":
        raise DecisionError(f"the draft for message {message_id!r} was already {row.status}", 409)
    return row


def claim(engine: Engine, message_id: str, user: User, take_over: bool = False,
          claim_ttl: float = CLAIM_TTL) -> Claim:
    """Claim a pending draft for editing, or renew one's own claim. Someone else's live claim is kept
    (``granted`` False) unless ``take_over``: then it passes to ``user`` and the version moves, so the
    other reviewer's page can no longer decide it."""
    with engine.begin() as conn:
        row = _pending_for_update(conn, message_id)
        at = now()
        live = _claim_live(row, at, claim_ttl)
        if live and row.claimed_by != user.username and not take_over:
            return Claim(message_id, row.claimed_by, row.claimed_at, row.version, False)
        bump = 1 if live and row.claimed_by != user.username else 0
        conn.execute(text("update reply_drafts set claimed_by = :by, claimed_at = :at, version = version + :b "
                          "where message_id = :id"), {"id": message_id, "by": user.username, "at": at, "b": bump})
    return Claim(message_id, user.username, at, row.version + bump, True)


def release(engine: Engine, message_id: str, user: User, claim_ttl: float = CLAIM_TTL) -> Claim:
    """Give up one's own claim (someone else's is left as it is)."""
    with engine.begin() as conn:
        row = _pending_for_update(conn, message_id)
        if row.claimed_by == user.username:
            conn.execute(text("update reply_drafts set claimed_by = null, claimed_at = null where message_id = :id"),
                         {"id": message_id})
            return Claim(message_id, None, None, row.version, False)
    live = _claim_live(row, now(), claim_ttl)
    return Claim(message_id, row.claimed_by if live else None, row.claimed_at if live else None, row.version, False)


def _check_claim(row, user: User, version: int | None, claim_ttl: float) -> None:
    """Refuse a decision on a pending draft someone else is editing, or one read before a take-over."""
    if _claim_live(row, now(), claim_ttl) and row.claimed_by != user.username:
        raise DecisionError(f"{row.claimed_by} is editing this draft (since {row.claimed_at:%H:%M} UTC): take it "
                            "over to decide it; nothing was changed", 409)
    if version is not None and version != row.version:
        who = f" ({row.claimed_by} took it over)" if row.claimed_by and row.claimed_by != user.username else ""
        raise DecisionError(f"this draft changed since you opened it{who}: your decision was not saved; reload "
                            "it to see the draft as it is now", 409)


def conversation(engine: Engine, conversation_id: str, limit: int = 500) -> list:
    """The conversation's messages in order, each with its draft and the reply sent (if any)."""
    with engine.connect() as conn:
        return list(conn.execute(text(
            "select m.id as message_id, m.text, m.event_time, m.customer_id, m.channel, m.sentiment_label, "
            "m.customer_state, "
            "d.draft, d.intent, d.intent_score, d.escalate, d.escalation_reason, d.status, d.decided_by, "
            "o.text as sent_text, o.sent_by, o.auto, o.created_at as sent_at "
            "from chat_messages m left join reply_drafts d on d.message_id = m.id "
            "left join outbound_replies o on o.message_id = m.id "
            "where m.conversation_id = :c order by m.event_time, m.id limit :limit"),
            {"c": conversation_id, "limit": limit}))


# what a decision sets besides the status: who and when, the claim gone, the version moved


def _intent(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_INTENT:
        raise DecisionError(f"a corrected intent is 1 to {MAX_INTENT} characters", 422)
    return value


def approve(engine: Engine, message_id: str, user: User, text_: str | None = None,
            corrected_intent: str | None = None, version: int | None = None,
            claim_ttl: float = CLAIM_TTL) -> tuple[Outbound, bool]:
    """Send the draft (as is, or as edited in ``text_``): returns its outbound reply and whether this call
    decided it (False: it was already sent). Raises DecisionError for a missing or rejected draft, one someone
    else is editing, or one that moved past ``version`` (the version the caller read it at; None: unchecked)."""
    corrected = _intent(corrected_intent)
    with engine.begin() as conn:
        row = conn.execute(text("select message_id, conversation_id, draft, intent, status, claimed_by, claimed_at, "
                                "version from reply_drafts where message_id = :id for update"),
                           {"id": message_id}).first()
        if row is None:
            raise DecisionError(f"no draft for message {message_id!r}", 404)
        if row.status == "sent":
            out = conn.execute(text("select * from outbound_replies where message_id = :id"),
                               {"id": message_id}).first()
            if out is None:  # sent by another path that keeps no outbox row: nothing more to send
                raise DecisionError(f"the reply to message {message_id!r} was already sent", 409)
            if text_ is not None and text_.strip() != out.text:  # an edit that came too late is not dropped silently
                raise DecisionError(f"the reply to message {message_id!r} was already sent, as: {out.text}", 409,
                                    sent_text=out.text)
            return _outbound(out), False
        if row.status == "rejected":
            raise DecisionError(f"the draft for message {message_id!r} was rejected", 409)
        _check_claim(row, user, version, claim_ttl)
        final = row.draft if text_ is None else text_.strip()
        if not final:
            raise DecisionError("the reply is empty", 422)
        if len(final) > MAX_REPLY:
            raise DecisionError(f"the reply is longer than {MAX_REPLY} characters", 422)
        edited = final != row.draft
        decided = now()
        conn.execute(text("update reply_drafts set status = 'sent', decided_by = :by, decided_at = :at, "
                          "claimed_by = null, claimed_at = null, version = version + 1 where message_id = :id"),
                     {"id": message_id, "by": user.username, "at": decided})
        conn.execute(text(
            "insert into reply_reviews (message_id, action, final_text, reviewer, intent, corrected_intent, "
            "reviewed_at) values (:id, :action, :final, :by, :intent, :corrected, :at)"),
            {"id": message_id, "action": "edit" if edited else "approve", "final": final, "by": user.username,
             "intent": row.intent, "corrected": corrected, "at": decided})
        out = conn.execute(text(
            "insert into outbound_replies (message_id, conversation_id, text, sent_by, auto, edited) "
            "values (:id, :c, :t, :by, false, :e) returning *"),
            {"id": message_id, "c": row.conversation_id, "t": final, "by": user.username, "e": edited}).first()
        record = _outbound(out).record()
        conn.execute(insert(outbox.OUTBOX).on_conflict_do_nothing(),
                     outbox.row(outbox.OUTBOUND, message_id, record.key(), record.value(), due_in=0))
    return _outbound(out), True


def reject(engine: Engine, message_id: str, user: User, reason: str, corrected_intent: str | None = None,
           version: int | None = None, claim_ttl: float = CLAIM_TTL) -> bool:
    """Reject the draft with a reason; True when this call decided it (False: it was already rejected).
    Refused like ``approve`` while someone else is editing it or once it moved past ``version``."""
    reason = (reason or "").strip()
    if not reason:
        raise DecisionError("a rejection needs a reason", 422)
    if len(reason) > MAX_REASON:
        raise DecisionError(f"the reason is longer than {MAX_REASON} characters", 422)
    corrected = _intent(corrected_intent)
    with engine.begin() as conn:
        row = conn.execute(text("select intent, status, claimed_by, claimed_at, version from reply_drafts "
                                "where message_id = :id for update"), {"id": message_id}).first()
        if row is None:
            raise DecisionError(f"no draft for message {message_id!r}", 404)
        if row.status == "rejected":
            return False
        if row.status == "sent":
            raise DecisionError(f"the reply to message {message_id!r} was already sent", 409)
        _check_claim(row, user, version, claim_ttl)
        decided = now()
        conn.execute(text("update reply_drafts set status = 'rejected', decided_by = :by, decided_at = :at, "
                          "claimed_by = null, claimed_at = null, version = version + 1 where message_id = :id"),
                     {"id": message_id, "by": user.username, "at": decided})
        conn.execute(text(
            "insert into reply_reviews (message_id, action, reason, reviewer, intent, corrected_intent, reviewed_at) "
            "values (:id, 'reject', :reason, :by, :intent, :corrected, :at)"),
            {"id": message_id, "reason": reason, "by": user.username, "intent": row.intent,
             "corrected": corrected, "at": decided})
    return True


def _outbound(row) -> Outbound:
    return Outbound(message_id=row.message_id, conversation_id=row.conversation_id, text=row.text,
                    sent_by=row.sent_by, auto=row.auto, edited=row.edited, produced=row.produced_at is not None)


# -- charts -------------------------------------------------------------------------------------------
def sentiment_series(engine: Engine, key: str, start: datetime, end: datetime) -> list:
    """Hourly mentions, negatives and mean sentiment of one company or ticker between two times."""
    with engine.connect() as conn:
        return list(conn.execute(text(
            "select date_trunc('hour', event_time) as hour, count(*) as mentions, "
            "sum(case when is_negative then 1 else 0 end) as negatives, avg(sentiment) as sentiment "
            "from article_keys where key = :k and event_time >= :a and event_time < :b "
            "group by 1 order by 1"), {"k": key, "a": start, "b": end}))


def reading_label(negative: float, sentiment: float) -> str:
    """The label of a reading stored as its negative probability and positive minus negative: the three
    probabilities are recovered exactly (positive = sentiment + negative, neutral = the rest)."""
    positive = sentiment + negative
    scores = {"negative": negative, "positive": positive, "neutral": 1.0 - positive - negative}
    return max(scores, key=lambda label: (scores[label], label == "neutral"))


def story_sentiments(engine: Engine, key: str, article_ids: list[str]) -> dict[str, dict]:
    """Article id → {"label", "score", "toward"}: the sentiment toward the company ``key`` stored with the article
    (``article_keys``, toward True), or the whole article's where none is (toward False)."""
    if not article_ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(text(
            "select a.id, k.negative as key_negative, k.sentiment as key_sentiment, a.sentiment_label, "
            "a.positive - a.negative as article_sentiment from news_articles a "
            "left join article_keys k on k.article_id = a.id and k.key = :key where a.id = any(:ids)"),
            {"key": key, "ids": list(article_ids)}).all()
    out = {}
    for r in rows:
        if r.key_sentiment is not None:
            out[r.id] = {"label": reading_label(r.key_negative, r.key_sentiment), "score": r.key_sentiment,
                         "toward": True}
        else:
            out[r.id] = {"label": r.sentiment_label, "score": r.article_sentiment, "toward": False}
    return out
