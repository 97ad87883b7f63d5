"""The company master's rows: ``Company`` and its listings, the id rule, the user's CSV and the default universe.

Pure (no database): ``agents/companies.py`` stores and loads these rows; ``models/companies/linking.py`` links
mentions to them.

**The id rule** (``company_id``): the primary listing's symbol in Yahoo form, upper-cased (``AAPL``,
``SIE.DE``, ``7203.T``: a US listing has no suffix, another exchange the suffix of ``YAHOO_SUFFIX``); without a
listing, the first ISIN; without either, ``name:`` and the lower-cased name's words joined by ``-``. A user's
row may give its own ``id``.

**The user's CSV** (``read_csv``), one company a row, a header row naming the columns:

- ``name`` (required): the company's name as it is registered (``Harrow Logistics, Inc.``);
- ``tickers``: its listings, ``;``-separated, each ``EXCHANGE:SYMBOL`` (``NASDAQ:HRWL; FRA:H1R``) or a bare
  ``SYMBOL`` (a US listing); the first is the primary listing;
- ``id``, ``isin``, ``lei``: optional (``id`` by the rule above when blank);
- ``aliases``: other names it goes by in the news, ``;``-separated;
- ``industries``: ``;``-separated words of its trade (they resolve a namesake from its context).

**The default universe** (``default_universe``): the ~1,800 index constituents ``pytickersymbols`` ships
offline, plus the aliases of ``aliases.csv`` next to this file.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

ALIASES_FILE = Path(__file__).resolve().parent / "aliases.csv"
SOURCES = ("user", "default")

# Exchange names as written in news and data feeds -> one code each (Google Finance's, as pytickersymbols has them).
EXCHANGES = {
    "NASDAQ": "NASDAQ", "NASDAQGS": "NASDAQ", "NASDAQGM": "NASDAQ", "NASDAQCM": "NASDAQ", "NYSE": "NYSE",
    "NYSEARCA": "NYSE", "NYSEAMERICAN": "NYSE", "NYSEMKT": "NYSE", "AMEX": "NYSE", "US": "US",
    "OTC": "OTCMKTS", "OTCMKTS": "OTCMKTS", "OTCQX": "OTCMKTS", "OTCQB": "OTCMKTS",
    "LON": "LON", "LSE": "LON", "FRA": "FRA", "FWB": "FRA", "ETR": "ETR", "XETRA": "ETR", "TYO": "TYO",
    "TSE": "TYO", "HEL": "HEL", "OMXH": "HEL", "STO": "STO", "OMXS": "STO", "AMS": "AMS", "EPA": "EPA",
    "EBR": "EBR", "BME": "BME", "SWX": "SWX", "SIX": "SWX", "MCX": "MCX", "BIT": "BIT", "VIE": "VIE",
}
US_EXCHANGES = {"NASDAQ", "NYSE", "US"}  # "US": a US listing whose exchange the source does not say
# Yahoo's symbol suffixes and Reuters' RIC suffixes -> exchange code
YAHOO_SUFFIX = {"DE": "ETR", "F": "FRA", "L": "LON", "T": "TYO", "HE": "HEL", "ST": "STO", "AS": "AMS",
                "PA": "EPA", "BR": "EBR", "MC": "BME", "SW": "SWX", "ME": "MCX", "MI": "BIT", "VI": "VIE"}
RIC_SUFFIX = {"O": "NASDAQ", "OQ": "NASDAQ", "N": "NYSE", "K": "NYSE", "A": "NYSE", "S": "SWX",
              **YAHOO_SUFFIX}
SUFFIX_OF = {exchange: suffix for suffix, exchange in YAHOO_SUFFIX.items()}
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,11}$")
_ISIN = re.compile(r"^[A-Z]{2}[A-Z0-9]{9}[0-9]$")
_LEI = re.compile(r"^[A-Z0-9]{18}[0-9]{2}$")


@dataclass(frozen=True)
class Ticker:
    symbol: str
    exchange: str  # a code of EXCHANGES' values

    def as_dict(self) -> dict:
        return {"symbol": self.symbol, "exchange": self.exchange}


@dataclass(frozen=True)
class Company:
    id: str
    name: str
    tickers: tuple[Ticker, ...] = ()
    isin: str | None = None
    lei: str | None = None
    aliases: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()
    source: str = "default"
    extra_isins: tuple[str, ...] = field(default=(), compare=False)

    @property
    def ticker(self) -> str | None:
        """The primary listing's symbol."""
        return self.tickers[0].symbol if self.tickers else None

    def summary(self) -> dict:
        """What an entity and an alert carry: ``{"id", "name", "ticker"}``."""
        return {"id": self.id, "name": self.name, "ticker": self.ticker}

    def row(self) -> dict:
        """The ``companies`` table's row."""
        return {"id": self.id, "name": self.name, "tickers": [t.as_dict() for t in self.tickers], "isin": self.isin,
                "lei": self.lei, "aliases": list(self.aliases), "industries": list(self.industries),
                "source": self.source}

    @classmethod
    def from_row(cls, row) -> "Company":
        get = row.get if isinstance(row, dict) else row._mapping.get
        return cls(get("id"), get("name"), tuple(Ticker(t["symbol"], t["exchange"]) for t in get("tickers") or []),
                   get("isin"), get("lei"), tuple(get("aliases") or ()), tuple(get("industries") or ()),
                   get("source") or "default")


