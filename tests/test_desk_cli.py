"""`sentinel desk add-user|remove-user|disable-user|reset-password|revoke`, `sentinel alerts ack|resolve`, `sentinel desk serve` start-up errors and the
stack's desk URL, run as commands against a real (embedded) PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from agents.desk import store
from infra.db import make_engine, migrate
from infra.embedded import EmbeddedPostgres
from infra.settings import PROJECT_ROOT, Settings
from agents.stack import Stack
from schemas.tables import Alert


def sentinel(tmp_path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "SENTINEL_STATE_DIR": str(tmp_path / "state"), **env}
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], env=full_env, cwd=PROJECT_ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60)


def one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 2, done.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("what to do: "), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], done.stderr


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    with EmbeddedPostgres(tmp_path_factory.mktemp("desk-cli") / "pgdata", delete_on_stop=True) as db:
        migrate(db.url)
        yield db.url


@pytest.mark.integration
def test_add_user_reads_the_password_from_stdin(tmp_path, database):
    done = sentinel(tmp_path, "desk", "add-user", "carol", "--role", "supervisor", stdin="a long password\n",
                    DATABASE_URL=database)
    assert done.returncode == 0, done.stderr
    engine = make_engine(database, pool_size=1)
    try:
        user = store.check_password(engine, "carol", "a long password")
        assert user is not None and user.role == "supervisor"
        assert store.check_password(engine, "carol", "a long password\n") is None  # the newline is not part of it
    finally:
        engine.dispose()
    one_line_error(sentinel(tmp_path, "desk", "add-user", "carol", "--role", "agent", stdin="another password\n",
                            DATABASE_URL=database), "already exists")
    one_line_error(sentinel(tmp_path, "desk", "add-user", "dave", "--role", "agent", stdin="short\n",
                            DATABASE_URL=database), "8 to 1024")
    done = sentinel(tmp_path, "desk", "add-user", "erin", "--role", "boss", stdin="a long password\n",
                    DATABASE_URL=database)
    assert done.returncode == 2 and "Traceback" not in done.stderr


@pytest.mark.integration
def test_desk_user_commands_revoke_disable_reset_and_remove(tmp_path, database):
    engine = make_engine(database, pool_size=1)
    try:
        store.add_user(engine, "gina", "gina-password-1", "agent")
        user = store.check_password(engine, "gina", "gina-password-1")
        tokens = [store.open_session(engine, user, kind, 600) for kind in ("cookie", "bearer")]

        def signed_in() -> list:
            return [store.session_user(engine, t, k) for t, k in zip(tokens, ("cookie", "bearer"), strict=True)]

        def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
            return sentinel(tmp_path, "desk", *args, stdin=stdin, DATABASE_URL=database)

        done = run("revoke", "gina")
        assert done.returncode == 0 and "revoked 2" in done.stderr, done.stderr
        assert signed_in() == [None, None]
        tokens = [store.open_session(engine, user, kind, 600) for kind in ("cookie", "bearer")]
        assert run("disable-user", "gina").returncode == 0
        assert signed_in() == [None, None] and store.check_password(engine, "gina", "gina-password-1") is None
        assert run("disable-user", "gina", "--enable").returncode == 0
        assert store.check_password(engine, "gina", "gina-password-1") is not None
        tokens = [store.open_session(engine, user, kind, 600) for kind in ("cookie", "bearer")]
        one_line_error(run("reset-password", "gina", stdin="short\n"), "8 to 1024")
        assert run("reset-password", "gina", stdin="gina-password-2\n").returncode == 0
        assert signed_in() == [None, None]
        assert store.check_password(engine, "gina", "gina-password-1") is None
        assert store.check_password(engine, "gina", "gina-password-2") is not None
        assert run("remove-user", "gina").returncode == 0
        assert store.check_password(engine, "gina", "gina-password-2") is None
        for args in (("remove-user", "gina"), ("disable-user", "gina"), ("revoke", "gina")):
            one_line_error(run(*args), "no desk user 'gina'")
        one_line_error(run("reset-password", "gina", stdin="gina-password-3\n"), "no desk user 'gina'")
    finally:
        engine.dispose()


@pytest.mark.integration
def test_alerts_ack_and_resolve_record_who_and_when(tmp_path, database):
    engine = make_engine(database, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(insert(Alert.__table__).values(
                id="escalation:m-7", kind="escalation", key="conv-7", severity="critical", status="open",
                opened_at=datetime.now(UTC), last_seen_at=datetime.now(UTC), payload={"message_id": "m-7"}))
    finally:
        engine.dispose()
    done = sentinel(tmp_path, "alerts", "ack", "escalation:m-7", "--by", "carol", DATABASE_URL=database)
    assert done.returncode == 0, done.stderr
    acked = json.loads(done.stdout)
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "carol" and acked["acknowledged_at"]
    done = sentinel(tmp_path, "alerts", "resolve", "escalation:m-7", "--by", "dave", DATABASE_URL=database)
    resolved = json.loads(done.stdout)
    assert (resolved["status"], resolved["resolved_by"], resolved["acknowledged_by"]) == ("resolved", "dave", "carol")
    one_line_error(sentinel(tmp_path, "alerts", "ack", "no-such-alert", "--by", "carol", DATABASE_URL=database),
                   "no alert")
    listed = sentinel(tmp_path, "alerts", "--json", DATABASE_URL=database)  # the listing still works
    assert listed.returncode == 0 and json.loads(listed.stdout.splitlines()[0])["id"] == "escalation:m-7"


@pytest.mark.integration
def test_desk_serve_says_in_one_line_when_its_port_is_taken(tmp_path, database):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = sentinel(tmp_path, "desk", "serve", DATABASE_URL=database, KAFKA_BOOTSTRAP="127.0.0.1:1",
                        SENTINEL_DESK_PORT=str(port))
    one_line_error(done, f"cannot listen on 127.0.0.1:{port}")


def test_desk_serve_without_a_database_says_so(tmp_path):
    one_line_error(sentinel(tmp_path, "desk", "serve", DATABASE_URL="postgresql://u@127.0.0.1:1/x",
                            KAFKA_BOOTSTRAP="127.0.0.1:1"), "cannot reach the database")


def test_status_shows_the_desk_url(tmp_path):
    stack = Stack(Settings(state_dir=tmp_path / "state", desk_port=8123))
    assert stack.status()["desk_url"] == "http://127.0.0.1:8123/"
    state = tmp_path / "state"
    state.mkdir()
    # a status file as a running `sentinel up` writes it (this test process stands in for it)
    (state / "stack.json").write_text(json.dumps({**stack.status(), "database_url_full": "", "pid": os.getpid()}))
    done = sentinel(tmp_path, "status", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["desk_url"] == "http://127.0.0.1:8123/"


@pytest.mark.integration
def test_the_stack_starts_the_desk_and_stops_it(tmp_path, monkeypatch):
    import urllib.request

    from infra.embedded import free_port
    from infra.harness import wait_until
    from agents.stack import read_status

    for name in ("KAFKA_BOOTSTRAP", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    s = Settings(state_dir=tmp_path / "state", kafka_bootstrap="", database_url="", topic_partitions=1, desk_port=port)
    stack = Stack(s, say=lambda *a: None)
    try:
        stack.start()
        desk = stack.start_desk()

        def serving() -> bool:
            assert desk.poll() is None, "the desk exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until(serving, timeout=60, interval=0.3, message="desk serving")
        assert json.loads((tmp_path / "state" / "run.json").read_text())["desk_pid"] == desk.pid
        assert read_status(s)["desk_url"] == f"http://127.0.0.1:{port}/"
    finally:
        stack.stop()
    assert desk.poll() is not None


def run_on_a_terminal(args: list[str], answers: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``sentinel ARGS`` with a pseudo-terminal as its controlling terminal, typing ``answers`` at each
    prompt; returns its exit code and everything it wrote to the terminal."""
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its terminal
        os.chdir(PROJECT_ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "agents.cli", *args], {**os.environ, **env})
    seen, pending = b"", list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if pending and seen.rstrip().endswith(b":"):
            os.write(fd, pending.pop(0).encode() + b"\n")
            seen += b"<typed>"
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


@pytest.mark.integration
def test_add_user_on_a_terminal_asks_twice(tmp_path, database):
    env = {"DATABASE_URL": database, "SENTINEL_STATE_DIR": str(tmp_path / "state")}
    code, out = run_on_a_terminal(["desk", "add-user", "frank", "--role", "agent"],
                                  ["a first password", "another password"], env)
    assert code == 2 and "the two passwords differ" in out, out
    code, out = run_on_a_terminal(["desk", "add-user", "frank", "--role", "agent"],
                                  ["same password 1", "same password 1"], env)
    assert code == 0, out
    assert out.count("password") >= 2 and "same password 1" not in out  # asked twice, never echoed
    engine = make_engine(database, pool_size=1)
    try:
        assert store.check_password(engine, "frank", "same password 1") is not None
    finally:
        engine.dispose()
