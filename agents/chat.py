"""The chat agent: validate → micro-batch → sentiment, entities, intent → knowledge-base
answer + generated opening → Postgres → `chat.replies`, escalations → `alerts`.

Same delivery rules and the same two stages as the news agent: ``prepare`` runs
the models, ``store`` writes one transaction per batch keyed by the message id;
offsets are acknowledged after the commit and the produce.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from agents.news import Outputs, Prepared, Received, dead_letter_rows_for
from agents.sinks import Batch, PostgresSink
from infra import metrics
from models.analysis import Analyzer
from models.intent import IntentClassifier
from models.replies import ReplyComposer
from schemas.events import ChatEvent, parse_chat
from schemas.tables import Alert, ChatMessage, DeadLetter, ReplyDraft

log = logging.getLogger(__name__)
AGENT = "chat"


class ChatPipeline:
    def __init__(self, analyzer: Analyzer, intents: IntentClassifier, composer: ReplyComposer, sink: PostgresSink,
                 model_pool: ThreadPoolExecutor, db_pool: ThreadPoolExecutor):
        self.analyzer = analyzer
        self.intents = intents
        self.composer = composer
        self.sink = sink
        self.model_pool = model_pool
        self.db_pool = db_pool
        generator = composer.generator
        self.generator_name = generator.source if generator is not None else "none"

    def _run_models(self, events: list[ChatEvent]):
        texts = [e.text for e in events]
        with metrics.BATCH_MODELS.labels(AGENT).time():
            analysed = self.analyzer.analyze_texts(texts)
            intents = self.intents.predict(texts)
            drafts = self.composer.compose(texts, intents, [a[0] for a in analysed], [a[1] for a in analysed])
        return analysed, drafts

    async def prepare(self, messages: list[Received]) -> Prepared:
        """Parse the batch, run the models and compose the drafts (in the model thread); build the rows."""
        loop = asyncio.get_running_loop()
        metrics.BATCH_SIZE.labels(AGENT).observe(len(messages))
        valid, dead = dead_letter_rows_for(messages, parse_chat, AGENT)
        events = [e for _, e in valid]
        analysed, drafts = await loop.run_in_executor(self.model_pool, self._run_models, events) if events else ([], [])
        batch = Batch()
        replies, alerts = [], []
        for (m, event), (sentiment, entities), draft in zip(valid, analysed, drafts):
            when = event.ts or datetime.fromtimestamp(m.timestamp, tz=UTC)
            batch.add(ChatMessage.__table__, {
                "id": event.id, "conversation_id": event.conversation_id, "customer_id": event.customer_id,
                "channel": event.channel, "text": event.text, "sentiment_label": sentiment.label,
                "negative": sentiment.scores["negative"], "entities": [e.as_dict() for e in entities],
                "kafka_partition": m.partition, "kafka_offset": m.offset, "event_time": when})
            batch.add(ReplyDraft.__table__, {
                "message_id": event.id, "conversation_id": event.conversation_id, "intent": draft.intent,
                "intent_score": draft.intent_score, "draft": draft.text, "escalate": draft.escalate,
                "escalation_reason": draft.escalation_reason, "retrieved": draft.retrieved,
                "generator": self.generator_name})
            reply = {"message_id": event.id, "conversation_id": event.conversation_id, "draft": draft.text,
                     "intent": draft.intent, "intent_score": draft.intent_score, "answer_id": draft.answer_id,
                     "escalate": draft.escalate, "escalation_reason": draft.escalation_reason,
                     "retrieved": draft.retrieved, "sentiment": sentiment.as_dict()}
            replies.append((event.id.encode(), json.dumps(reply, ensure_ascii=False).encode()))
            if draft.escalate:
                severity = "critical" if any(r.startswith(("risk_intent", "prompt_injection"))
                                             for r in draft.reasons) else "high"
                alert = {"id": f"escalation:{event.id}", "kind": "escalation", "key": event.conversation_id,
                         "severity": severity, "opened_at": when.isoformat(),
                         "payload": {"message_id": event.id, "conversation_id": event.conversation_id,
                                     "customer_id": event.customer_id, "reasons": draft.reasons,
                                     "intent": draft.intent, "intent_score": draft.intent_score,
                                     "text": event.text[:500]},
                         "summary": f"conversation {event.conversation_id}: {draft.escalation_reason}"}
                batch.add(Alert.__table__, {"id": alert["id"], "kind": "escalation", "key": alert["key"],
                                            "severity": severity, "status": "open", "opened_at": when,
                                            "last_seen_at": when, "payload": alert["payload"]})
                alerts.append(alert)
        for row in dead:
            batch.add(DeadLetter.__table__, row)
        return Prepared(batch, Outputs(replies, dead, alerts), [m for m, _ in valid])

    async def store(self, prepared: Prepared) -> Outputs:
        """Write the batch in one transaction (in the database thread)."""
        await asyncio.get_running_loop().run_in_executor(self.db_pool, self.sink.write, prepared.batch)
        committed = time.time()
        for m in prepared.stored:
            metrics.END_TO_END.labels(AGENT).observe(max(0.0, committed - m.timestamp))
        return prepared.outputs
