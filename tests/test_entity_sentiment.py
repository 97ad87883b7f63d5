"""Entity-level sentiment (the trunk's ``entity_sentiment`` head) and the sentiment cascade to the teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from infra.settings import ARTIFACTS, Settings
from models.training import datasets
from models.encoder import LoadedModel, base_encoder_path
from models.entities import Entity, encode_texts
from models.sentiment import LABELS, Sentiment, SentimentCascade, SentimentClassifier, margin
from models.trunk import ENTITY_SENTIMENT, EMBEDDING, SPAN, Trunk, TrunkNet, span_features, token_range

TRAINED = ARTIFACTS / "trunk_entity"
TWO_COMPANIES = "Reliance Industries gains 3%, Bharti Airtel slips 2%"


# --- the SEntFiN entity-level split ---------------------------------------------------------


def test_the_sentfin_entity_split_is_fixed_and_by_headline(data_dir):
    first, again = datasets.sentfin_entity_splits(data_dir), datasets.sentfin_entity_splits(data_dir)
    parts = ("train", "val", "test")
    assert all(first[p] == again[p] for p in parts), "the split is fixed"
    titles = {p: [h.title.casefold().strip() for h in first[p]] for p in parts}
    for p in parts:
        assert len(titles[p]) == len(set(titles[p])), f"a headline repeated inside {p}"
    assert not set(titles["train"]) & set(titles["val"])
    assert not set(titles["train"]) & set(titles["test"])
    assert not set(titles["val"]) & set(titles["test"])
    n = sum(len(titles[p]) for p in parts)
    assert [round(len(titles[p]) / n, 2) for p in parts] == [0.8, 0.1, 0.1]
    # every entity of a headline stays with it, and its span is what the title says there
    for h in first["test"]:
        for name, label, start, end in h.entities:
            assert h.title[start:end].casefold() == name.strip().casefold() and label in LABELS
    assert sum(h.conflicting for h in first["test"]) > 50


def test_entity_spans_are_found_case_insensitively_and_as_whole_words():
    assert datasets.locate_entity("Shares of HDFC Bank rise", "hdfc bank") == (10, 19)
    # a whole-word match wins over an earlier match inside a word
    assert datasets.locate_entity("Tatas hold Tata stake", "Tata") == (11, 15)
    assert datasets.locate_entity("TATAS hold tata stake", "Tata") == (11, 15)
    assert datasets.locate_entity("Reliance Industries up", "Reliance Ind") == (0, 12)  # inside a word, if only that
    assert datasets.locate_entity("Nifty ends flat", "Sensex") is None
    assert datasets.locate_entity("Nifty ends flat", "  ") is None


def test_a_span_maps_to_the_tokens_of_the_words_it_covers():
    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path(""))
    text = "Tata Motors slumps; Infosys rallies"
    feature = encode_texts(tokenizer, [text], 64)[0]
    a, b = token_range(feature, 0, 11)
    assert tokenizer.decode(feature["input_ids"][a:b]) == "tata motors"
    a, b = token_range(feature, text.index("Infosys"), text.index("Infosys") + 7)
    assert tokenizer.decode(feature["input_ids"][a:b]) == "infosys"
    a, b = token_range(feature, text.index("rallies"), len(text))  # the last word: its tokens, not [SEP]
    assert tokenizer.decode(feature["input_ids"][a:b]) == "rallies"
    assert token_range(feature, 200, 210) is None
    cut = encode_texts(tokenizer, [text], 4)[0]  # [CLS] tata motors [SEP]: the words after are cut
    assert token_range(cut, 0, 11) is not None and token_range(cut, 20, 27) is None


def test_span_features_average_the_span_and_the_whole_row():
    states = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    got = span_features(states, mask, torch.tensor([[0, 1, 3], [1, 0, 1]]))
    assert torch.equal(got[0], torch.cat([states[0, 1:3].mean(0), states[0, :3].mean(0)]))
    assert torch.equal(got[1], torch.cat([states[1, 0], states[1].mean(0)]))


# --- the head, through the trunk's API ----------------------------------------------------------


@pytest.fixture(scope="module")
def fake_trunk():
    """FAKE: a tiny randomly initialised two-layer BERT with the trunk's heads (no training), for shapes and
    plumbing; it reads nothing meaningful."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path(""))
    encoder = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64), add_pooling_layer=False)
    heads = {"sentiment": {"kind": "sequence", "labels": LABELS},
             "entities": {"kind": "token", "labels": ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC",
                                                      "B-MISC", "I-MISC"]},
             ENTITY_SENTIMENT: {"kind": SPAN, "labels": LABELS}, EMBEDDING: {"kind": EMBEDDING, "labels": []}}
    net = TrunkNet(encoder, heads).eval()
    return LoadedModel(tokenizer, net, [], {"task": "trunk", "heads": heads, "use_shapes": True,
                                            "word_features": True}, torch.device("cpu"), torch.float32,
                       "(fake trunk)", True)


