"""The committed sentiment and entity artefacts, loaded offline, on real text."""

import json
import os
import subprocess
import sys

import pytest

from models.analysis import Analyzer
from tests.helpers import score_tolerance


@pytest.fixture(scope="module")
def analyzer(sentiment_model, entity_model):
    return Analyzer(sentiment_model, entity_model)


def test_clear_sentiment(sentiment_model):
    results = sentiment_model.predict([
        "Operating profit fell sharply and the company issued a profit warning.",
        "Net sales rose 25% and the company raised its full-year guidance.",
    ])
    assert [r.label for r in results] == ["negative", "positive"]
    for r in results:
        assert abs(sum(r.scores.values()) - 1.0) < 1e-3
        assert r.score == max(r.scores.values())


def test_entities_spans_are_exact_and_merged(entity_model):
    text = "Tim Cook, chief executive of Apple, met European Union officials in Brussels on Monday."
    entities = entity_model.predict([text])[0]
    for e in entities:
        assert text[e.start:e.end] == e.text
        assert 0.0 <= e.score <= 1.0
    found = {(e.text, e.label) for e in entities}
    assert ("Tim Cook", "PER") in found
    assert ("Apple", "ORG") in found
    assert ("Brussels", "LOC") in found


def test_tickers_win_over_model_spans(entity_model):
    text = "Apple Inc (NASDAQ: AAPL) slipped while $MSFT gained."
    entities = entity_model.predict([text])[0]
    tickers = [e.text for e in entities if e.label == "TICKER"]
    assert tickers == ["AAPL", "MSFT"]
    assert not [e for e in entities if e.text.startswith("NASDAQ")], "the exchange is part of the ticker rule"
    spans = sorted((e.start, e.end) for e in entities)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "spans overlap"


def test_batch_results_equal_one_at_a_time(analyzer):
    texts = ["Nokia cuts 1,000 jobs in Finland.", "", "Shares of Fortum rose after a strong quarter in Sweden.",
             "Ålandsbanken och Société Générale: résultats trimestriels en hausse à Zürich.",
             "Quarterly revenue was flat."]
    batched = analyzer.analyze_texts(texts)
    single = [analyzer.analyze_texts([t])[0] for t in texts]
    close = score_tolerance(analyzer.sentiment.loaded)
    for (s1, e1), (s2, e2) in zip(batched, single):
        assert s1.label == s2.label and abs(s1.score - s2.score) < close
        assert [(e.start, e.end, e.label) for e in e1] == [(e.start, e.end, e.label) for e in e2]


def test_tasks_side_by_side_give_the_same_results(sentiment_model, entity_model):
    """The worker's CPU mode (each task model in its own thread) pairs every text with its own results."""
    texts = [f"{name} shares fell after a weak quarter in {place}." for name, place in
             [("Nokia", "Finland"), ("Siemens", "Germany"), ("Fortum", "Sweden")]] * 20 + ["", "Flat year."]
    sequential = Analyzer(sentiment_model, entity_model).analyze_texts(texts)
    side_by_side = Analyzer(sentiment_model, entity_model, threads_per_task=1).analyze_texts(texts)
    close = score_tolerance(sentiment_model.loaded)
    for (s1, e1), (s2, e2) in zip(sequential, side_by_side, strict=True):
        assert s1.label == s2.label and abs(s1.score - s2.score) < close
        assert [(e.start, e.end, e.label) for e in e1] == [(e.start, e.end, e.label) for e in e2]


def test_empty_long_and_non_ascii_inputs(analyzer):
    long_text = ("Nokia reported weaker sales in Europe. " * 600)[:20_000]
    odd = "Ünïcödé — «Siemens» in München 株式会社 \u0000 control \x07 chars 😀"
    results = analyzer.analyze_texts(["", long_text, odd])
    assert results[0][1] == []
    assert results[1][0].label in {"negative", "neutral", "positive"}
    assert all(e.end <= 20_000 for e in results[1][1])
    for e in results[2][1]:
        assert odd[e.start:e.end] == e.text


def test_analyze_cli_works_with_the_hub_unreachable(tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"id": "a1", "text": "Siemens profit slumps in Germany."}) + "\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9")
    out = subprocess.run([sys.executable, "-m", "agents.cli", "analyze", "--file", str(inputs), "Plain text here."],
                         capture_output=True, text=True, env=env, timeout=300, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["a1", "1"]
    assert set(rows[0]) == {"id", "text", "sentiment", "entities"}
    assert set(rows[0]["sentiment"]["scores"]) == {"negative", "neutral", "positive"}
    assert rows[0]["sentiment"]["label"] == "negative"
    assert any(e["text"] == "Siemens" for e in rows[0]["entities"])


def test_analyze_cli_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    proc = subprocess.run([sys.executable, "-m", "agents.cli", "analyze", "--file", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "line 1 is not JSON" in proc.stderr and "what to do" in proc.stderr


@pytest.mark.parametrize("source", ["base", "trunk"])
def test_headline_embeddings_are_the_headlines_own_whatever_the_body(analyzer, source):
    """Stories read the headline's own embedding: the base encoder's (served) or the trunk's embedding head."""
    from agents.alerts.stories import headline_end
    from models.sentences import SentenceEncoder
    from models.trunk import EMBEDDING
    from schemas.events import NewsEvent

    headlines = SentenceEncoder.from_settings() if source == "base" else None
    reader = Analyzer(analyzer.sentiment, analyzer.entities, headlines=headlines)
    events = [NewsEvent(id="1", title="Kestrel Paper to cut 300 jobs", text="The mill in Ohio closes in May."),
              NewsEvent(id="2", title="Kestrel Paper to cut 300 jobs", text="Unions said they would fight it."),
              NewsEvent(id="3", title="Kestrel Paper to cut 300 jobs", text="")]
    read = reader.analyze_texts([e.content for e in events], headline_ends=[headline_end(e.title, e.content)
                                                                             for e in events])
    head = analyzer.trunk.read([events[0].title], [EMBEDDING])[EMBEDDING][0]
    alone = headlines.embed([events[0].title])[0] if headlines is not None else head
    for sentiment, entities, embedding in read:
        assert float(embedding @ alone) > 0.999
    if headlines is not None:  # the two sources differ: the head only approximates the base encoder's space
        assert float(read[0][2] @ head) < 0.99
    assert [r[:2] for r in read] == reader.analyze_texts([e.content for e in events])


def test_the_served_analyzer_reads_story_embeddings_from_the_base_encoder():
    from infra.settings import Settings
    from models.sentences import SentenceEncoder

    served = Analyzer.from_settings(Settings(sentiment_cascade="off"))
    assert served.embeds and served.headlines is SentenceEncoder.from_settings()
    assert Analyzer.from_settings(Settings(sentiment_cascade="off", story_embedding="trunk")).headlines is None
