"""The trunk: one encoder pass per text feeds every task head (models/trunk.py)."""

from __future__ import annotations

import pytest
import torch

from infra.settings import ARTIFACTS, Settings, get_settings
from models.analysis import Analyzer
from models.customer_state import CustomerStateClassifier
from models.entities import EntityRecognizer
from models.intent import IntentClassifier
from models.sentiment import SentimentClassifier
from models.trunk import EMBEDDING, ENTITY_SENTIMENT, head_view, load_trunk, shared_trunk
from tests.helpers import score_tolerance

NEWS = ["Nokia cuts 1,000 jobs in Finland after a weak quarter.", "",
        "Apple Inc (NASDAQ: AAPL) rose after Tim Cook spoke in Paris.",
        "Ålandsbanken och Société Générale: résultats trimestriels en hausse à Zürich.",
        "Quarterly revenue was flat."]
CHAT = ["Where is my new card? I ordered it two weeks ago.", "I want to close my account, you are useless",
        "How do I top up with Apple Pay?", "my card was stolen in Madrid yesterday"]


def _counting(trunk):
    """A forward pre-hook on the trunk's encoder that counts the rows it computes. The trunk runs eager
    from here on: a trace runs its graph without the modules' hooks."""
    trunk.trace = False
    model = trunk.loaded.model
    seen = {"rows": 0, "calls": 0}

    def hook(module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        seen["rows"] += int(embeds.shape[0])
        seen["calls"] += 1

    return seen, model.encoder.register_forward_pre_hook(hook, with_kwargs=True)


def _rows(n: int, model) -> int:
    """Encoder rows for one batch of ``n`` texts: bucketed batches (bf16 on CPU) repeat the last row up to a
    power of two."""
    return 1 << (n - 1).bit_length() if model.buckets else n


@pytest.fixture(scope="module")
def heads():
    """Every head of the trunk as its task's model (the customer state's head is not the default: below)."""
    s = get_settings()
    return {"sentiment": SentimentClassifier.from_settings(s), "entities": EntityRecognizer.from_settings(s),
            "intent": IntentClassifier.from_settings(s),
            "customer_state": CustomerStateClassifier(head_view(load_trunk(s), "customer_state"))}


def test_the_default_task_models_are_heads_of_one_shared_trunk(heads):
    assert {name: m.loaded.head for name, m in heads.items()} == {n: n for n in heads}
    assert len({id(m.loaded.model) for m in heads.values()}) == 1, "every head shares the trunk's weights"
    assert load_trunk() is load_trunk(), "the trunk is loaded once per process"
    # the customer's state keeps its own model by default: the trunk's head escalates less reliably
    assert CustomerStateClassifier.from_settings().loaded.head is None


def test_chat_reads_the_trunks_heads_in_one_pass_and_its_own_models_beside(heads, monkeypatch):
    """Default chat: one trunk pass for sentiment, entities, intent and the retrieval query; the customer
    state's own model; no base-encoder pass for the query."""
    from models.chat import ChatModels
    from models.knowledge import Retriever
    from models.replies import ReplyComposer

    states = CustomerStateClassifier.from_settings()
    retriever = Retriever.from_settings()
    models = ChatModels(Analyzer(heads["sentiment"], heads["entities"]), heads["intent"],
                        ReplyComposer(retriever, None), states)
    assert set(models.trunk.tasks) == {"sentiment", "entities", "intent"} and EMBEDDING in models.trunk.heads
    teacher = heads["intent"].teacher  # the intent teacher reads beside the trunk, its timings apart
    assert teacher is not None and teacher.task == "intent_teacher" and teacher.loaded.head is None
    assert models.timed() == [models.trunk, states, heads["intent"], teacher]
    embedded = []
    monkeypatch.setattr(retriever, "embed", lambda texts: embedded.append(texts) or Retriever.embed(retriever, texts))
    seen, hook = _counting(models.trunk)
    try:
        results = models.infer(CHAT)
    finally:
        hook.remove()
    assert seen["rows"] == _rows(len(CHAT), models.trunk), "one trunk row per message (the separate models: five)"
    assert embedded == [], "the query comes from the trunk's embedding head"
    assert results[1][2].label in ("leaving", "angry"), "the state comes from the customer state's own model"
    assert results[3][3].escalate, "a stolen card goes to a person"


def test_one_pass_gives_what_each_head_gives_alone(heads):
    trunk = shared_trunk(heads)
    texts = NEWS + CHAT
    seen, hook = _counting(trunk)
    try:
        read = trunk.read(texts, trunk.heads)
    finally:
        hook.remove()
    assert seen["calls"] == 1 and seen["rows"] == _rows(len(texts), trunk), "one pass for every head"
    assert set(read) == {"sentiment", "entities", "intent", "customer_state", EMBEDDING, ENTITY_SENTIMENT}
    for name, model in heads.items():
        alone = model.predict(texts)
        for joint, single in zip(read[name], alone):
            if name == "entities":
                assert [(e.start, e.end, e.label) for e in joint] == [(e.start, e.end, e.label) for e in single]
            else:
                assert joint.label == single.label and abs(joint.score - single.score) < score_tolerance(model.loaded)
    assert read[EMBEDDING].shape == (len(texts), 384)
    assert torch.allclose(read[EMBEDDING].norm(dim=-1), torch.ones(len(texts)), atol=1e-4)


def test_the_analyzer_reads_sentiment_and_entities_in_one_pass(heads):
    for lanes in (0, 1):
        analyzer = Analyzer(heads["sentiment"], heads["entities"], threads_per_task=lanes)
        assert analyzer.trunk is not None and analyzer.timed() == [analyzer.trunk]
        seen, hook = _counting(analyzer.trunk)
        try:
            results = analyzer.analyze_texts(NEWS)
        finally:
            hook.remove()
        assert seen["rows"] == len(NEWS) if not analyzer.trunk.buckets else seen["rows"] < 2 * len(NEWS), \
            f"lanes={lanes}: {seen['rows']} rows; the separate models computed {2 * len(NEWS)}"
        found = {(e.text, e.label) for e in results[2][1]}
        assert ("AAPL", "TICKER") in found and ("Tim Cook", "PER") in found
        assert results[0][0].label == "negative"
    assert analyzer.version.startswith("trunk-")


def test_the_trunk_embedding_stands_in_for_the_base_encoders_query(data_dir):
    """The knowledge base keeps its base-encoder index; the trunk's embedding head, chat's query, retrieves
    the right entry (the message's intent's) at least as often as the base encoder's own embedding."""
    import random

    from models.training import datasets
    from models.knowledge import Retriever
    from models.trunk import Trunk

    test = datasets.banking77_splits(data_dir)["test"]
    picks = random.Random(5).sample(range(len(test.texts)), 300)
    texts, gold = [test.texts[i] for i in picks], [test.labels[i] for i in picks]
    retriever = Retriever.from_settings()
    queries = Trunk(load_trunk(), {}).read(texts, [EMBEDDING])[EMBEDDING]
    assert torch.allclose(queries.norm(dim=-1), torch.ones(len(texts)), atol=1e-4)
    right = {name: sum(hits[0][0].intent == g for hits, g in zip(found, gold)) / len(texts)
             for name, found in (("trunk", retriever.search(texts, 1, queries)), ("base", retriever.search(texts, 1)))}
    assert right["trunk"] >= right["base"] - 0.02 and right["trunk"] >= 0.6, right


def test_a_task_model_of_its_own_leaves_the_trunk(heads):
    separate = SentimentClassifier.from_settings(Settings(sentiment_model=str(ARTIFACTS / "sentiment")))
    assert separate.loaded.head is None
    analyzer = Analyzer(separate, heads["entities"])
    assert analyzer.trunk is None and analyzer.timed() == [separate, heads["entities"]]
    assert analyzer.analyze_texts(NEWS[:1])[0][0].label == "negative"


def test_a_trunk_setting_that_is_no_trunk_says_so(tmp_path):
    from models.trunk import _load_trunk

    _load_trunk.cache_clear()
    with pytest.raises(FileNotFoundError, match="sentinel train trunk"):
        load_trunk(Settings(trunk_model=str(tmp_path)))
    with pytest.raises(ValueError, match="not a trunk"):
        load_trunk(Settings(trunk_model=str(ARTIFACTS / "intent")))


def test_the_traced_pass_gives_the_eager_numbers_for_every_shape_and_set_of_heads(heads):
    """On CPU the trunk runs a TorchScript trace per set of heads: the same logits as the eager pass, bit for
    bit, for batches of one to many rows and short to truncated texts."""
    from models.trunk import Trunk

    loaded, tasks = shared_trunk(heads).loaded, shared_trunk(heads).tasks
    traced, eager = Trunk(loaded, tasks, trace=True), Trunk(loaded, tasks, trace=False)
    texts = NEWS + CHAT + [" ".join(NEWS * 12)]  # the last one is cut at max_length
    features = traced.encode(texts)
    for head_set in (["sentiment", "entities"], traced.heads, ["intent", EMBEDDING]):
        for part in (features[:1], features[2:3], features[:5], features):
            a, b = traced.run_heads(part, head_set), eager.run_heads(part, head_set)
            assert list(a) == head_set
            for name in head_set:
                for x, y in zip(a[name], b[name], strict=True):
                    assert torch.equal(x, y), (name, len(part))
    assert len(traced._traces) == 3, "one trace per set of heads"  # noqa: SLF001


def test_the_trunk_in_bfloat16_reads_what_it_reads_in_float32(heads):
    """bfloat16 (the default on CPUs with AMX): every head's labels and entity spans as in float32."""
    from models.trunk import Trunk

    tasks = shared_trunk(heads).tasks
    loaded = {d: load_trunk(Settings(dtype=d)) for d in ("float32", "bfloat16")}
    for d, trunk in loaded.items():
        assert trunk.dtype == getattr(torch, d) and next(trunk.model.parameters()).dtype == getattr(torch, d)
    wide, narrow = Trunk(loaded["float32"], tasks), Trunk(loaded["bfloat16"], tasks)
    assert narrow.buckets and not wide.buckets, "bf16 on CPU reads in bucketed shapes"
    texts = NEWS + CHAT
    a, b = wide.read(texts, wide.heads), narrow.read(texts, wide.heads)
    for name in tasks:
        if name == "entities":
            assert [[(e.start, e.end, e.label) for e in row] for row in a[name]] == \
                   [[(e.start, e.end, e.label) for e in row] for row in b[name]]
        else:
            assert [r.label for r in a[name]] == [r.label for r in b[name]], name
    assert b[EMBEDDING].dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a[EMBEDDING], b[EMBEDDING]).min() > 0.99


def test_chat_reads_sentiment_without_the_news_cascade():
    """The sentiment cascade's teacher was chosen on news headlines: chat's customer messages are read by the
    trunk's head alone, and chat's one teacher is the intent teacher."""
    from models.chat import chat_analyzer

    s = get_settings()
    assert s.sentiment_cascade == "on"  # news keeps it
    analyzer = chat_analyzer(s)
    assert analyzer.sentiment.cascade is None and analyzer.sentiment.loaded.head == "sentiment"
