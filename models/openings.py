"""The first sentence of a reply draft: a fixed template per intent, or a checked generated one.

A draft opens by restating what the customer needs ("I understand your new card has not
arrived yet."), then copies the knowledge-base answer. The opening comes from one of two
sources (``SENTINEL_CHAT_OPENING``):

- ``template`` (the default): the predicted intent's sentence in ``models/knowledge/openings.json``
  (one per banking77 intent); the generator is not called.
- ``generated``: the generator's sentence, kept only when it passes ``opening_problem``;
  otherwise the predicted intent's template, and ``FALLBACK_OPENING`` only for an intent
  without one.

The choice was made by reading: ``models/written/openings_labelled.jsonl`` holds 100 banking77
test messages with the generated and the template opening, each labelled ``right`` (restates
what the customer asked), ``wrong`` (restates something else, or states a fact or promise) or
``empty`` (says nothing specific). ``evaluate_openings`` reports those shares, whether the
generator still gives the labelled sentences, and which source the drafts use.

An opening must never speak for the bank: it states no fact, promise, advice or number of
its own. ``opening_problem`` rejects promises ("your fees will be refunded", "we will ..."),
claims of something done or granted ("we have refunded you", "your card has been unblocked",
"you are eligible", "this is guaranteed"), advice, third-person and empty restatements, and
everything ``unsafe`` rejects (placeholders, contact details, refusals, numbers the customer
did not write), which also checks whole generated replies (``models/replies.py``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


TEMPLATES = Path(__file__).resolve().parent / "knowledge" / "openings.json"
LABELLED = Path(__file__).resolve().parent / "written" / "openings_labelled.jsonl"
LABELS = ("right", "wrong", "empty")
MODES = ("template", "generated")
MAX_WORDS = 30
FALLBACK_OPENING = "Thank you for your message."  # only for an intent without a template opening
PLACEHOLDER = re.compile(r"\[[^\]]*\]|\{\{?[^}]*\}\}?|<[^>]+>|\b(?:your|customer'?s?) name\b", re.IGNORECASE)
CONTACT = re.compile(r"https?://|www\.|\b[\w.+-]+@[\w-]+\.[\w.]+|\+?\d[\d\s().-]{6,}\d|\b\w+\.(?:com|net|org|io)\b",
                     re.IGNORECASE)
REFUSAL = re.compile(r"\b(?:i'?m (?:not|unable)|i am (?:not|unable)|i cannot|i can'?t|as an ai|as a customer"
                     r"|not equipped|sorry for your loss|i don'?t have)\b", re.IGNORECASE)

# Promises: anything the bank says it will do, or that will happen.
PROMISE = re.compile(
    r"\b(?:will|shall|won'?t|wo n't|going to|gonna)\b|\b(?:we|i|you|it|they|this|that)'ll\b"
    r"|\b(?:promise[sd]?|assure[sd]?|guarantee[sd]?|rest assured|make sure|ensure)\b"
    r"|\b(?:right away|straight away|immediately|shortly|as soon as possible|asap|in no time|by tomorrow)\b",
    re.IGNORECASE)
# Claims: an outcome stated as done or granted ("has been unblocked", "we have refunded you", "you are eligible").
_DONE = (r"refund(?:ed)?|reimbursed|credited|compensated|unblocked|unlocked|unfrozen|reactivated|re-?activated"
         r"|activated|resolved|fixed|sorted(?: out)?|approved|processed|restored|reinstated|cancel+ed|replaced"
         r"|dispatched|shipped|waived|removed|corrected|returned|released|completed|reversed|paid back|taken care of"
         r"|escalated|investigated|handled|verified|updated|changed|closed|sent")
CLAIM = re.compile(
    rf"\b(?:has|have|had|is|are|was|were|been|being|be|got|get|gets)\s+(?:now\s+|already\s+|just\s+|been\s+"
    rf"|successfully\s+|fully\s+|all\s+)*(?:{_DONE})\b"
    rf"|\b(?:we|we've|we have|we had|we are|we're|we can|we could|we would|we'd|i have|i've|i can|i could)\b"
    rf"|\b(?:eligible|entitled|qualif(?:y|ies|ied)|guaranteed?|certainly|definitely|no problem|free of charge"
    rf"|for free|no fees?|no charges?|covered)\b",
    re.IGNORECASE)
# Advice: telling the customer what to do is the answer's job.
ADVICE = re.compile(
    r"\byou (?:should|must|need to go|have to go|may want|might want|could try|can (?!'t|not))|\bplease\b"
    r"|\b(?:try|contact|call|visit|go to|tap|click|open the app)\b", re.IGNORECASE)
THIRD_PERSON = re.compile(r"\b(?:the|a|that|this|our) customers?\b|\bcustomer'?s\b|\bthe user\b", re.IGNORECASE)
EMPTY = re.compile(
    r"^\s*i understand(?:\s+(?:that|what|this|it|you|your|the|a|that the|how|why))?"
    r"(?:\s+(?:customer'?s?|message|request|question|query|concern|concerns|issue|problem|situation|point|inquiry"
    r"|enquiry|frustration|feelings?|need|needs|message you sent|what you mean|what you are saying))?\s*[.!?]?\s*$",
    re.IGNORECASE)


@dataclass(frozen=True)
class Opening:
    """A draft's first sentence and where it came from: ``generated``, ``template`` or ``fallback``."""

    text: str
    source: str

    @property
    def generated(self) -> bool:
        return self.source == "generated"


@lru_cache(maxsize=4)
def load_templates(path: Path = TEMPLATES) -> dict[str, str]:
    """{intent: opening sentence}; a ValueError names a malformed file."""
    templates = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(templates, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                  for k, v in templates.items()):
        raise ValueError(f"{path}: expected a JSON object {{intent: sentence}}")
    return templates


def template_for(intent: str | None) -> str | None:
    """The predicted intent's template opening, or None for an intent without one."""
    return load_templates().get(intent) if intent else None


def opening_problem(sentence: str, source: str = "") -> str | None:
    """Why ``sentence`` cannot open a draft (``source``: the customer's text, whose numbers it may repeat), or None."""
    text = sentence.strip()
    if not text or EMPTY.match(text):
        return "empty"
    if len(text.split()) > MAX_WORDS or re.search(r"[.!?;:]\s+\S", text):
        return "not_one_short_sentence"
    reason = unsafe(text, source)
    if reason:
        return reason
    if PROMISE.search(text):
        return "promise"
    if CLAIM.search(text):
        return "claim"
    if ADVICE.search(text):
        return "advice"
    if THIRD_PERSON.search(text):
        return "third_person"
    return None


def choose(generated: str | None, source: str, intent: str | None) -> Opening:
    """The generated sentence when it passes the checks, else the intent's template, else the fallback."""
    if generated and opening_problem(generated, source) is None:
        return Opening(generated, "generated")
    template = template_for(intent)
    return Opening(template, "template") if template else Opening(FALLBACK_OPENING, "fallback")


def unsafe(text: str, source: str = "") -> str | None:
    """Why a generated text cannot go into a draft, or None if it can."""
    if PLACEHOLDER.search(text):
        return "placeholder"
    if CONTACT.search(text):
        return "contact_detail"
    if REFUSAL.search(text):
        return "refusal"
    numbers = set(re.findall(r"\d+", text)) - set(re.findall(r"\d+", source))
    if numbers:
        return "invented_number"
    return None
