"""The naive benchmark baseline computes what the batched runtime computes, one text at a time."""

import pytest

from bench.naive import TaskPipeline
from tests.helpers import score_tolerance

TEXTS = ["Harrow Logistics (NASDAQ: HRWL) cut its outlook, said CEO Jane Smith in Berlin.",
         "Shares rose.", "Émile Zoë's café chain grew 12% in Zürich"]


def test_hf_pipeline_baseline_matches_the_batched_models(sentiment_model, entity_model):
    sentiment, entities = TaskPipeline(sentiment_model), TaskPipeline(entity_model)
    batched_sentiment = sentiment_model.predict(TEXTS)
    batched_entities = entity_model.predict(TEXTS)
    close = score_tolerance(sentiment_model.loaded)
    for i, text in enumerate(TEXTS):
        one = sentiment(text)
        assert one.label == batched_sentiment[i].label
        assert one.scores["negative"] == pytest.approx(batched_sentiment[i].scores["negative"], abs=close)
        assert [(e.text, e.label, e.start) for e in entities(text)] == \
               [(e.text, e.label, e.start) for e in batched_entities[i]]
