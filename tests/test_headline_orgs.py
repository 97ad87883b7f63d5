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
