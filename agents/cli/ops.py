"""Operations: database migrations and the settings."""

from __future__ import annotations

import typer

from agents.cli.common import (
    _check_database,
    _shown_url,
    app,
    err,
    fail,
)
from infra.settings import get_settings

PANEL = "Operations"  # where its commands stand in `sentinel --help`


@app.command(rich_help_panel=PANEL)
def migrate() -> None:
    """Apply the database migrations to DATABASE_URL (the worker also does this at start)."""
    from agents.stack import resolve_services
    from infra.db import migrate as run_migrations

    s = resolve_services(get_settings())
    if not s.database_url:
        fail("DATABASE_URL is not set", "export DATABASE_URL, or run `sentinel up`")
    _check_database(s.database_url)
    run_migrations(s.database_url)
    err.print(f"database at {_shown_url(s.database_url)} is at the newest migration")


@app.command(rich_help_panel=PANEL)
def settings() -> None:
    """Print every setting: environment variable, current value and what it does."""
    from infra.settings import Settings, shown

    s = get_settings()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        env = alias.choices[0] if alias is not None else f"SENTINEL_{name.upper()}"
        typer.echo(f"{env}={shown(s, name)}\n    {info.description}")


@app.command("grafana-build", rich_help_panel=PANEL)
def grafana_build() -> None:
    """Write the Grafana dashboards (infra/grafana/dashboards/*.json) from their code."""
    from infra.grafana.build import build

    for path in build():
        typer.echo(path)
