"""The desk web app: review reply drafts, send or reject them, and work through alerts.

Server-rendered Jinja2 pages (autoescaped: customer text is shown as text, never as markup) with
one vendored script (htmx) and one of our own (keyboard shortcuts), under a strict
Content-Security-Policy; a JSON API for scripts (see README, "Desk"). Everything is read from and
written to the project's PostgreSQL; approved replies go to ``chat.outbound`` through the outbox (``agents/outbox.py``).
"""

from __future__ import annotations

import csv
import json
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import jinja2
from fastapi import Body, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from agents.alerts import lifecycle
from agents.desk import feedback, store
from agents.desk.charts import sentiment_chart
from agents.desk.security import Csrf, token_digest
from agents.desk.store import DecisionError, User
from infra.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "desk_session"
CSRF_COOKIE = "desk_csrf"
CSRF_HEADER = "x-csrf-token"
SHIPPED_KB = PROJECT_ROOT / "models" / "knowledge" / "bank_answers.jsonl"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


# -- request bodies of the JSON API ------------------------------------------------------------------
class LoginBody(BaseModel):
    username: str = Field(max_length=256)
    password: str = Field(max_length=4096)


class ApproveBody(BaseModel):
    text: str | None = Field(None, max_length=store.MAX_REPLY * 2)
    intent: str | None = Field(None, max_length=store.MAX_INTENT)  # a corrected intent, kept as training signal


class RejectBody(BaseModel):
    reason: str = Field(max_length=store.MAX_REASON * 2)
    intent: str | None = Field(None, max_length=store.MAX_INTENT)


