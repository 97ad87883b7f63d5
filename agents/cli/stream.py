"""The stream: the embedded stack, the worker, the demo, replaying events, status."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from agents.cli.common import (
    CONNECT_TIMEOUT_S,
    _check_database,
    _check_kafka,
    _reason,
    app,
    err,
    fail,
)
from infra.settings import get_settings
from schemas import topics

PANEL = "The stream"  # where its commands stand in `sentinel --help`

VerboseOption = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Show the libraries' INFO logs (Faust, Kafka clients) on the console too.")]


@app.command(rich_help_panel=PANEL)
def up(
    demo: Annotated[bool, typer.Option(help="Also replay the demo feed and follow the results.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Start the stack in the foreground: broker, database, migrations, topics and the worker. Ctrl-C stops it."""
    import signal

    from agents.stack import Stack, StackError, wait_forever_or_until
    from infra.logs import configure_logging

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
            if demo:  # the demo's companies, so its alerts name them (before the worker loads the master)
                from agents.companies import import_demo

                err.print(f"company master: {json.dumps(import_demo(stack.settings.database_url))}")
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


@app.command(rich_help_panel=PANEL)
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


@app.command(rich_help_panel=PANEL)
def worker() -> None:
    """Run only the worker against configured services (KAFKA_BOOTSTRAP and DATABASE_URL)."""
    from agents.stack import resolve_services

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


@app.command(rich_help_panel=PANEL)
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Where the running stack is: Kafka bootstrap, database URL (redacted), metrics URL, topics and desk URL."""
    from agents.stack import read_status

    st = read_status(get_settings())
    if st is None:
        fail("no running stack found", "start one with `sentinel up`")
    shown = {k: st.get(k) for k in ("kafka_bootstrap", "database_url", "metrics_url", "topics", "desk_url")}
    typer.echo(json.dumps(shown) if as_json else "\n".join(f"{k}: {v}" for k, v in shown.items()))


@app.command(rich_help_panel=PANEL)
def replay(
    file: Annotated[Path, typer.Argument(help="JSONL (sent line by line, as is) or CSV (one event per row).")],
    topic: Annotated[str, typer.Option(help="Topic to write to.")] = topics.NEWS.name,
    rate: Annotated[float, typer.Option(help="Events per second; 0 = as fast as possible.")] = 0.0,
) -> None:
    """Replay a file of events into a topic, with a progress bar."""
    from agents.replay import read_events
    from agents.replay import replay as send
    from agents.stack import resolve_services

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
