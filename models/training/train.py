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
from models.training import datasets
from models.encoder import (
    MINILM,
    LoadedModel,
    base_encoder_path,
    build_tasknet,
    lora_config,
    lora_targets,
    save_artifact,
)
from models.entities import IGNORE, EntityRecognizer, encode_words, tag_words
from models.entities import LABELS as ENTITY_LABELS
from models.runtime import BatchedModel
from models.teacher import NAMES as TEACHER_NAMES
from models.teacher import TEACHER


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
    temperature: float = 1.0  # trunk with soft labels: the distillation temperature (distillation_loss)


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


class Checkpoint:
    """A training run's resumable state, next to its artefact folder: ``.<name>-checkpoint.pt``.

    It holds the adapter and head weights (not the frozen encoder), the optimizer and the
    schedule, where the run stood (epoch, step) and whatever else the loop passes.
    """

    def __init__(self, out_dir: Path):
        self.path = out_dir.parent / f".{out_dir.name}-checkpoint.pt"

    def save(self, model, optimizer, scheduler, **state) -> None:
        from peft.utils import get_peft_model_state_dict

        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        torch.save({"adapter": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(), **state}, partial)
        partial.replace(self.path)  # a crash while saving leaves the previous checkpoint whole

    def load(self, model, optimizer, scheduler) -> dict | None:
        """Restore the run's state into ``model``, ``optimizer`` and ``scheduler``; the rest, or None."""
        if not self.path.is_file():
            return None
        from peft import set_peft_model_state_dict

        state = torch.load(self.path, weights_only=False)
        set_peft_model_state_dict(model, state.pop("adapter"))
        optimizer.load_state_dict(state.pop("optimizer"))
        scheduler.load_state_dict(state.pop("scheduler"))
        torch.set_rng_state(state.pop("torch_rng"))
        console.print(f"resuming from {self.path}: epoch {state['epoch']}, step {state['step']}")
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def train(job: TrainJob, out_dir: Path, config: TrainConfig, base_setting: str = "",
          checkpoint_every: int = 200) -> dict:
    """Train ``job``; a checkpoint is written every ``checkpoint_every`` steps next to ``out_dir`` (a rerun
    of the same command resumes from it, and a finished run removes it)."""
    _seed_everything(config.seed)
    base = base_encoder_path(base_setting)
    tokenizer = AutoTokenizer.from_pretrained(base)
    net = build_tasknet(base, len(job.labels), job.head_kind, job.use_shapes)
    from peft import get_peft_model

    if config.init:
        from peft import PeftModel

        model = PeftModel.from_pretrained(net, config.init, is_trainable=True)
    else:
        lcfg = lora_config(config.rank, config.alpha, targets=lora_targets(net.encoder))
        if not job.use_shapes:
            lcfg.modules_to_save = ["head"]
        model = get_peft_model(net, lcfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    console.print(f"[bold]{job.task}[/]: {len(job.train_features)} training examples, "
                  f"{trainable:,} trainable parameters, {config}")
    features = job.train_features[: config.limit] if config.limit else job.train_features
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
    checkpoint = Checkpoint(out_dir)
    start_epoch, start_step = 1, 0
    state = checkpoint.load(model, optimizer, scheduler)
    if state:
        start_epoch, start_step, history = state["epoch"], state["step"], state["history"]
        best, best_epoch, best_weights = state["best"], state["best_epoch"], state["best_weights"]
        if state.get("averaged") is not None:
            averaged = AveragedModel(model)
            averaged.load_state_dict(state["averaged"])

    def save_checkpoint(epoch: int, step: int) -> None:
        checkpoint.save(model, optimizer, scheduler, epoch=epoch, step=step, history=history, best=best,
                        best_epoch=best_epoch, best_weights=best_weights,
                        averaged=averaged.state_dict() if averaged is not None else None)

    def keep_if_best(candidate, epoch: int, weights: str, score: float) -> None:
        nonlocal best, best_epoch, best_weights
        if score <= best:
            return
        best, best_epoch, best_weights = score, epoch, weights
        meta = {
            "task": job.task, "labels": job.labels, "head_kind": job.head_kind,
            "use_shapes": job.use_shapes, "base_encoder": TEACHER if base_setting in TEACHER_NAMES else MINILM,
            "train_sources": job.sources, "train_examples": len(features),
            "config": config.__dict__, "best_epoch": best_epoch, "weights": best_weights,
            f"val_{job.metric}": round(best, 4), "history": history,
            "train_seconds": round(time.perf_counter() - started, 1),
        }
        save_artifact(candidate, out_dir, meta)

    with progress() as bar:
        for epoch in range(start_epoch, config.epochs + 1):
            model.train()
            task = bar.add_task(f"epoch {epoch}/{config.epochs}", total=steps_per_epoch, info="")
            running = 0.0
            # each epoch's order is fixed by the seed and the epoch, so a resumed run sees the same batches
            batches = _length_grouped_batches(features, config.batch_size, random.Random(config.seed * 1000 + epoch))
            skip = start_step if epoch == start_epoch else 0
            bar.update(task, advance=skip)
            for step, ids in enumerate(batches[skip:], skip + 1):
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
                if step % checkpoint_every == 0:
                    save_checkpoint(epoch, step)
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
            save_checkpoint(epoch + 1, 0)
    checkpoint.remove()
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
                  fpb_repeat: int = 1, headline_repeat: int = 0) -> TrainJob:
    """FPB train (``fpb_repeat`` times) plus a fixed ``twitter_fraction`` of twitter-financial-news train; with
    ``headline_repeat``, also real and written news headlines (``headline_sentiment_sets``) that many times."""
    from models.sentiment import LABELS

    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path(base_setting))
    fpb = datasets.fpb_splits(data)
    texts, labels = list(fpb["train"].texts) * fpb_repeat, list(fpb["train"].labels) * fpb_repeat
    sources = _sentiment_sources(fpb_repeat, twitter_fraction)
    if headline_repeat:
        news_texts, news_labels, source = headline_rows(headline_sentiment_sets(data), headline_repeat)
        texts += news_texts
        labels += news_labels
        sources.append(source)
    if twitter_fraction > 0:
        tw = datasets.twitter_split(data, "train")
        keep = sorted(random.Random(datasets.SPLIT_SEED).sample(range(len(tw.texts)),
                                                                 int(round(twitter_fraction * len(tw.texts)))))
        texts += [tw.texts[i] for i in keep]
        labels += [tw.labels[i] for i in keep]
    return TrainJob("sentiment", LABELS, "sequence", False,
                    _sequence_features(tokenizer, texts, labels, LABELS, max_length),
                    _sentiment_validator(fpb["val"]), "accuracy", sources)


