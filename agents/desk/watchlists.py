"""Watchlists in PostgreSQL: the companies a desk user follows, privately (``owner_id`` is theirs) or shared with
everyone (no owner).

Who may do what: everyone sees the shared lists and their own; a private list of someone else's does not exist
for them (LookupError, a 404, so its name and id say nothing). A private list is edited by its owner only; a
shared one by its creator and by supervisors; whoever may edit a list sets its webhook (``agents/alerts/routing.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine, text

from agents.alerts import routing
from agents.desk.present import http_url
from agents.desk.store import User

MAX_NAME = 128


@dataclass
class Watchlist:
    id: int
    name: str
    shared: bool
    created_by: str
    company_ids: list[str]
    editable: bool  # by the user it was read for
    webhook_host: str | None  # where its alerts are POSTed (the URL itself, often a secret, is never shown)
    webhook_format: str | None

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "shared": self.shared, "created_by": self.created_by,
                "companies": self.company_ids, "editable": self.editable,
                "webhook": {"host": self.webhook_host, "format": self.webhook_format} if self.webhook_host else None}


class WatchlistError(ValueError):
    """A change that cannot be made; ``code`` is the HTTP status that says why."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def may_edit(user: User, owner_id: int | None, created_by: str) -> bool:
    if owner_id is not None:
        return owner_id == user.id
    return user.role == "supervisor" or created_by == user.username


_VISIBLE = "(w.owner_id is null or w.owner_id = :user)"
_SELECT = ("select w.id, w.name, w.owner_id, w.created_by, w.webhook_url, w.webhook_format, "
           "coalesce(array_agg(wc.company_id order by wc.company_id) filter (where wc.company_id is not null), "
           "'{}') as company_ids "
           "from watchlists w left join watchlist_companies wc on wc.watchlist_id = w.id "
           f"where {_VISIBLE} and (cast(:id as integer) is null or w.id = cast(:id as integer)) "
           "group by w.id order by w.owner_id is null, lower(w.name), w.id")


def _watchlist(row, user: User) -> Watchlist:
    return Watchlist(row.id, row.name, row.owner_id is None, row.created_by, list(row.company_ids),
                     may_edit(user, row.owner_id, row.created_by),
                     urlsplit(row.webhook_url).hostname if row.webhook_url else None, row.webhook_format)


def visible(engine: Engine, user: User) -> list[Watchlist]:
    """The user's own lists, then the shared ones, each by name."""
    with engine.connect() as conn:
        return [_watchlist(r, user) for r in conn.execute(text(_SELECT), {"user": user.id, "id": None})]


def get(engine: Engine, user: User, watchlist_id: int) -> Watchlist:
    """The list, when the user may see it; LookupError otherwise."""
    with engine.connect() as conn:
        row = conn.execute(text(_SELECT), {"user": user.id, "id": watchlist_id}).first()
    if row is None:
        raise LookupError(f"no watchlist {watchlist_id}")
    return _watchlist(row, user)


def create(engine: Engine, user: User, name: str, shared: bool) -> int:
    name = (name or "").strip()
    if not 1 <= len(name) <= MAX_NAME or not name.isprintable():
        raise WatchlistError(f"a watchlist's name is 1 to {MAX_NAME} printable characters", 422)
    with engine.begin() as conn:
        return conn.execute(text("insert into watchlists (name, owner_id, created_by) values (:n, :o, :by) "
                                 "returning id"), {"n": name, "o": None if shared else user.id,
                                                   "by": user.username}).scalar_one()


_LOCK_VISIBLE = f"select owner_id, created_by from watchlists w where w.id = :id and {_VISIBLE} for update"


def _editable(conn, user: User, watchlist_id: int) -> None:
    """Lock the list for a change by ``user``: LookupError when they cannot see it, WatchlistError (403) when they
    may see but not edit it."""
    row = conn.execute(text(_LOCK_VISIBLE), {"id": watchlist_id, "user": user.id}).first()
    if row is None:
        raise LookupError(f"no watchlist {watchlist_id}")
    if not may_edit(user, row.owner_id, row.created_by):
        raise WatchlistError("only its creator or a supervisor can change a shared watchlist", 403)


def add_company(engine: Engine, user: User, watchlist_id: int, company_id: str) -> bool:
    """Put a company of the company master on the list; True when it was not on it yet."""
    company_id = (company_id or "").strip()
    with engine.begin() as conn:
        _editable(conn, user, watchlist_id)
        if conn.execute(text("select 1 from companies where id = :c"), {"c": company_id}).first() is None:
            raise WatchlistError("no company with that id in the company master (see `sentinel companies`)", 422)
        return conn.execute(text(
            "insert into watchlist_companies (watchlist_id, company_id, added_by) values (:w, :c, :by) "
            "on conflict do nothing"), {"w": watchlist_id, "c": company_id, "by": user.username}).rowcount == 1


def remove_company(engine: Engine, user: User, watchlist_id: int, company_id: str) -> bool:
    """Take a company off the list; True when it was on it."""
    with engine.begin() as conn:
        _editable(conn, user, watchlist_id)
        return conn.execute(text("delete from watchlist_companies where watchlist_id = :w and company_id = :c"),
                            {"w": watchlist_id, "c": company_id}).rowcount == 1


def delete(engine: Engine, user: User, watchlist_id: int) -> None:
    with engine.begin() as conn:
        _editable(conn, user, watchlist_id)
        conn.execute(text("delete from watchlists where id = :id"), {"id": watchlist_id})


def set_webhook(engine: Engine, user: User, watchlist_id: int, url: str, fmt: str) -> None:
    """Route the list's companies' new alerts to ``url`` (http or https) in ``fmt`` (slack or teams); an empty URL
    stops the routing."""
    url = (url or "").strip()
    if url and not http_url(url):
        raise WatchlistError("a webhook URL is an absolute http or https URL", 422)
    if url and fmt not in routing.FORMATS:
        raise WatchlistError(f"a webhook format is one of {', '.join(routing.FORMATS)}", 422)
    with engine.begin() as conn:
        _editable(conn, user, watchlist_id)
        conn.execute(text("update watchlists set webhook_url = :u, webhook_format = :f where id = :id"),
                     {"u": url or None, "f": fmt if url else None, "id": watchlist_id})
