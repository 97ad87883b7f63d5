"""Detector arithmetic, severities, entity keys and company-ticker joins (no services)."""

from datetime import datetime, timezone

from agents.alerts.spikes import Window, severity
from models.entities import Entity
from models.entity_keys import KeyResolver, entity_key

T = datetime(2026, 3, 2, tzinfo=timezone.utc)


def window(n, k, expected):
    return Window("k", T, T, n, k, -0.5, 100, expected, expected)


def test_binomial_z_against_the_baseline():
    w = window(20, 12, 0.2)
    assert abs(w.z - (12 - 4) / (20 * 0.2 * 0.8) ** 0.5) < 1e-9
    assert window(20, 4, 0.2).z == 0
    assert window(0, 0, 0.2).z == 0


def test_severity_grows_with_the_spike():
    assert severity(window(20, 9, 0.2)) == "warning"
    assert severity(window(40, 30, 0.2)) == "high"
    assert severity(window(40, 37, 0.2)) == "critical"


def test_entity_keys_strip_case_punctuation_and_legal_suffixes():
    assert entity_key("Nokia Oyj", "ORG") == entity_key("NOKIA", "ORG") == entity_key("Nokia's", "ORG") == "nokia"
    assert entity_key("Harrow Logistics, Inc.", "ORG") == "harrow logistics"
    assert entity_key("The Coca-Cola Company", "ORG") == "coca cola"
    assert entity_key("$aapl", "TICKER") == "ticker:AAPL"


def ent(text, label):
    return Entity(text, label, 0, len(text), 1.0)


def test_company_joins_its_ticker_and_the_join_is_remembered():
    resolver = KeyResolver()
    keys, learned = resolver.keys_for([ent("Harrow Logistics", "ORG")], ["HRWL"])
    assert keys == {"ticker:HRWL"} and learned == [("harrow logistics", "ticker:HRWL")]
    keys, learned = resolver.keys_for([ent("Harrow Logistics Inc", "ORG")], [])
    assert keys == {"ticker:HRWL"} and learned == []


def test_no_join_when_an_event_names_several_companies():
    resolver = KeyResolver()
    keys, learned = resolver.keys_for([ent("Nokia", "ORG"), ent("Ericsson", "ORG")], ["NOK"])
    assert keys == {"ticker:NOK", "nokia", "ericsson"} and learned == []


def test_mapping_file_wins_over_learned_joins(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("name,ticker\nNokia Oyj,NOK\n")
    resolver = KeyResolver(KeyResolver.read_map(path))
    keys, learned = resolver.keys_for([ent("Nokia", "ORG")], ["NOKIA"])
    assert learned == [] and keys == {"ticker:NOK", "ticker:NOKIA"}


def test_currencies_are_never_company_keys():
    keys, learned = KeyResolver().keys_for([ent("EUR", "ORG"), ent("NYSE:", "ORG"), ent("Nokia", "ORG")], [])
    assert keys == {"nokia"} and learned == []
