"""The stack's start after an unclean stop: what a SIGKILLed `sentinel up` leaves is stopped, for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from infra.db import make_engine
from infra.embedded import EmbeddedPostgres, process_alive
from infra.settings import PROJECT_ROOT, Settings
from agents.stack import Stack, StackError

# A Stack without a worker (no models to load), in its own process so it can be killed.
RUN_STACK = """
import sys, time
from infra.settings import Settings
from agents.stack import Stack
Stack(Settings(topic_partitions=1), say=lambda *a: None).start()
print("READY", flush=True)
time.sleep(600)
"""


def stack_env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "DATABASE_URL")}
    return {**env, "SENTINEL_STATE_DIR": str(state_dir)}


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def settings(state_dir: Path) -> Settings:
    return Settings(state_dir=state_dir, kafka_bootstrap="", database_url="", topic_partitions=1)


@pytest.mark.integration
def test_start_after_sigkill_stops_the_orphans_and_stop_leaves_nothing(tmp_path):
    state = tmp_path / "state"
    pgdata = state / "pgdata"
    killed = subprocess.Popen([sys.executable, "-c", RUN_STACK], env=stack_env(state), cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert killed.stdout.readline().strip() == "READY", killed.stdout.read()
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    old_broker = json.loads((state / "run.json").read_text())["broker_pid"]
    old_postmaster = postmaster_pid(pgdata)
    # what the test is about: the kill left both running
    assert process_alive(old_broker) and process_alive(old_postmaster)

    said: list[str] = []
    stack = Stack(settings(state), say=said.append)
    try:
        stack.start()
        assert not process_alive(old_broker), said
        assert not process_alive(old_postmaster), said
        new_postmaster = postmaster_pid(pgdata)
        assert new_postmaster and new_postmaster != old_postmaster
        assert any("Tansu broker" in line and str(old_broker) in line for line in said), said
        assert any("PostgreSQL" in line and str(old_postmaster) in line for line in said), said
        # the new stack works
        engine = make_engine(stack.settings.database_url, pool_size=1)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("select count(*) from alerts")).scalar() >= 0
        finally:
            engine.dispose()
        assert {"news", "chat", "alerts"} <= set(stack.topics)
        # a second start on the same state folder is refused in one line, and leaves the first one alone
        with pytest.raises(StackError, match="another `sentinel up`"):
            Stack(settings(state), say=said.append, lock_wait=0).start()
        assert stack.broker.alive()
        new_broker = stack.broker.pid
    finally:
        stack.stop()
    assert not process_alive(new_broker)
    assert not process_alive(new_postmaster)
    assert not (pgdata / "postmaster.pid").exists()
    assert not (state / "run.json").exists()


def test_a_database_still_shutting_down_is_waited_for_then_reported_in_one_line(tmp_path, monkeypatch):
    state = tmp_path / "state"
    pgdata = state / "pgdata"
    pgdata.mkdir(parents=True)
    busy = subprocess.Popen(["sleep", "60"])  # stands for a postmaster that takes long to stop
    original = EmbeddedPostgres.start
    monkeypatch.setattr(EmbeddedPostgres, "start", lambda self: original(self, settle_timeout=1.0))
    try:
        (pgdata / "postmaster.pid").write_text(
            f"{busy.pid}\n{pgdata}\n{int(time.time())}\n5432\n{pgdata}\n\n  1  2\nstopping\n")
        stack = Stack(settings(state).model_copy(update={"kafka_bootstrap": "127.0.0.1:1"}), say=lambda *a: None)
        started = time.monotonic()
        with pytest.raises(StackError) as caught:
            stack.__enter__()
        assert time.monotonic() - started >= 1.0  # it waited before giving up
        message = str(caught.value)
        assert "still 'stopping'" in message and str(busy.pid) in message and "\n" not in message
        assert "pg_ctl stop" in caught.value.hint
        assert busy.poll() is None  # waited for, not killed
        assert not (state / "run.json").exists()
    finally:
        busy.kill()
        busy.wait()
