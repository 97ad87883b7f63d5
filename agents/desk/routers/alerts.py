"""Alerts: the list with a sentiment chart per company, acknowledging and resolving (supervisors only),
as pages and as JSON."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import Engine

from agents.alerts import lifecycle, records
from agents.desk import company_news, present, store, watchlists
from agents.desk.charts import Chart, sentiment_chart
from agents.desk.deps import EngineDep, FormCsrf, SignedIn, Writer, reading_caller, render
from agents.desk.store import User

router = APIRouter()
MAX_CHARTS = 10


def supervisor_only(user: User, action: Callable) -> str | None:
    """Why ``user`` may not take this alert action (None: they may)."""
    if user.role != "supervisor":
        verb = "resolve" if action is lifecycle.resolve else "acknowledge"
        return f"only a supervisor can {verb} an alert"
    return None


def charts_of(engine: Engine, rows: list) -> dict[str, Chart]:
    """A sentiment chart per company among the alerts (escalations have none): from a day before the
    alert opened to six hours after it was last seen."""
    charts = {}
    for row in rows:
        if row.kind != "escalation" and row.key not in charts and len(charts) < MAX_CHARTS:
            start = row.opened_at - timedelta(hours=24)
            end = max(row.last_seen_at, row.opened_at) + timedelta(hours=6)
            charts[row.key] = sentiment_chart(store.sentiment_series(engine, row.key, start, end), start, end)
    return charts


def shown(engine: Engine, row) -> dict:
    """An alert as its page shows it: the fields, the statistics in a sentence and its stories as rows."""
    alert = lifecycle.as_dict(row)
    payload = row.payload if isinstance(row.payload, dict) else {}
    stories = payload.get("stories") if isinstance(payload.get("stories"), list) else []
    ids = [str(s["article_id"]) for s in stories if isinstance(s, dict) and s.get("article_id") is not None]
    readings = store.story_sentiments(engine, row.key, ids) if row.kind != "escalation" else {}
    return {**alert, "name": records.shown_name(row.key, row.payload), "opened": row.opened_at,
            "sentence": present.evidence_sentence(payload),
            "stories": present.story_rows(payload, readings)}


# -- pages ----------------------------------------------------------------------------------------------
@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, engine: EngineDep, user: SignedIn, status: str = "unresolved",
                watchlist: str = ""):
    """The alerts by status; with ``watchlist`` (an id; empty: every company), only its companies' alerts."""
    if status not in lifecycle.STATUS_FILTERS:
        status = "unresolved"
    lists = watchlists.visible(engine, user)
    chosen = next((w for w in lists if str(w.id) == watchlist.strip()), None)
    if watchlist.strip() and chosen is None:
        return render(request, "error.html", 404, user=user, error="No such watchlist.")
    keys = None if chosen is None else [company_news.company_key(c) for c in chosen.company_ids]
    rows = lifecycle.list_alerts(engine, status, limit=100, keys=keys)
    return render(request, "alerts.html", user=user, alerts=[shown(engine, r) for r in rows],
                  charts=charts_of(engine, rows), names={r.key: records.shown_name(r.key, r.payload) for r in rows},
                  status=status, statuses=list(lifecycle.STATUS_FILTERS), watchlists=lists, watchlist=chosen)


def alert_form(request: Request, engine: Engine, user: User, csrf_ok: bool, alert_id: str,
               action: Callable) -> Response:
    if not csrf_ok:
        return render(request, "error.html", 403, user=user, error="The form has expired: reload the page.")
    if refused := supervisor_only(user, action):
        return render(request, "error.html", 403, user=user, error=refused[0].upper() + refused[1:] + ".")
    if action(engine, alert_id, user.username) is None:
        return render(request, "error.html", 404, user=user, error="No such alert.")
    return RedirectResponse("/alerts", status_code=303)


@router.post("/alerts/{alert_id:path}/ack")
def ack_form(request: Request, alert_id: str, engine: EngineDep, user: SignedIn, csrf_ok: FormCsrf):
    return alert_form(request, engine, user, csrf_ok, alert_id, lifecycle.acknowledge)


@router.post("/alerts/{alert_id:path}/resolve")
def resolve_form(request: Request, alert_id: str, engine: EngineDep, user: SignedIn, csrf_ok: FormCsrf):
    return alert_form(request, engine, user, csrf_ok, alert_id, lifecycle.resolve)


# -- JSON API -------------------------------------------------------------------------------------------
@router.get("/api/alerts", dependencies=[Depends(reading_caller)])
def api_alerts(engine: EngineDep, status: str = "open", limit: int = 200):
    if status not in lifecycle.STATUS_FILTERS:
        return JSONResponse({"detail": f"status is one of {', '.join(lifecycle.STATUS_FILTERS)}"},
                            status_code=422)
    return [lifecycle.as_dict(r) for r in lifecycle.list_alerts(engine, status, max(1, min(limit, 1000)))]


def api_alert(engine: Engine, user: User, alert_id: str, action: Callable):
    if refused := supervisor_only(user, action):
        return JSONResponse({"detail": refused}, status_code=403)
    row = action(engine, alert_id, user.username)
    if row is None:
        return JSONResponse({"detail": f"no alert {alert_id!r}"}, status_code=404)
    return lifecycle.as_dict(row)


@router.post("/api/alerts/{alert_id:path}/ack")
def api_ack(alert_id: str, engine: EngineDep, caller: Writer):
    return api_alert(engine, caller.user, alert_id, lifecycle.acknowledge)


@router.post("/api/alerts/{alert_id:path}/resolve")
def api_resolve(alert_id: str, engine: EngineDep, caller: Writer):
    return api_alert(engine, caller.user, alert_id, lifecycle.resolve)
