"""CLI errors are one line plus what to do, exit code 2, no traceback; the console log stays quiet."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import pytest

from infra.settings import PROJECT_ROOT, Settings

UNREACHABLE_DB = "postgresql://u@127.0.0.1:1/x"
UNREACHABLE_KAFKA = "127.0.0.1:1"


def sentinel(tmp_path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    full_env = {**os.environ, "SENTINEL_STATE_DIR": str(tmp_path / "state"), **env}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "agents.cli", *args], env=full_env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started


def assert_one_line_error(done: subprocess.CompletedProcess, elapsed: float, *words: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("what to do: "), done.stderr
    for word in words:
        assert word in lines[0], done.stderr
    assert elapsed < 15, f"took {elapsed:.1f}s"


def test_alerts_with_the_database_unreachable(tmp_path):
    done, elapsed = sentinel(tmp_path, "alerts", DATABASE_URL=UNREACHABLE_DB)
    assert_one_line_error(done, elapsed, "cannot reach the database", "127.0.0.1")


def test_replay_with_kafka_unreachable(tmp_path):
    done, elapsed = sentinel(tmp_path, "replay", "agents/demo/news_feed.jsonl", KAFKA_BOOTSTRAP=UNREACHABLE_KAFKA)
    assert_one_line_error(done, elapsed, "Kafka at 127.0.0.1:1")


def test_analyze_with_no_trunk_where_the_setting_points(tmp_path):
    done, elapsed = sentinel(tmp_path, "analyze", "Profit fell.", SENTINEL_TRUNK_MODEL=str(tmp_path))
    assert_one_line_error(done, elapsed, "sentinel train trunk")


def test_train_trunk_with_missing_soft_labels(tmp_path):
    done, elapsed = sentinel(tmp_path, "train", "trunk", "--data", str(tmp_path), "--soft-labels",
                             str(tmp_path / "none.jsonl"))
    assert_one_line_error(done, elapsed)


def test_train_entity_head_from_a_folder_that_is_no_trunk(tmp_path):
    done, elapsed = sentinel(tmp_path, "train", "entity-head", "--data", str(tmp_path), "--init", str(tmp_path))
    assert_one_line_error(done, elapsed, "is not a Sentinel artefact folder")


def test_train_entity_head_without_conll(tmp_path):
    done, elapsed = sentinel(tmp_path, "train", "entity-head", "--data", str(tmp_path), "--out", str(tmp_path / "out"))
    assert_one_line_error(done, elapsed, "conll2003")
    assert not (tmp_path / "out").exists()  # nothing written


def test_worker_with_the_database_unreachable(tmp_path):
    done, elapsed = sentinel(tmp_path, "worker", DATABASE_URL=UNREACHABLE_DB, KAFKA_BOOTSTRAP=UNREACHABLE_KAFKA)
    assert_one_line_error(done, elapsed, "cannot reach the database")


@pytest.mark.integration
def test_worker_with_kafka_unreachable(tmp_path):
    from infra.embedded import EmbeddedPostgres

    with EmbeddedPostgres(tmp_path / "pgdata", delete_on_stop=True) as db:
        done, elapsed = sentinel(tmp_path, "worker", DATABASE_URL=db.url, KAFKA_BOOTSTRAP=UNREACHABLE_KAFKA)
    assert_one_line_error(done, elapsed, "cannot reach Kafka at 127.0.0.1:1")


@pytest.fixture
def restore_root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def emit(name: str, level: int, pathname: str, message: str, *args) -> None:
    logger = logging.getLogger(name)
    logger.handle(logger.makeRecord(name, level, pathname, 1, message, args, None))


def emit_sample_records() -> None:
    import mode.services

    from infra.settings import PROJECT_ROOT

    # Faust's services log under their subclass's module name: the call site tells them apart
    emit("agents.app", logging.INFO, mode.services.__file__, "[^-App]: Starting... %d", 1)
    emit("kafka.conn", logging.WARNING, "/somewhere/kafka/conn.py", "library warning")
    emit("agents.worker", logging.INFO, str(PROJECT_ROOT / "agents" / "worker.py"), "worker ready")


@pytest.mark.parametrize("verbose", [False, True])
def test_console_hides_library_info_that_the_file_keeps(tmp_path, capsys, restore_root_logging, verbose):
    from infra.logs import configure_logging

    path = configure_logging(Settings(state_dir=tmp_path, verbose=verbose), "worker")
    emit_sample_records()
    console = capsys.readouterr().err
    assert "worker ready" in console and "library warning" in console
    assert ("[^-App]: Starting... 1" in console) is verbose
    text = path.read_text()
    assert path == tmp_path / "logs" / "worker.log"
    assert all(m in text for m in ("[^-App]: Starting... 1", "library warning", "worker ready"))


def test_json_format_gives_one_object_per_line_through_fausts_worker_setup(tmp_path, capsys,
                                                                          restore_root_logging):
    from mode.utils.logging import setup_logging

    from infra.logs import log_file, worker_logging

    settings = Settings(state_dir=tmp_path, log_format="json")
    # what mode's Worker does with faust.Worker(..., **worker_logging(settings)) at start
    setup_logging(loglevel="INFO", **worker_logging(settings))
    emit_sample_records()
    console = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    in_file = [json.loads(line) for line in log_file(settings, "worker").read_text().splitlines()]
    assert [r["message"] for r in console] == ["library warning", "worker ready"]
    assert [r["message"] for r in in_file] == ["[^-App]: Starting... 1", "library warning", "worker ready"]
    record = in_file[-1]
    assert record["level"] == "INFO" and record["logger"] == "agents.worker" and record["timestamp"]


def test_the_demo_prints_hostile_text_as_text_not_console_markup():
    from io import StringIO

    from rich.console import Console

    from agents.demo import show_reply

    out = StringIO()
    show_reply(Console(file=out, width=200), {
        "conversation_id": "[bold]c1", "intent": "[red]card_arrival", "intent_score": 0.5, "escalate": True,
        "escalation_reason": "[/]", "draft": "[link=http://evil.example]click[/link]"}, "[blink]where is my card")
    printed = out.getvalue()
    for raw in ("[bold]c1", "[red]card_arrival", "escalate: [/]", "[link=http://evil.example]click[/link]",
                "[blink]where is my card"):
        assert raw in printed