def exchange_code(name: str) -> str | None:
    return EXCHANGES.get(re.sub(r"[\s_-]", "", name.upper()))


def company_id(tickers: tuple[Ticker, ...], isins: tuple[str, ...], name: str) -> str:
    """The id rule (module docstring): primary listing in Yahoo form, else the first ISIN, else the name."""
    if tickers:
        first = tickers[0]
        suffix = SUFFIX_OF.get(first.exchange)
        return f"{first.symbol}.{suffix}" if suffix and first.exchange not in US_EXCHANGES else first.symbol
    if isins:
        return isins[0]
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", name).lower())
    return "name:" + "-".join(words)[:120]


class CompanyRowError(ValueError):
    """A row of a companies CSV that cannot be taken, naming its line."""


def parse_tickers(value: str) -> tuple[Ticker, ...]:
    """``NASDAQ:HRWL; FRA:H1R`` or ``HRWL`` to listings; raises ValueError naming a bad one."""
    out = []
    for part in (p.strip() for p in value.split(";")):
        if not part:
            continue
        exchange, _, symbol = part.rpartition(":")
        symbol = symbol.strip().upper()
        code = exchange_code(exchange) if exchange.strip() else "US"
        if code is None:
            raise ValueError(f"unknown exchange {exchange.strip()!r} in {part!r} (known: "
                             f"{', '.join(sorted(set(EXCHANGES.values())))})")
        if not _SYMBOL.match(symbol):
            raise ValueError(f"{symbol!r} is not a ticker symbol (letters, digits, '.' or '-', at most 12)")
        if Ticker(symbol, code) not in out:
            out.append(Ticker(symbol, code))
    return tuple(out)


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.strip() for p in (value or "").split(";") if p.strip()))


COLUMNS = ("id", "name", "tickers", "isin", "lei", "aliases", "industries")


