"""Reply drafts that stay within the knowledge base, and when to hand a message to a person.

Design (measured in docs/MODELS.md): a draft is one opening sentence that restates the
customer's request, then the chosen knowledge-base answer, copied verbatim. The opening is
the predicted intent's template (``models/openings.py``; ``SENTINEL_CHAT_OPENING=template``,
the default: templates restate the request right 0.91 of the time on 100 labelled
messages, the small generator 0.20), or, with ``generated``, a sentence the generator
writes after a forced "I understand", checked (refusals, placeholders, contact details,
numbers the customer did not write, promises, claims) and replaced by the template when it
fails. Messages that try to instruct the assistant never reach the generator. When a
message needs a person is ``models/escalation.py``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from models.escalation import RISK_INTENTS, EscalationPolicy  # noqa: F401  (RISK_INTENTS: re-exported)
from models.knowledge import Entry, Retriever
# unsafe, FALLBACK_OPENING and the patterns are the openings' checks, used here too (and re-exported)
from models.openings import (  # noqa: F401
    CONTACT,
    FALLBACK_OPENING,
    PLACEHOLDER,
    REFUSAL,
    Opening,
    choose,
    template_for,
    unsafe,
)

OPENING_PREFIX = "I understand"
ESCALATION_NOTE = "A member of our team will review this conversation and reply to you shortly."
SYSTEM_PROMPT = ("You write the first sentence of a bank's reply to a customer. In one short sentence starting "
                 "with 'I understand', restate what the customer needs. Give no advice, no facts, no names, "
                 "no numbers and no contact details.")


@dataclass
class Draft:
    text: str
    intent: str
    intent_score: float
    answer_id: str
    confidence: float
    escalate: bool
    reasons: list[str] = field(default_factory=list)
    retrieved: list[dict] = field(default_factory=list)
    generated_opening: bool = False

    @property
    def escalation_reason(self) -> str | None:
        return "; ".join(self.reasons) or None


class ReplyComposer:
    def __init__(self, retriever: Retriever, generator=None, policy: EscalationPolicy | None = None,
                 opening_mode: str = "template"):
        """``opening_mode``: ``template`` or ``generated`` (the ``chat_opening`` setting)."""
        self.retriever = retriever
        self.generator = generator
        self.policy = policy or EscalationPolicy()
        self.opening_mode = opening_mode

    def choose(self, intent, hits: list[tuple[Entry, float]]) -> tuple[Entry, float]:
        """The predicted intent's own answer when the KB has one, else the best retrieved answer."""
        own = self.retriever.by_intent.get(intent.label)
        if own is not None:
            similarity = next((s for e, s in hits if e.id == own.id), 0.0)
            return own, max(intent.score, similarity)
        entry, score = hits[0]
        return entry, score

    def generated_sentences(self, texts: list[str], entities: list[list]) -> list[str]:
        """The generator's first sentence for each text, greedy and unchecked ("" where it gave none)."""
        prompts = []
        for text, ents in zip(texts, entities):
            mentioned = ", ".join(f"{e.text} ({e.label})" for e in ents) or "none"
            user = f"Customer message: {text}\nNamed in the message: {mentioned}"
            prompts.append(self.generator.prompt(SYSTEM_PROMPT, user) + OPENING_PREFIX)
        out = []
        completions = self.generator.generate(prompts, stop_strings=[".", "!", "?"], max_new_tokens=32)
        for completion in completions:
            sentence = (OPENING_PREFIX + " " + completion.lstrip()).strip() if completion else ""
            match = re.match(r"^(.+?[.!?])(\s|$)", sentence)
            out.append(match.group(1) if match else "")
        return out

    def openings(self, texts: list[str], entities: list[list], intents: list[str] | None = None) -> list[Opening]:
        """Generated openings, checked (``models.openings.opening_problem``): one that fails gives way to the
        template of its predicted intent (``intents``), and to FALLBACK_OPENING for an intent without one."""
        labels = intents or [None] * len(texts)
        if self.generator is None or not texts:
            return [choose(None, text, label) for text, label in zip(texts, labels)]
        sentences = self.generated_sentences(texts, entities)
        return [choose(sentence, text, label) for sentence, text, label in zip(sentences, texts, labels)]

    @staticmethod
    def template_opening(intent: str | None) -> Opening:
        template = template_for(intent)
        return Opening(template, "template") if template else Opening(FALLBACK_OPENING, "fallback")

    def draft_openings(self, texts: list[str], entities: list[list], intents: list[str],
                       mode: str | None = None) -> list[Opening]:
        """Each draft's opening in ``mode`` (default: ``opening_mode``); ``template`` never calls the generator."""
        mode = mode or self.opening_mode
        if mode == "generated" and self.generator is not None:
            return self.openings(texts, entities, intents)
        return [self.template_opening(intent) for intent in intents]

    def compose(self, texts: list[str], intents: list, sentiments: list, entities: list[list],
                states: list | None = None, earlier_intents: list[list[str]] | None = None,
                queries=None) -> list[Draft]:
        """Drafts; ``states``: each message's ``CustomerState`` (None: not read); ``earlier_intents``: the
        intents of each message's conversation context (``models/escalation.py`` says what they decide);
        ``queries``: the messages' retrieval embeddings when already computed (the trunk's embedding head)."""
        hits = self.retriever.search(texts, k=3, embeddings=queries)
        answers = [self.choose(intent, hit) for intent, hit in zip(intents, hits)]
        why = [self.policy.reasons(text, intents[i], answers[i][1], states[i] if states else None,
                                   earlier_intents[i] if earlier_intents else ()) for i, text in enumerate(texts)]
        # a message that tries to instruct the assistant never reaches the generator
        generate_for = [i for i, reasons in enumerate(why) if "prompt_injection" not in reasons]
        chosen = self.draft_openings([texts[i] for i in generate_for], [entities[i] for i in generate_for],
                                     [intents[i].label for i in generate_for])
        opening: dict[int, Opening] = dict(zip(generate_for, chosen))
        drafts = []
        for i, text in enumerate(texts):
            (entry, confidence), reasons = answers[i], why[i]
            first = opening[i].text if i in opening else FALLBACK_OPENING
            parts = [first, entry.answer] + ([ESCALATION_NOTE] if reasons else [])
            retrieved = [{"id": e.id, "intent": e.intent, "score": s} for e, s in hits[i]]
            if entry.id not in {r["id"] for r in retrieved}:
                retrieved.insert(0, {"id": entry.id, "intent": entry.intent, "score": round(confidence, 4)})
            drafts.append(Draft(" ".join(parts), intents[i].label, intents[i].score, entry.id, round(confidence, 4),
                                bool(reasons), reasons, retrieved, i in opening and opening[i].generated))
        return drafts
