"""Company pages and watchlists: the companies with news (watched first), one company's sentiment, stories and
alerts, and the watchlists' forms, as pages and as JSON."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy import Engine

from agents.alerts import lifecycle, routing
from agents.desk import company_news, present, store, watchlists
from agents.desk.charts import sentiment_chart
from agents.desk.deps import Caller, EngineDep, FormCsrf, SignedIn, reading_caller, render
from agents.desk.store import User
from agents.desk.watchlists import WatchlistError

router = APIRouter()
Reader = Annotated[Caller, Depends(reading_caller)]
CHART_SPAN = timedelta(days=7)
STORY_SPAN = timedelta(days=30)


def company_view(engine: Engine, company_id: str):
    """What the company page shows (None for an unknown company): the company, its chart over the last 7 days,
    its stories of the last 30 days, its alerts."""
    company = company_news.company(engine, company_id)
    if company is None:
        return None
    now = store.now()
    start = now - CHART_SPAN
    key = company_news.company_key(company.id)
    series = store.sentiment_series(engine, key, start, now)
    alerts = [{**lifecycle.as_dict(r), "opened": r.opened_at, "sentence": present.evidence_sentence(
        r.payload if isinstance(r.payload, dict) else {})} for r in company_news.alerts(engine, company.id)]
    return {"company": company, "series": series, "chart": sentiment_chart(series, start, now),
            "stories": company_news.stories(engine, company.id, now - STORY_SPAN), "alerts": alerts}


# -- pages ----------------------------------------------------------------------------------------------
@router.get("/companies", response_class=HTMLResponse)
def companies_page(request: Request, engine: EngineDep, user: SignedIn):
    return render(request, "companies.html", user=user,
                  companies=company_news.summaries(engine, user.id, store.now()), percent=present.percent)


@router.get("/companies/{company_id:path}", response_class=HTMLResponse)
def company_page(request: Request, company_id: str, engine: EngineDep, user: SignedIn):
    view = company_view(engine, company_id)
    if view is None:
        return render(request, "error.html", 404, user=user, error="No such company.")
    editable = [w for w in watchlists.visible(engine, user) if w.editable]
    return render(request, "company.html", user=user, watchlists=editable, **view)


@router.get("/watchlists", response_class=HTMLResponse)
def watchlists_page(request: Request, engine: EngineDep, user: SignedIn):
    return render(request, "watchlists.html", user=user, watchlists=watchlists.visible(engine, user),
                  formats=routing.FORMATS)


def watchlist_form(request: Request, user: User, csrf_ok: bool, change, back: str = "/watchlists"):
    """Run a watchlist form's change: the error page for an expired form, an unknown list or a refused change,
    else back to ``back``."""
    if not csrf_ok:
        return render(request, "error.html", 403, user=user, error="The form has expired: reload the page.")
    try:
        change()
    except LookupError:
        return render(request, "error.html", 404, user=user, error="No such watchlist.")
    except WatchlistError as exc:
        return render(request, "error.html", exc.code, user=user, error=str(exc)[0].upper() + str(exc)[1:] + ".")
    return RedirectResponse(back, status_code=303)


def back_to(company_id: str) -> str:
    """Where a form returns: the page of the company it was posted from (always a path of ours), else the
    watchlists."""
    return "/companies/" + quote(company_id, safe="") if company_id else "/watchlists"


@router.post("/watchlists")
def create_form(request: Request, engine: EngineDep, user: SignedIn, csrf_ok: FormCsrf,
                name: Annotated[str, Form(max_length=1024)] = "", shared: Annotated[str, Form(max_length=8)] = ""):
    return watchlist_form(request, user, csrf_ok, lambda: watchlists.create(engine, user, name, shared == "on"))


@router.post("/watchlists/{watchlist_id}/add")
def add_form(request: Request, watchlist_id: int, engine: EngineDep, user: SignedIn, csrf_ok: FormCsrf,
             company_id: Annotated[str, Form(max_length=256)] = "",
             from_company: Annotated[str, Form(max_length=256)] = ""):
    return watchlist_form(request, user, csrf_ok,
                          lambda: watchlists.add_company(engine, user, watchlist_id, company_id), back_to(from_company))


@router.post("/watchlists/{watchlist_id}/remove")
def remove_form(request: Request, watchlist_id: int, engine: EngineDep, user: SignedIn, csrf_ok: FormCsrf,
                company_id: Annotated[str, Form(max_length=256)] = "",
                from_company: Annotated[str, Form(max_length=256)] = ""):
    return watchlist_form(request, user, csrf_ok,
                          lambda: watchlists.remove_company(engine, user, watchlist_id, company_id),
                          back_to(from_company))


@router.post("/watchlists/{watchlist_id}/webhook")
def webhook_form(request: Request, watchlist_id: int, engine: EngineDep, user: SignedIn, csrf_ok: FormCsrf,
                 url: Annotated[str, Form(max_length=2048)] = "",
                 webhook_format: Annotated[str, Form(max_length=16)] = ""):
    return watchlist_form(request, user, csrf_ok,
                          lambda: watchlists.set_webhook(engine, user, watchlist_id, url, webhook_format))


@router.post("/watchlists/{watchlist_id}/delete")
def delete_form(request: Request, watchlist_id: int, engine: EngineDep, user: SignedIn, csrf_ok: FormCsrf):
    return watchlist_form(request, user, csrf_ok, lambda: watchlists.delete(engine, user, watchlist_id))


# -- JSON API -------------------------------------------------------------------------------------------
@router.get("/api/companies")
def api_companies(engine: EngineDep, caller: Reader):
    return [c.as_dict() for c in company_news.summaries(engine, caller.user.id, store.now())]


@router.get("/api/companies/{company_id:path}")
def api_company(company_id: str, engine: EngineDep, caller: Reader):
    view = company_view(engine, company_id)
    if view is None:
        return JSONResponse({"detail": f"no company {company_id!r}"}, status_code=404)
    return {**view["company"].as_dict(),
            "sentiment": [{"hour": r.hour.isoformat(), "articles": int(r.mentions), "negatives": int(r.negatives),
                           "mean_sentiment": float(r.sentiment)} for r in view["series"]],
            "stories": [{"time": s.time.isoformat() if s.time else None, "headline": s.headline, "url": s.url,
                         "outlets": s.outlets, "copies": s.copies, "sentiment": s.sentiment, "score": s.score}
                        for s in view["stories"]],
            "alerts": [{k: v for k, v in a.items() if k != "opened"} for a in view["alerts"]]}


@router.get("/api/watchlists")
def api_watchlists(engine: EngineDep, caller: Reader):
    return [w.as_dict() for w in watchlists.visible(engine, caller.user)]
