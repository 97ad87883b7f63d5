"""The chat pipeline: sentiment, entities, intent → knowledge-base answer + generated opening;
rows, `chat.replies`, and an escalation alert when a person must take over.

Parsing, batching, dead letters, storage, produce and acknowledgement are the agent
loop's (``agents/loop.py``); this module says only what is particular to chat.
The worker runs chat's models in a child process of their own (``models/process.py``,
factory ``agents.chat:load_models``): the pipeline only sees ``infer(texts)``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from agents import clock, sensors
from agents.alerts.records import AlertRecord
from agents.conversation import ChatInput, ConversationHistory, intents_with_context
from agents.outbox import OUTBOUND
from agents.pipeline import Built, Received
from models.analysis import Analyzer
from models.customer_state import CustomerStateClassifier
from models.escalation import CRITICAL, EscalationPolicy
from models.intent import IntentClassifier
from models.replies import ReplyComposer
from models.trunk import EMBEDDING, shared_trunk
from schemas.events import ChatEvent, parse_chat
from schemas.records import OutboundReply as OutboundRecord
from schemas.tables import Alert, ChatMessage, OutboundReply, ReplyDraft, ReplyReview

ESCALATION = "escalation"
RUNNER_UP_FROM = 0.2  # an earlier message's runner-up intent from this probability counts as its subject too


class ChatModels:
    """Sentiment, entities, intent, the customer's state and the reply composer:
    (sentiment, entities, state, draft) per text.

    When the task models are heads of one trunk (the default), one encoder pass per message
    reads them all, and the trunk's embedding head gives the knowledge-base query."""

    def __init__(self, analyzer: Analyzer, intents: IntentClassifier, composer: ReplyComposer, states=None):
        """``states``: a ``CustomerStateClassifier`` (None: the customer's state is not read)."""
        self.analyzer = analyzer
        self.intents = intents
        self.composer = composer
        self.states = states
        tasks = {"sentiment": getattr(analyzer, "sentiment", None), "entities": getattr(analyzer, "entities", None),
                 "intent": intents, **({"customer_state": states} if states is not None else {})}
        # the tasks served by the trunk's heads share one pass; a task with a model of its own runs it
        self.trunk = shared_trunk(tasks, every=False)
        if self.trunk is not None:
            self.trunk.task = "chat_trunk"  # its timings apart from news's trunk on the dashboards

    def infer(self, inputs: list[str | ChatInput]) -> list[tuple]:
        """Per message (a text, or a ``ChatInput`` with its conversation's earlier texts, which the intent
        reads and whose own intents tell a repeated contact)."""
        texts = [i if isinstance(i, str) else i.text for i in inputs]
        contexts = [() if isinstance(i, str) else i.context for i in inputs]
        # One task after the other: chat's lane has its own thread (or process) and few CPU threads.
        read = self.trunk.read(texts, self.trunk.heads) if self.trunk is not None else {}
        if "sentiment" in read and "entities" in read:
            analysed = list(zip(read["sentiment"], read["entities"]))
        else:
            analysed = self.analyzer.analyze_texts(texts, side_by_side=False)
        intents = intents_with_context(self.intents, texts, contexts, alone=read.get("intent"))
        states = read.get("customer_state") or (self.states.predict(texts) if self.states is not None else None)
        queries = read.get(EMBEDDING)
        drafts = self.composer.compose(texts, intents, [a[0] for a in analysed], [a[1] for a in analysed],
                                       states=states, earlier_intents=self.earlier_intents(contexts),
                                       queries=queries)
        return [(sentiment, entities, states[k] if states else None, draft)
                for k, ((sentiment, entities), draft) in enumerate(zip(analysed, drafts))]

    def earlier_intents(self, contexts: list) -> list[list[tuple[str, ...]]]:
        """The likely intents of every earlier message of each context (its intent, and the runners-up
        from ``RUNNER_UP_FROM``: a follow-up such as "any update? still can't use my card" is often read
        alone as a neighbouring intent), each distinct text read once."""
        distinct = list(dict.fromkeys(t for context in contexts for t in context))
        if not distinct:
            return [[] for _ in contexts]
        read = {t: (i.label, *(n for n, s in i.alternatives if s >= RUNNER_UP_FROM))
                for t, i in zip(distinct, self.intents.predict(distinct))}
        return [[read[t] for t in context] for context in contexts]

    def timed(self) -> list:
        """The models whose per-phase timings are exported."""
        generator = self.composer.generator
        # the intent model also runs alone on conversation contexts, even when the trunk reads it
        read_by_trunk = self.trunk.tasks if self.trunk is not None else {}
        tasks = [self.trunk, *(m for name, m in (("sentiment", getattr(self.analyzer, "sentiment", None)),
                                                 ("entities", getattr(self.analyzer, "entities", None)),
                                                 ("customer_state", self.states)) if name not in read_by_trunk),
                 self.intents]
        return [m for m in (*tasks, generator) if m is not None and hasattr(m, "timings")]

    def describe(self) -> dict:
        generator = self.composer.generator
        return {"generator": generator.source if generator is not None else "templates",
                "models": [m.describe() for m in self.timed()]}


def load_models(settings) -> ChatModels:
    """Chat's models from the settings, warmed up (the model process's factory)."""
    from models.generator import ReplyGenerator
    from models.knowledge import Retriever

    analyzer = Analyzer.from_settings(settings)
    analyzer.warm_up()
    intents = IntentClassifier.from_settings(settings)
    intents.warm_up()
    states = CustomerStateClassifier.from_settings(settings)
    states.warm_up()
    # The generator is loaded only where drafts use it (models/openings.py: templates won on the labelled check).
    generator = ReplyGenerator.from_settings(settings) if settings.chat_opening == "generated" else None
    composer = ReplyComposer(Retriever.from_settings(settings), generator, EscalationPolicy.from_settings(settings),
                             settings.chat_opening)
    return ChatModels(analyzer, intents, composer, states)


class ChatPipeline:
    agent = "chat"
    input_topic = "chat"
    output_topic = "chat.replies"
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
            reply = OutboundRecord(message_id=event.id, conversation_id=event.conversation_id, text=draft.text,
                                   sent_by="auto", auto=True, edited=False)
            rows.append((OutboundReply.__table__, {**reply.model_dump(), "produced_at": None}))
            others[OUTBOUND] = [(reply.key(), reply.value())]
        reply = json.dumps({
            "message_id": event.id, "conversation_id": event.conversation_id, "draft": draft.text,
            "intent": draft.intent, "intent_score": draft.intent_score, "answer_id": draft.answer_id,
            "escalate": draft.escalate, "escalation_reason": draft.escalation_reason,
            "retrieved": draft.retrieved, "sentiment": sentiment.as_dict(),
            "customer_state": state.as_dict() if state else None}, ensure_ascii=False).encode()
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
        return Built(rows, [(event.id.encode(), reply)], alerts, other_records=others)

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
