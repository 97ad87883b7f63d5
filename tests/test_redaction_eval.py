"""The fixed redaction evaluation set (models/training/redaction_eval.py): the redactor meets issue 17's targets on it,
and the scorer notices a redactor that misses a type, takes a near miss, uses the wrong placeholder, leaves
the raw value beside its placeholder, or puts placeholders where there is no identifier."""

from __future__ import annotations

import re

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as stdnum_ssn

from models.training import redaction_eval
from models.training.redaction_eval import TYPES, evaluate_redaction, identifier_set, near_miss_set
from schemas import redaction
from schemas.redaction import redact


def test_the_set_is_fixed_large_enough_and_every_planted_value_is_what_it_claims():
    messages, near = identifier_set(), near_miss_set()
    assert [m.text for m in messages] == [m.text for m in identifier_set()]  # the same set every time
    assert [n.text for n in near] == [n.text for n in near_miss_set()]
    planted = [p for m in messages for p in m.planted]
    assert len(planted) >= 300 and len(near) >= 200
    assert {p.kind for p in planted} == set(TYPES)
    assert {"visa-16 plain", "visa-16 spaced", "visa-16 dashed", "amex-15 brand-spaced"} <= {p.shape for p in planted}
    for p in planted:
        if p.kind == "CARD":
            assert luhn.is_valid(p.raw()) and 13 <= len(p.raw()) <= 19, p
        elif p.kind == "IBAN":
            assert stdnum_iban.is_valid(p.raw()), p
        elif p.kind == "SSN":
            assert stdnum_ssn.is_valid(p.raw()), p
        elif p.kind == "PHONE":
            region = "GB" if p.shape.endswith(" 00") else p.shape.split()[0]  # "00 1 ...": dialled from Europe
            assert phonenumbers.is_valid_number(phonenumbers.parse(p.value, region)), p
        else:
            assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}", p.value), p
    assert len({p.shape.split()[0] for p in planted if p.kind == "IBAN"}) >= 10  # countries
    assert {p.shape.split()[1] for p in planted if p.kind == "PHONE"} >= {"international", "e164", "national"}
    for n in near:  # a near miss is not an identifier by the identifiers' own definitions
        compact = re.sub(r"[\s-]", "", n.value)
        if n.kind == "luhn-invalid number":
            assert not luhn.is_valid(compact)
        elif n.kind == "bad iban":
            assert not stdnum_iban.is_valid(compact)
    assert {"amount", "date", "time", "order number", "reference", "last four", "percentage", "year"} <= {
        n.kind for n in near}


def test_the_redactor_meets_the_targets_on_the_fixed_set():
    report = evaluate_redaction()
    assert report["recall"] >= 0.98
    assert all(row["recall"] >= 0.98 for row in report["by_type"].values()), report["by_type"]
    assert report["near_misses_redacted"] == 0, report["near_miss_examples"]
    assert report["precision"] >= 0.98
    assert report["context_changed"] == 0  # nothing but the identifiers is taken (not even a bracket)
    assert report["meets_targets"] is True


class FakeRedactorThatKeepsIbans:
    """The real redactor without its IBAN recognizer."""

    def __call__(self, text: str) -> str:
        for placeholder, spans, _ in redaction.PASSES:
            if placeholder != redaction.IBAN:
                text = redaction._replace(text, spans(text), placeholder)
        return text


def test_the_scorer_finds_a_type_that_is_missed():
    report = evaluate_redaction(FakeRedactorThatKeepsIbans())
    assert report["by_type"]["IBAN"]["recall"] < 0.5
    assert report["by_type"]["IBAN"]["missed_examples"]
    assert all(report["by_type"][t]["recall"] >= 0.98 for t in TYPES if t != "IBAN")
    assert report["recall"] < 0.98 and report["meets_targets"] is False


def FakeRedactorThatMasksLongNumbers(text: str) -> str:
    """The real redactor, then every run of 7 or more digits as ``[NUMBER]`` (order numbers too)."""
    return redaction.mask(redact(text))


def test_the_scorer_finds_a_near_miss_that_is_redacted():
    report = evaluate_redaction(FakeRedactorThatMasksLongNumbers)
    assert report["near_misses_redacted"] > 0
    assert report["near_misses_by_kind"]["order number"]["redacted"] > 0
    assert report["near_misses_by_kind"]["percentage"]["redacted"] == 0
    assert 0 < len(report["near_miss_examples"]) <= 5
    assert all("[NUMBER]" in e["output"] for e in report["near_miss_examples"])
    assert report["precision"] < 1 and report["meets_targets"] is False


def FakeRedactorThatCallsEveryNumberANumber(text: str) -> str:
    """Coarse masking only: the raw digits go, but a card becomes ``[NUMBER]``, not ``[CARD]``."""
    return redaction.mask(text)


def test_a_wrong_placeholder_is_a_miss():
    report = evaluate_redaction(FakeRedactorThatCallsEveryNumberANumber)
    assert report["by_type"]["CARD"]["recall"] < 0.1
    assert report["by_type"]["EMAIL"]["recall"] >= 0.98  # mask's [EMAIL] is the right one


def FakeRedactorThatRepeatsTheCardAtTheEnd(text: str) -> str:
    """The real redactor, then the card's digits appended to the message (as a careless log line would)."""
    spans = redaction.card_spans(text)
    return redact(text) + "".join(" " + re.sub(r"\D", "", text[start:end]) for start, end in spans)


def test_a_placeholder_with_the_raw_value_elsewhere_is_a_miss():
    report = evaluate_redaction(FakeRedactorThatRepeatsTheCardAtTheEnd)
    assert report["by_type"]["CARD"]["recall"] < 0.1
    assert report["context_changed"] > 0
    assert report["by_type"]["EMAIL"]["recall"] >= 0.98


def FakeRedactorThatAlsoTakesTheWordCard(text: str) -> str:
    """The real redactor, plus a ``[CARD]`` for the word "card" (a placeholder that covers no identifier)."""
    return re.sub(r"\bcard\b", "[CARD]", redact(text))


def test_placeholders_that_cover_nothing_lower_the_precision():
    report = evaluate_redaction(FakeRedactorThatAlsoTakesTheWordCard)
    assert report["by_type"]["CARD"]["precision"] < 0.9
    assert report["by_type"]["EMAIL"]["precision"] == 1.0
    assert report["recall"] == 1.0  # every identifier is still replaced, once: precision is planted / placeholders
    outputs = [FakeRedactorThatAlsoTakesTheWordCard(t) for t in
               [m.text for m in identifier_set()] + [n.text for n in near_miss_set()]]
    placeholders = sum(len(redaction_eval.PLACEHOLDER.findall(o)) for o in outputs)
    assert placeholders > report["planted"]
    assert report["precision"] == round(report["planted"] / placeholders, 4)


def test_the_command_prints_its_report():
    from typer.testing import CliRunner

    from agents.cli import app

    done = CliRunner().invoke(app, ["eval-redaction"])
    assert done.exit_code == 0, done.output
    out = done.output
    assert "near misses redacted: 0 of" in out and "targets (recall >= 0.98, no near miss redacted): met" in out
    assert re.search(r"^all\s+\d+\s+1\.0000", out, re.MULTILINE)
