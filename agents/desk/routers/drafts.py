"""The review queue: reply drafts to approve (as written or edited) or reject, as pages and as JSON.

An approved reply is written to the outbox in the decision's transaction; the worker's outbox sweep
sends it to ``chat.outbound``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

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


class RejectBody(BaseModel):
    reason: str = Field(max_length=store.MAX_REASON * 2)
    intent: str | None = Field(None, max_length=store.MAX_INTENT)


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


# -- pages ----------------------------------------------------------------------------------------------
def drafts_page(request: Request, engine: Engine, user: User, status: str, escalated: bool | None, title: str):
    if status not in store.STATUSES:
        status = "pending"
    rows = store.list_drafts(engine, status, limit=50, escalated=escalated)
    return render(request, "drafts.html", user=user, drafts=rows, status=status, title=title,
                  answers=request.app.state.answers, intents=request.app.state.intents,
                  escalations=escalated is True)


@router.get("/drafts", response_class=HTMLResponse)
def drafts(request: Request, engine: EngineDep, user: SignedIn, status: str = "pending"):
    return drafts_page(request, engine, user, status, None, "Review queue")


@router.get("/escalations", response_class=HTMLResponse)
def escalations(request: Request, engine: EngineDep, user: SignedIn, status: str = "pending"):
    return drafts_page(request, engine, user, status, True, "Escalations")


def decided(request: Request, engine: Engine, user: User, message_id: str, error: str | None, code: int = 200):
    """After a decision from a page: the card's new state (htmx) or back to the queue."""
    if request.headers.get("hx-request"):
        row = store.get_draft(engine, message_id)
        # 200 even for an error: htmx swaps only successful answers, and the card must say what happened
        return render(request, "decided.html", 200, draft=row, error=error)
    if error:
        return render(request, "error.html", code, user=user, error=error)
    return RedirectResponse("/drafts", status_code=303)


def draft_form(request: Request, engine: Engine, user: User, csrf_ok: bool, message_id: str,
               decide: Callable[[], str | None]) -> Response:
    """A decision from a page once its form is checked; ``decide()`` records it and gives the error to
    show (a refused decision raises ``DecisionError``)."""
    if not csrf_ok:
        return decided(request, engine, user, message_id, "The form has expired: reload the page.", 403)
    try:
        error = decide()
    except DecisionError as exc:
        return decided(request, engine, user, message_id, str(exc), exc.code)
    return decided(request, engine, user, message_id, error, 503)


@router.post("/drafts/{message_id:path}/approve")
def approve_form(request: Request, message_id: str, engine: EngineDep, reviews: Reviews, user: SignedIn,
                 csrf_ok: FormCsrf, text: Annotated[str, Form()] = "", intent: Annotated[str, Form()] = ""):
    def approve() -> str | None:
        # an emptied reply is refused
        reply, decided_now = store.approve(engine, message_id, user, text, corrected(reviews, intent))
        if decided_now:
            count_review(engine, reviews, message_id, "edit" if reply.edited else "approve")
        return None  # the worker's outbox sweep sends the reply

    return draft_form(request, engine, user, csrf_ok, message_id, approve)


@router.post("/drafts/{message_id:path}/reject")
def reject_form(request: Request, message_id: str, engine: EngineDep, reviews: Reviews, user: SignedIn,
                csrf_ok: FormCsrf, reason: Annotated[str, Form()] = "", intent: Annotated[str, Form()] = ""):
    def reject() -> None:
        if store.reject(engine, message_id, user, reason, corrected(reviews, intent)):
            count_review(engine, reviews, message_id, "reject")

    return draft_form(request, engine, user, csrf_ok, message_id, reject)


@router.get("/conversations/{conversation_id:path}", response_class=HTMLResponse)
def thread(request: Request, conversation_id: str, engine: EngineDep, user: SignedIn):
    rows = store.conversation(engine, conversation_id)
    return render(request, "thread.html", 200 if rows else 404, user=user, conversation_id=conversation_id,
                  messages=rows)


# -- JSON API -------------------------------------------------------------------------------------------
@router.get("/api/drafts", dependencies=[Depends(reading_caller)])
def api_drafts(engine: EngineDep, status: str = "pending", limit: int = 100):
    if status not in store.STATUSES:
        return JSONResponse({"detail": f"status is one of {', '.join(store.STATUSES)}"}, status_code=422)
    return [store.draft_dict(r) for r in store.list_drafts(engine, status, limit=max(1, min(limit, 1000)))]


@router.post("/api/drafts/{message_id:path}/approve")
def api_approve(message_id: str, caller: Writer, engine: EngineDep, reviews: Reviews,
                body: Annotated[ApproveBody | None, Body()] = None):
    body = body or ApproveBody()
    try:
        reply, decided_now = store.approve(engine, message_id, caller.user, body.text,
                                           corrected(reviews, body.intent))
    except DecisionError as exc:
        sent = {"sent_text": exc.sent_text} if exc.sent_text is not None else {}
        return JSONResponse({"detail": str(exc), **sent}, status_code=exc.code)
    if decided_now:
        count_review(engine, reviews, message_id, "edit" if reply.edited else "approve")
    # "produced": whether chat.outbound already has it; the worker's outbox sweep sends a new decision
    return {"message_id": message_id, "status": "sent", "decided": decided_now, "produced": reply.produced,
            "outbound": reply.record().model_dump()}


@router.post("/api/drafts/{message_id:path}/reject")
def api_reject(message_id: str, body: RejectBody, caller: Writer, engine: EngineDep, reviews: Reviews):
    try:
        decided_now = store.reject(engine, message_id, caller.user, body.reason, corrected(reviews, body.intent))
    except DecisionError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=exc.code)
    if decided_now:
        count_review(engine, reviews, message_id, "reject")
    return {"message_id": message_id, "status": "rejected", "decided": decided_now}
