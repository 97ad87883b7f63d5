"""The review queue: reply drafts to approve (as written or edited) or reject, as pages and as JSON.

An approved reply is written to the outbox in the decision's transaction; the worker's outbox sweep
sends it to ``chat.outbound``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from agents.desk import feedback, store
from agents.desk.deps import EngineDep, FormCsrf, SignedIn, Writer, reading_caller, render
from agents.desk.store import DecisionError, User

log = logging.getLogger(__name__)
router = APIRouter()


class ApproveBody(BaseModel):
    text: str | None = Field(None, max_length=store.MAX_REPLY * 2)
    intent: str | None = Field(None, max_length=store.MAX_INTENT)  # a corrected intent, kept as training signal
    version: int | None = None  # the draft's version as read: refused (409) once someone took it over


class RejectBody(BaseModel):
    reason: str = Field(max_length=store.MAX_REASON * 2)
    intent: str | None = Field(None, max_length=store.MAX_INTENT)
    version: int | None = None


class ClaimBody(BaseModel):
    take_over: bool = False


def review_counters(request: Request) -> feedback.ReviewCounters:
    return request.app.state.reviews


Reviews = Annotated[feedback.ReviewCounters, Depends(review_counters)]


def corrected(reviews: feedback.ReviewCounters, intent: str | None) -> str | None:
    """A corrected intent as given (None or empty: none), or DecisionError (422) when the model lacks it."""
    if not intent:
        return None
    if intent not in reviews.intents:
        raise DecisionError("the corrected intent is not one the intent model knows", 422)
    return intent


def count_review(engine: Engine, reviews: feedback.ReviewCounters, message_id: str, action: str) -> None:
    """Count a decision this request took (after its commit) by the draft's intent."""
    try:
        row = store.get_draft(engine, message_id)
        reviews.count(row.intent if row else None, action)
    except Exception as exc:  # noqa: BLE001 - the decision is stored; only its count is lost
        log.warning("desk: cannot count the decision on %r: %r", message_id, str(exc)[:500])


def claim_ttl(request: Request) -> float:
    return request.app.state.settings.desk_claim_ttl


ClaimTtl = Annotated[float, Depends(claim_ttl)]


def form_version(value: str) -> int | None:
    """The version a page's form carries (none: unchecked)."""
    return int(value) if value.strip().lstrip("-").isdigit() else None


# -- pages ----------------------------------------------------------------------------------------------
def drafts_page(request: Request, engine: Engine, user: User, status: str, escalated: bool | None, title: str,
                intent: str, channel: str, q: str):
    state = request.app.state
    if status not in store.STATUSES:
        status = "pending"
    where = store.DraftFilter(escalated=escalated, intent=intent if intent in state.intents else None,
                              channel=channel[:64] or None, search=q[:store.MAX_SEARCH] or None)
    rows = store.list_drafts(engine, status, limit=50, where=where, claim_ttl=state.settings.desk_claim_ttl)
    kept = {"intent": where.intent or "", "channel": where.channel or "", "q": where.search or ""}
    tabs = [{"status": s, "count": n, "href": request.url.path + "?" + urlencode({"status": s, **kept})}
            for s, n in store.count_drafts(engine, where).items()]
    return render(request, "drafts.html", user=user, drafts=rows, status=status, title=title, tabs=tabs,
                  filters=kept, channels=store.channels(engine), answers=state.answers, intents=state.intents,
                  escalations=escalated is True, now=store.now())


@router.get("/drafts", response_class=HTMLResponse)
def drafts(request: Request, engine: EngineDep, user: SignedIn, status: str = "pending", intent: str = "",
           channel: str = "", q: str = ""):
    return drafts_page(request, engine, user, status, None, "Review queue", intent, channel, q)


@router.get("/escalations", response_class=HTMLResponse)
def escalations(request: Request, engine: EngineDep, user: SignedIn, status: str = "pending", intent: str = "",
                channel: str = "", q: str = ""):
    return drafts_page(request, engine, user, status, True, "Escalations", intent, channel, q)


