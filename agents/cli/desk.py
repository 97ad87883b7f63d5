"""The review desk: serve it, and manage its people."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from agents.cli.common import (
    _database_engine,
    _reason,
    app,
    err,
    fail,
)
from infra.settings import get_settings

PANEL = "The desk"  # where its commands stand in `sentinel --help`

desk_app = typer.Typer(help="The review desk: a web app for reply drafts and alerts.", no_args_is_help=True)
app.add_typer(desk_app, name="desk", rich_help_panel=PANEL)


class DeskRole(str, Enum):
    agent = "agent"
    supervisor = "supervisor"


def _read_password() -> str:
    """From the terminal (asked twice, not echoed), or the first line of stdin when it is not a terminal."""
    import getpass

    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("password again: ") != first:
            fail("the two passwords differ", "run the command again and type the same password twice")
        return first
    return sys.stdin.readline().rstrip("\r\n")


@desk_app.command("add-user")
def desk_add_user(
    name: Annotated[str, typer.Argument(help="Username (1 to 64 characters, no spaces).")],
    role: Annotated[DeskRole, typer.Option(help="agent reviews drafts; supervisor also acknowledges and resolves alerts.")],
) -> None:
    """Add a desk user; the password is read from stdin (asked twice on a terminal)."""
    from sqlalchemy.exc import SQLAlchemyError

    from agents.desk import store

    password = _read_password()
    engine = _database_engine("add users to")
    try:
        store.add_user(engine, name, password, role.value)
    except ValueError as exc:
        fail(str(exc), "choose another name, or a password of 8 to 1024 characters")
    except SQLAlchemyError as exc:
        fail(f"cannot add user {name!r}: {_reason(exc)}", "apply the migrations with `sentinel migrate`")
    finally:
        engine.dispose()
    err.print(f"added desk user {name} ({role.value})")


UserArgument = Annotated[str, typer.Argument(metavar="NAME", help="The desk user's username.")]


def _desk_user_action(name: str, what: str, action):
    """Run ``action(engine)`` on an existing desk user; a missing user or table is an error that says what to do."""
    from sqlalchemy.exc import SQLAlchemyError

    engine = _database_engine(f"{what} desk users in")
    try:
        return action(engine)
    except LookupError:
        fail(f"there is no desk user {name!r}",
             "check the name (usernames are case-sensitive), or add it with "
             "`sentinel desk add-user NAME --role agent|supervisor`")
    except ValueError as exc:
        fail(str(exc), "run the command again with a password of 8 to 1024 characters")
    except SQLAlchemyError as exc:
        fail(f"cannot {what} desk user {name!r}: {_reason(exc)}", "apply the migrations with `sentinel migrate`")
    finally:
        engine.dispose()


@desk_app.command("remove-user")
def desk_remove_user(name: UserArgument) -> None:
    """Remove a desk user and every session and token of theirs (their past decisions keep their name)."""
    from agents.desk import store

    _desk_user_action(name, "remove", lambda engine: store.remove_user(engine, name))
    err.print(f"removed desk user {name}")


@desk_app.command("disable-user")
def desk_disable_user(
    name: UserArgument,
    enable: Annotated[bool, typer.Option("--enable", help="Allow the user to sign in again.")] = False,
) -> None:
    """Stop a desk user from signing in and revoke every session and token of theirs (--enable undoes it)."""
    from agents.desk import store

    revoked = _desk_user_action(name, "enable" if enable else "disable",
                                lambda engine: store.set_disabled(engine, name, not enable))
    err.print(f"enabled desk user {name}" if enable
              else f"disabled desk user {name}; revoked {revoked} session(s) and token(s)")


@desk_app.command("reset-password")
def desk_reset_password(name: UserArgument) -> None:
    """Set a desk user's password (read from stdin, asked twice on a terminal) and revoke their sessions."""
    from agents.desk import store

    password = _read_password()
    revoked = _desk_user_action(name, "reset the password of", lambda engine: store.reset_password(engine, name,
                                                                                                  password))
    err.print(f"new password for desk user {name}; revoked {revoked} session(s) and token(s)")