def _sentiment_sources(fpb_repeat: int, twitter_fraction: float) -> list[str]:
    return [f"financial_phrasebank/Sentences_50Agree.txt (train part) x{fpb_repeat}"] + (
        [f"twitter_financial_news_sentiment/sent_train.csv ({twitter_fraction:.0%})"] if twitter_fraction > 0 else [])


def _sentiment_validator(val: datasets.TextSplit) -> Callable[[LoadedModel, int], float]:
    """Accuracy on FPB's validation part."""
    from models.sentiment import SentimentClassifier

    return _accuracy_validator(SentimentClassifier, val.texts, val.labels)


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
    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path(base_setting))
    names = datasets.banking77_labels(data)
    splits = datasets.banking77_splits(data)
    return TrainJob("intent", names, "sequence", False,
                    _sequence_features(tokenizer, splits["train"].texts, splits["train"].labels, names, max_length),
                    intent_validator(splits["val"]), "accuracy", ["banking77/train.csv (90% stratified part)"])


def intent_validator(val: datasets.TextSplit) -> Callable[[LoadedModel, int], float]:
    """Accuracy on banking77's 10% validation part."""
    from models.intent import IntentClassifier

    return _accuracy_validator(IntentClassifier, val.texts, val.labels)


def customer_state_job(data: Path, base_setting: str, max_length: int) -> TrainJob:
    """calm / frustrated / angry / leaving (``models.training.datasets.customer_state_sets``); selected on macro-F1."""
    from models.customer_state import LABELS

    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path(base_setting))
    sets = datasets.customer_state_sets(data)
    return TrainJob("customer_state", LABELS, "sequence", False,
                    _sequence_features(tokenizer, sets["train"].texts, sets["train"].labels, LABELS, max_length),
                    _customer_state_validator(sets["val"]), "macro_f1", sets["sources"]["train"])