def read_csv(text: str, source: str = "user") -> list[Company]:
    """The companies of a CSV (module docstring); raises CompanyRowError naming the first bad row's line."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "name" not in header:
        raise CompanyRowError(f"line 1: the header has no 'name' column (columns: {', '.join(COLUMNS)})")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise CompanyRowError(f"line 1: unknown column(s) {', '.join(unknown)} (columns: {', '.join(COLUMNS)})")
    reader.fieldnames = header
    out: list[Company] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            raise CompanyRowError(f"line {line}: more fields than the header has columns")
        row = {k: (v or "").strip() for k, v in row.items()}
        if not any(row.values()):
            continue
        name = row.get("name", "")
        if not name or len(name) > 256:
            raise CompanyRowError(f"line {line}: 'name' is empty or longer than 256 characters")
        try:
            tickers = parse_tickers(row.get("tickers", ""))
        except ValueError as exc:
            raise CompanyRowError(f"line {line}: tickers: {exc}") from None
        isin = row.get("isin", "").upper() or None
        if isin and not _ISIN.match(isin):
            raise CompanyRowError(f"line {line}: isin {isin!r} is not an ISIN (two letters, nine letters or digits, "
                                  "a check digit)")
        lei = row.get("lei", "").upper() or None
        if lei and not _LEI.match(lei):
            raise CompanyRowError(f"line {line}: lei {lei!r} is not an LEI (20 letters or digits)")
        cid = row.get("id", "") or company_id(tickers, (isin,) if isin else (), name)
        if len(cid) > 128 or not cid.isprintable():
            raise CompanyRowError(f"line {line}: id {cid[:40]!r} is longer than 128 characters or not printable")
        if cid in seen:
            raise CompanyRowError(f"line {line}: id {cid!r} is already the id of line {seen[cid]}")
        seen[cid] = line
        out.append(Company(cid, name, tickers, isin, lei, _list(row.get("aliases")), _list(row.get("industries")),
                           source))
    return out


# -- the default universe ------------------------------------------------------------------------------------
def _listing(yahoo: str | None, google: str | None) -> Ticker | None:
    if google and ":" in google:
        exchange, symbol = google.split(":", 1)
        code = exchange_code(exchange)
        return Ticker(symbol.upper(), code) if code else None
    if yahoo:
        symbol, _, suffix = yahoo.upper().rpartition(".") if "." in yahoo else (yahoo.upper(), "", "")
        code = YAHOO_SUFFIX.get(suffix) if suffix else "US"
        return Ticker(symbol, code) if code else None
    return None


def _primary(symbol: str, listings: list[Ticker]) -> Ticker | None:
    """pytickersymbols' ``symbol`` (Yahoo form) as a listing, with a US exchange when a listing names it."""
    base, _, suffix = symbol.upper().rpartition(".") if "." in symbol else (symbol.upper(), "", "")
    if suffix:
        code = YAHOO_SUFFIX.get(suffix)
        return Ticker(base, code) if code else None
    us = [t for t in listings if t.symbol == base and t.exchange in ("NYSE", "NASDAQ")]
    return us[0] if us else Ticker(base, "US")


def read_aliases(path: Path = ALIASES_FILE) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """``aliases.csv``: company id -> (aliases, context words)."""
    out: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            aliases, context = out.get(row["id"], ((), ()))
            out[row["id"]] = (aliases + _list(row["aliases"]), context + _list(row.get("context")))
    return out


def default_universe(aliases_path: Path = ALIASES_FILE) -> list[Company]:
    """pytickersymbols' companies with the aliases and context words of ``aliases.csv``."""
    from pytickersymbols import PyTickerSymbols

    out: dict[str, Company] = {}
    for stock in PyTickerSymbols().get_all_stocks():
        listings = [t for t in (_listing(s.get("yahoo"), s.get("google")) for s in stock.get("symbols") or []) if t]
        primary = _primary(stock["symbol"], listings) if stock.get("symbol") else None
        tickers = tuple(dict.fromkeys(([primary] if primary else []) + listings))
        isins = tuple(stock.get("isins") or ())
        cid = company_id(tickers, isins, stock["name"])
        if cid in out:  # a symbol the data gives two companies: the second goes by its ISIN or name
            cid = company_id((), isins, stock["name"])
            if cid in out:
                continue
        out[cid] = Company(cid, stock["name"], tickers, isins[0] if isins else None, None, (),
                           tuple(stock.get("industries") or ()), "default", isins[1:])
    for cid, (aliases, context) in read_aliases(aliases_path).items():
        if cid not in out:
            raise ValueError(f"{aliases_path.name}: no company {cid!r} in the default universe")
        company = out[cid]
        out[cid] = replace(company, aliases=company.aliases + aliases, industries=company.industries + context)
    return list(out.values())


# Index names news writes that pytickersymbols does not list (its own 20 come first: ``market_index_names``).
MORE_INDICES = ("Nasdaq Composite", "Russell 2000", "Russell 1000", "Stoxx 600", "STOXX Europe 600", "FTSE 250",
                "Hang Seng", "S&P/TSX", "Dow Jones Industrial Average", "Shanghai Composite", "Kospi", "Sensex",
                "Nifty 50", "CSI 300", "ASX 200", "Topix")


def market_index_names() -> tuple[str, ...]:
    """Stock market index names as news writes them ("S&P 500", "CAC 40", "Dow Jones"), longest first."""
    from pytickersymbols import PyTickerSymbols

    names = {name.replace("_", " ") for name in PyTickerSymbols().get_all_indices()} | set(MORE_INDICES)
    return tuple(sorted(names, key=len, reverse=True))