@desk_app.command("revoke")
def desk_revoke(name: UserArgument) -> None:
    """Revoke every session and API token of a desk user: they must sign in again."""
    from agents.desk import store

    revoked = _desk_user_action(name, "revoke the sessions of", lambda engine: store.revoke_sessions(engine, name))
    err.print(f"revoked {revoked} session(s) and token(s) of desk user {name}")


@desk_app.command("serve")
def desk_serve() -> None:
    """Run the desk web app in the foreground on SENTINEL_DESK_HOST:SENTINEL_DESK_PORT (Ctrl-C stops it)."""
    import socket

    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from agents.stack import resolve_services

    s = resolve_services(get_settings())
    if not s.database_url or not s.kafka_bootstrap:
        fail("the desk needs DATABASE_URL and KAFKA_BOOTSTRAP",
             "start the stack with `sentinel up` (it starts the desk too), or export both")
    engine = _database_engine("serve the desk from")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1 from desk_users limit 1"))
    except SQLAlchemyError:
        fail("the database has no desk tables", "apply the migrations with `sentinel migrate`")
    finally:
        engine.dispose()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((s.desk_host, s.desk_port))
        except OSError as exc:
            fail(f"cannot listen on {s.desk_host}:{s.desk_port}: {exc.strerror or exc}",
                 "stop what uses that port, or set SENTINEL_DESK_PORT to a free one")
    from infra.logs import configure_logging

    configure_logging(s, "desk")
    from agents.desk.app import serve

    err.print(f"desk on http://{s.desk_host}:{s.desk_port}/")
    serve(s)


auto_reply_app = typer.Typer(help="Auto-reply: drafts sent without a person.", no_args_is_help=True)
app.add_typer(auto_reply_app, name="auto-reply", rich_help_panel=PANEL)


@auto_reply_app.command("learn")
def auto_reply_learn(
    out: Annotated[Optional[Path], typer.Option(
        help="The overrides file to write (default: SENTINEL_AUTO_REPLY_OVERRIDES); its entries stay unless "
             "a learnt one is stricter.")] = None,
    target: Annotated[float, typer.Option(min=0.0001, max=0.5, help="Wrong share among auto-sent drafts.")] = 0.005,
    delta: Annotated[float, typer.Option(min=0.001, max=0.5, help="Chance that a learnt threshold misses it.")] = 0.1,
) -> None:
    """Tighten per-intent auto-reply thresholds from the desk's decisions (reply_reviews): intents the desk
    rejects or corrects get a stricter threshold, or null (never)."""
    import json

    from sqlalchemy.exc import SQLAlchemyError

    from agents.desk.auto_reply import default_threshold, read_overrides
    from agents.desk.auto_reply_learning import learn_overrides, merged, read_reviews

    settings = get_settings()
    path = out or settings.auto_reply_overrides
    if path is None:
        fail("no overrides file to write", "pass --out PATH, or set SENTINEL_AUTO_REPLY_OVERRIDES")
    try:
        existing = read_overrides(path) if path.exists() else {}
        floor = default_threshold(settings)
    except ValueError as exc:
        fail(str(exc), "fix or remove that file, then run the command again")
    engine = _database_engine("read the desk's decisions from")
    try:
        reviews = read_reviews(engine)
    except SQLAlchemyError as exc:
        fail(f"cannot read reply_reviews: {_reason(exc)}", "apply the migrations with `sentinel migrate`")
    finally:
        engine.dispose()
    learnt = learn_overrides(reviews, floor, target, delta)
    content = merged(existing, learnt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    for intent, threshold in sorted(learnt.items()):
        shown = "never" if threshold == float("inf") else f"{threshold:.6f}"
        err.print(f"{intent}: {shown}")
    err.print(f"{len(reviews)} decisions read; {len(learnt)} intents tightened above {floor:g}; wrote {path}")
