"""The company master and entity linking: normalisation, tickers, namesakes, common words, the measured
threshold, the user's CSV (and its command's errors), the table's migration and the user-first import."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from models.companies import Company, CompanyRowError, Ticker, company_id, default_universe, read_csv
from models.companies.evaluate import evaluate, read_mentions
from models.companies.linking import FUZZY_THRESHOLD, Universe, link_mentions, name_key, parse_ticker


@functools.cache
def universe() -> Universe:
    return Universe(default_universe())


def link(mention: str, text: str, label: str = "ORG") -> str | None:
    found = universe().link(mention, label, text, text.find(mention))
    return found.company.id if found else None


def test_name_keys_drop_case_accents_possessives_legal_forms_and_a_leading_the():
    assert name_key("The Walt Disney Company's") == "walt disney"
    assert name_key("Nestlé S.A.") == name_key("NESTLE") == "nestle"
    assert name_key("Siemens'") == name_key("Siemens AG") == "siemens"
    assert name_key("Procter & Gamble Co.") == name_key("Procter and Gamble") == "procter and gamble"
    assert name_key("Apple Hospitality REIT, Inc.") == "apple hospitality"
    assert name_key("Puma (brand)") == "puma"


def test_tickers_parse_cashtags_exchange_tags_and_suffixes():
    assert parse_ticker("$aapl") == ("AAPL", None)
    assert parse_ticker("NASDAQ: HRWL") == ("HRWL", "NASDAQ")
    assert parse_ticker("HRWL", before="Harrow Logistics (NASDAQ: ") == ("HRWL", "NASDAQ")
    assert parse_ticker("AAPL.O") == ("AAPL", "NASDAQ")
    assert parse_ticker("SIE.DE") == ("SIE", "ETR")
    assert parse_ticker("LON:BA") == ("BA", "LON")
    assert parse_ticker("Apple Inc") is None


def test_every_form_of_a_name_links_to_one_company():
    forms = [("Alphabet", "Alphabet beats"), ("Google", "Google fined"), ("GOOGL", "$GOOGL up"),
             ("Alphabet Inc.", "Alphabet Inc. said")]
    assert {link(m, t, "TICKER" if m.isupper() else "ORG") for m, t in forms} == {"GOOGL"}
    assert link("Facebook", "Facebook fined") == link("Meta Platforms", "Meta Platforms fined") == "META"
    assert link("VW", "VW recalls cars") == link("Volkswagen", "Volkswagen recalls cars") == "VOW3.DE"


def test_an_exchange_tag_picks_between_listings_of_one_symbol():
    assert link("BA", "$BA falls", "TICKER") == "BA"  # no tag: the one US primary listing (Boeing)
    text = "BAE Systems (LON: BA) wins"
    assert universe().link("BA", "TICKER", text, text.index("BA)")).company.id == "BA.L"
    text = "Boeing (NYSE: BA) falls"
    assert universe().link("BA", "TICKER", text, text.index("BA)")).company.id == "BA"


def test_namesakes_resolve_from_context_or_stay_unlinked():
    assert link("Apple", "Apple shares rise after the iPhone launch") == "AAPL"
    assert link("Apple Hospitality REIT", "Apple Hospitality REIT cuts its dividend") == "APLE"
    assert link("Apple Hospitality", "Apple Hospitality shares fall") == "APLE"
    # the namesake is named in full: the short name is not taken for Apple Inc.
    assert link("Apple", "Apple Hospitality REIT said Apple would keep its dividend") is None
    # Prudential plc and Prudential Financial: none without context, the one the text names with it
    assert link("Prudential", "Prudential shares fall") is None
    assert link("Prudential", "Prudential, the insurer listed in London (LON: PRU), fell") == "PRU.L"
    assert link("Prudential plc", "Prudential plc raises capital") == "PRU.L"


def test_common_words_need_capitals_and_evidence():
    assert link("Target", "Target cuts its forecast as shoppers pull back") == "TGT"
    assert link("Target", "Target raised to $150 by analysts") is None
    assert link("target", "target cuts its forecast as shoppers pull back") is None
    assert link("Next", "Next week the Fed meets") is None
    assert link("Visa", "Visa and Mastercard card fees face scrutiny") == "V"


def test_the_users_universe_comes_first():
    own = Company("ACME1", "Apple Bank", (Ticker("AAPL", "US"),), aliases=("Apple",), source="user")
    mine = Universe([*default_universe(), own])
    assert mine.link("Apple", "ORG", "Apple said").company.id == "ACME1"
    assert mine.link("AAPL", "TICKER", "$AAPL up").company.id == "ACME1"


def test_link_mentions_aligns_with_the_entities_and_skips_other_labels():
    text = "Harrow Logistics (NASDAQ: HRWL) cut 300 jobs in Helsinki"
    harrow = Company("HRWL", "Harrow Logistics", (Ticker("HRWL", "NASDAQ"),), source="user")
    entities = [{"text": "Harrow Logistics", "label": "ORG", "start": 0},
                {"text": "HRWL", "label": "TICKER", "start": 26}, {"text": "Helsinki", "label": "LOC", "start": 48}]
    links = link_mentions(entities, text, Universe([*default_universe(), harrow]))
    assert [lk.company.id if lk else None for lk in links] == ["HRWL", "HRWL", None]
    assert link_mentions(entities, text, Universe([])) == [None, None, None]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example("A.ZZ", "TICKER", "")
@example("$", "ORG", "")
@example("NYSE: ", "ORG", "(")
@given(st.text(max_size=60), st.sampled_from(["ORG", "TICKER", "PER"]), st.text(max_size=120))
def test_free_text_never_raises_and_links_to_a_known_company_or_none(mention, label, text):
    found = universe().link(mention, label, text + mention, len(text))
    assert found is None or (universe().get(found.company.id) is found.company and 0 < found.confidence <= 1)


def test_the_measured_threshold_keeps_wrong_links_at_most_one_percent():
    mentions = read_mentions()
    assert len(mentions) >= 150
    result = evaluate(mentions, [FUZZY_THRESHOLD], universe())[FUZZY_THRESHOLD]
    assert result["wrong_rate"] <= 0.01, result["wrong_links"]
    assert result["precision"] >= 0.95 and result["recall"] >= 0.9, result


def test_ids_follow_the_rule():
    assert company_id((Ticker("HRWL", "NASDAQ"),), (), "Harrow Logistics") == "HRWL"
    assert company_id((Ticker("NOKIA", "HEL"),), ("FI0009000681",), "Nokia") == "NOKIA.HE"
    assert company_id((), ("FI0009000681",), "Nokia") == "FI0009000681"
    assert company_id((), (), "Harrow Logistics, Inc.") == "name:harrow-logistics-inc"
    assert len({c.id for c in default_universe()}) == len(default_universe())


def test_the_csv_reads_listings_aliases_and_names_a_bad_row():
    rows = read_csv("name,tickers,aliases,isin\nHarrow Logistics,NASDAQ:HRWL; FRA:H1R,Harrow,US0000000001\n")
    assert rows[0].id == "HRWL" and rows[0].tickers == (Ticker("HRWL", "NASDAQ"), Ticker("H1R", "FRA"))
    assert rows[0].aliases == ("Harrow",) and rows[0].source == "user"
    with pytest.raises(CompanyRowError, match="line 3: tickers: unknown exchange 'MOON'"):
        read_csv("name,tickers\nA,NYSE:A\nB,MOON:B\n")
    with pytest.raises(CompanyRowError, match="line 2: 'name' is empty"):
        read_csv("name,tickers\n,NYSE:A\n")
    with pytest.raises(CompanyRowError, match="line 3: id 'X' is already the id of line 2"):
        read_csv("id,name\nX,A\nX,B\n")
    with pytest.raises(CompanyRowError, match="line 1: unknown column"):
        read_csv("name,ticker\nA,B\n")
    with pytest.raises(CompanyRowError, match="isin 'XX1' is not an ISIN"):
        read_csv("name,isin\nA,XX1\n")


def test_the_import_command_names_the_bad_row_and_exits_2(tmp_path):
    from agents.cli import app

    bad = tmp_path / "mine.csv"
    bad.write_text("name,tickers\nGood Co,NYSE:GOOD\nBad Co,NYSE:not a symbol\n")
    result = CliRunner().invoke(app, ["companies", "import", str(bad)])
    assert result.exit_code == 2, result.output
    assert "line 3" in result.output and "nothing was stored" in " ".join(result.output.split())
    assert "database" not in result.output  # it stops at the row, before it looks for a database
    assert CliRunner().invoke(app, ["companies", "import"]).exit_code == 2  # neither a file nor --default


def test_news_keys_use_the_company_where_a_mention_links():
    from agents.news import article_keys, central_keys, key_sentiments
    from models.companies.linking import attach_links
    from models.entities import Entity
    from models.entity_keys import KeyResolver
    from schemas.events import parse_news

    harrow = Company("HRWL", "Harrow Logistics", (Ticker("HRWL", "NASDAQ"),), source="user")
    mine = Universe([*default_universe(), harrow])
    event = parse_news(b'{"id": "a1", "title": "Harrow Logistics (NASDAQ: HRWL) and Acme Widgets cut jobs", '
                       b'"text": "", "tickers": []}')
    text = event.content
    bad = SimpleNamespace(label="negative", score=0.9, scores={"negative": 0.9, "neutral": 0.05, "positive": 0.05})
    entities = [Entity("Harrow Logistics", "ORG", 0, 16, 0.99, sentiment=bad),
                Entity("HRWL", "TICKER", text.index("HRWL"), text.index("HRWL") + 4, 1.0),
                Entity("Acme Widgets", "ORG", text.index("Acme"), text.index("Acme") + 12, 0.9)]
    attach_links(entities, text, mine)
    assert entities[0].as_dict()["company"] == {"id": "HRWL", "name": "Harrow Logistics", "ticker": "HRWL"}
    assert entities[2].as_dict()["company"] is None and entities[0].as_dict()["sentiment"]["label"] == "negative"
    resolver = KeyResolver()
    keys, learned = article_keys(resolver, entities, event, mine)
    assert keys == {"company:HRWL", "acme widgets"} and learned == []
    assert central_keys(resolver, entities, event, mine) == {"company:HRWL", "acme widgets"}
    assert set(key_sentiments(resolver, entities, event)) == {"company:HRWL"}


def test_the_migration_creates_the_table_and_a_user_row_displaces_the_default(engine):
    from alembic import command
    from sqlalchemy import inspect, text

    from agents import companies
    from infra.db import alembic_config

    url = engine.url.render_as_string(hide_password=False)
    assert "companies" in inspect(engine).get_table_names()
    command.downgrade(alembic_config(url), "0010")
    assert "companies" not in inspect(engine).get_table_names()
    command.upgrade(alembic_config(url), "head")
    columns = {c["name"] for c in inspect(engine).get_columns("companies")}
    assert {"id", "name", "tickers", "isin", "lei", "aliases", "source"} <= columns

    assert companies.ensure_default(engine) == len(default_universe())
    assert companies.ensure_default(engine) == 0  # only when the master has no default row
    own = read_csv("name,tickers,aliases\nMy Apple,NASDAQ:AAPL,Apple\n")
    assert companies.import_companies(engine, own)["replaced_defaults"] == 1
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from companies where id = 'AAPL'")).scalar() == 1
        assert conn.execute(text("select name, source from companies where id = 'AAPL'")).one() == ("My Apple",
                                                                                                      "user")
    assert companies.import_companies(engine, default_universe())["skipped"] == 1  # the default never returns
    loaded = companies.load_universe(engine)
    assert loaded.link("Apple", "ORG", "Apple said").company.name == "My Apple"


# --- the company names the entity model misses ------------------------------------------------------------


def _entities(text: str, *spans: tuple[str, str]):
    from models.entities import Entity

    return [Entity(name, label, text.index(name), text.index(name) + len(name), 0.9) for name, label in spans]


def test_known_company_names_the_entity_model_missed_are_added_as_orgs_that_link():
    from models.companies.linking import add_known_companies, attach_links

    text = "Disney cuts ad spending on Facebook as Huawei and Airbnb report"
    entities = _entities(text, ("Facebook", "ORG"), ("Huawei", "MISC"), ("Airbnb", "MISC"))
    added = add_known_companies(entities, text, universe())
    assert [(e.text, e.label) for e in added] == [("Disney", "ORG"), ("Airbnb", "ORG")]
    assert [(e.text, e.label) for e in entities] == [("Disney", "ORG"), ("Facebook", "ORG"), ("Huawei", "MISC"),
                                                     ("Airbnb", "ORG")], "Airbnb's MISC span is replaced, in order"
    attach_links(entities, text, universe())
    assert entities[0].company["name"] == "The Walt Disney Company" or entities[0].company["id"] == "DIS"
    assert entities[1].company is not None, "the model's own ORG is linked as before, not duplicated"


def test_an_everyday_word_or_a_lower_case_name_is_not_added_without_evidence():
    from models.companies.linking import add_known_companies

    for text in ("Target date funds draw record inflows", "Next week brings a flood of earnings",
                 "the apple harvest fell short this year"):
        assert add_known_companies([], text, universe()) == [], text


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=120))
@example("Shares of Apple and Microsoft rose")
def test_added_names_are_the_texts_own_words_and_never_overlap(text):
    from models.companies.linking import add_known_companies

    entities: list = []
    added = add_known_companies(entities, text, universe())
    assert all(text[e.start:e.end] == e.text and e.label == "ORG" for e in added)
    spans = sorted((e.start, e.end) for e in entities)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_a_shortened_name_replaces_the_part_the_entity_model_read():
    from models.companies.linking import add_known_companies, attach_links, surface_names

    u = universe()
    thermo = next(c for c in u.companies.values() if c.name.startswith("Thermo Fisher"))
    assert "Thermo Fisher" in surface_names(thermo), "a three-word name gives its first two"
    text = "Thermo Fisher to buy Qiagen in $11.5 billion deal"
    entities = _entities(text, ("Thermo", "ORG"))
    added = add_known_companies(entities, text, u)
    assert [(e.text, e.label) for e in entities][0] == ("Thermo Fisher", "ORG") and added
    assert "Thermo" not in [e.text for e in entities], "the part the model read is replaced"
    attach_links(entities, text, u)
    assert entities[0].company["id"] == thermo.id
    whole = _entities(text, ("Thermo Fisher", "ORG"))
    assert [e.text for e in add_known_companies(whole, text, u)] == ["Qiagen"], \
        "an entity that covers the name whole stays as it is"


def test_an_index_name_is_no_company_and_its_parts_link_nothing():
    from models.companies.linking import attach_links, correct_mentions

    text = "S&P 500 and Dow Jones end lower as Ford slips"
    entities = _entities(text, ("S&P", "ORG"), ("Dow", "ORG"), ("Ford", "ORG"))
    correct_mentions(entities, text, universe())
    assert [(e.text, e.label) for e in entities] == [("S&P 500", "MISC"), ("Dow Jones", "MISC"), ("Ford", "ORG")]
    attach_links(entities, text, universe())
    assert entities[2].company is not None and not any(getattr(e, "company", None) for e in entities[:2])
    # the company itself, named as a company, still links
    text = "S&P cuts Ford to junk"
    entities = _entities(text, ("S&P", "ORG"), ("Ford", "ORG"))
    correct_mentions(entities, text, universe())
    assert [(e.text, e.label) for e in entities] == [("S&P", "ORG"), ("Ford", "ORG")]
    assert attach_links(entities, text, universe())[0].company.name == "S&P Global"


def test_the_company_master_adds_no_company_inside_an_index_name():
    from dataclasses import replace

    from models.companies.linking import correct_mentions

    # a user's universe may alias S&P Global as "S&P" and the LSE group as "FTSE": still no company in an index
    companies = [replace(c, aliases=c.aliases + ({"S&P Global": ("S&P",), "London Stock Exchange Group": ("FTSE",)}
                                                   .get(c.name, ())))
                 for c in default_universe()]
    aliased = Universe(companies)
    assert "S&P" in [e.text for e in correct_mentions([], "S&P downgrades Ford", aliased)], "the alias works"
    for text in ("Stocks making the biggest moves: S&P 500 futures rise", "FTSE 100 and CAC 40 close higher"):
        entities: list = []
        assert correct_mentions(entities, text, aliased) == [], text
        assert all(e.label != "ORG" for e in entities), (text, entities)


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=60), st.sampled_from(["S&P 500", "Nasdaq 100", "FTSE 100", "Dow Jones", "s&p500"]),
       st.text(max_size=60))
@example("Shares of ", "S&P 500", " and Apple rose")
def test_after_correction_no_org_lies_in_an_index_name_and_nothing_overlaps(before, index, after):
    from models.companies.linking import correct_mentions, index_spans
    from models.entities import Entity

    text = before + " " + index + " " + after
    at = len(before) + 1
    entities = [Entity(text[at:at + 3], "ORG", at, at + 3, 0.9)]  # the model's ORG inside the index name
    correct_mentions(entities, text, universe())
    spans = index_spans(text)
    assert any(a <= at and at + len(index) <= b for a, b in spans)
    assert not any(e.label in ("ORG", "TICKER") and any(a <= e.start and e.end <= b for a, b in spans)
                   for e in entities)
    assert all(text[e.start:e.end] == e.text for e in entities)
    ordered = sorted((e.start, e.end) for e in entities)
    assert all(x[1] <= y[0] for x, y in zip(ordered, ordered[1:]))


def test_a_mention_is_no_evidence_for_itself():
    u = universe()
    # "bank" is a context word of the banks; the mention "Bank" must not vouch for Bank of America by itself
    assert u.link("Bank", "ORG", "Bank stocks have become 'awful investments', Jim Cramer says", 0) is None
    assert u.link("Bank of America", "ORG", "Bank of America beats estimates", 0).company.name == "Bank of America"