def card(request: Request, engine: Engine, user: User, message_id: str, error: str | None = None,
         kept_text: str | None = None, code: int = 200) -> Response:
    """One card as it is now: in the queue's form while pending (with an error and the reviewer's own text kept
    when a decision was refused), else as decided."""
    row = store.get_draft(engine, message_id, claim_ttl(request))
    if row is None or row.status != "pending":
        return render(request, "decided.html", code, user=user, draft=row, error=error)
    state = request.app.state
    return render(request, "card.html", code, user=user, d=row, answers=state.answers, intents=state.intents,
                  now=store.now(), card_error=error, kept_text=kept_text)


def decided(request: Request, engine: Engine, user: User, message_id: str, error: str | None, code: int = 200,
            kept_text: str | None = None):
    """After a decision from a page: the card's new state (htmx) or back to the queue."""
    if request.headers.get("hx-request"):
        # 200 even for an error: htmx swaps only successful answers, and the card must say what happened
        return card(request, engine, user, message_id, error, kept_text)
    if error:
        return render(request, "error.html", code, user=user, error=error)
    return RedirectResponse("/drafts", status_code=303)


def draft_form(request: Request, engine: Engine, user: User, csrf_ok: bool, message_id: str,
               decide: Callable[[], str | None], kept_text: str | None = None) -> Response:
    """A decision from a page once its form is checked; ``decide()`` records it and gives the error to
    show (a refused decision raises ``DecisionError``; the card keeps the reviewer's text)."""
    if not csrf_ok:
        return decided(request, engine, user, message_id, "The form has expired: reload the page.", 403, kept_text)
    try:
        error = decide()
    except DecisionError as exc:
        return decided(request, engine, user, message_id, str(exc), exc.code, kept_text)
    return decided(request, engine, user, message_id, error, 503)


@router.post("/drafts/{message_id:path}/approve")
def approve_form(request: Request, message_id: str, engine: EngineDep, reviews: Reviews, user: SignedIn,
                 csrf_ok: FormCsrf, ttl: ClaimTtl, text: Annotated[str, Form()] = "",
                 intent: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                 version: Annotated[str, Form(max_length=20)] = ""):
    def approve() -> str | None:
        if reason.strip():  # Enter in the reason field submits the form's first button: never send by mistake
            raise DecisionError("You wrote a reason to reject: press Reject, or clear the reason to approve.", 422)
        # an emptied reply is refused
        reply, decided_now = store.approve(engine, message_id, user, text, corrected(reviews, intent),
                                           form_version(version), ttl)
        if decided_now:
            count_review(engine, reviews, message_id, "edit" if reply.edited else "approve")
        return None  # the worker's outbox sweep sends the reply

    return draft_form(request, engine, user, csrf_ok, message_id, approve, kept_text=text)


@router.post("/drafts/{message_id:path}/reject")
def reject_form(request: Request, message_id: str, engine: EngineDep, reviews: Reviews, user: SignedIn,
                csrf_ok: FormCsrf, ttl: ClaimTtl, reason: Annotated[str, Form()] = "",
                intent: Annotated[str, Form()] = "", text: Annotated[str, Form()] = "",
                version: Annotated[str, Form(max_length=20)] = ""):
    def reject() -> None:
        if store.reject(engine, message_id, user, reason, corrected(reviews, intent), form_version(version), ttl):
            count_review(engine, reviews, message_id, "reject")

    return draft_form(request, engine, user, csrf_ok, message_id, reject, kept_text=text or None)


def claim_form(request: Request, engine: Engine, user: User, csrf_ok: bool, message_id: str,
               act: Callable[[], store.Claim]) -> Response:
    """A claim, take-over or release from a page: the card's claim line (htmx) or back to the queue."""
    if not csrf_ok:
        return decided(request, engine, user, message_id, "The form has expired: reload the page.", 403)
    try:
        claim = act()
    except DecisionError as exc:
        return decided(request, engine, user, message_id, str(exc), exc.code)
    if request.headers.get("hx-request"):
        return render(request, "_claim.html", user=user, message_id=message_id, editor=claim.editor,
                      since=claim.since, version=claim.version, oob=True)
    return RedirectResponse("/drafts", status_code=303)