def test_the_span_head_gives_one_reading_of_three_labels_per_span(fake_trunk):
    net = fake_trunk.model
    batch = {"input_ids": torch.randint(1000, 2000, (3, 7)), "attention_mask": torch.ones(3, 7, dtype=torch.long)}
    spans = torch.tensor([[0, 1, 2], [0, 3, 5], [2, 1, 4], [1, 2, 3]])
    with torch.no_grad():
        assert net(**batch, heads=(ENTITY_SENTIMENT,), spans=spans)[ENTITY_SENTIMENT].shape == (4, 3)
        states = net(**batch, heads=(ENTITY_SENTIMENT,))[ENTITY_SENTIMENT]  # no spans: the token states
        assert states.shape == (3, 7, 32)
        # the same logits from the pass's states after the pass (how serving applies it)
        after = net.span_logits(ENTITY_SENTIMENT, list(states), [tuple(s) for s in spans.tolist()])
        assert torch.allclose(after, net(**batch, heads=(ENTITY_SENTIMENT,), spans=spans)[ENTITY_SENTIMENT],
                              atol=1e-5)


def test_every_org_and_ticker_gets_a_reading_from_the_same_pass(fake_trunk, monkeypatch):
    from models.entities import EntityRecognizer

    trunk = Trunk(fake_trunk, {"entities": EntityRecognizer(_view(fake_trunk, "entities"))}, trace=False)
    found = [[Entity("Infosys", "ORG", 0, 7, 0.9), Entity("Bengaluru", "LOC", 30, 39, 0.9),
              Entity("INFY", "TICKER", 51, 55, 1.0)]]
    monkeypatch.setattr(trunk.tasks["entities"], "decode", lambda texts, features, logits: found)
    passes = []
    real = fake_trunk.model.encoder.forward
    monkeypatch.setattr(fake_trunk.model.encoder, "forward", lambda *a, **k: passes.append(1) or real(*a, **k))
    read = trunk.read(["Infosys opens a new campus in Bengaluru (NYSE: INFY)"], ["entities", ENTITY_SENTIMENT])
    assert len(passes) == 1, "the entity-sentiment head adds no encoder pass"
    org, loc, ticker = read["entities"][0]
    assert isinstance(org.sentiment, Sentiment) and isinstance(ticker.sentiment, Sentiment) and loc.sentiment is None
    assert read[ENTITY_SENTIMENT] == [[org.sentiment, ticker.sentiment]]
    assert org.as_dict()["sentiment"] == {"label": org.sentiment.label, "score": round(org.sentiment.score, 6)}
    assert "sentiment" not in loc.as_dict()


def _view(loaded: LoadedModel, head: str) -> LoadedModel:
    from models.trunk import head_view

    return head_view(loaded, head)


@pytest.mark.skipif(not (TRAINED / "sentinel.json").is_file(), reason="models/artifacts/trunk_entity not trained")
def test_two_companies_in_one_headline_each_get_their_own_reading():
    """The trained head through the API: one company up, the other down, each read as such (the headline's own
    sentiment is one label for both)."""
    from models.analysis import Analyzer

    analyzer = Analyzer.from_settings(Settings(trunk_model=str(TRAINED)))
    (_, entities), = analyzer.analyze_texts([TWO_COMPANIES])
    orgs = {e.text: e.sentiment.label for e in entities if e.label == "ORG"}
    assert orgs["Reliance Industries"] == "positive"
    assert [label for name, label in orgs.items() if name.endswith("Airtel")] == ["negative"]
    record = next(analyzer.analyze([("1", TWO_COMPANIES)]))
    assert {e["text"]: e["sentiment"]["label"] for e in record["entities"] if e["label"] == "ORG"} == orgs