# -- ASGI middleware ------------------------------------------------------------------------------------
class Guard:
    """Security headers on every response, and an early 413 for a declared ``Content-Length`` beyond
    ``max_body`` (a body that turns out larger as it streams, chunked or not, is cut off by the app's own
    ``max_body_size``: FastAPI answers 413 there too)."""

    def __init__(self, app, max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = self.max_body + 1
        if declared > self.max_body:
            return await self._too_large(send)

        async def guarded_send(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
            await send(message)

        await self.app(scope, receive, guarded_send)

    async def _too_large(self, send):
        body = json.dumps({"detail": f"request body larger than {self.max_body} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), *SECURITY_HEADERS]})
        await send({"type": "http.response.body", "body": body})


# -- the knowledge base's answers, to show what a draft was built from ---------------------------------
def knowledge_answers(settings: Settings) -> dict[str, dict]:
    """Answer id → {"intent", "answer"} from the configured knowledge base (empty when unreadable)."""
    path = Path(settings.knowledge_base) if settings.knowledge_base else SHIPPED_KB
    rows: list[dict] = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            if path.suffix.lower() == ".csv":
                rows = list(csv.DictReader(f))
            else:
                rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as exc:
        log.warning("desk: cannot read the knowledge base %s: %r", str(path), str(exc))
        return {}
    return {str(r.get("id") or f"kb-{n}"): {"intent": r.get("intent"), "answer": r.get("answer") or ""}
            for n, r in enumerate(rows, 1) if isinstance(r, dict)}


# -- the app --------------------------------------------------------------------------------------------
def trusted_proxies(settings: Settings) -> list[str]:
    """The addresses or networks in ``SENTINEL_DESK_TRUSTED_PROXIES`` (comma-separated; empty: none)."""
    return [p.strip() for p in settings.desk_trusted_proxies.split(",") if p.strip()]


def url_part(value) -> str:
    """A value quoted to be one segment of a URL path: ``/``, ``?``, ``#``, ``..`` and the rest stay data."""
    return quote(str(value), safe="")


def create_app(settings: Settings, engine: Engine | None = None) -> Guard:
    """The desk as an ASGI app: the FastAPI app inside ``Guard`` (headers and body cap on every response),
    behind uvicorn's ``ProxyHeadersMiddleware`` when proxies are trusted (``SENTINEL_DESK_TRUSTED_PROXIES``)."""
    from infra.db import make_engine

    if engine is None:
        engine = make_engine(settings.database_url, pool_size=4, statement_timeout=settings.db_statement_timeout)
    lifetime = settings.desk_session_lifetime
    csrf = Csrf(settings.desk_secret_key or secrets.token_urlsafe(32), lifetime)
    answers = knowledge_answers(settings)
    intents = feedback.known_intents(settings)  # a corrected intent is one of the intent model's labels
    reviews = feedback.ReviewCounters(intents)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["url_part"] = url_part
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True)

    app = FastAPI(title="Sentinel desk", docs_url=None, redoc_url=None, openapi_url=None,
                  max_body_size=settings.desk_max_body)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.state.engine = engine

    # -- helpers ------------------------------------------------------------------------------------
    def client_address(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def csrf_binding(request: Request) -> str | None:
        """What the request's CSRF token must be bound to: its session (a digest of the session cookie, so a
        token from another session or from before sign-in is refused), or before sign-in the CSRF cookie."""
        session = request.cookies.get(SESSION_COOKIE)
        if session and len(session) <= 256:
            return "session:" + token_digest("csrf:" + session)
        cookie = request.cookies.get(CSRF_COOKIE)
        return "browser:" + cookie if cookie and len(cookie) <= 64 else None

    def render(request: Request, name: str, code: int = 200, user: User | None = None, **ctx) -> HTMLResponse:
        binding, fresh = csrf_binding(request), None
        if binding is None:
            fresh = Csrf.new_cookie_value()
            binding = "browser:" + fresh
        html = env.get_template(name).render(csrf_token=csrf.token(binding), user=user,
                                             request_path=request.url.path, **ctx)
        response = HTMLResponse(html, status_code=code)
        if fresh:
            set_cookie(request, response, CSRF_COOKIE, fresh)
        return response

    def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
        response.set_cookie(name, value, max_age=int(lifetime), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")

    def csrf_ok(request: Request, token: str | None) -> bool:
        return csrf.valid(token, csrf_binding(request))

    def page_user(request: Request) -> User | None:
        return store.session_user(engine, request.cookies.get(SESSION_COOKIE), "cookie")

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    def unauthorized(detail: str = "sign in first: a session cookie or Authorization: Bearer TOKEN") -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    def api_user(request: Request, writes: bool) -> User | JSONResponse:
        """The caller of an API request, or the error response (401; 403 for a cookie write without CSRF)."""
        auth = api_auth(request, writes)
        return auth[0] if isinstance(auth, tuple) else auth

    def login_check(request: Request, username: str, password: str) -> tuple[User | None, float]:
        """The user, or None and the seconds to wait when rate-limited (0: the password was wrong).

        The attempt is counted in PostgreSQL before the password is checked (one atomic statement per
        attempt, shared by every desk process), so parallel guesses cannot get more password checks than
        the limit. A success clears the username's count and takes its attempt back from the address's."""
        by_user, by_address = f"user:{username[:64].casefold()}", f"address:{client_address(request)}"[:128]
        counts = store.count_attempt(engine, [by_user, by_address], settings.desk_login_window)
        over = [counts[key][1] for key, limit in ((by_user, settings.desk_login_max_per_user),
                                                  (by_address, settings.desk_login_max_per_address))
                if counts[key][0] > limit]
        if over:
            return None, max(max(over), 0.001)
        user = store.check_password(engine, username, password)
        if user is not None:
            store.forgive_attempt(engine, clear=[by_user], refund=[by_address])
        return user, 0.0

    def api_auth(request: Request, writes: bool) -> tuple[User, str, str | None] | JSONResponse:
        """Like ``api_user``, also with how the caller signed in and its token (bearer or cookie)."""
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return unauthorized("the Authorization header must be: Bearer TOKEN")
            user = store.session_user(engine, token.strip(), "bearer")
            return (user, "bearer", token.strip()) if user else unauthorized(
                "the token is unknown or expired: POST /api/login for a new one")
        user = page_user(request)
        if user is None:
            return unauthorized()
        if writes and not csrf_ok(request, request.headers.get(CSRF_HEADER)):
            return JSONResponse({"detail": "a session-cookie write needs the page's X-CSRF-Token header"},
                                status_code=403)
        return user, "cookie", request.cookies.get(SESSION_COOKIE)

    def supervisor_only(user: User, action: Callable) -> str | None:
        """Why ``user`` may not take this alert action (None: they may)."""
        if user.role != "supervisor":
            verb = "resolve" if action is lifecycle.resolve else "acknowledge"
            return f"only a supervisor can {verb} an alert"
        return None

    def corrected(intent: str | None) -> str | None:
        """A corrected intent as given (None or empty: none), or DecisionError (422) when the model lacks it."""
        if not intent:
            return None
        if intent not in reviews.intents:
            raise DecisionError("the corrected intent is not one the intent model knows", 422)
        return intent

    def count_review(message_id: str, action: str) -> None:
        """Count a decision this request took (after its commit) by the draft's intent."""
        try:
            row = store.get_draft(engine, message_id)
            reviews.count(row.intent if row else None, action)
        except Exception as exc:  # noqa: BLE001 - the decision is stored; only its count is lost
            log.warning("desk: cannot count the decision on %r: %r", message_id, str(exc)[:500])

    # -- sign-in ----------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def root(request: Request):
        return RedirectResponse("/drafts" if page_user(request) else "/login", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request):
        return render(request, "login.html", error=None)

    @app.post("/login", response_class=HTMLResponse)
    def login_form(request: Request, username: Annotated[str, Form(max_length=256)] = "",
                   password: Annotated[str, Form(max_length=4096)] = "",
                   csrf_token: Annotated[str, Form(max_length=512)] = ""):
        if not csrf_ok(request, csrf_token):
            return render(request, "login.html", 403, error="The form has expired. Please sign in again.")
        user, wait = login_check(request, username, password)
        if user is None:
            if wait:
                return render(request, "login.html", 429,
                              error=f"Too many failed sign-ins. Try again in {int(wait) + 1} seconds.")
            return render(request, "login.html", 401, error="Wrong username or password.")
        response = RedirectResponse("/drafts", status_code=303)
        set_cookie(request, response, SESSION_COOKIE, store.open_session(engine, user, "cookie", lifetime))
        # a new CSRF cookie too: the pages' tokens are bound to the new session, the sign-in form's no longer work
        set_cookie(request, response, CSRF_COOKIE, Csrf.new_cookie_value())
        return response

    @app.post("/logout")
    def logout(request: Request, csrf_token: Annotated[str, Form(max_length=512)] = ""):
        if csrf_ok(request, csrf_token):
            store.close_session(engine, request.cookies.get(SESSION_COOKIE))
        response = to_login()
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- pages --------------------------------------------------------------------------------------------
    def drafts_page(request: Request, status: str, escalated: bool | None, title: str):
        user = page_user(request)
        if user is None:
            return to_login()
        if status not in store.STATUSES:
            status = "pending"
        rows = store.list_drafts(engine, status, limit=50, escalated=escalated)
        return render(request, "drafts.html", user=user, drafts=rows, status=status, title=title,
                      answers=answers, intents=intents, escalations=escalated is True)

    @app.get("/drafts", response_class=HTMLResponse)
    def drafts(request: Request, status: str = "pending"):
        return drafts_page(request, status, None, "Review queue")

    @app.get("/escalations", response_class=HTMLResponse)
    def escalations(request: Request, status: str = "pending"):
        return drafts_page(request, status, True, "Escalations")

    def decided(request: Request, message_id: str, error: str | None, code: int = 200):
        """After a decision from a page: the card's new state (htmx) or back to the queue."""
        if request.headers.get("hx-request"):
            row = store.get_draft(engine, message_id)
            # 200 even for an error: htmx swaps only successful answers, and the card must say what happened
            return render(request, "decided.html", 200, draft=row, error=error)
        if error:
            return render(request, "error.html", code, user=page_user(request), error=error)
        return RedirectResponse("/drafts", status_code=303)

    def draft_form(request: Request, message_id: str, csrf_token: str, decide) -> Response:
        """A decision from a page, after the checks every decision shares; ``decide(user)`` records it and
        gives the error to show (a refused decision raises ``DecisionError``)."""
        user = page_user(request)
        if user is None:
            return to_login()
        if not csrf_ok(request, csrf_token):
            return decided(request, message_id, "The form has expired: reload the page.", 403)
        try:
            error = decide(user)
        except DecisionError as exc:
            return decided(request, message_id, str(exc), exc.code)
        return decided(request, message_id, error, 503)

    @app.post("/drafts/{message_id:path}/approve")
    def approve_form(request: Request, message_id: str, text: Annotated[str, Form()] = "",
                     intent: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form(max_length=512)] = ""):
        def approve(user: User) -> str | None:
            # an emptied reply is refused
            reply, decided_now = store.approve(engine, message_id, user, text, corrected(intent))
            if decided_now:
                count_review(message_id, "edit" if reply.edited else "approve")
            return None  # the worker's outbox sweep sends the reply

        return draft_form(request, message_id, csrf_token, approve)

    @app.post("/drafts/{message_id:path}/reject")
    def reject_form(request: Request, message_id: str, reason: Annotated[str, Form()] = "",
                    intent: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form(max_length=512)] = ""):
        def reject(user: User) -> None:
            if store.reject(engine, message_id, user, reason, corrected(intent)):
                count_review(message_id, "reject")

        return draft_form(request, message_id, csrf_token, reject)

    @app.get("/conversations/{conversation_id:path}", response_class=HTMLResponse)
    def thread(request: Request, conversation_id: str):
        user = page_user(request)
        if user is None:
            return to_login()
        rows = store.conversation(engine, conversation_id)
        return render(request, "thread.html", 200 if rows else 404, user=user, conversation_id=conversation_id,
                      messages=rows)

    @app.get("/alerts", response_class=HTMLResponse)
    def alerts_page(request: Request, status: str = "unresolved"):
        user = page_user(request)
        if user is None:
            return to_login()
        if status not in lifecycle.STATUS_FILTERS:
            status = "unresolved"
        rows = lifecycle.list_alerts(engine, status, limit=100)
        charts = {}
        for row in rows:
            if row.kind != "escalation" and row.key not in charts and len(charts) < 10:
                start = row.opened_at - timedelta(hours=24)
                end = max(row.last_seen_at, row.opened_at) + timedelta(hours=6)
                charts[row.key] = sentiment_chart(store.sentiment_series(engine, row.key, start, end), start, end)
        return render(request, "alerts.html", user=user, alerts=[lifecycle.as_dict(r) for r in rows],
                      charts=charts, status=status, statuses=list(lifecycle.STATUS_FILTERS))

    def alert_form(request: Request, alert_id: str, csrf_token: str, action) -> Response:
        user = page_user(request)
        if user is None:
            return to_login()
        if not csrf_ok(request, csrf_token):
            return render(request, "error.html", 403, user=user, error="The form has expired: reload the page.")
        if refused := supervisor_only(user, action):
            return render(request, "error.html", 403, user=user, error=refused[0].upper() + refused[1:] + ".")
        if action(engine, alert_id, user.username) is None:
            return render(request, "error.html", 404, user=user, error="No such alert.")
        return RedirectResponse("/alerts", status_code=303)

    @app.post("/alerts/{alert_id:path}/ack")
    def ack_form(request: Request, alert_id: str, csrf_token: Annotated[str, Form(max_length=512)] = ""):
        return alert_form(request, alert_id, csrf_token, lifecycle.acknowledge)

    @app.post("/alerts/{alert_id:path}/resolve")
    def resolve_form(request: Request, alert_id: str, csrf_token: Annotated[str, Form(max_length=512)] = ""):
        return alert_form(request, alert_id, csrf_token, lifecycle.resolve)

    # -- JSON API -----------------------------------------------------------------------------------------
    @app.post("/api/login")
    def api_login(request: Request, body: LoginBody):
        user, wait = login_check(request, body.username, body.password)
        if user is None:
            if wait:
                return JSONResponse({"detail": "too many failed sign-ins"}, status_code=429,
                                    headers={"Retry-After": str(int(wait) + 1)})
            return unauthorized("wrong username or password")
        return {"token": store.open_session(engine, user, "bearer", lifetime), "expires_in": int(lifetime)}

    @app.post("/api/logout")
    def api_logout(request: Request):
        """Revoke the caller's own token (or cookie session): it is refused from now on."""
        auth = api_auth(request, writes=True)
        if not isinstance(auth, tuple):
            return auth
        store.close_session(engine, auth[2])
        response = JSONResponse({"detail": "signed out: the token is revoked"})
        if auth[1] == "cookie":
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/api/drafts")
    def api_drafts(request: Request, status: str = "pending", limit: int = 100):
        user = api_user(request, writes=False)
        if not isinstance(user, User):
            return user
        if status not in store.STATUSES:
            return JSONResponse({"detail": f"status is one of {', '.join(store.STATUSES)}"}, status_code=422)
        return [store.draft_dict(r) for r in store.list_drafts(engine, status, limit=max(1, min(limit, 1000)))]

    @app.post("/api/drafts/{message_id:path}/approve")
    def api_approve(request: Request, message_id: str, body: Annotated[ApproveBody | None, Body()] = None):
        user = api_user(request, writes=True)
        if not isinstance(user, User):
            return user
        body = body or ApproveBody()
        try:
            reply, decided_now = store.approve(engine, message_id, user, body.text, corrected(body.intent))
        except DecisionError as exc:
            sent = {"sent_text": exc.sent_text} if exc.sent_text is not None else {}
            return JSONResponse({"detail": str(exc), **sent}, status_code=exc.code)
        if decided_now:
            count_review(message_id, "edit" if reply.edited else "approve")
        # "produced": whether chat.outbound already has it; the worker's outbox sweep sends a new decision
        return {"message_id": message_id, "status": "sent", "decided": decided_now, "produced": reply.produced,
                "outbound": reply.record().model_dump()}

    @app.post("/api/drafts/{message_id:path}/reject")
    def api_reject(request: Request, message_id: str, body: RejectBody):
        user = api_user(request, writes=True)
        if not isinstance(user, User):
            return user
        try:
            decided_now = store.reject(engine, message_id, user, body.reason, corrected(body.intent))
        except DecisionError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=exc.code)
        if decided_now:
            count_review(message_id, "reject")
        return {"message_id": message_id, "status": "rejected", "decided": decided_now}

    @app.get("/metrics", include_in_schema=False)
    def metrics():
        """Review counters per intent for Prometheus (counts only: no text, no names)."""
        return Response(feedback.render(), media_type=feedback.CONTENT_TYPE)

    @app.get("/api/alerts")
    def api_alerts(request: Request, status: str = "open", limit: int = 200):
        user = api_user(request, writes=False)
        if not isinstance(user, User):
            return user
        if status not in lifecycle.STATUS_FILTERS:
            return JSONResponse({"detail": f"status is one of {', '.join(lifecycle.STATUS_FILTERS)}"},
                                status_code=422)
        return [lifecycle.as_dict(r) for r in lifecycle.list_alerts(engine, status, max(1, min(limit, 1000)))]

    def api_alert(request: Request, alert_id: str, action):
        user = api_user(request, writes=True)
        if not isinstance(user, User):
            return user
        if refused := supervisor_only(user, action):
            return JSONResponse({"detail": refused}, status_code=403)
        row = action(engine, alert_id, user.username)
        if row is None:
            return JSONResponse({"detail": f"no alert {alert_id!r}"}, status_code=404)
        return lifecycle.as_dict(row)

    @app.post("/api/alerts/{alert_id:path}/ack")
    def api_ack(request: Request, alert_id: str):
        return api_alert(request, alert_id, lifecycle.acknowledge)

    @app.post("/api/alerts/{alert_id:path}/resolve")
    def api_resolve(request: Request, alert_id: str):
        return api_alert(request, alert_id, lifecycle.resolve)

    proxies = trusted_proxies(settings)
    if proxies:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        # X-Forwarded-For / -Proto are believed only from these peers; from anyone else they are ignored
        return Guard(ProxyHeadersMiddleware(app, trusted_hosts=proxies), settings.desk_max_body)
    return Guard(app, settings.desk_max_body)


def serve(settings: Settings) -> None:
    """Run the desk in the foreground (uvicorn) until Ctrl-C or SIGTERM."""
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.desk_host, port=settings.desk_port, log_level="warning",
                server_header=False, proxy_headers=False)
