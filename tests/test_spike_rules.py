"""Detector arithmetic, severities, entity keys and company-ticker joins (no services)."""

from datetime import datetime, timezone

import pytest

from agents.alerts.spikes import Window, severity
from models.entities import Entity
from models.entity_keys import KeyResolver, entity_key

T = datetime(2026, 3, 2, tzinfo=timezone.utc)


def window(n, k, expected):
    return Window("k", T, T, n, k, -0.5, 100, expected, expected)


# z = (k - n p0) / sqrt(n p0 (1 - p0)), the normal approximation of the binomial,
# worked out by hand (n, k, p0 -> z):
#   20, 12, 0.2:  8 / sqrt(3.2) = sqrt(20)
#   40, 30, 0.2: 22 / sqrt(6.4)
#   10,  7, 0.3:  4 / sqrt(2.1)
#  100, 60, 0.5: 10 / 5 = 2
#   25,  5, 0.02 (clamped from 0): 4.5 / sqrt(0.49) = 4.5 / 0.7 = 45 / 7
HAND_WORKED = [
    (20, 12, 0.2, 4.47213595499958),
    (40, 30, 0.2, 8.696263565463044),
    (10, 7, 0.3, 2.7602622373694166),
    (100, 60, 0.5, 2.0),
    (25, 5, 0.0, 6.428571428571429),
]


def test_binomial_z_against_hand_worked_values():
    for n, k, expected, z in HAND_WORKED:
        assert window(n, k, expected).z == pytest.approx(z, rel=1e-12), (n, k, expected)
    assert window(20, 4, 0.2).z == 0  # exactly the expected count
    assert window(0, 0, 0.2).z == 0  # an empty window
    assert window(20, 12, 0.2).figures()["z"] == 4.47
    assert window(20, 12, 0.2).share == 0.6


def test_more_negatives_give_a_larger_z_and_a_higher_baseline_a_smaller_one():
    for n, expected in [(5, 0.1), (20, 0.2), (60, 0.5), (200, 0.9)]:
        zs = [window(n, k, expected).z for k in range(n + 1)]
        assert all(a < b for a, b in zip(zs, zs[1:])), (n, expected)
        assert zs[0] < 0 < zs[-1]
    zs = [window(40, 20, p).z for p in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)]
    assert all(a > b for a, b in zip(zs, zs[1:]))


def test_expected_share_is_clamped_to_2_and_98_percent():
    # below 0.02 counts as 0.02, above 0.98 as 0.98: no division by zero, no infinite z
    for low in (0.0, 0.001, 0.019):
        assert window(50, 1, low).z == 0  # 50 x 0.02 = 1 expected
        assert window(25, 5, low).z == pytest.approx(45 / 7, rel=1e-12)
    for high in (1.0, 0.999, 0.981):
        assert window(50, 49, high).z == 0  # 50 x 0.98 = 49 expected
        assert window(50, 50, high).z == pytest.approx(1 / 0.98 ** 0.5, rel=1e-12)  # 1 / sqrt(50 x 0.98 x 0.02)
    # inside the range nothing is clamped: 0.03 gives 50 x 0.03 = 1.5 expected, not 1
    assert window(50, 1, 0.03).z == pytest.approx(-0.5 / (50 * 0.03 * 0.97) ** 0.5, rel=1e-12)
    assert window(50, 1, 0.03).z < 0


def test_severity_thresholds_at_their_edges():
    # n = 400, p0 = 0.5: sd = 10, z = (k - 200) / 10; share k / 400 stays under 0.9
    assert window(400, 269, 0.5).z == pytest.approx(6.9) and severity(window(400, 269, 0.5)) == "warning"
    assert window(400, 270, 0.5).z == 7.0 and severity(window(400, 270, 0.5)) == "high"
    assert window(400, 299, 0.5).z == pytest.approx(9.9) and severity(window(400, 299, 0.5)) == "high"
    assert window(400, 300, 0.5).z == 10.0 and severity(window(400, 300, 0.5)) == "critical"
    # n = 100, p0 = 0.5: sd = 5, z = (k - 50) / 5
    assert severity(window(100, 84, 0.5)) == "warning"  # z 6.8
    assert severity(window(100, 85, 0.5)) == "high"  # z 7.0
    # a share of 90% is critical whatever z says: 9 of 10 against an expected 90% has z = 0
    assert window(10, 9, 0.9).z == pytest.approx(0, abs=1e-12)
    assert severity(window(10, 9, 0.9)) == "critical"
    assert severity(window(10, 8, 0.8)) == "warning"  # share 0.8, z 0
    assert severity(window(0, 0, 0.2)) == "warning"


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


def test_the_first_learned_join_stays_and_the_database_settles_a_race():
    resolver = KeyResolver()
    _, learned = resolver.keys_for([ent("Acme", "ORG")], ["ACM"])
    assert learned == [("acme", "ticker:ACM")]
    keys, learned = resolver.keys_for([ent("Acme", "ORG")], ["ACX"])  # a later event with another ticker
    assert learned == [] and keys == {"ticker:ACX", "ticker:ACM"}
    assert resolver.keys_for([ent("Acme", "ORG")], [])[0] == {"ticker:ACM"}
    resolver.settle({"acme": "ticker:ACQ"})  # another worker stored its join first: the table's wins
    assert resolver.keys_for([ent("Acme", "ORG")], [])[0] == {"ticker:ACQ"}


def test_learned_joins_are_bounded():
    resolver = KeyResolver(max_learned=2)
    for name, ticker in [("Acme", "ACM"), ("Globex", "GLX"), ("Initech", "INI")]:
        resolver.keys_for([ent(name, "ORG")], [ticker])
    assert resolver.learned == {"acme": "ticker:ACM", "globex": "ticker:GLX"}
    assert resolver.keys_for([ent("Initech", "ORG")], [])[0] == {"initech"}
