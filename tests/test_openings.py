"""Draft openings: the per-intent templates, the opening checks, the labelled check and the mode that won it."""

import json

import pytest

from infra.settings import Settings
from models.knowledge import SHIPPED, load_entries
from models.openings import LABELLED, LABELS, load_templates, opening_problem, template_for
from models.training.openings_eval import draft_rows, evaluate_openings, read_labelled, sample_ids, shares
from models.replies import FALLBACK_OPENING, ReplyComposer

FIELDS = {"id", "message", "gold_intent", "predicted_intent", "generated", "generated_label", "template",
          "template_label"}


class FakeGenerator:
    """Stands in for the LLM: returns one canned completion per prompt and records the prompts."""

    source = "fake"

    def __init__(self, completion: str):
        self.completion = completion
        self.prompts: list[str] = []

    def prompt(self, system, user):
        return f"<system>{system}</system><user>{user}</user>"

    def generate(self, prompts, **options):
        self.prompts += prompts
        return [self.completion] * len(prompts)


def test_every_intent_has_a_template_that_passes_the_opening_checks(data_dir):
    templates = load_templates()
    intents = set(json.loads((data_dir / "banking77" / "categories.json").read_text()))
    assert len(intents) == 77
    assert set(templates) == intents == {e.intent for e in load_entries(SHIPPED)}
    for intent, sentence in templates.items():
        assert sentence.startswith("I understand ") and sentence.endswith("."), intent
        assert opening_problem(sentence) is None, (intent, sentence, opening_problem(sentence))
    assert len(set(templates.values())) == 77  # each restates its own intent


@pytest.mark.parametrize("sentence, reason", [
    ("I understand your fees will be refunded.", "promise"),
    ("I understand, and we will look into it for you.", "promise"),
    ("I understand; we'll sort it out.", "not_one_short_sentence"),
    ("I understand we'll sort it out today.", "promise"),
    ("I understand this is guaranteed.", "promise"),
    ("I understand your transfer is going to arrive.", "promise"),
    ("I understand we have refunded you.", "claim"),
    ("I understand your card has been unblocked.", "claim"),
    ("I understand your card is now unblocked.", "claim"),
    ("I understand the charge was already reversed.", "claim"),
    ("I understand you are eligible for a refund.", "claim"),
    ("I understand you are entitled to compensation.", "claim"),
    ("I understand your payment has been processed successfully.", "claim"),
    ("I understand there is no fee for this.", "claim"),
    ("I understand you should call us.", "advice"),
    ("I understand you can deposit your salary to this account.", "advice"),
    ("I understand that customer message.", "third_person"),
    ("I understand that you're referring to the customer's order.", "third_person"),
    ("I understand .", "empty"),
    ("I understand your request.", "empty"),
    ("", "empty"),
    ("I understand it has been 14 days.", "invented_number"),
    ("I understand you want to change your name.", "placeholder"),
])
def test_the_opening_check_rejects_promises_claims_advice_and_empty_restatements(sentence, reason):
    assert opening_problem(sentence, "it has been two weeks") == reason


@pytest.mark.parametrize("sentence, source", [
    ("I understand that your card has not arrived yet.", "where is my card"),
    ("I understand that you need information about an extra €1 fee in your statement.",
     "I need information about an extra €1 fee in my statement."),
    ("I understand your top up is not working correctly.", ""),
    ("I understand you cannot make a transfer to a beneficiary.", ""),
    ("I understand a card payment was declined.", ""),
])
def test_the_opening_check_keeps_restatements(sentence, source):
    assert opening_problem(sentence, source) is None


def test_template_mode_never_calls_the_generator():
    generator = FakeGenerator(" that your card has not arrived yet.")
    composer = ReplyComposer(None, generator)
    composer.opening_mode = "template"
    openings = composer.draft_openings(["Where is my card?", "hm"], [[], []], ["card_arrival", "no_such_intent"])
    assert generator.prompts == []
    assert [(o.text, o.source) for o in openings] == [(template_for("card_arrival"), "template"),
                                                       (FALLBACK_OPENING, "fallback")]


