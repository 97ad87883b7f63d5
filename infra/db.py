"""Database engine, migrations and the idempotent batch writes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` / ``postgres://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def redact(url: str) -> str:
    """The URL with its password hidden, for logs and status output."""
    return make_url(url).render_as_string(hide_password=True) if url else url


def make_engine(url: str, pool_size: int = 4, statement_timeout: float | None = None) -> Engine:
    """An engine with short connect timeouts; ``statement_timeout`` (seconds) makes PostgreSQL cancel a
    statement that runs longer, so a hung query becomes an error the caller retries, not a silent stall."""
    url = normalise_url(url)
    if not url.startswith("postgresql"):
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got {redact(url)!r}")
    connect_args: dict = {"connect_timeout": 5}
    if statement_timeout:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
    return create_engine(url, pool_size=pool_size, pool_pre_ping=True, future=True, connect_args=connect_args)


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the schema to the newest migration (safe to run on every start)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
