"""Alerts: list, acknowledge and resolve them; backtest the detector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from agents.cli.common import (
    _database_engine,
    _reason,
    _shown_url,
    app,
    err,
    fail,
)
from infra.settings import get_settings

PANEL = "Alerts"  # where its commands stand in `sentinel --help`


@app.command(rich_help_panel=PANEL)
def backtest(
    file: Annotated[Path, typer.Argument(help="JSONL of news events (the news topic's format), in arrival order.")],
    labels: Annotated[Optional[Path], typer.Option(help="JSONL of labelled episodes ({key, start, end}).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the spike detector offline over a news history: alerts per key, lead times, precision and recall."""
    from agents.backtest import command

    command(file, labels, as_json, fail)


def _parse_since(value: str):
    """An ISO time, or a duration back from now such as 30m, 24h or 7d."""
    import re
    from datetime import datetime, timedelta, timezone

    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value.strip())
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return datetime.now(timezone.utc) - timedelta(seconds=float(m.group(1)) * unit)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


alerts_app = typer.Typer(help="Recent alerts; `ack` and `resolve` record who dealt with one.")
app.add_typer(alerts_app, name="alerts", rich_help_panel=PANEL)


@alerts_app.callback(invoke_without_command=True)
def alerts(
    ctx: typer.Context,
    since: Annotated[Optional[str], typer.Option(help="Only alerts opened after this: ISO time or 30m/24h/7d.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[int, typer.Option(help="Most alerts to list (newest first).")] = 100,
) -> None:
    """List recent alerts (sentiment spikes and chat escalations) from the database."""
    if ctx.invoked_subcommand is not None:
        return
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    from agents.stack import resolve_services
    from infra.db import make_engine

    s = resolve_services(get_settings())
    if not s.database_url:
        fail("no database to read alerts from", "start the stack with `sentinel up`, or set DATABASE_URL")
    try:
        since_at = _parse_since(since) if since else None
    except ValueError:
        fail(f"cannot read --since {since!r}", "give an ISO time (2026-03-02T10:00) or a duration (30m, 24h, 7d)")
    try:
        engine = make_engine(s.database_url, pool_size=1)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "select id, kind, key, severity, status, opened_at, closed_at, payload from alerts "
                "where (cast(:since as timestamptz) is null or opened_at >= :since) "
                "order by opened_at desc limit :limit"), {"since": since_at, "limit": limit}).all()
    except (OperationalError, OSError) as exc:
        fail(f"cannot reach the database at {_shown_url(s.database_url)}: {_reason(exc)}",
             "start the stack with `sentinel up`, or check DATABASE_URL and that PostgreSQL is running")
    except (ValueError, SQLAlchemyError) as exc:
        fail(f"cannot read alerts from {_shown_url(s.database_url)}: {_reason(exc)}",
             "check DATABASE_URL; apply the migrations with `sentinel migrate`")
    for r in rows:
        record = {"id": r.id, "kind": r.kind, "key": r.key, "severity": r.severity, "status": r.status,
                  "opened_at": r.opened_at.isoformat(),
                  "closed_at": r.closed_at.isoformat() if r.closed_at else None, "payload": r.payload}
        if as_json:
            typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            w = r.payload.get("window", {})
            typer.echo(f"{r.opened_at:%Y-%m-%d %H:%M} {r.severity:>8} {r.status:>6} {r.kind} {r.key}: "
                       f"{w.get('negatives')}/{w.get('mentions')} negative, z={w.get('z')}")
    if not rows and not as_json:
        err.print("no alerts")


def _alert_action(alert_id: str, by: str, action: str) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from agents.alerts import lifecycle

    engine = _database_engine(f"{action} alerts in")
    try:
        row = getattr(lifecycle, action)(engine, alert_id, by)
    except ValueError as exc:
        fail(str(exc), "pass --by with the name of the person acting")
    except SQLAlchemyError as exc:
        fail(f"cannot {action} alert {alert_id!r}: {_reason(exc)}", "apply the migrations with `sentinel migrate`")
    finally:
        engine.dispose()
    if row is None:
        fail(f"no alert {alert_id!r}", "list the alerts and their ids with `sentinel alerts --json`")
    typer.echo(json.dumps(lifecycle.as_dict(row), ensure_ascii=False))


ByOption = Annotated[str, typer.Option("--by", help="Who acts (recorded with the time).")]


@alerts_app.command("ack")
def alerts_ack(alert_id: Annotated[str, typer.Argument(metavar="ID")], by: ByOption) -> None:
    """Acknowledge an alert: someone is on it (the first acknowledgement is kept)."""
    _alert_action(alert_id, by, "acknowledge")


@alerts_app.command("resolve")
def alerts_resolve(alert_id: Annotated[str, typer.Argument(metavar="ID")], by: ByOption) -> None:
    """Resolve an alert: it has been dealt with (acknowledges it too, if nobody had)."""
    _alert_action(alert_id, by, "resolve")


@app.command("backtest-scenarios", rich_help_panel=PANEL)
def backtest_scenarios(out: Annotated[Path, typer.Argument(help="Folder for the scenario files and labels.")]) -> None:
    """Write the backtest's scenario files and their labels (fixed seeds)."""
    from agents.backtest import write_scenarios

    for path in write_scenarios(out):
        typer.echo(path)


@app.command("backtest-sweep", rich_help_panel=PANEL)
def backtest_sweep(out: Annotated[Path, typer.Argument(help="Folder for the scenario files and labels.")]) -> None:
    """Write the scenarios, then backtest them at the defaults and their neighbours (a Markdown table)."""
    from agents.backtest import BacktestError, sweep, sweep_table, write_scenarios

    try:
        write_scenarios(out)
        typer.echo(sweep_table(sweep(out)))
    except BacktestError as exc:
        fail(str(exc), "check the scenario folder and DATABASE_URL")
