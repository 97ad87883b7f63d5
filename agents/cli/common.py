"""What every command shares: the root ``app``, error messages (what went wrong and what to do; exit 2) and
the checks that the database, Kafka and the data folder are there."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from infra.settings import get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Sentinel: streaming sentiment, entities and reply drafts for news and chat.")
err = Console(stderr=True, soft_wrap=True)  # errors stay on one line, whatever the terminal width


def fail(message: str, hint: str) -> None:
    from rich.markup import escape

    # one line each, whatever the message holds ("[Errno 111]" is text, not markup)
    message, hint = (escape(" ".join(str(part).split())) for part in (message, hint))
    err.print(f"[bold red]error:[/] {message}\n[yellow]what to do:[/] {hint}")
    raise typer.Exit(code=2)


# Seconds a command waits for Kafka before it says so (the clients' own default is 30 s).
CONNECT_TIMEOUT_S = 8


def _reason(exc: BaseException) -> str:
    """The first line of an error, from the driver's own error when SQLAlchemy wraps one."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    return text.splitlines()[0] if text else type(inner).__name__


def _shown_url(url: str) -> str:
    from infra.db import redact

    try:
        return redact(url)
    except Exception:  # noqa: BLE001 - an unparseable URL is shown as such, never with its password
        return "(an unparseable URL)"


def _check_database(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from infra.db import make_engine

    try:
        engine = make_engine(url, pool_size=1)
    except (ValueError, SQLAlchemyError) as exc:
        fail(f"DATABASE_URL is not usable: {_reason(exc)}", "set DATABASE_URL to postgresql://user:password@host/db")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except (SQLAlchemyError, OSError) as exc:
        fail(f"cannot reach the database at {_shown_url(url)}: {_reason(exc)}",
             "start the stack with `sentinel up`, or check DATABASE_URL and that PostgreSQL is running")
    finally:
        engine.dispose()


def _check_kafka(bootstrap: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sentinel-check",
                         bootstrap_timeout_ms=CONNECT_TIMEOUT_S * 1000,
                         request_timeout_ms=CONNECT_TIMEOUT_S * 1000).close()
    except (KafkaError, OSError, ValueError) as exc:
        fail(f"cannot reach Kafka at {bootstrap}: {_reason(exc)}",
             "start the stack with `sentinel up`, or check KAFKA_BOOTSTRAP and that the broker is running")


def _data_dir(data: Optional[Path]) -> Path:
    folder = data or get_settings().data_dir
    if not folder.is_dir():
        fail(f"data folder {folder} does not exist",
             "pass --data PATH to the shared data folder, or set SENTINEL_DATA_DIR")
    return folder


def _database_engine(what: str):
    """An engine on the configured database (or a running `sentinel up`'s), checked reachable."""
    from agents.stack import resolve_services
    from infra.db import make_engine

    s = resolve_services(get_settings())
    if not s.database_url:
        fail(f"no database to {what}", "start the stack with `sentinel up`, or set DATABASE_URL")
    _check_database(s.database_url)
    return make_engine(s.database_url, pool_size=1)
