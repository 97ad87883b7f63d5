"""When a chat message needs a person, and why.

A conversation is handed over (an escalation alert, and the draft says a person will reply) when:

- ``prompt_injection``: the message tries to instruct the assistant;
- ``risk_intent:<intent>``: lost or stolen cards, payments the customer does not recognise, ...;
- ``churn_intent:<intent>`` or ``customer_leaving``: the customer wants to close the account, or
  the customer-state model reads that they are leaving (``leaving`` ≥ ``leaving_from``);
- ``customer_frustrated`` / ``customer_angry``: the customer-state model reads them upset
  (frustrated + angry ≥ ``upset_from``; the larger of the two names the reason);
- ``repeated_contact:<n>``: the conversation comes back about the same issue, the message being
  the n-th of its context (``agents/conversation.py``) with the same intent, n > ``repeat_contacts``;
- ``low_confidence``: neither the intent nor retrieval is sure what the customer asks.

The financial sentiment model no longer decides: it learnt news, where "loss" is common and
anger at a service rare. Figures on the fixed escalation set: ``sentinel eval replies``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

RISK_INTENTS = frozenset({
    "lost_or_stolen_card", "lost_or_stolen_phone", "compromised_card", "card_payment_not_recognised",
    "cash_withdrawal_not_recognised", "direct_debit_payment_not_recognised", "transfer_not_received_by_recipient",
    "card_swallowed",
})
CHURN_INTENTS = frozenset({"terminate_account"})
INJECTION = re.compile(
    r"ignore (all |any |the |your )?(previous|prior|above|earlier) (instructions|prompts?|rules)"
    r"|disregard (all |any |the |your )?(previous|prior|above|earlier)|system prompt|developer mode"
    r"|you are now (a|an|the)\b|jailbreak|pretend (to be|you are)|reveal (your|the) (prompt|instructions)",
    re.IGNORECASE)
CRITICAL = ("risk_intent", "prompt_injection")  # reasons whose alert is critical rather than high


@dataclass(frozen=True)
class EscalationPolicy:
    upset_from: float = 0.5
    leaving_from: float = 0.5
    repeat_contacts: int = 2
    min_confidence: float = 0.5

    @classmethod
    def from_settings(cls, settings) -> EscalationPolicy:
        return cls(settings.chat_upset_escalation, settings.chat_leaving_escalation,
                   settings.chat_repeat_contacts, settings.chat_min_confidence)

    def reasons(self, text: str, intent, confidence: float, state=None,
                earlier_intents: Sequence[str | Sequence[str]] = ()) -> list[str]:
        """Why this message needs a person (empty: it does not). ``state``: a ``CustomerState`` or None;
        ``earlier_intents``: per earlier message of the conversation (its context), its intent or its
        likely intents."""
        reasons = []
        if INJECTION.search(text):
            reasons.append("prompt_injection")
        if intent.label in RISK_INTENTS:
            reasons.append(f"risk_intent:{intent.label}")
        if intent.label in CHURN_INTENTS:
            reasons.append(f"churn_intent:{intent.label}")
        elif state is not None and state.scores.get("leaving", 0.0) >= self.leaving_from:
            reasons.append("customer_leaving")
        if state is not None and state.upset >= self.upset_from:
            angry = state.scores.get("angry", 0.0) >= state.scores.get("frustrated", 0.0)
            reasons.append("customer_angry" if angry else "customer_frustrated")
        same = sum(1 for earlier in earlier_intents
                   if intent.label == earlier or not isinstance(earlier, str) and intent.label in earlier)
        if self.repeat_contacts and same >= self.repeat_contacts:
            reasons.append(f"repeated_contact:{same + 1}")
        if confidence < self.min_confidence:
            reasons.append("low_confidence")
        return reasons
