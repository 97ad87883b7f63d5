"""Signing in and out: the sign-in page and form, and the API's bearer tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from agents.desk import store
from agents.desk.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    EngineDep,
    FormCsrf,
    PageUser,
    SettingsDep,
    Writer,
    render,
    set_cookie,
    to_login,
    unauthorized,
)
from agents.desk.security import Csrf
from agents.desk.store import User
from infra.settings import Settings

router = APIRouter()


class LoginBody(BaseModel):
    username: str = Field(max_length=256)
    password: str = Field(max_length=4096)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def login_check(request: Request, engine: Engine, settings: Settings, username: str,
                password: str) -> tuple[User | None, float]:
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


# -- pages ----------------------------------------------------------------------------------------------
@router.get("/", include_in_schema=False)
def root(user: PageUser):
    return RedirectResponse("/drafts" if user else "/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request):
    return render(request, "login.html", error=None)


@router.post("/login", response_class=HTMLResponse)
def login_form(request: Request, engine: EngineDep, settings: SettingsDep, csrf_ok: FormCsrf,
               username: Annotated[str, Form(max_length=256)] = "",
               password: Annotated[str, Form(max_length=4096)] = ""):
    if not csrf_ok:
        return render(request, "login.html", 403, error="The form has expired. Please sign in again.")
    user, wait = login_check(request, engine, settings, username, password)
    if user is None:
        if wait:
            return render(request, "login.html", 429,
                          error=f"Too many failed sign-ins. Try again in {int(wait) + 1} seconds.")
        return render(request, "login.html", 401, error="Wrong username or password.")
    response = RedirectResponse("/drafts", status_code=303)
    session = store.open_session(engine, user, "cookie", settings.desk_session_lifetime)
    set_cookie(request, response, SESSION_COOKIE, session)
    # a new CSRF cookie too: the pages' tokens are bound to the new session, the sign-in form's no longer work
    set_cookie(request, response, CSRF_COOKIE, Csrf.new_cookie_value())
    return response


@router.post("/logout")
def logout(request: Request, engine: EngineDep, csrf_ok: FormCsrf):
    if csrf_ok:
        store.close_session(engine, request.cookies.get(SESSION_COOKIE))
    response = to_login()
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- JSON API -------------------------------------------------------------------------------------------
@router.post("/api/login")
def api_login(request: Request, body: LoginBody, engine: EngineDep, settings: SettingsDep):
    user, wait = login_check(request, engine, settings, body.username, body.password)
    if user is None:
        if wait:
            return JSONResponse({"detail": "too many failed sign-ins"}, status_code=429,
                                headers={"Retry-After": str(int(wait) + 1)})
        raise unauthorized("wrong username or password")
    lifetime = settings.desk_session_lifetime
    return {"token": store.open_session(engine, user, "bearer", lifetime), "expires_in": int(lifetime)}


@router.post("/api/logout")
def api_logout(caller: Writer, engine: EngineDep):
    """Revoke the caller's own token (or cookie session): it is refused from now on."""
    store.close_session(engine, caller.token)
    response = JSONResponse({"detail": "signed out: the token is revoked"})
    if caller.via == "cookie":
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response