def _customer_state_validator(val: datasets.TextSplit) -> Callable[[LoadedModel, int], float]:
    """Macro-F1 on the customer-state validation set."""
    from sklearn.metrics import f1_score

    from models.customer_state import LABELS, CustomerStateClassifier

    def validate(loaded: LoadedModel, max_length: int) -> float:
        predicted = [p.label for p in CustomerStateClassifier(loaded, max_length=max_length).predict(val.texts)]
        return f1_score(val.labels, predicted, labels=LABELS, average="macro")

    return validate


# --- the trunk: every task in one adapter (models/trunk.py) ---------------------------


@dataclass
class TrunkTask:
    """One task of the trunk: its head, training rows and how its validation is scored."""

    name: str
    kind: str
    labels: list[str]
    features: list[dict]  # word features with "labels" (and "target": the base embedding, chat texts)
    validate: Callable[[LoadedModel], float]
    metric: str
    sources: list[str]
    kept: int = 0  # the first ``kept`` rows train every epoch, whatever ``sample_rows`` samples of the rest


WRITTEN_EVENTS_TRAIN = Path(__file__).resolve().parents[1] / "written" / "event_headlines_train.jsonl"


def news_headline_sets(data: Path) -> dict[str, list]:
    """The news headlines the sentiment heads may train on (``headline_repeat``), by source."""
    return {"fiqa2018_task1 headlines": datasets.fiqa_headlines(data),
            "written training event headlines": datasets.written_event_headlines(WRITTEN_EVENTS_TRAIN)}


def headline_sentiment_sets(data: Path) -> dict[str, list]:
    """The headlines a headline-level sentiment model (the teacher) trains on: ``news_headline_sets`` and
    SEntFiN's entity-level train part (the trunk reads that part through its entity-sentiment head; its val and
    test parts stay out). SemEval-2017's headlines stay out too: 280 of FiQA's are among them, and SemEval is
    an evaluation set (``datasets.unseen_semeval_headlines``)."""
    semeval = {datasets.headline_key(h.title) for h in datasets.semeval_headlines(data)}
    sets = {**news_headline_sets(data), "sentfin_v1 train part": datasets.sentfin_entity_splits(data)["train"]}
    return {name: [h for h in hs if datasets.headline_key(h.title) not in semeval] for name, hs in sets.items()}


def headline_rows(sets: dict[str, list], repeat: int) -> tuple[list[str], list[str], str]:
    """The headline-level rows of ``sets`` (the headlines whose companies agree, with that label), ``repeat``
    times, and the line that names them among a model's training sources."""
    split = datasets.agreeing([h for hs in sets.values() for h in hs])
    source = (f"news headlines whose companies agree ({len(split.texts)}: "
              + ", ".join(f"{k} {len(v)}" for k, v in sets.items()) + f") x{repeat}")
    return list(split.texts) * repeat, list(split.labels) * repeat, source


def epoch_pool(n: int, kept: int, sample_rows: int, rng: random.Random) -> list[int]:
    """The rows of a task one epoch trains on: all ``n`` without ``sample_rows``; else the first ``kept`` rows
    and a seeded sample of the rest, ``sample_rows`` in all (never fewer than ``kept``)."""
    if not sample_rows or n <= sample_rows:
        return list(range(n))
    kept = min(kept, n)
    return list(range(kept)) + sorted(rng.sample(range(kept, n), max(0, sample_rows - kept)))


