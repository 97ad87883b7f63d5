"""The trunk's entity head trained again on real headlines (``models/training/entity_head.py``)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from infra.settings import get_settings
from models.encoder import IGNORE
from models.training.entity_head import (
    ADAPTER,
    HEAD_KEYS,
    TRUNK_HEAD,
    HeadRows,
    fit_head,
    recognizer_of,
    start_head,
    write_head,
)
from models.training.headline_orgs import load_headline_orgs


@pytest.fixture(scope="module")
def rows():
    return HeadRows(recognizer_of(Path(get_settings().trunk_model)))


def test_write_head_replaces_the_entity_head_and_nothing_else(tmp_path):
    served = get_settings().trunk_model
    layer = nn.Linear(384, 9)
    write_head(shutil.copytree(served, tmp_path / "in"), tmp_path / "out", layer, {"command": "test"})
    before, after = load_file(f"{served}/{ADAPTER}"), load_file(str(tmp_path / "out" / ADAPTER))
    assert before.keys() == after.keys()
    for key in before:
        if key in HEAD_KEYS:
            assert not torch.equal(before[key], after[key])
        else:
            assert torch.equal(before[key], after[key]), key
    assert torch.equal(after[HEAD_KEYS[0]], layer.weight.detach().to(after[HEAD_KEYS[0]].dtype))
    assert torch.equal(after[HEAD_KEYS[1]], layer.bias.detach().to(after[HEAD_KEYS[1]].dtype))
    assert json.loads((tmp_path / "out" / "sentinel.json").read_text())["entity_head"] == {"command": "test"}
    # the trunk it started from is left as it was
    assert (tmp_path / "in" / "sentinel.json").read_text() == (Path(served) / "sentinel.json").read_text()
    assert torch.equal(load_file(str(tmp_path / "in" / ADAPTER))[HEAD_KEYS[0]], before[HEAD_KEYS[0]])


def test_training_starts_from_the_trunks_own_head_however_often_it_runs(tmp_path):
    trunk = shutil.copytree(get_settings().trunk_model, tmp_path / "trunk")
    (trunk / TRUNK_HEAD).unlink(missing_ok=True)  # as `sentinel train trunk` leaves it
    own = load_file(str(trunk / ADAPTER))
    first, second = nn.Linear(384, 9), nn.Linear(384, 9)
    write_head(trunk, trunk, first, {})
    kept = load_file(str(trunk / TRUNK_HEAD))
    assert all(torch.equal(kept[k], own[k]) for k in HEAD_KEYS), "the trunk's own head is kept the first time"
    write_head(trunk, trunk, second, {})
    assert all(torch.equal(load_file(str(trunk / TRUNK_HEAD))[k], own[k]) for k in HEAD_KEYS), "and never replaced"
    assert torch.equal(load_file(str(trunk / ADAPTER))[HEAD_KEYS[0]], second.weight.detach())
    start = start_head(trunk, second)
    assert torch.equal(start.weight, own[HEAD_KEYS[0]].float()) and torch.equal(start.bias, own[HEAD_KEYS[1]].float())


def test_a_labelled_headline_teaches_its_org_spans_and_leaves_other_types_out_of_the_loss(rows):
    text = "Tesla and Ford shares slip as Jim Cramer warns in London"
    row = {"text": text, "orgs": [{"start": 0, "end": 5, "text": "Tesla"}, {"start": 10, "end": 14, "text": "Ford"}]}
    states, labels = rows.labelled_headlines([row])
    names = [None if j == IGNORE else rows.recognizer.labels[j] for j in labels[0].tolist()]
    words = text.split()
    assert len(states[0]) == len(names) == len(words)
    said = dict(zip(words, rows.tags(states[0])))
    assert names[0] == "B-ORG" and names[2] == "B-ORG"
    # the head reads the person and the city as such; only ORG is labelled in the set, so they teach nothing
    assert said["Jim"] == "B-PER" and said["London"] == "B-LOC"
    assert names[words.index("Jim")] is None and names[words.index("London")] is None
    assert names[words.index("shares")] == "O"


def test_fit_head_learns_the_labels_and_skips_left_out_rows():
    start = nn.Linear(4, 3)
    with torch.no_grad():  # starts reading each row k as label k
        start.weight.copy_(torch.eye(3, 4))
        start.bias.zero_()
    states = [torch.eye(3, 4) * 4]
    labels = [torch.tensor([2, 0, 1])]
    left_out = ([torch.ones(1, 4)], [torch.tensor([IGNORE])], 1.0)
    layer = fit_head(start, [(states, labels, 1.0), left_out], epochs=300, lr=0.05, seed=1)
    assert layer(states[0]).argmax(-1).tolist() == [2, 0, 1]
    assert start(states[0]).argmax(-1).tolist() == [0, 1, 2]  # it learnt that; it did not start there


def test_the_served_trunk_carries_the_retrained_entity_head():
    meta = json.loads((Path(get_settings().trunk_model) / "sentinel.json").read_text())
    assert meta["entity_head"]["command"] == "sentinel train entity-head"
    assert meta["entity_head"]["trained_on"]["headline_orgs_train"] == len(load_headline_orgs(split="train"))
    own = load_file(str(Path(get_settings().trunk_model) / TRUNK_HEAD))
    served = load_file(str(Path(get_settings().trunk_model) / ADAPTER))
    assert not torch.equal(own[HEAD_KEYS[0]], served[HEAD_KEYS[0]]), "the served head is the retrained one"