@pytest.mark.parametrize("completion, expected, source", [
    (" that your card has not arrived yet.", "I understand that your card has not arrived yet.", "generated"),
    (" that your card has been sent and will arrive tomorrow.", "card_arrival", "template"),
    (" .", "card_arrival", "template"),
])
def test_generated_mode_falls_back_to_the_intents_template(completion, expected, source):
    composer = ReplyComposer(None, FakeGenerator(completion))
    composer.opening_mode = "generated"
    [opening] = composer.draft_openings(["Where is my card?"], [[]], ["card_arrival"])
    assert opening.source == source
    assert opening.text == (template_for(expected) if source == "template" else expected)
    [other] = composer.draft_openings(["Where is my card?"], [[]], ["no_such_intent"])
    assert other.text == (expected if source == "generated" else FALLBACK_OPENING)


def test_the_labelled_file_is_the_fixed_sample_with_current_templates(data_dir):
    from models.training.datasets import banking77_splits

    rows = read_labelled()
    test = banking77_splits(data_dir)["test"]
    picks = sample_ids(len(test.texts))
    assert [r["id"] for r in rows] == [f"banking77-test-{i}" for i in picks]
    for row, i in zip(rows, picks):
        assert set(row) == FIELDS
        assert (row["message"], row["gold_intent"]) == (test.texts[i], test.labels[i])
        assert row["template"] == template_for(row["predicted_intent"]), row["id"]
        assert row["generated_label"] in LABELS and row["template_label"] in LABELS


def test_the_default_opening_is_the_one_labelled_right_more_often():
    rows = read_labelled()
    right = {kind: sum(r[f"{kind}_label"] == "right" for r in rows) for kind in ("generated", "template")}
    winner = "generated" if right["generated"] > right["template"] else "template"
    assert Settings.model_fields["chat_opening"].default == winner


@pytest.fixture(scope="module")
def generator():
    from models.generator import ReplyGenerator

    return ReplyGenerator.from_settings()


def test_evaluate_openings_reports_shares_stale_labels_and_the_modes_sources(generator, tmp_path):
    # rows of the labelled file whose generated opening is the bare "I understand ." (stable under batching)
    rows = [r for r in read_labelled(LABELLED) if r["generated"] == "I understand ."][:2]
    stale = dict(rows[1], generated="I understand that you lost your card.", generated_label="wrong",
                 template="I understand an older template.")
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps(r) + "\n" for r in (rows[0], stale)))
    composer = ReplyComposer(None, generator)
    settings = Settings(chat_opening="template")
    report = evaluate_openings(settings, labelled, composer=composer)
    assert report["labelled_generated"] == {"n": 2, "right": 0.0, "wrong": 0.5, "empty": 0.5}
    # "I understand ." fails the check (its template is used), "... you lost your card." passes (wrong)
    assert report["labelled_generated_mode"] == {**shares([rows[0]["template_label"], "wrong"]),
                                                 "generated_passing_checks": 1}
    assert report["labels_current"] == {"n": 2, "generated_reproduced": 1, "generated_stale": 1,
                                        "templates_changed": 1}
    assert report["drafts"] == {"n": 2, "mode": "template", "generated": 0.0, "template": 1.0, "fallback": 0.0}
    generated = evaluate_openings(Settings(chat_opening="generated"), labelled, composer=composer)
    assert generated["drafts"]["generated"] == 0.0  # "I understand ." fails the check: the template is used
    assert generated["drafts"]["template"] == 1.0


def test_draft_rows_keep_a_label_only_for_an_unchanged_sentence(generator, data_dir, tmp_path):
    from models.training.datasets import banking77_splits

    picks = sample_ids(len(banking77_splits(data_dir)["test"].texts), 2)
    composer = ReplyComposer(None, generator)
    first = draft_rows(data_dir, Settings(), None, 2, composer=composer)
    assert [r["id"] for r in first] == [f"banking77-test-{i}" for i in picks]
    assert all(r["generated_label"] is None and r["template_label"] is None for r in first)
    assert all(r["template"] == template_for(r["predicted_intent"]) for r in first)
    previous = tmp_path / "previous.jsonl"
    kept = dict(first[0], generated_label="empty", template_label="right")
    changed = dict(first[1], generated="I understand an older sentence.", generated_label="wrong",
                   template_label="wrong")
    previous.write_text(json.dumps(kept) + "\n" + json.dumps(changed) + "\n")
    again = draft_rows(data_dir, Settings(), previous, 2, composer=composer)
    assert [(r["generated_label"], r["template_label"]) for r in again] == [("empty", "right"), (None, "wrong")]