def entity_sentiment_rows(tokenizer, headlines: list, max_length: int = 64) -> tuple[list[dict], int]:
    """Training rows of the entity-sentiment head: one per headline (``datasets.EntityHeadline``), its word
    features and ``spans`` ``(start, end, label index)`` in token positions; and how many entities had no
    token (cut by truncation) and were left out."""
    from models.entities import encode_texts
    from models.sentiment import LABELS
    from models.trunk import token_range

    index = {n: i for i, n in enumerate(LABELS)}
    rows, dropped = [], 0
    for h, row in zip(headlines, encode_texts(tokenizer, [h.title for h in headlines], max_length)):
        spans = []
        for _, label, start, end in h.entities:
            at = token_range(row, start, end)
            if at is None:
                dropped += 1
            else:
                spans.append((*at, index[label]))
        for key in ("_first", "_words", "_spans"):
            row.pop(key)
        if spans:
            row["labels"], row["spans"] = 0, spans  # "labels": a placeholder; the spans carry them
            rows.append(row)
    return rows, dropped


def entity_sentiment_validator(headlines: list) -> Callable[[LoadedModel], float]:
    """Entity-level accuracy of the entity-sentiment head on gold spans (SEntFiN's validation part)."""
    def validate(trunk: LoadedModel) -> float:
        from models.trunk import Trunk

        got = Trunk(trunk, {}).entity_sentiments([h.title for h in headlines],
                                                  [[(a, b) for _, _, a, b in h.entities] for h in headlines])
        pairs = [(r.label if r else None, e[1]) for h, rs in zip(headlines, got) for r, e in zip(rs, h.entities)]
        return sum(p == y for p, y in pairs) / len(pairs)

    return validate


