"""Fine-tuning: LoRA on the base encoder plus a task head, one loop for every task.

Batches are grouped by length (shuffled chunks, sorted inside) so padding stays
small; the best epoch on the validation split is saved as a Sentinel artefact.
With ``average_from`` the loop also keeps a running average of the weights over
the last epochs (stochastic weight averaging, ``torch.optim.swa_utils``); at each
epoch end the average is validated too and competes with the epoch's weights.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from infra.progress import console, progress
from models import datasets
from models.encoder import (
    LoadedModel,
    base_encoder_path,
    build_tasknet,
    lora_config,
    save_artifact,
)
from models.entities import IGNORE, EntityRecognizer, encode_words, tag_words
from models.entities import LABELS as ENTITY_LABELS
from models.runtime import BatchedModel


@dataclass
class TrainConfig:
    epochs: int = 3
    lr: float = 5e-4
    rank: int = 16
    alpha: int = 32
    batch_size: int = 32
    max_length: int = 64
    seed: int = 13
    warmup: float = 0.06
    limit: int = 0  # use only the first N training examples (smoke runs); 0 = all
    init: str = ""  # warm start from this Sentinel artefact's adapter and head (a second training stage)
    balance: bool = False  # weight the loss by inverse square-root class frequency (sequence tasks)
    average_from: int = 0  # from this epoch on, also keep a running average of the weights (SWA); 0 = off
    average_per_epoch: int = 4  # snapshots added to the average per epoch


@dataclass
class TrainJob:
    task: str
    labels: list[str]
    head_kind: str
    use_shapes: bool
    train_features: list[dict]
    validate: Callable[[LoadedModel, int], float]
    metric: str
    sources: list[str] = field(default_factory=list)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _length_grouped_batches(features: list[dict], batch_size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(len(features)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(features[i]["input_ids"]))
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def _collate_train(features: list[dict]) -> dict[str, torch.Tensor]:
    longest = max(len(f["input_ids"]) for f in features)
    batch = {"input_ids": torch.tensor([f["input_ids"] + [0] * (longest - len(f["input_ids"])) for f in features]),
             "attention_mask": torch.tensor([[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"]))
                                             for f in features])}
    if "shape_ids" in features[0]:
        batch["shape_ids"] = torch.tensor([f["shape_ids"] + [0] * (longest - len(f["shape_ids"])) for f in features])
    if isinstance(features[0]["labels"], list):
        batch["labels"] = torch.tensor([f["labels"] + [IGNORE] * (longest - len(f["labels"])) for f in features])
    else:
        batch["labels"] = torch.tensor([f["labels"] for f in features])
    return batch


def train(job: TrainJob, out_dir: Path, config: TrainConfig, base_setting: str = "") -> dict:
    _seed_everything(config.seed)
    base = base_encoder_path(base_setting)
    tokenizer = AutoTokenizer.from_pretrained(base)
    net = build_tasknet(base, len(job.labels), job.head_kind, job.use_shapes)
    from peft import get_peft_model

    if config.init:
        from peft import PeftModel

        model = PeftModel.from_pretrained(net, config.init, is_trainable=True)
    else:
        lcfg = lora_config(config.rank, config.alpha)
        if not job.use_shapes:
            lcfg.modules_to_save = ["head"]
        model = get_peft_model(net, lcfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    console.print(f"[bold]{job.task}[/]: {len(job.train_features)} training examples, "
                  f"{trainable:,} trainable parameters, {config}")
    features = job.train_features[: config.limit] if config.limit else job.train_features
    rng = random.Random(config.seed)
    steps_per_epoch = -(-len(features) // config.batch_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup * steps_per_epoch * config.epochs),
                                                steps_per_epoch * config.epochs)
    loaded = LoadedModel(tokenizer, model, job.labels, {"use_shapes": job.use_shapes}, torch.device("cpu"),
                         torch.float32, "(training)", True)
    weight = None
    if config.balance and not isinstance(features[0]["labels"], list):
        counts = torch.bincount(torch.tensor([f["labels"] for f in features]), minlength=len(job.labels)).float()
        weight = (counts.sum() / (len(job.labels) * counts.clamp(min=1))).sqrt()
        console.print(f"class weights: {dict(zip(job.labels, [round(w, 3) for w in weight.tolist()]))}")
    averaged = None
    # Evenly spaced through the epoch, the last one on its final step.
    per_epoch = min(max(1, config.average_per_epoch), steps_per_epoch)
    snapshot_steps = {round(k * steps_per_epoch / per_epoch) for k in range(1, per_epoch + 1)}
    history, best, best_epoch, best_weights = [], -1.0, 0, ""
    started = time.perf_counter()

    def keep_if_best(candidate, epoch: int, weights: str, score: float) -> None:
        nonlocal best, best_epoch, best_weights
        if score <= best:
            return
        best, best_epoch, best_weights = score, epoch, weights
        meta = {
            "task": job.task, "labels": job.labels, "head_kind": job.head_kind,
            "use_shapes": job.use_shapes, "base_encoder": "sentence-transformers/all-MiniLM-L6-v2",
            "train_sources": job.sources, "train_examples": len(features),
            "config": config.__dict__, "best_epoch": best_epoch, "weights": best_weights,
            f"val_{job.metric}": round(best, 4), "history": history,
            "train_seconds": round(time.perf_counter() - started, 1),
        }
        save_artifact(candidate, out_dir, meta)

    with progress() as bar:
        for epoch in range(1, config.epochs + 1):
            model.train()
            task = bar.add_task(f"epoch {epoch}/{config.epochs}", total=steps_per_epoch, info="")
            running = 0.0
            for step, ids in enumerate(_length_grouped_batches(features, config.batch_size, rng), 1):
                batch = _collate_train([features[i] for i in ids])
                labels = batch.pop("labels")
                logits = model(**batch)
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), weight=weight,
                                       ignore_index=IGNORE)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
                bar.update(task, advance=1, info=f"loss {running:.4f}")
                if config.average_from and epoch >= config.average_from and step in snapshot_steps:
                    if averaged is None:
                        averaged = AveragedModel(model)
                    averaged.update_parameters(model)
            model.eval()
            score = job.validate(loaded, config.max_length)
            entry = {"epoch": epoch, job.metric: round(score, 4), "loss": round(running, 4)}
            console.print(f"epoch {epoch}: validation {job.metric} = {score:.4f}")
            if averaged is not None:
                snapshots = int(averaged.n_averaged)
                averaged.module.eval()
                average_score = job.validate(replace(loaded, model=averaged.module), config.max_length)
                entry[f"averaged_{job.metric}"] = round(average_score, 4)
                entry["averaged_snapshots"] = snapshots
                console.print(f"epoch {epoch}: validation {job.metric} of the weight average "
                              f"({snapshots} snapshots) = {average_score:.4f}")
            history.append(entry)
            keep_if_best(model, epoch, f"end of epoch {epoch}", score)
            if averaged is not None:
                span = f"epoch {epoch}" if epoch == config.average_from else f"epochs {config.average_from}-{epoch}"
                keep_if_best(averaged.module, epoch, f"average of {snapshots} snapshots, {span}", average_score)
    meta_path = out_dir / "sentinel.json"
    meta = json.loads(meta_path.read_text())
    meta["history"] = history
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    console.print(f"saved the best weights ({best_weights}, {job.metric} {best:.4f}) to {out_dir}")
    return meta


# --- jobs -------------------------------------------------------------------------


def _sequence_features(tokenizer, texts: list[str], labels: list[str], names: list[str], max_length: int):
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    index = {n: i for i, n in enumerate(names)}
    return [{"input_ids": x, "labels": index[y]} for x, y in zip(ids, labels)]


def _accuracy_validator(model_cls: type[BatchedModel], texts: list[str], gold: list[str]):
    def validate(loaded: LoadedModel, max_length: int) -> float:
        predictions = model_cls(loaded, max_length=max_length).predict(texts)
        return sum(p.label == y for p, y in zip(predictions, gold)) / len(gold)

    return validate


def sentiment_job(data: Path, base_setting: str, max_length: int, twitter_fraction: float = 1.0,
                  fpb_repeat: int = 1) -> TrainJob:
    """FPB train (``fpb_repeat`` times) plus a fixed ``twitter_fraction`` of twitter-financial-news train."""
    from models.sentiment import LABELS, SentimentClassifier

    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path(base_setting))
    fpb = datasets.fpb_splits(data)
    texts, labels = list(fpb["train"].texts) * fpb_repeat, list(fpb["train"].labels) * fpb_repeat
    sources = [f"financial_phrasebank/Sentences_50Agree.txt (train part) x{fpb_repeat}"]
    if twitter_fraction > 0:
        tw = datasets.twitter_split(data, "train")
        keep = sorted(random.Random(datasets.SPLIT_SEED).sample(range(len(tw.texts)),
                                                                 int(round(twitter_fraction * len(tw.texts)))))
        texts += [tw.texts[i] for i in keep]
        labels += [tw.labels[i] for i in keep]
        sources.append(f"twitter_financial_news_sentiment/sent_train.csv ({twitter_fraction:.0%})")
    return TrainJob("sentiment", LABELS, "sequence", False,
                    _sequence_features(tokenizer, texts, labels, LABELS, max_length),
                    _accuracy_validator(SentimentClassifier, fpb["val"].texts, fpb["val"].labels),
                    "accuracy", sources)


def entities_job(data: Path, base_setting: str, max_length: int) -> TrainJob:
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path(base_setting))
    train_split = datasets.conll_split(data, "train")
    valid = datasets.conll_split(data, "valid")
    index = {n: i for i, n in enumerate(ENTITY_LABELS)}
    features = encode_words(tokenizer, train_split.words, max_length,
                            [[index[t] for t in tags] for tags in train_split.tags])
    for f in features:
        f.pop("_first"), f.pop("_words")

    def validate(loaded: LoadedModel, _max_length: int) -> float:
        predicted = tag_words(EntityRecognizer(loaded, max_length=256), valid.words)
        return f1_score(valid.tags, predicted, mode="strict", scheme=IOB2)

    return TrainJob("entities", ENTITY_LABELS, "token", True, features, validate, "f1",
                    ["conll2003/train.txt"])


def intent_job(data: Path, base_setting: str, max_length: int) -> TrainJob:
    from models.intent import IntentClassifier

    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path(base_setting))
    names = datasets.banking77_labels(data)
    splits = datasets.banking77_splits(data)
    return TrainJob("intent", names, "sequence", False,
                    _sequence_features(tokenizer, splits["train"].texts, splits["train"].labels, names, max_length),
                    _accuracy_validator(IntentClassifier, splits["val"].texts, splits["val"].labels),
                    "accuracy", ["banking77/train.csv (90% stratified part)"])


def customer_state_job(data: Path, base_setting: str, max_length: int) -> TrainJob:
    """calm / frustrated / angry / leaving (``models.datasets.customer_state_sets``); selected on macro-F1."""
    from sklearn.metrics import f1_score

    from models.customer_state import LABELS, CustomerStateClassifier

    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path(base_setting))
    sets = datasets.customer_state_sets(data)
    val = sets["val"]

    def validate(loaded: LoadedModel, max_length: int) -> float:
        predicted = [p.label for p in CustomerStateClassifier(loaded, max_length=max_length).predict(val.texts)]
        return f1_score(val.labels, predicted, labels=LABELS, average="macro")

    return TrainJob("customer_state", LABELS, "sequence", False,
                    _sequence_features(tokenizer, sets["train"].texts, sets["train"].labels, LABELS, max_length),
                    validate, "macro_f1", sets["sources"]["train"])