def test_the_served_trunk_reads_each_company_in_its_own_sentiment():
    from models.analysis import Analyzer

    analyzer = Analyzer.from_settings(Settings())
    (_, entities), = analyzer.analyze_texts([TWO_COMPANIES])
    orgs = [e for e in entities if e.label == "ORG"]
    assert orgs and all(e.sentiment is not None and e.sentiment.label in LABELS for e in orgs)


def test_a_trunk_without_the_head_gives_entities_no_sentiment():
    from models.analysis import Analyzer

    analyzer = Analyzer.from_settings(Settings(trunk_model=str(ARTIFACTS / "trunk_distilled")))  # an older trunk
    (_, entities), = analyzer.analyze_texts([TWO_COMPANIES])
    assert entities and all(e.sentiment is None and "sentiment" not in e.as_dict() for e in entities)


# --- the cascade ---------------------------------------------------------------------------------


class FakeTeacher:
    """FAKE teacher: reads every text as positive with certainty, and records what it was asked."""

    def __init__(self):
        self.asked: list[list[str]] = []

    def predict(self, texts):
        self.asked.append(list(texts))
        return [Sentiment("positive", 1.0, {"negative": 0.0, "neutral": 0.0, "positive": 1.0}) for _ in texts]


def _reading(negative: float, neutral: float, positive: float) -> Sentiment:
    scores = {"negative": negative, "neutral": neutral, "positive": positive}
    label = max(scores, key=scores.get)
    return Sentiment(label, scores[label], scores)


def test_the_cascade_sends_exactly_the_texts_under_the_margin_to_the_teacher_in_one_batch():
    teacher = FakeTeacher()
    cascade = SentimentCascade(teacher, 0.3)
    readings = [_reading(0.9, 0.05, 0.05), _reading(0.4, 0.35, 0.25), _reading(0.2, 0.5, 0.3),
                _reading(0.1, 0.25, 0.65), _reading(0.0, 0.3, 0.7)]
    assert [round(margin(r), 4) for r in readings] == [0.85, 0.05, 0.2, 0.4, 0.4]
    texts = ["a", "b", "c", "d", "e"]
    out = cascade.refine(texts, readings)
    assert teacher.asked == [["b", "c"]], "one batched call with the texts under the margin"
    assert [r.label for r in out] == ["negative", "positive", "positive", "positive", "positive"]
    assert [r.cascaded for r in out] == [False, True, True, False, False]
    assert out[1].scores == {"negative": 0.2, "neutral": 0.175, "positive": 0.625}, "the mean of the two readings"
    assert out[0] is readings[0] and out[3] is readings[3]
    assert (cascade.seen, cascade.routed) == (5, 2)
    assert SentimentCascade(FakeTeacher(), 0.0).refine(texts, readings) == readings


def test_a_teacher_less_sure_than_the_student_does_not_overturn_it():
    class UnsureTeacher:
        """FAKE teacher: leans positive, barely."""

        def predict(self, texts):
            return [_reading(0.45, 0.0, 0.55) for _ in texts]

    student = _reading(0.62, 0.0, 0.38)  # margin 0.24: routed
    (out,) = SentimentCascade(UnsureTeacher(), 0.3).refine(["a"], [student])
    assert out.cascaded and out.label == "negative" and out.scores["negative"] == 0.535


def test_the_cascade_runs_inside_the_students_own_call(monkeypatch):
    """Through the trunk's sentiment head: the decode of the student's logits hands the unsure texts to the teacher."""
    student = SentimentClassifier.__new__(SentimentClassifier)
    student.loaded = LoadedModel(None, None, list(LABELS), {}, torch.device("cpu"), torch.float32, "(fake)", True)
    student.cascade = SentimentCascade(FakeTeacher(), 0.3)
    logits = [torch.tensor([4.0, 0.0, 0.0]), torch.tensor([0.1, 0.0, 0.05])]
    out = student.decode(["sure", "unsure"], [{}, {}], logits)
    assert student.cascade.teacher.asked == [["unsure"]]
    assert [(r.label, r.cascaded) for r in out] == [("negative", False), ("positive", True)]