def trunk_tasks(data: Path, base_setting: str, intent_repeat: int = 2, limit: int = 0,
                soft_labels: Path | None = None, state_repeat: int = 1,
                entity_repeat: int = 1, entity_sentiment_repeat: int = 0,
                partial_soft_labels: bool = False, headline_repeat: int = 0) -> tuple[list[TrunkTask], Callable]:
    """The four task sets in the trunk's word features, and a validator of the embedding head.

    Sentiment: FPB train x2 + twitter train (as ``sentiment_job``); entities: CoNLL train x``entity_repeat``; intent:
    banking77's 90% train part x``intent_repeat``; customer state: ``customer_state_sets`` x``state_repeat``. The chat
    texts (intent, customer state) also carry the base encoder's sentence embedding as the target of
    the ``embedding`` head. ``limit``: only the first N training rows of each task (smoke runs).
    ``soft_labels``: the teacher's probabilities (``models/training/distillation.py``): every sentiment row
    carries them, and the unlabelled texts of the file join the sentiment rows without a hard label.
    ``partial_soft_labels``: the file may lack some labelled training texts (a teacher-labels run stopped
    early: it writes the labelled texts first); those rows learn from their hard label alone.
    ``entity_sentiment_repeat``: when above 0, the entity-sentiment head (SEntFiN's entity-level train
    part, ``datasets.sentfin_entity_splits``, one row per headline) x``entity_sentiment_repeat``, selected
    on the entity-level accuracy of the validation part.
    ``headline_repeat``: when above 0, news headlines join both sentiment heads, x``headline_repeat``, ahead of
    the sampled rows (``TrunkTask.kept``): FiQA-2018's headlines and the written training event headlines
    (``WRITTEN_EVENTS_TRAIN``); the headline head takes those whose companies agree, the entity head all.
    """
    from models.customer_state import LABELS as STATE_LABELS
    from models.entities import encode_texts
    from models.sentiment import LABELS as SENTIMENT_LABELS

    base = base_encoder_path(base_setting)
    tokenizer = AutoTokenizer.from_pretrained(base)
    entities = entities_job(data, base_setting, 128)

    def features(texts, labels, names, max_length=64):
        if limit:
            texts, labels = texts[:limit], labels[:limit]
        index = {n: i for i, n in enumerate(names)}
        rows = encode_texts(tokenizer, texts, max_length)
        for row, y in zip(rows, labels):
            for key in ("_first", "_words", "_spans"):
                row.pop(key)
            row["labels"] = index[y]
        return rows

    fpb = datasets.fpb_splits(data)
    tw = datasets.twitter_split(data, "train")
    banking = datasets.banking77_splits(data)
    names = datasets.banking77_labels(data)
    states = datasets.customer_state_sets(data)
    validate_sentiment, validate_intent = _sentiment_validator(fpb["val"]), intent_validator(banking["val"])
    validate_state = _customer_state_validator(states["val"])
    embed = _base_embedder(base)
    console.print("embedding the chat training texts with the base encoder (targets of the embedding head)")
    intent_rows = features(banking["train"].texts, banking["train"].labels, names)
    for row, target in zip(intent_rows, embed(banking["train"].texts[: len(intent_rows)])):
        row["target"] = target
    state_rows = features(states["train"].texts, states["train"].labels, STATE_LABELS)
    for row, target in zip(state_rows, embed(states["train"].texts[: len(state_rows)])):
        row["target"] = target
    val_texts = banking["val"].texts
    val_targets = torch.stack(embed(val_texts))

    def validate_embedding(trunk: LoadedModel) -> float:
        from models.trunk import EMBEDDING, Trunk

        got = Trunk(trunk, {}).read(val_texts, [EMBEDDING])[EMBEDDING]
        return float((got * val_targets).sum(-1).mean())

    fpb_repeat = 2  # as the separate sentiment model is trained (`sentinel train sentiment`): FPB twice, all of twitter
    news = news_headline_sets(data) if headline_repeat else {}
    news_texts, news_labels, news_source = headline_rows(news, headline_repeat)
    sentiment_texts = news_texts + list(fpb["train"].texts) * fpb_repeat + list(tw.texts)
    sentiment_rows = features(sentiment_texts, news_labels + list(fpb["train"].labels) * fpb_repeat + list(tw.labels),
                              SENTIMENT_LABELS)
    sentiment_sources = _sentiment_sources(fpb_repeat, 1.0)
    if news:
        sentiment_sources.insert(0, f"{news_source}, every epoch")
    if soft_labels is not None:
        from models.training.distillation import read_teacher_labels

        by_text, unlabelled = read_teacher_labels(soft_labels)
        held_out = {h.title.casefold().strip() for part in ("val", "test")
                    for h in datasets.sentfin_entity_splits(data)[part]}
        unlabelled = [t for t in unlabelled if t.casefold().strip() not in held_out]  # entity-level SEntFiN eval
        missing = [t for t in sentiment_texts[: len(sentiment_rows)] if t not in by_text]
        if missing and not partial_soft_labels:
            raise ValueError(f"{soft_labels} has no teacher label for {len(missing)} training texts "
                             f"(e.g. {missing[0][:60]!r}); rewrite it with `sentinel teacher-labels`")
        covered = len(sentiment_rows) - len(missing)
        for text, label in zip(sentiment_texts[: len(sentiment_rows)],
                               [r["labels"] for r in sentiment_rows]):
            if text not in by_text:  # the hard label as the teacher's: the distillation loss is then cross-entropy
                by_text[text] = [float(k == label) for k in range(len(SENTIMENT_LABELS))]
        unlabelled = unlabelled[: limit or None]
        extra = features(unlabelled, [SENTIMENT_LABELS[0]] * len(unlabelled), SENTIMENT_LABELS)
        for row in extra:
            row["labels"] = IGNORE  # the teacher's probabilities only
        for row, text in zip(sentiment_rows + extra, sentiment_texts[: len(sentiment_rows)] + unlabelled):
            row["soft"] = by_text[text]
        sentiment_rows += extra
        sentiment_sources.append(f"teacher probabilities ({soft_labels.name}) on these and {len(extra)} "
                                 "unlabelled in-domain texts" + (
                                     f" ({covered} of the {len(sentiment_rows) - len(extra)} labelled rows have "
                                     "them; the others learn from their hard label alone)" if missing else ""))
    tasks = [
        TrunkTask("sentiment", "sequence", SENTIMENT_LABELS, sentiment_rows,
                  lambda m: validate_sentiment(m, 64), "accuracy", sentiment_sources,
                  kept=min(len(news_texts), len(sentiment_rows))),
        TrunkTask("entities", "token", ENTITY_LABELS, entities.train_features[: limit or None] * entity_repeat,
                  lambda m: entities.validate(m, 128), "f1",
                  entities.sources + ([f"(every row x{entity_repeat})"] if entity_repeat > 1 else [])),
        TrunkTask("intent", "sequence", names, intent_rows * intent_repeat,
                  lambda m: validate_intent(m, 64), "accuracy",
                  [f"banking77/train.csv (90% stratified part) x{intent_repeat}"]),
        TrunkTask("customer_state", "sequence", STATE_LABELS, state_rows * state_repeat,
                  lambda m: validate_state(m, 64), "macro_f1",
                  states["sources"]["train"] + ([f"(every row x{state_repeat})"] if state_repeat > 1 else [])),
    ]
    if entity_sentiment_repeat:
        from models.sentiment import LABELS as SENTIMENT_LABELS
        from models.trunk import ENTITY_SENTIMENT, SPAN

        sentfin = datasets.sentfin_entity_splits(data)
        news_headlines = [h for hs in news.values() for h in hs] * headline_repeat
        rows, dropped = entity_sentiment_rows(tokenizer, (news_headlines + sentfin["train"])[: limit or None])
        console.print(f"entity sentiment: {len(rows)} headlines (SEntFiN train part"
                      + (f", news headlines x{headline_repeat}" if news else "") + "), "
                      f"{sum(len(r['spans']) for r in rows)} entities ({sentfin['missing']} not found in "
                      f"their titles, {sentfin['ambiguous']} labelled differently by copies of their headline, "
                      f"{dropped} cut by truncation)")
        validate_spans = entity_sentiment_validator(sentfin["val"])
        tasks.append(TrunkTask(ENTITY_SENTIMENT, SPAN, SENTIMENT_LABELS, rows * entity_sentiment_repeat,
                               validate_spans, "accuracy",
                               ["sentfin_v1/SEntFiN-v1.0.csv (entity level, 80% part by headline)"
                                + (f" x{entity_sentiment_repeat}" if entity_sentiment_repeat > 1 else "")]
                               + ([f"news headlines ({', '.join(f'{k} {len(v)}' for k, v in news.items())}) "
                                   f"x{headline_repeat}, in each repeat"] if news else [])))
    return tasks, validate_embedding


