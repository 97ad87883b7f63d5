"""The company master: import the user's universe (or the default one), list and show companies, evaluate linking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from agents.cli.common import _database_engine, _reason, app, fail

PANEL = "Companies"  # where its commands stand in `sentinel --help`

companies_app = typer.Typer(help="The company master that entity linking resolves mentions to.",
                            no_args_is_help=True)
app.add_typer(companies_app, name="companies", rich_help_panel=PANEL)


@companies_app.command("import")
def import_(
    file: Annotated[Optional[Path], typer.Argument(help="CSV of your companies (columns: id, name, tickers, isin, "
                                                        "lei, aliases, industries; only name is required).")] = None,
    default: Annotated[bool, typer.Option("--default", help="Load the default universe (pytickersymbols' index "
                                                            "constituents with the curated aliases).")] = False,
) -> None:
    """Import companies: your CSV (your rows replace default rows of the same id or listing), or --default."""
    from sqlalchemy.exc import SQLAlchemyError

    from agents import companies
    from models.companies import CompanyRowError, default_universe, read_csv

    if (file is None) == (not default):
        fail("give either a CSV file or --default", "`sentinel companies import my_companies.csv` or "
                                                   "`sentinel companies import --default`")
    if file is not None:
        try:
            rows = read_csv(file.read_text(encoding="utf-8-sig"))
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}", "check the path of the CSV file")
        except UnicodeDecodeError:
            fail(f"{file} is not UTF-8 text", "save the CSV as UTF-8")
        except CompanyRowError as exc:
            fail(f"{file}: {exc}", "fix that row (columns: id, name, tickers as EXCHANGE:SYMBOL;..., isin, lei, "
                                   "aliases;..., industries;...) and import again; nothing was stored")
    else:
        rows = default_universe()
    engine = _database_engine("import companies into")
    try:
        counts = companies.import_companies(engine, rows)
    except SQLAlchemyError as exc:
        fail(f"cannot store the companies: {_reason(exc)}", "check the database (`sentinel status`)")
    finally:
        engine.dispose()
    typer.echo(json.dumps({"file": str(file) if file else "default", **counts}))


@companies_app.command("list")
def list_(
    source: Annotated[Optional[str], typer.Option(help="Only rows of this source: user or default.")] = None,
    match: Annotated[Optional[str], typer.Option(help="Only companies whose name, alias or ticker contains this.")]
        = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[int, typer.Option(help="Most companies to list.")] = 200,
) -> None:
    """List the company master (your rows first)."""
    from rich.console import Console
    from rich.markup import escape

    from agents import companies

    if source is not None and source not in ("user", "default"):
        fail(f"unknown source {source!r}", "give --source user or --source default")
    engine = _database_engine("list companies from")
    try:
        rows = companies.load_companies(engine)
    finally:
        engine.dispose()
    needle = (match or "").casefold()
    shown = [c for c in sorted(rows, key=lambda c: (c.source != "user", c.name.casefold()))
             if (source is None or c.source == source)
             and (not needle or needle in " ".join([c.name, *c.aliases, *(t.symbol for t in c.tickers)]).casefold())]
    if as_json:
        for c in shown[:limit]:
            typer.echo(json.dumps(c.row(), ensure_ascii=False))
        return
    out = Console(soft_wrap=True)
    for c in shown[:limit]:
        listings = ", ".join(f"{t.exchange}:{t.symbol}" for t in c.tickers[:3])
        out.print(f"{escape(c.id):<14} {escape(c.name)[:48]:<48} {c.source:<7} {escape(listings)}", highlight=False)
    out.print(f"{min(len(shown), limit)} of {len(shown)} shown ({len(rows)} in the master)", highlight=False)


@companies_app.command("show")
def show(company_id: Annotated[str, typer.Argument(help="The company's id (see `sentinel companies list`).")]) -> None:
    """One company as JSON: its name, listings, ISIN, LEI, aliases, industries and source."""
    from agents import companies

    engine = _database_engine("read companies from")
    try:
        found = {c.id: c for c in companies.load_companies(engine)}
    finally:
        engine.dispose()
    if company_id not in found:
        close = [cid for cid in found if cid.casefold() == company_id.casefold()]
        fail(f"no company with id {company_id!r}", f"did you mean {close[0]}?" if close else
             "find its id with `sentinel companies list --match NAME`")
    typer.echo(json.dumps(found[company_id].row(), ensure_ascii=False, indent=2))


@companies_app.command("eval")
def eval_(
    mentions: Annotated[Optional[Path], typer.Option(help="Labelled mentions (JSONL).")] = None,
    thresholds: Annotated[str, typer.Option(help="Fuzzy thresholds to try, comma-separated.")] =
        "80,84,86,88,90,92,94,96,101",
) -> None:
    """Linking against the default universe on the labelled mentions: precision and wrong-link rate per fuzzy
    threshold (101: no fuzzy matching)."""
    from models.companies.evaluate import MENTIONS_FILE, evaluate, read_mentions, report

    try:
        cut = [float(t) for t in thresholds.split(",") if t.strip()]
    except ValueError:
        fail(f"cannot read --thresholds {thresholds!r}", "give numbers such as 86,90,94")
    path = mentions or MENTIONS_FILE
    try:
        labelled = read_mentions(path)
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}", "give a JSONL file of {text, mention, label, company} objects")
    typer.echo(report(evaluate(labelled, cut)))
