"""Batching runtime: planning, padding, order, device choice."""

import random

import torch

from models.runtime import (
    SEQUENCE_BUCKET,
    BatchedModel,
    PhaseTimings,
    collate,
    pick_device,
    pick_dtype,
    plan_batches,
)


def test_plan_batches_respects_limits_and_covers_every_index():
    rng = random.Random(3)
    lengths = [rng.randint(1, 300) for _ in range(500)]
    batches = plan_batches(lengths, max_batch=32, token_budget=2048)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    for b in batches:
        assert len(b) <= 32
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 2048


def test_plan_batches_groups_similar_lengths():
    lengths = [5, 100, 6, 101, 7, 102]
    batches = plan_batches(lengths, max_batch=3, token_budget=10_000)
    assert [sorted(lengths[i] for i in b) for b in batches] == [[100, 101, 102], [5, 6, 7]]


def test_single_row_over_budget_gets_its_own_batch():
    assert plan_batches([1000, 2, 3], max_batch=8, token_budget=100) == [[0], [2, 1]]


def test_collate_pads_dynamically_with_mask():
    batch = collate([{"input_ids": [1, 2, 3]}, {"input_ids": [4]}])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_cpu_defaults_to_bf16_only_with_amx():
    from models.runtime import cpu_has_amx_bf16

    assert pick_dtype(torch.device("cpu")) == (torch.bfloat16 if cpu_has_amx_bf16() else torch.float32)
    assert pick_dtype(torch.device("cpu"), cpu_amx=False) == torch.float32
    if not torch.cuda.is_available():
        assert pick_device("auto").type == "cpu"


class FakeLoaded:
    """A fake network for unit tests: the 'logit' of each row is its own length."""

    labels = ["len"]
    device = torch.device("cpu")
    dtype = torch.float32
    source = "fake"

    def logits(self, batch):
        return batch["attention_mask"].sum(dim=1, keepdim=True).float()


class LengthModel(BatchedModel):
    def encode(self, texts):
        return [{"input_ids": [1] * len(t.split())} for t in texts]

    def decode(self, texts, features, logits):
        return [int(row.item()) for row in logits]


def test_predict_keeps_input_order_across_length_sorted_batches():
    model = LengthModel(FakeLoaded(), max_batch=3, token_budget=64)
    texts = [" ".join(["w"] * n) for n in [9, 1, 5, 12, 3, 3, 7, 2, 11, 4]]
    assert model.predict(texts) == [9, 1, 5, 12, 3, 3, 7, 2, 11, 4]
    assert model.timings.batches >= 4
    assert model.timings.items == 10


def test_phase_timings_notify_listeners():
    seen = []
    timings = PhaseTimings(listeners=[lambda phase, seconds, n: seen.append((phase, n))])
    with timings.phase("infer", 5):
        pass
    assert seen == [("infer", 5)] and timings.infer >= 0


def test_the_dtype_setting_is_honoured():
    assert pick_dtype(torch.device("cpu"), "bfloat16") == torch.bfloat16
    assert pick_dtype(torch.device("cpu"), "float32") == torch.float32


def test_bucketed_batches_have_few_shapes_and_keep_each_row():
    """bf16 on CPU pads lengths to a multiple of SEQUENCE_BUCKET and rows to a power of two (the last row repeated)."""
    features = [{"input_ids": [1, 2, 3]}, {"input_ids": [4] * 17}, {"input_ids": [5]}]
    batch = collate(features, buckets=True)
    assert batch["input_ids"].shape == (4, -(-17 // SEQUENCE_BUCKET) * SEQUENCE_BUCKET) and SEQUENCE_BUCKET < 17
    assert batch["input_ids"][1, :17].tolist() == [4] * 17 and batch["attention_mask"][1].sum() == 17
    assert batch["input_ids"][3].tolist() == batch["input_ids"][2].tolist(), "filler rows repeat the last"
    assert collate(features)["input_ids"].shape == (3, 17), "without buckets: the batch's own shape"
    shapes = {tuple(collate([{"input_ids": [1] * n}] * b, buckets=True)["input_ids"].shape)
              for b in range(1, 65) for n in range(1, 129)}
    assert len(shapes) == 7 * (128 // SEQUENCE_BUCKET)

