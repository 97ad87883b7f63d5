"""The chat models as one bundle: what a chat message is read with, in the worker or in its model process.

``ChatModels.infer`` reads each message (a text, or a ``ChatInput`` with its conversation's earlier
texts) with sentiment, entities, intent and the customer's state, and drafts its reply: when the task
models are heads of one trunk (the default), one encoder pass per message reads them all. How the
context is used (``intents_with_context``): the intent is read from the message alone and from the
message followed by its context (newest first, so truncation drops the oldest); the message alone
decides when the intent model is at least ``ALONE_DECIDES_FROM`` sure of it, otherwise the more
confident of the two readings wins (figures in ``agents/conversation.py``, where the context is read).
``load_models`` is the factory the worker's chat model process calls (``models/process.py``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

from models.analysis import Analyzer
from models.customer_state import CustomerStateClassifier
from models.escalation import INJECTION, EscalationPolicy
from models.intent import IntentClassifier
from models.replies import ReplyComposer
from models.trunk import EMBEDDING, shared_trunk

ALONE_DECIDES_FROM = 0.95  # the intent model's probability from which a message alone decides its intent
# Texts whose intent, read alone, is kept for the messages after them: a conversation's earlier messages were
# read when they came, so their intents are looked up, not read again (each context text is a full model call).
INTENTS_KEPT = 4096
RUNNER_UP_FROM = 0.2  # an earlier message's runner-up intent from this probability counts as its subject too


class ChatInput(NamedTuple):
    """What the chat models get for one message: its text and its context (earlier texts, newest first)."""

    text: str
    context: tuple[str, ...] = ()


def intents_with_context(classifier, texts: Sequence[str], contexts: Sequence[Sequence[str]],
                         alone: Sequence | None = None) -> list:
    """Each text's intent, read alone (``alone``: already read) and, where it has a context, with it
    (see the module's doc)."""
    alone = list(alone) if alone is not None else classifier.predict(list(texts))
    asked = [i for i, context in enumerate(contexts) if context and alone[i].score < ALONE_DECIDES_FROM]
    if not asked:
        return alone
    joined = classifier.predict([" ".join([texts[i], *contexts[i]]) for i in asked])
    out = list(alone)
    for i, reading in zip(asked, joined):
        if reading.score > alone[i].score:
            out[i] = reading
    return out


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
        self._intents_read: OrderedDict[str, object] = OrderedDict()  # text -> its intent read alone (LRU)
        self._intents_lock = threading.Lock()

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
        alone = read.get("intent") or self.intents.predict(texts)
        self._keep_intents(texts, alone)
        # A message that tries to instruct the assistant goes to a person whatever its intent
        # (models/escalation.py): reading it again with its context would change nothing it gets.
        asking = [() if INJECTION.search(t) else c for t, c in zip(texts, contexts)]
        intents = intents_with_context(self.intents, texts, asking, alone=alone)
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
        alone as a neighbouring intent), each distinct text read once, and not at all when its intent is kept
        from an earlier call (``INTENTS_KEPT``)."""
        distinct = list(dict.fromkeys(t for context in contexts for t in context))
        if not distinct:
            return [[] for _ in contexts]
        with self._intents_lock:
            known = {t: self._intents_read[t] for t in distinct if t in self._intents_read}
        unread = [t for t in distinct if t not in known]
        if unread:
            fresh = self.intents.predict(unread)
            self._keep_intents(unread, fresh)
            known.update(zip(unread, fresh))
        read = {t: (i.label, *(n for n, s in i.alternatives if s >= RUNNER_UP_FROM)) for t, i in known.items()}
        return [[read[t] for t in context] for context in contexts]

    def _keep_intents(self, texts: Sequence[str], intents: Sequence) -> None:
        with self._intents_lock:
            for t, i in zip(texts, intents):
                self._intents_read[t] = i
                self._intents_read.move_to_end(t)
            while len(self._intents_read) > INTENTS_KEPT:
                self._intents_read.popitem(last=False)

    def timed(self) -> list:
        """The models whose per-phase timings are exported."""
        generator = self.composer.generator
        # the intent model also runs alone on conversation contexts, even when the trunk reads it
        read_by_trunk = self.trunk.tasks if self.trunk is not None else {}
        tasks = [self.trunk, *(m for name, m in (("sentiment", getattr(self.analyzer, "sentiment", None)),
                                                 ("entities", getattr(self.analyzer, "entities", None)),
                                                 ("customer_state", self.states)) if name not in read_by_trunk),
                 self.intents, getattr(self.intents, "teacher", None)]
        return [m for m in (*tasks, generator) if m is not None and hasattr(m, "timings")]

    def describe(self) -> dict:
        generator = self.composer.generator
        return {"generator": generator.source if generator is not None else "templates",
                "models": [m.describe() for m in self.timed()]}


def chat_analyzer(settings) -> Analyzer:
    """Sentiment and entities of customer messages: the trunk's heads without the sentiment cascade. Its teacher was
    chosen on news headlines (docs/MODELS.md) and decides nothing in chat (escalation reads the customer's state), so
    chat's one teacher is the intent teacher, which is measured there."""
    return Analyzer.from_settings(settings.model_copy(update={"sentiment_cascade": "off"}))


def load_models(settings) -> ChatModels:
    """Chat's models from the settings, warmed up (the model process's factory)."""
    from models.generator import ReplyGenerator
    from models.knowledge import Retriever

    analyzer = chat_analyzer(settings)
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