def test_the_teacher_is_loaded_only_when_the_cascade_is_on(monkeypatch):
    loads = []
    monkeypatch.setattr(SentimentCascade, "from_settings", classmethod(lambda cls, s: loads.append(s) or "cascade"))
    assert SentimentClassifier.from_settings(Settings(sentiment_cascade="off")).cascade is None
    assert not loads
    assert SentimentClassifier.from_settings(Settings(sentiment_cascade="on")).cascade == "cascade"
    assert len(loads) == 1


def test_the_teacher_zip_is_checked_against_its_digest(tmp_path, monkeypatch):
    """The join of the five parts, on fake parts (named as such): a tiny zip cut in five, standing in for the
    installed packages' files."""
    import hashlib
    import io
    import zipfile

    from models import teacher

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("all-mpnet-base-v2/model.safetensors", b"fake weights")
    data = buffer.getvalue()
    fake_parts = {}
    for i, name in enumerate(teacher.PARTS):
        fake_parts[name] = tmp_path / "parts" / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        fake_parts[name].parent.mkdir(exist_ok=True)
        fake_parts[name].write_bytes(data[i * len(data) // 5:(i + 1) * len(data) // 5])
    monkeypatch.setattr(teacher, "_part_file", fake_parts.__getitem__)
    cache = tmp_path / "cache"
    with pytest.raises(teacher.TeacherCorrupt) as wrong:
        teacher.teacher_path(cache, expected_sha256="0" * 64)
    assert "0" * 64 in str(wrong.value) and hashlib.sha256(data).hexdigest() in str(wrong.value)
    assert not (cache / "all-mpnet-base-v2").exists() and not (cache / "all-mpnet-base-v2.zip").exists()
    folder = teacher.teacher_path(cache, expected_sha256=hashlib.sha256(data).hexdigest())
    assert (Path(folder) / "model.safetensors").read_bytes() == b"fake weights"


def test_the_eval_sets_of_the_cascade_take_the_event_headlines_when_given(data_dir, tmp_path):
    from models.training.evaluation import cascade_sets

    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"text": "X recalls its cars", "label": "negative"}) + "\n")
    sets = cascade_sets(data_dir, path)
    assert sets["event_headlines"].texts == ["X recalls its cars"] and sets["event_headlines"].labels == ["negative"]
    assert "event_headlines" not in cascade_sets(data_dir, tmp_path / "absent.jsonl")


def test_training_rows_carry_each_entitys_token_span_and_label():
    from models.training.train import entity_sentiment_rows

    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path(""))
    headlines = [datasets.EntityHeadline("Infosys rallies, Wipro falls", [("Infosys", "positive", 0, 7),
                                                                          ("Wipro", "negative", 17, 22)]),
                 datasets.EntityHeadline("No entity here", [])]
    rows, dropped = entity_sentiment_rows(tokenizer, headlines)
    assert len(rows) == 1 and dropped == 0, "a headline with no span gives no row"
    (a1, b1, y1), (a2, b2, y2) = rows[0]["spans"]
    assert tokenizer.decode(rows[0]["input_ids"][a1:b1]) == "infosys" and LABELS[y1] == "positive"
    assert tokenizer.decode(rows[0]["input_ids"][a2:b2]) == "wipro" and LABELS[y2] == "negative"
    assert not {"_first", "_words", "_spans"} & set(rows[0])


# --- real and written news headlines for the sentiment heads ----------------------------------


def test_a_score_becomes_a_class_outside_a_neutral_band():
    assert [datasets.score_label(x) for x in (-0.5, -0.11, -0.1, 0.0, 0.1, 0.11, 0.9)] == [
        "negative", "negative", "neutral", "neutral", "neutral", "positive", "positive"]


