"""What the desk's routers share: the app's state as dependencies, the templates, cookies, CSRF checks,
the signed-in user of a page or of an API request, and the errors that stop a request early.

``create_app`` puts the shared objects on ``app.state``: ``engine``, ``settings``, ``csrf``,
``templates``, and the review queue's ``answers``, ``intents`` and ``reviews``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import jinja2
from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from agents.desk import present, store
from agents.desk.security import Csrf, token_digest
from agents.desk.store import User
from infra.settings import Settings

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "desk_session"
CSRF_COOKIE = "desk_csrf"
CSRF_HEADER = "x-csrf-token"


# -- the app's state ------------------------------------------------------------------------------------
def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


# -- templates ------------------------------------------------------------------------------------------
def url_part(value) -> str:
    """A value quoted to be one segment of a URL path: ``/``, ``?``, ``#``, ``..`` and the rest stay data."""
    return quote(str(value), safe="")


def pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def make_templates() -> jinja2.Environment:
    """The pages' templates, autoescaped: customer text is shown as text, never as markup."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["url_part"] = url_part
    env.filters["pretty"] = pretty
    env.filters["time_tag"] = present.time_tag
    env.filters["dom_id"] = present.dom_id
    env.filters["http_url"] = present.http_url
    env.globals["waiting_tag"] = present.waiting_tag
    return env


def render(request: Request, name: str, code: int = 200, user: User | None = None, **ctx) -> HTMLResponse:
    """A page with a CSRF token for its forms (before sign-in, bound to a new CSRF cookie when it has none)."""
    state = request.app.state
    binding, fresh = csrf_binding(request), None
    if binding is None:
        fresh = Csrf.new_cookie_value()
        binding = "browser:" + fresh
    html = state.templates.get_template(name).render(csrf_token=state.csrf.token(binding), user=user,
                                                     request_path=request.url.path, **ctx)
    response = HTMLResponse(html, status_code=code)
    if fresh:
        set_cookie(request, response, CSRF_COOKIE, fresh)
    return response


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    lifetime = request.app.state.settings.desk_session_lifetime
    response.set_cookie(name, value, max_age=int(lifetime), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")


# -- CSRF -----------------------------------------------------------------------------------------------
def csrf_binding(request: Request) -> str | None:
    """What the request's CSRF token must be bound to: its session (a digest of the session cookie, so a
    token from another session or from before sign-in is refused), or before sign-in the CSRF cookie."""
    session = request.cookies.get(SESSION_COOKIE)
    if session and len(session) <= 256:
        return "session:" + token_digest("csrf:" + session)
    cookie = request.cookies.get(CSRF_COOKIE)
    return "browser:" + cookie if cookie and len(cookie) <= 64 else None


def csrf_valid(request: Request, token: str | None) -> bool:
    return request.app.state.csrf.valid(token, csrf_binding(request))


def form_csrf_valid(request: Request, csrf_token: Annotated[str, Form(max_length=512)] = "") -> bool:
    """Whether the form's ``csrf_token`` field is good; each form decides what a bad one means."""
    return csrf_valid(request, csrf_token)


FormCsrf = Annotated[bool, Depends(form_csrf_valid)]


# -- errors ---------------------------------------------------------------------------------------------
class SignInRequired(Exception):
    """A page asked for without a session: the answer is the sign-in page."""


def to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def redirect_to_login(request: Request, exc: SignInRequired) -> RedirectResponse:
    return to_login()


def unauthorized(detail: str = "sign in first: a session cookie or Authorization: Bearer TOKEN") -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


# -- the signed-in user ---------------------------------------------------------------------------------
def page_user(request: Request, engine: EngineDep) -> User | None:
    """The user of the request's session cookie, or None."""
    return store.session_user(engine, request.cookies.get(SESSION_COOKIE), "cookie")


def signed_in(user: Annotated[User | None, Depends(page_user)]) -> User:
    if user is None:
        raise SignInRequired
    return user


PageUser = Annotated[User | None, Depends(page_user)]
SignedIn = Annotated[User, Depends(signed_in)]


@dataclass(frozen=True)
class Caller:
    """Who made an API request, how they signed in (``bearer`` or ``cookie``) and with which token."""
    user: User
    via: str
    token: str | None


def api_caller(request: Request, engine: Engine, writes: bool) -> Caller:
    """The caller of an API request; 401 without a good token or session, 403 for a cookie write without
    the page's CSRF token (a bearer token carries no ambient credential: it needs none)."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("the Authorization header must be: Bearer TOKEN")
        user = store.session_user(engine, token.strip(), "bearer")
        if user is None:
            raise unauthorized("the token is unknown or expired: POST /api/login for a new one")
        return Caller(user, "bearer", token.strip())
    user = page_user(request, engine)
    if user is None:
        raise unauthorized()
    if writes and not csrf_valid(request, request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, "a session-cookie write needs the page's X-CSRF-Token header")
    return Caller(user, "cookie", request.cookies.get(SESSION_COOKIE))


def reading_caller(request: Request, engine: EngineDep) -> Caller:
    return api_caller(request, engine, writes=False)


def writing_caller(request: Request, engine: EngineDep) -> Caller:
    return api_caller(request, engine, writes=True)


Writer = Annotated[Caller, Depends(writing_caller)]
