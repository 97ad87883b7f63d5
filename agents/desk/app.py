"""The desk web app: review reply drafts, send or reject them, and work through alerts.

Server-rendered Jinja2 pages (autoescaped: customer text is shown as text, never as markup) with
one vendored script (htmx) and one of our own (keyboard shortcuts), under a strict
Content-Security-Policy; a JSON API for scripts (see README, "Desk"). Everything is read from and
written to the project's PostgreSQL; approved replies go to ``chat.outbound`` through the outbox (``agents/outbox.py``).

The routes are in ``agents/desk/routers`` (one router per concern), what they share in ``agents/desk/deps.py``;
this module assembles them and wraps the app in ``Guard``.
"""

from __future__ import annotations

import csv
import json
import logging
import secrets
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.datastructures import State
from starlette.types import ASGIApp

from agents.desk import deps, feedback
from agents.desk.routers import alerts, auth, companies, drafts, health
from agents.desk.security import Csrf
from infra.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

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


def share_state(state: State, settings: Settings, engine: Engine | None) -> None:
    """What the routers share, on ``app.state`` (see ``agents.desk.deps``)."""
    from infra.db import make_engine

    if engine is None:
        engine = make_engine(settings.database_url, pool_size=4, statement_timeout=settings.db_statement_timeout)
    state.settings = settings
    state.engine = engine
    state.csrf = Csrf(settings.desk_secret_key or secrets.token_urlsafe(32), settings.desk_session_lifetime)
    state.templates = deps.make_templates()
    state.answers = knowledge_answers(settings)
    state.intents = feedback.known_intents(settings)  # a corrected intent is one of the intent model's labels
    state.reviews = feedback.ReviewCounters(state.intents)


def behind_trusted_proxies(app: ASGIApp, settings: Settings) -> ASGIApp:
    proxies = trusted_proxies(settings)
    if not proxies:
        return app
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    # X-Forwarded-For / -Proto are believed only from these peers; from anyone else they are ignored
    return ProxyHeadersMiddleware(app, trusted_hosts=proxies)


def create_app(settings: Settings, engine: Engine | None = None) -> Guard:
    """The desk as an ASGI app: the FastAPI app inside ``Guard`` (headers and body cap on every response),
    behind uvicorn's ``ProxyHeadersMiddleware`` when proxies are trusted (``SENTINEL_DESK_TRUSTED_PROXIES``)."""
    app = FastAPI(title="Sentinel desk", docs_url=None, redoc_url=None, openapi_url=None,
                  max_body_size=settings.desk_max_body)
    share_state(app.state, settings, engine)
    app.add_exception_handler(deps.SignInRequired, deps.redirect_to_login)
    app.mount("/static", StaticFiles(directory=deps.HERE / "static"), name="static")
    for router in (auth.router, drafts.router, alerts.router, companies.router, health.router):
        app.include_router(router)
    return Guard(behind_trusted_proxies(app, settings), settings.desk_max_body)


def serve(settings: Settings) -> None:
    """Run the desk in the foreground (uvicorn) until Ctrl-C or SIGTERM."""
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.desk_host, port=settings.desk_port, log_level="warning",
                server_header=False, proxy_headers=False)
