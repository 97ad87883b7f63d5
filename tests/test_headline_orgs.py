"""The labelled real-headline ORG set and the span metrics of its evaluation."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from models.training.headline_orgs import TEST_SIZE, headline_order, load_headline_orgs, problems, span_scores


def test_the_labelled_headlines_are_sound_and_the_held_out_part_is_large_enough():
    rows = load_headline_orgs()
    assert problems(rows) == []
    test = load_headline_orgs(split="test")
    assert len(test) == TEST_SIZE >= 300
    assert sum(len(r["orgs"]) for r in test) >= 250


def test_the_labelled_headlines_are_the_fixed_rules_first_ones(data_dir):
    rows = load_headline_orgs()
    order = headline_order(data_dir)[: len(rows)]
    assert [(r["source"], r["row"], r["text"]) for r in rows] == [(h.source, h.row, h.text) for h in order]


def test_problems_names_a_span_off_its_text_a_cut_word_and_a_bad_company():
    rows = copy.deepcopy(load_headline_orgs()[:3])  # hl-0001: "Tesla taps brake on massive stock rally"
    tesla = rows[0]["orgs"][0]
    tesla["end"] += 1
    assert problems(rows) == ["hl-0001: 'Tesla' is not text[0:6]"]
    tesla.update(end=4, text="Tesl")
    assert problems(rows) == ["hl-0001: 'Tesl' cuts a word"]
    tesla.update(end=5, text="Tesla", company={"name": "Tesla", "ticker": "tsla"})
    assert problems(rows) == ["hl-0001: 'Tesla' has a malformed company {'name': 'Tesla', 'ticker': 'tsla'}"]
    rows[0]["orgs"][0]["company"]["ticker"] = "TSLA"
    rows[1]["split"] = "train"
    assert problems(rows) == ["hl-0002: split should be test"]


def test_span_scores_on_hand_cases():
    gold = [[(0, 5), (10, 20)], [(3, 8)], []]
    exact = span_scores(gold, gold)
    assert exact["strict"] == exact["overlap"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    # one span cut short, one missed, one false positive in a text without names
    partial = span_scores(gold, [[(0, 4)], [(3, 8)], [(0, 2)]])
    assert partial["gold"] == 3 and partial["predicted"] == 3
    assert partial["strict"] == {"precision": round(1 / 3, 4), "recall": round(1 / 3, 4), "f1": round(1 / 3, 4)}
    assert partial["overlap"] == {"precision": round(2 / 3, 4), "recall": round(2 / 3, 4), "f1": round(2 / 3, 4)}
    nothing = span_scores(gold, [[], [], []])
    assert nothing["strict"] == nothing["overlap"] == {"precision": 1.0, "recall": 0.0, "f1": 0.0}
    # a long prediction over two names finds both under overlap, neither under strict
    joined = span_scores([[(0, 5), (6, 10)]], [[(0, 10)]])
    assert joined["overlap"]["recall"] == 1.0 and joined["strict"]["recall"] == 0.0


_spans = st.lists(st.tuples(st.integers(0, 40), st.integers(1, 8)).map(lambda t: (t[0], t[0] + t[1])),
                  max_size=4)


@given(st.lists(st.tuples(_spans, _spans), min_size=1, max_size=6), _spans)
def test_span_scores_properties(rows, extra):
    gold, predicted = [g for g, _ in rows], [p for _, p in rows]
    scores = span_scores(gold, predicted)
    for side in ("precision", "recall"):
        assert 0.0 <= scores["strict"][side] <= scores["overlap"][side] <= 1.0
    assert span_scores(gold, gold)["strict"]["recall"] == 1.0
    # more predictions never lose a found gold span
    wider = span_scores(gold, [p + extra if k == 0 else p for k, p in enumerate(predicted)])
    assert wider["strict"]["recall"] >= scores["strict"]["recall"]
    assert wider["overlap"]["recall"] >= scores["overlap"]["recall"]


def test_org_span_report_counts_org_and_ticker_and_names_misses_and_false_positives():
    from models.entities import Entity
    from models.training.evaluation import org_span_report

    rows = [{"id": "hl-1", "text": "Japan Display and Ebay gain", "orgs": [
                {"start": 0, "end": 13, "text": "Japan Display", "company": None},
                {"start": 18, "end": 22, "text": "Ebay", "company": None}]},
            {"id": "hl-2", "text": "Factbox: $TSLA rallies", "orgs": [
                {"start": 10, "end": 14, "text": "TSLA", "company": None}]}]
    said = [[Entity("Japan", "LOC", 0, 5, 0.9), Entity("Display", "ORG", 6, 13, 0.9)],
            [Entity("Factbox", "ORG", 0, 7, 0.9), Entity("TSLA", "TICKER", 10, 14, 1.0)]]
    report = org_span_report(rows, said)
    assert (report["gold"], report["predicted"]) == (3, 3)
    assert report["strict"]["recall"] == round(1 / 3, 4) and report["overlap"]["recall"] == round(2 / 3, 4)
    assert [(m["text"], m["count"]) for m in report["top_misses"]] == [("Ebay", 1)]
    assert "read as nothing" in report["top_misses"][0]["example"]
    assert [m["text"] for m in report["top_false_positives"]] == ["Factbox"]
    assert [m["text"] for m in report["top_boundary_errors"]] == ["Japan Display"]


def test_linking_report_counts_right_and_wrong_links_of_a_fake_linker():
    from models.training.evaluation import linking_report

    rows = load_headline_orgs(split="test")
    gold = {(r["id"], o["start"]): (o["company"] or {}).get("ticker") for r in rows for o in r["orgs"]}
    ids = {r["text"]: r["id"] for r in rows}

    def fake_perfect_linker(text, entities):
        return [{"ticker": gold[(ids[text], e.start)]} if gold[(ids[text], e.start)] else None for e in entities]

    def fake_apple_linker(text, entities):
        return [{"ticker": "AAPL"} for _ in entities]

    perfect = linking_report(rows, fake_perfect_linker)
    assert perfect["linked"] == perfect["listed_mentions"] and perfect["linked_right"] == 1.0
    assert perfect["wrong_links_over_mentions"] == 0.0
    apple = linking_report(rows, fake_apple_linker)
    apples = sum(1 for t in gold.values() if t == "AAPL")
    assert apple["linked"] == apple["mentions"] and apple["linked_right"] == round(apples / apple["mentions"], 4)
    assert apple["wrong_links_over_mentions"] == round(1 - apples / apple["mentions"], 4)


def test_the_headline_entities_eval_reads_the_served_model_on_both_parts(data_dir):
    from models.training import evaluation

    report = evaluation.run("headline-entities", data_dir)
    test = report["headlines_test"]
    assert test["n"] == TEST_SIZE and report["headlines_train"]["n"] == len(load_headline_orgs(split="train"))
    assert test["gold"] == sum(len(r["orgs"]) for r in load_headline_orgs(split="test"))
    assert 0.5 < test["overlap"]["recall"] <= 1.0 and test["strict"]["recall"] <= test["overlap"]["recall"]
    assert test["misses"] == round(test["gold"] * (1 - test["overlap"]["recall"]))
    assert report["linking_test"]["linked"] > 0 and 0 <= report["linking_test"]["linked_right"] <= 1


def test_a_link_is_right_by_any_listing_share_class_form_or_by_name_without_symbols():
    from models.companies import Company, Ticker
    from models.training.evaluation import _is_gold

    berkshire = Company("BRYN.F", "Berkshire Hathaway", (Ticker("BRYN", "FRA"), Ticker("BRK.B", "NYSE")))
    assert _is_gold(berkshire, {"name": "Berkshire Hathaway", "ticker": "BRK-B"})
    assert not _is_gold(berkshire, {"name": "Berkshire Hills Bancorp", "ticker": "BHLB"})
    ubisoft = Company("FR0000054470", "Ubisoft")
    assert _is_gold(ubisoft, {"name": "Ubisoft", "ticker": "UBI.PA"})
    assert not _is_gold(ubisoft, {"name": "Ubiquiti", "ticker": "UI"})
    assert not _is_gold(berkshire, None) and not _is_gold(berkshire, {"name": "Berkshire Hathaway", "ticker": None})