def _base_embedder(base: str) -> Callable[[list[str]], list[torch.Tensor]]:
    """The knowledge retriever's embedding (the base encoder, mean pooled, unit length) of texts."""
    from transformers import AutoModel

    from models.sentences import sentence_embeddings

    encoder = AutoModel.from_pretrained(base, add_pooling_layer=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(base)
    return lambda texts: list(sentence_embeddings(tokenizer, encoder, torch.device("cpu"), list(texts)))


def train_trunk(data: Path, out_dir: Path, config: TrainConfig, base_setting: str = "",
                embedding_weight: float = 2.0, checkpoint_every: int = 200, soft_labels: Path | None = None,
                state_repeat: int = 1, entity_repeat: int = 1, intent_repeat: int = 2,
                entity_sentiment_repeat: int = 0, partial_soft_labels: bool = False, sample_rows: int = 0,
                headline_repeat: int = 0) -> dict:
    """Train the trunk's one adapter and all its heads together (``sentinel train trunk``).

    Every step is one task's batch (length-grouped inside the task); the batches of all tasks are
    shuffled together, so each task is seen in proportion to its rows. Chat batches add the
    embedding head's loss (1 - cosine to the base encoder's embedding). A checkpoint is written
    every ``checkpoint_every`` steps next to ``out_dir``; a rerun resumes from it. Each epoch ends
    with every head's validation and saves the artefact.

    ``config.init`` starts from another trunk's adapter and heads; a head it lacks (the entity-sentiment
    head, say) starts fresh and is trained and saved with the others. ``sample_rows``: every epoch, each
    task but the entity-sentiment one trains on a fresh seeded sample of at most this many of its rows
    (0: all), so a warm start can add a head while the others keep training, in less time.
    """
    from peft import PeftModel, get_peft_model
    from transformers import AutoModel

    from models.training.distillation import distillation_loss
    from models.trunk import EMBEDDING, ENTITY_SENTIMENT, SPAN, TrunkNet, head_module, head_view

    _seed_everything(config.seed)
    base = base_encoder_path(base_setting)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tasks, validate_embedding = trunk_tasks(data, base_setting, limit=config.limit, soft_labels=soft_labels,
                                            state_repeat=state_repeat, entity_repeat=entity_repeat,
                                            intent_repeat=intent_repeat,
                                            entity_sentiment_repeat=entity_sentiment_repeat,
                                            partial_soft_labels=partial_soft_labels,
                                            headline_repeat=headline_repeat)
    heads = {t.name: {"kind": t.kind, "labels": t.labels} for t in tasks}
    heads[EMBEDDING] = {"kind": EMBEDDING, "labels": []}
    net = TrunkNet(AutoModel.from_pretrained(base, add_pooling_layer=False), heads)
    init_heads = json.loads((Path(config.init) / "sentinel.json").read_text())["heads"] if config.init else {}
    if config.init and set(init_heads) == set(heads):
        model = PeftModel.from_pretrained(net, config.init, is_trainable=True)
    elif config.init:  # new heads: the init's adapter and heads loaded into an adapter that saves every head
        from peft import LoraConfig
        from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
        from safetensors.torch import load_file

        first = LoraConfig.from_pretrained(config.init)
        lcfg = lora_config(first.r, first.lora_alpha, first.lora_dropout, targets=lora_targets(net.encoder))
        lcfg.modules_to_save = ["shape_embedding", *(head_module(n) for n in heads)]
        model = get_peft_model(net, lcfg)
        weights = get_peft_model_state_dict(model)  # the new heads' fresh weights, the rest from the init
        loaded = load_file(str(Path(config.init) / "adapter_model.safetensors"))
        if set(loaded) - set(weights):
            raise ValueError(f"{config.init}'s adapter does not fit this trunk: {sorted(set(loaded) - set(weights))[:3]}")
        set_peft_model_state_dict(model, {**weights, **loaded})
        console.print(f"started from {config.init}; new heads: {sorted(set(heads) - set(init_heads))}")
    else:
        lcfg = lora_config(config.rank, config.alpha, targets=lora_targets(net.encoder))
        lcfg.modules_to_save = ["shape_embedding", *(head_module(n) for n in heads)]
        model = get_peft_model(net, lcfg)
    trainable = [p for p in model.parameters() if p.requires_grad]
    sizes = {t.name: len(t.features) if not sample_rows or t.kind == SPAN else min(max(sample_rows, t.kept), len(t.features))
             for t in tasks}
    console.print(f"[bold]trunk[/]: {sizes}, {sum(p.numel() for p in trainable):,} trainable parameters, {config}")

    def epoch_batches(epoch: int) -> list[tuple[int, list[int]]]:
        rng = random.Random(config.seed * 1000 + epoch)  # fixed per epoch, so a resumed run sees the same order
        batches = []
        for k, t in enumerate(tasks):
            pool = epoch_pool(len(t.features), t.kept, 0 if t.kind == SPAN else sample_rows, rng)
            rows = [t.features[i] for i in pool]
            batches += [(k, [pool[i] for i in ids]) for ids in _length_grouped_batches(rows, config.batch_size, rng)]
        rng.shuffle(batches)
        return batches

    steps_per_epoch = len(epoch_batches(1))
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup * steps_per_epoch * config.epochs),
                                                steps_per_epoch * config.epochs)
    checkpoint = Checkpoint(out_dir)
    start_epoch, start_step, history = 1, 0, []
    state = checkpoint.load(model, optimizer, scheduler)
    if state:
        start_epoch, start_step, history = state["epoch"], state["step"], state["history"]

    def save_checkpoint(epoch: int, step: int) -> None:
        checkpoint.save(model, optimizer, scheduler, epoch=epoch, step=step, history=history)

    meta_base = {"task": "trunk", "heads": heads, "use_shapes": True, "word_features": True,
                 "base_encoder": MINILM,
                 "train_sources": {t.name: t.sources for t in tasks}, "train_examples": sizes,
                 "config": {**config.__dict__, "init": Path(config.init).name if config.init else ""},
                 "embedding_weight": embedding_weight,
                 "soft_labels": soft_labels.name if soft_labels else None, "state_repeat": state_repeat,
                 "entity_repeat": entity_repeat, "intent_repeat": intent_repeat,
                 "entity_sentiment_repeat": entity_sentiment_repeat, "partial_soft_labels": partial_soft_labels,
                 "sample_rows": sample_rows, "headline_repeat": headline_repeat}
    if config.init:  # a second stage: what the first one was, and how it went
        first = json.loads((Path(config.init) / "sentinel.json").read_text())
        meta_base["init_stage"] = {k: first.get(k) for k in ("config", "history", "train_seconds", "init_stage")}
    trunk_view = LoadedModel(tokenizer, model, [], meta_base, torch.device("cpu"), torch.float32, "(training)", True)
    started = time.perf_counter()
    with progress() as bar:
        for epoch in range(start_epoch, config.epochs + 1):
            model.train()
            batches = epoch_batches(epoch)
            task_bar = bar.add_task(f"epoch {epoch}/{config.epochs}", total=len(batches), info="")
            skip = start_step if epoch == start_epoch else 0
            bar.update(task_bar, advance=skip)
            running = {t.name: 0.0 for t in tasks}
            for step, (k, ids) in enumerate(batches[skip:], skip + 1):
                task = tasks[k]
                rows = [task.features[i] for i in ids]
                batch = _collate_train([{key: v for key, v in r.items() if key not in ("target", "soft", "spans")}
                                        for r in rows])
                labels = batch.pop("labels")
                wanted = (task.name, EMBEDDING) if "target" in rows[0] else (task.name,)
                if task.kind == SPAN:  # every entity of the batch's headlines: (row, start, end), its label
                    batch["spans"] = torch.tensor([(r, a, b) for r, row in enumerate(rows) for a, b, _ in row["spans"]])
                    labels = torch.tensor([y for row in rows for _, _, y in row["spans"]])
                out = model(**batch, heads=wanted)
                logits = out[task.name]
                if "soft" in rows[0]:
                    loss = distillation_loss(logits, labels, torch.tensor([r["soft"] for r in rows]), IGNORE,
                                             temperature=config.temperature)
                else:
                    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1),
                                           ignore_index=IGNORE)
                if EMBEDDING in out:
                    target = torch.stack([r["target"] for r in rows])
                    loss = loss + embedding_weight * (1 - (out[EMBEDDING] * target).sum(-1)).mean()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                running[task.name] = 0.95 * running[task.name] + 0.05 * loss.item() if running[task.name] \
                    else loss.item()
                bar.update(task_bar, advance=1,
                           info=" ".join(f"{'esen' if n == ENTITY_SENTIMENT else n[:4]} {v:.3f}"
                                          for n, v in running.items()))
                if step % checkpoint_every == 0:
                    save_checkpoint(epoch, step)
            model.eval()
            entry = {"epoch": epoch, "loss": {n: round(v, 4) for n, v in running.items()}}
            for task in tasks:
                entry[f"{task.name}_{task.metric}"] = round(task.validate(head_view(trunk_view, task.name)), 4)
            entry["embedding_cosine"] = round(validate_embedding(trunk_view), 4)
            history.append(entry)
            console.print(f"epoch {epoch}: validation {entry}")
            meta = {**meta_base, "history": history, "best_epoch": epoch, "weights": f"end of epoch {epoch}",
                    "train_seconds": round(time.perf_counter() - started, 1)}
            save_artifact(model, out_dir, meta)
            save_checkpoint(epoch + 1, 0)
    checkpoint.remove()
    console.print(f"saved the trunk (end of epoch {config.epochs}) to {out_dir}")
    return json.loads((out_dir / "sentinel.json").read_text())