@router.post("/drafts/{message_id:path}/claim")
def claim_page(request: Request, message_id: str, engine: EngineDep, user: SignedIn, csrf_ok: FormCsrf,
               ttl: ClaimTtl, take_over: Annotated[str, Form(max_length=8)] = ""):
    return claim_form(request, engine, user, csrf_ok, message_id,
                      lambda: store.claim(engine, message_id, user, take_over == "1", ttl))


@router.post("/drafts/{message_id:path}/release")
def release_page(request: Request, message_id: str, engine: EngineDep, user: SignedIn, csrf_ok: FormCsrf,
                 ttl: ClaimTtl):
    return claim_form(request, engine, user, csrf_ok, message_id, lambda: store.release(engine, message_id, user, ttl))


@router.get("/conversations/{conversation_id:path}", response_class=HTMLResponse)
def thread(request: Request, conversation_id: str, engine: EngineDep, user: SignedIn):
    rows = store.conversation(engine, conversation_id)
    return render(request, "thread.html", 200 if rows else 404, user=user, conversation_id=conversation_id,
                  messages=rows)


# -- JSON API -------------------------------------------------------------------------------------------
@router.get("/api/drafts", dependencies=[Depends(reading_caller)])
def api_drafts(engine: EngineDep, ttl: ClaimTtl, status: str = "pending", limit: int = 100, intent: str = "",
               channel: str = "", q: str = "", escalated: bool | None = None):
    if status not in store.STATUSES:
        return JSONResponse({"detail": f"status is one of {', '.join(store.STATUSES)}"}, status_code=422)
    where = store.DraftFilter(escalated=escalated, intent=intent[:store.MAX_INTENT] or None,
                              channel=channel[:64] or None, search=q[:store.MAX_SEARCH] or None)
    rows = store.list_drafts(engine, status, limit=max(1, min(limit, 1000)), where=where, claim_ttl=ttl)
    return [store.draft_dict(r) for r in rows]


def claim_dict(claim: store.Claim) -> dict:
    return {"message_id": claim.message_id, "editor": claim.editor, "granted": claim.granted,
            "since": claim.since.isoformat() if claim.since else None, "version": claim.version}


@router.post("/api/drafts/{message_id:path}/claim")
def api_claim(message_id: str, caller: Writer, engine: EngineDep, ttl: ClaimTtl,
              body: Annotated[ClaimBody | None, Body()] = None):
    try:
        claim = store.claim(engine, message_id, caller.user, (body or ClaimBody()).take_over, ttl)
    except DecisionError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=exc.code)
    return JSONResponse(claim_dict(claim), status_code=200 if claim.granted else 409)


@router.post("/api/drafts/{message_id:path}/release")
def api_release(message_id: str, caller: Writer, engine: EngineDep, ttl: ClaimTtl):
    try:
        return claim_dict(store.release(engine, message_id, caller.user, ttl))
    except DecisionError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=exc.code)


@router.post("/api/drafts/{message_id:path}/approve")
def api_approve(message_id: str, caller: Writer, engine: EngineDep, reviews: Reviews, ttl: ClaimTtl,
                body: Annotated[ApproveBody | None, Body()] = None):
    body = body or ApproveBody()
    try:
        reply, decided_now = store.approve(engine, message_id, caller.user, body.text,
                                           corrected(reviews, body.intent), body.version, ttl)
    except DecisionError as exc:
        sent = {"sent_text": exc.sent_text} if exc.sent_text is not None else {}
        return JSONResponse({"detail": str(exc), **sent}, status_code=exc.code)
    if decided_now:
        count_review(engine, reviews, message_id, "edit" if reply.edited else "approve")
    # "produced": whether chat.outbound already has it; the worker's outbox sweep sends a new decision
    return {"message_id": message_id, "status": "sent", "decided": decided_now, "produced": reply.produced,
            "outbound": reply.record().model_dump()}


@router.post("/api/drafts/{message_id:path}/reject")
def api_reject(message_id: str, body: RejectBody, caller: Writer, engine: EngineDep, reviews: Reviews,
               ttl: ClaimTtl):
    try:
        decided_now = store.reject(engine, message_id, caller.user, body.reason, corrected(reviews, body.intent),
                                   body.version, ttl)
    except DecisionError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=exc.code)
    if decided_now:
        count_review(engine, reviews, message_id, "reject")
    return {"message_id": message_id, "status": "rejected", "decided": decided_now}
