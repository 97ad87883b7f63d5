"""Acceptance bars of the committed models on the fixed test splits (needs ../shared/data)."""

import json

import pytest

from infra.settings import get_settings
from models.training import datasets, evaluation


def test_fpb_split_is_fixed_deduplicated_and_stratified(data_dir):
    s = datasets.fpb_splits(data_dir)
    sizes = {k: len(v.texts) for k, v in s.items()}
    total = sizes["train"] + sizes["val"] + sizes["test"]
    assert total == 4836  # 4,838 unique sentences minus the 2 with conflicting labels
    assert abs(sizes["test"] - total / 10) <= 1 and abs(sizes["val"] - total / 10) <= 1
    assert not set(s["train"].texts) & set(s["test"].texts)
    assert set(s["test_allagree"].texts) <= set(s["test"].texts)
    assert datasets.fpb_splits(data_dir)["test"].texts == s["test"].texts


@pytest.fixture(scope="module")
def sentiment_report(data_dir):
    return evaluation.evaluate_sentiment(data_dir, get_settings(), sentfin=False)


def test_sentiment_meets_bars(sentiment_report):
    r = sentiment_report
    assert r["fpb_test_allagree"]["accuracy"] >= 0.95
    assert r["twitter_valid"]["accuracy"] >= 0.87  # issue 15's bar (measured 0.877, the first trunk 0.861)
    # regression floor of the serving model, the distilled trunk's sentiment head (measured: accuracy 0.853,
    # macro-F1 0.829; the first trunk 0.841 / 0.819, the separate model 0.845 / 0.816)
    assert r["fpb_test"]["accuracy"] >= 0.85
    assert r["fpb_test"]["macro_f1"] >= 0.82


@pytest.mark.xfail(strict=True, reason="issue 15's FPB bars (accuracy 0.86, macro-F1 0.84, AllAgree 0.96) not all "
                                       "reached: 0.855 / 0.842 / 0.967 measured (the served configuration, the "
                                       "cascade on); see docs/MODELS.md")
def test_sentiment_meets_fpb_target(sentiment_report):
    assert sentiment_report["fpb_test"]["accuracy"] >= 0.86
    assert sentiment_report["fpb_test"]["macro_f1"] >= 0.84
    assert sentiment_report["fpb_test_allagree"]["accuracy"] >= 0.96


def test_entities_meet_bar(data_dir):
    r = evaluation.evaluate_entities(data_dir, get_settings())
    assert r["conll_test"]["f1"] >= 0.88  # issue 15's bar (measured 0.888, the first trunk 0.868)


def test_intent_meets_bar(data_dir):
    r = evaluation.evaluate_intent(data_dir, get_settings())
    assert r["banking77_test"]["accuracy"] >= 0.93  # issue 15's bar (measured 0.937)


def test_written_customer_sets_are_apart_and_their_split_is_fixed(data_dir):
    """The escalation set is held out: none of its messages is in the customer-state training material."""
    train = {json.loads(line)["text"].casefold()
             for line in (datasets.WRITTEN / "customer_state_train.jsonl").read_text().splitlines()}
    held_out = {r["text"].casefold() for r in evaluation.load_escalation_set()}
    assert len(held_out) >= 150 and not train & held_out
    sets = datasets.customer_state_sets(data_dir)
    assert not set(sets["train"].texts) & set(datasets.written_state_splits()["test"].texts)
    assert datasets.customer_state_sets(data_dir)["test"].texts == sets["test"].texts


def test_customer_state_meets_bars(data_dir):
    r = evaluation.evaluate_customer_state(data_dir, get_settings())
    for split in ("held_out_test", "escalation_set"):
        for label, figures in r[split]["per_class"].items():
            # regression floors of the committed model (measured figures: docs/MODELS.md)
            assert figures["recall"] >= 0.6 and figures["precision"] >= 0.6, (split, label, figures)


def test_escalation_meets_acceptance_on_the_escalation_set(data_dir):
    r = evaluation.evaluate_escalation(data_dir, get_settings())
    assert r["n"] >= 150 and r["needing_a_person"] >= r["n"] / 4
    assert r["recall"] >= 0.9 and r["precision"] >= 0.7, r
