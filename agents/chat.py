"""The chat pipeline: sentiment, entities, intent → knowledge-base answer + generated opening;
rows, `chat.replies`, and an escalation alert when a person must take over.

Parsing, batching, dead letters, storage, produce and acknowledgement are the agent
loop's (``agents/loop.py``); this module says only what is particular to chat.
The worker runs chat's models (``models/chat.py``) in a child process of their own
(``models/process.py``, factory ``models.chat:load_models``): the pipeline only sees ``infer(texts)``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents import clock, sensors
from agents.alerts.records import AlertRecord
from agents.conversation import ConversationHistory
from agents.pipeline import Built, Received
from models.chat import ChatInput
from models.escalation import CRITICAL
from schemas import topics
from schemas.events import ChatEvent, parse_chat
from schemas.records import ChatReply
from schemas.records import OutboundReply as OutboundRecord
from schemas.tables import Alert, ChatMessage, OutboundReply, ReplyDraft, ReplyReview

ESCALATION = "escalation"


class ChatPipeline:
    agent = "chat"
    input_topic = topics.CHAT.name
    output_topic = topics.CHAT_REPLIES.name
    parent = ChatMessage.__table__
    children = frozenset({ReplyDraft.__table__, Alert.__table__, ReplyReview.__table__, OutboundReply.__table__})

    def __init__(self, models, generator_name: str, auto_reply=None, history: ConversationHistory | None = None,
                 future_tolerance: float = 300.0, sensor: sensors.Sensor | None = None):
        """``models``: ``ChatModels`` or a ``ModelProcess`` running them (anything with ``infer(texts)``);
        ``auto_reply``: the ``AutoReplyPolicy`` that sends confident drafts by themselves (None: never);
        ``history``: where each message's earlier messages are read (None: each message is read alone);
        ``sensor``: where replaced future times, customer states and escalations are reported."""
        self.models = models
        self.generator_name = generator_name
        self.auto_reply = auto_reply
        self.history = history
        self.future_tolerance = timedelta(seconds=future_tolerance)
        self.sensor = sensor or sensors.default

    @staticmethod
    def parse(raw: bytes | None) -> ChatEvent:
        return parse_chat(raw)

    def infer(self, events: list[ChatEvent]) -> list[tuple]:
        if self.history is None:
            return self.models.infer([e.text for e in events])
        # Read here, in the worker's process: the models (maybe in a child process) get texts only.
        contexts = self.history.contexts(events)
        return self.models.infer([ChatInput(e.text, tuple(c)) for e, c in zip(events, contexts)])

    def build(self, m: Received, event: ChatEvent, result) -> Built:
        sentiment, entities, state, draft = result
        when, _ = clock.event_time(event.ts, m.timestamp, self.future_tolerance, sensor=self.sensor)
        auto = self.auto_reply is not None and self.auto_reply.allows(draft.intent, draft.intent_score,
                                                                      draft.escalate)
        decided = datetime.now(UTC) if auto else None
        rows = [
            (ChatMessage.__table__, {
                "id": event.id, "conversation_id": event.conversation_id, "customer_id": event.customer_id,
                "channel": event.channel, "text": event.text, "sentiment_label": sentiment.label,
                "negative": sentiment.scores["negative"], "entities": [e.as_dict() for e in entities],
                "customer_state": state.label if state else None,
                "customer_state_scores": state.scores if state else None,
                "kafka_partition": m.partition, "kafka_offset": m.offset, "event_time": when}),
            (ReplyDraft.__table__, {
                "message_id": event.id, "conversation_id": event.conversation_id, "intent": draft.intent,
                "intent_score": draft.intent_score, "draft": draft.text, "escalate": draft.escalate,
                "escalation_reason": draft.escalation_reason, "retrieved": draft.retrieved,
                "generator": self.generator_name, "status": "sent" if auto else "pending",
                "decided_by": "auto" if auto else None, "decided_at": decided}),
        ]
        others = {}
        if auto:  # the desk's decision rows, as if a reviewer approved it unedited (see agents/desk/store.py)
            rows.append((ReplyReview.__table__, {
                "message_id": event.id, "action": "auto", "final_text": draft.text, "reason": None,
                "reviewer": "auto", "intent": draft.intent, "corrected_intent": None, "reviewed_at": decided}))
            # produced through the outbox by this loop right after the commit, which marks the row produced
            outbound = OutboundRecord(message_id=event.id, conversation_id=event.conversation_id, text=draft.text,
                                      sent_by="auto", auto=True, edited=False)
            rows.append((OutboundReply.__table__, {**outbound.model_dump(), "produced_at": None}))
            others[topics.CHAT_OUTBOUND.name] = [(outbound.key(), outbound.value())]
        reply = ChatReply(
            message_id=event.id, conversation_id=event.conversation_id, draft=draft.text, intent=draft.intent,
            intent_score=draft.intent_score, answer_id=draft.answer_id, escalate=draft.escalate,
            escalation_reason=draft.escalation_reason, retrieved=draft.retrieved, sentiment=sentiment.as_dict(),
            customer_state=state.as_dict() if state else None)
        alerts = []
        if draft.escalate:
            critical = any(r.startswith(CRITICAL) for r in draft.reasons)
            alert = AlertRecord(
                id=f"{ESCALATION}:{event.id}", kind=ESCALATION, key=event.conversation_id,
                severity="critical" if critical else "high", opened_at=when,
                summary=f"conversation {event.conversation_id}: {draft.escalation_reason}",
                payload={"message_id": event.id, "conversation_id": event.conversation_id,
                         "customer_id": event.customer_id, "reasons": draft.reasons, "intent": draft.intent,
                         "intent_score": draft.intent_score, "text": event.text[:500],
                         "customer_state": state.as_dict() if state else None})
            rows.append((Alert.__table__, alert.row()))
            alerts.append(alert)
        return Built(rows, [(reply.key(), reply.value())], alerts, other_records=others)

    def after_commit(self, stored: list[Built]) -> list[AlertRecord]:
        """Counts the stored messages' customer states and escalation reasons (``reason`` without its detail)."""
        for built in stored:
            for table, row in built.rows:
                if table is ChatMessage.__table__ and row.get("customer_state"):
                    self.sensor.on_customer_state(row["customer_state"])
                elif table is ReplyDraft.__table__ and row["escalate"]:
                    for reason in (row["escalation_reason"] or "unknown").split("; "):
                        self.sensor.on_escalation(reason.split(":")[0])
        return []
