"""Detector statistics and decisions, severities, watermarks, entity keys and company-ticker joins
(no services; the expected figures are worked out by hand in the comments)."""

from datetime import datetime, timedelta, timezone

import pytest

from agents.alerts.spikes import (
    PRIOR_WEIGHT,
    Episode,
    Watermarks,
    Window,
    alerting,
    decide,
    expected_share,
    severity,
    tail_probability,
)
from infra.settings import Settings
from models.entities import Entity
from models.entity_keys import KeyResolver, entity_key

T = datetime(2026, 3, 2, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def window(n, k, base_n=1000, base_k=200, market=0.2, end=T):
    return Window("k", end - HOUR, end, n, k, baseline_stories=base_n, baseline_negatives=base_k,
                  market_share=market)


# P(X >= k), X ~ Binomial(n, p), by hand:
#   3 of 5 at 3%:   10 p^3 q^2 + 5 p^4 q + p^5 = 2.57996e-4 (the normal approximation says z = 7.5;
#                   the exact tail is about z = 3.5)
#   5 of 5 at 20%:  p^5 = 3.2e-4
#   3 of 4 at 20%:  4 p^3 q + p^4 = 0.0272
#   12 of 12 at 20%: p^12 = 4.096e-9
#   10 of 12 at 20%: C(12,10) p^10 q^2 + C(12,11) p^11 q + p^12 = 4.52608e-6
HAND_WORKED = [(3, 5, 0.03, 2.5799580e-4), (5, 5, 0.2, 3.2e-4), (3, 4, 0.2, 0.0272), (12, 12, 0.2, 4.096e-9),
               (10, 12, 0.2, 4.52608e-6)]


def test_exact_binomial_tail_against_hand_worked_values():
    for k, n, p, tail in HAND_WORKED:
        assert tail_probability(k, n, p) == pytest.approx(tail, rel=1e-6), (k, n, p)
    assert tail_probability(0, 5, 0.2) == 1.0  # nothing negative: certain
    assert tail_probability(0, 0, 0.2) == 1.0  # an empty window
    assert 0 < tail_probability(5, 5, 0.0) < 1e-20  # a zero baseline still gives a finite, tiny tail


def test_baseline_is_shrunk_towards_the_market_and_a_new_key_starts_there():
    # 20 prior stories at the market's 20%, plus the key's own 2 negatives of 30: (2 + 4) / 50 = 0.12
    assert PRIOR_WEIGHT == 20
    assert expected_share(30, 2, 0.2) == pytest.approx(0.12)
    assert expected_share(0, 0, 0.35) == pytest.approx(0.35)  # first seen: the market's share
    assert window(5, 5, base_n=0, base_k=0, market=0.2).tail == pytest.approx(3.2e-4)


def test_a_window_alerts_only_with_enough_stories_negatives_share_and_a_small_tail():
    s = Settings(alert_min_mentions=5, alert_min_stories=5, alert_min_negative_share=0.5, alert_max_tail=1e-4)
    # 12 of 12 at 20%: tail 4.1e-9
    assert alerting(window(12, 12), s)
    # low volume: 4 of 4 is 20% ** 4 = 1.6e-3 and under five stories anyway
    assert not alerting(window(4, 4), s)
    # five of five at the market's 20% is 3.2e-4: not rare enough at 1e-4
    assert not alerting(window(5, 5), s)
    # and at 10%: 1e-5, it alerts
    assert alerting(window(5, 5, base_k=100), s)
    # a busy window: 40 of 100 at 20% has a tiny tail (about 1e-6) but a share under one half
    assert window(100, 40).tail < 1e-4 and not alerting(window(100, 40), s)
    # five negatives of five are needed even when the share would pass: 4 of 5 at 1%
    assert not alerting(window(5, 4, base_k=10), s)


def test_severity_follows_the_tail():
    # at 20%: 10 of 12 -> 4.5e-6 warning; 12 of 12 -> 4.1e-9 high; 16 of 16 -> 6.6e-12 critical
    assert severity(window(12, 10), 1e-4) == "warning"
    assert severity(window(12, 12), 1e-4) == "high"
    assert severity(window(16, 16), 1e-4) == "critical"
    assert window(16, 16).tail == pytest.approx(0.2 ** 16)


def episode(opened, last_seen, tail=1e-6):
    return Episode("a", opened, last_seen, tail)


def test_decisions_open_update_close_and_cool_down():
    w = window(12, 12, end=T)
    # a key with no history of alerts opens one
    assert decide(w, True, None, None, 3600) == "open"
    # a later alerting window updates the open episode; a quiet one closes it
    assert decide(window(12, 12, end=T + HOUR), True, episode(T, T), None, 3600) == "update"
    assert decide(window(3, 0, end=T + HOUR), False, episode(T, T), None, 3600) == "close"
    # closed at T: a window starting before T + cooldown is suppressed, one starting after opens
    assert decide(window(12, 12, end=T + HOUR), True, None, T, 3600) == "cooldown"
    assert decide(window(12, 12, end=T + 2 * HOUR), True, None, T, 3600) == "open"
    # nothing to do on a quiet key
    assert decide(window(3, 0), False, None, None, 3600) == "none"


def test_decisions_on_windows_out_of_order_change_nothing():
    # a window at or before what the open episode already saw (a re-decision after a restart)
    assert decide(window(3, 0, end=T), False, episode(T - HOUR, T), None, 3600) == "stale"
    assert decide(window(12, 12, end=T - HOUR), True, episode(T - HOUR, T), None, 3600) == "stale"
    # an alerting window inside an episode that is already closed
    assert decide(window(12, 12, end=T - HOUR), True, None, T, 3600) == "stale"


class TickingClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_watermark_is_the_slowest_live_partition_and_idle_ones_stop_holding_it():
    clock = TickingClock()
    marks = Watermarks(idle_timeout=60, clock=clock)
    marks.assign({0, 1, 2})
    marks.observe(0, T + 2 * HOUR)
    marks.observe(1, T + HOUR)
    assert marks.current() is None  # partition 2 has not said where it is
    clock.now = 61
    marks.observe(0, T + 3 * HOUR)
    marks.observe(1, T + HOUR)
    assert marks.current() == T + HOUR  # 2 is idle now; 1 is the slowest
    marks.observe(1, T)  # an older event never moves the watermark back
    assert marks.current() == T + HOUR
    clock.now = 200
    marks.observe(0, T + 4 * HOUR)  # 1 went idle too
    assert marks.current() == T + 4 * HOUR and marks.idle() == {1, 2}


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
