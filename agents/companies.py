"""The company master in PostgreSQL (the ``companies`` table): imports, the default universe, loading it for linking.

The user's own universe comes first: importing a user row removes every default row with its id or one of its
listings (symbol and exchange), and the default universe never brings back a row that collides with a user's.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects.postgresql import insert

from models.companies import Company, default_universe, read_csv
from models.companies.linking import Universe
from schemas.tables import CompanyRow

log = logging.getLogger(__name__)
DEMO_FILE = Path(__file__).resolve().parent / "demo" / "companies.csv"
_table = CompanyRow.__table__


def _listings(company: Company) -> set[tuple[str, str]]:
    return {(t.symbol, t.exchange) for t in company.tickers}


def import_companies(engine: Engine, companies: list[Company]) -> dict:
    """Store companies (each carries its ``source``); returns counts: ``stored``, ``replaced_defaults`` (default
    rows a user row displaced), ``skipped`` (default rows that collide with a user row)."""
    users = [c for c in companies if c.source == "user"]
    defaults = [c for c in companies if c.source != "user"]
    with engine.begin() as conn:
        stored_users = [Company.from_row(r) for r in conn.execute(select(_table).where(_table.c.source == "user"))]
        user_ids = {c.id for c in stored_users} | {c.id for c in users}
        user_listings = set().union(*(_listings(c) for c in stored_users + users))
        replaced = 0
        if users:
            stored_defaults = [Company.from_row(r) for r in conn.execute(
                select(_table).where(_table.c.source == "default"))]
            displaced = [c.id for c in stored_defaults if c.id in user_ids or _listings(c) & user_listings]
            if displaced:
                replaced = conn.execute(delete(_table).where(_table.c.id.in_(displaced))).rowcount
        keep = [c for c in defaults if c.id not in user_ids and not _listings(c) & user_listings]
        rows = [c.row() for c in users + keep]
        for start in range(0, len(rows), 500):
            stmt = insert(_table).values(rows[start:start + 500])
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={k: stmt.excluded[k] for k in ("name", "tickers", "isin", "lei", "aliases", "industries",
                                                     "source")} | {"updated_at": func.now()}))
    return {"stored": len(rows), "replaced_defaults": replaced, "skipped": len(defaults) - len(keep)}


def import_csv(engine: Engine, path: Path) -> dict:
    """The user's companies from a CSV (``models/companies`` documents the columns); CompanyRowError names a
    bad row, and nothing is stored then."""
    return import_companies(engine, read_csv(path.read_text(encoding="utf-8-sig")))


def ensure_default(engine: Engine) -> int:
    """Load the default universe when the table holds no default row; the rows stored (0 when it had some)."""
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(_table).where(_table.c.source == "default")).scalar():
            return 0
    stored = import_companies(engine, default_universe())["stored"]
    log.info("company master: loaded %d companies of the default universe", stored)
    return stored


def load_companies(engine: Engine) -> list[Company]:
    with engine.connect() as conn:
        return [Company.from_row(r) for r in conn.execute(select(_table).order_by(_table.c.id))]


def load_universe(engine: Engine) -> Universe:
    return Universe(load_companies(engine))


def version(engine: Engine) -> tuple:
    """What changes when the table does (a worker reloads its universe then)."""
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count(), func.max(_table.c.updated_at)).select_from(_table)).one())


def import_demo(database_url: str) -> dict:
    """The default universe (when absent) and the demo feed's companies (``agents/demo/companies.csv``, as the
    user's own) into the database the demo runs on."""
    from infra.db import make_engine, migrate

    migrate(database_url)  # the worker has not run yet where the demo starts it
    engine = make_engine(database_url, pool_size=1)
    try:
        ensure_default(engine)
        return import_csv(engine, DEMO_FILE)
    finally:
        engine.dispose()