def test_scored_rows_become_headlines_with_one_label_per_located_company():
    headlines = datasets._entity_headlines([
        ("Glencore rises, Anglo falls", "Glencore", 0.4), ("Glencore rises, Anglo falls", "Anglo", -0.3),
        ("glencore rises, anglo falls", "Anglo", -0.5),          # a copy agrees: kept
        ("Tesco warns", "Tesco", -0.6), ("Tesco warns", "Tesco", 0.6),   # copies disagree: dropped
        ("Shell steady", "BP", 0.2)])                              # not in the title: skipped
    assert [(h.title, h.entities) for h in headlines] == [
        ("Glencore rises, Anglo falls", [("Glencore", "positive", 0, 8), ("Anglo", "negative", 16, 21)])]
    assert datasets.agreeing(headlines).texts == [], "companies that disagree give no headline label"


def test_semeval_and_fiqa_headlines_locate_their_companies(data_dir):
    for headlines in (datasets.semeval_headlines(data_dir), datasets.fiqa_headlines(data_dir)):
        assert len(headlines) > 400
        for h in headlines:
            for name, label, start, end in h.entities:
                assert h.title[start:end].casefold() == name.casefold() and label in LABELS


def test_the_written_training_events_share_no_company_or_headline_with_the_selection_set():
    from models.training.evaluation import EVENT_HEADLINES
    from models.training.train import WRITTEN_EVENTS_TRAIN

    selection = datasets.written_event_headlines(EVENT_HEADLINES)
    training = datasets.written_event_headlines(WRITTEN_EVENTS_TRAIN)
    assert len(selection) >= 300 and len(training) >= 300

    def words(text):
        return set(text.casefold().split())

    names = {n.casefold() for h in selection for n, *_ in h.entities}
    assert not names & {n.casefold() for h in training for n, *_ in h.entities}
    for h in training:
        for name, label, start, end in h.entities:
            assert h.title[start:end] == name and label in LABELS
        assert all(len(words(h.title) & words(s.title)) / len(words(h.title) | words(s.title)) < 0.6
                   for s in selection), h.title


def test_an_epoch_keeps_the_kept_rows_and_samples_the_rest():
    import random

    from models.training.train import epoch_pool

    pool = epoch_pool(1000, 50, 200, random.Random(1))
    assert pool[:50] == list(range(50)) and len(pool) == 200 and len(set(pool)) == 200
    assert epoch_pool(1000, 50, 200, random.Random(2))[50:] != pool[50:], "the rest is a fresh sample"
    assert epoch_pool(100, 50, 200, random.Random(1)) == list(range(100))
    assert epoch_pool(1000, 50, 0, random.Random(1)) == list(range(1000))
    assert epoch_pool(1000, 300, 200, random.Random(1)) == list(range(300)), "never fewer than the kept rows"


def test_semeval_headlines_a_model_trained_on_are_kept_apart(data_dir):
    """FiQA-2018 shares headlines with SemEval-2017: the unseen part leaves them out, and the teacher's headline
    training leaves every SemEval headline out."""
    from models.training.train import headline_sentiment_sets, news_headline_sets

    semeval = {datasets.headline_key(h.title) for h in datasets.semeval_headlines(data_dir)}
    unseen = {datasets.headline_key(h.title) for h in datasets.unseen_semeval_headlines(data_dir)}
    fiqa = {datasets.headline_key(h.title) for h in news_headline_sets(data_dir)["fiqa2018_task1 headlines"]}
    assert semeval & fiqa, "the overlap this guards against is in the data"
    assert unseen and unseen < semeval and not unseen & fiqa
    teacher = {datasets.headline_key(h.title) for hs in headline_sentiment_sets(data_dir).values() for h in hs}
    assert len(teacher) > 8000 and not teacher & semeval


def test_the_sentiment_job_adds_the_headlines_only_when_asked(data_dir):
    from models.training.train import headline_sentiment_sets, sentiment_job

    plain = sentiment_job(data_dir, "", 64, twitter_fraction=0.0, fpb_repeat=1)
    news = sentiment_job(data_dir, "", 64, twitter_fraction=0.0, fpb_repeat=1, headline_repeat=2)
    agreeing = datasets.agreeing([h for hs in headline_sentiment_sets(data_dir).values() for h in hs])
    assert len(news.train_features) == len(plain.train_features) + 2 * len(agreeing.texts)
    assert any("news headlines" in s for s in news.sources) and not any("news headlines" in s for s in plain.sources)
