"""The model process (models/process.py): models in a child with its own priority, replaced when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field

import pytest

from models.process import ModelProcess, ModelProcessDied
from models.runtime import PhaseTimings


@dataclass
class FakeModel:
    task: str = "fake"
    timings: PhaseTimings = field(default_factory=PhaseTimings)


class FakeModels:
    """Upper-cases texts; "die" kills its process, "fail" raises, "pid" answers the process id."""

    def __init__(self, settings):
        self.model = FakeModel()
        self.settings = settings

    def infer(self, texts):
        with self.model.timings.phase("infer", len(texts)):
            if "die" in texts:
                os.kill(os.getpid(), signal.SIGKILL)
            if "fail" in texts:
                raise ValueError("this text breaks the fake model")
            return [str(os.getpid()) if t == "pid" else t.upper() for t in texts]

    def timed(self):
        return [self.model]

    def describe(self):
        return {"settings": self.settings, "pid": os.getpid(), "nice": os.nice(0)}


FACTORY = "tests.test_model_process:FakeModels"


@pytest.fixture
def process():
    phases, restarts = [], []
    p = ModelProcess("fake", FACTORY, {"setting": 1}, niceness=7, on_phase=lambda *a: phases.append(a),
                     on_restart=lambda: restarts.append(1))
    p.phases, p.restarts = phases, restarts
    p.start()
    yield p
    p.close()


def test_models_run_in_a_child_at_a_lower_priority_and_report_their_phases(process):
    info = process.info
    assert info["settings"] == {"setting": 1}
    assert info["pid"] != os.getpid() and info["pid"] == process.pid()
    assert info["nice"] == os.nice(0) + 7
    assert process.infer(["a", "b"]) == ["A", "B"]
    assert [(task, phase) for task, phase, _ in process.phases] == [("fake", "infer")]


def test_a_model_error_reaches_the_caller_as_itself_and_the_child_lives_on(process):
    pid = process.pid()
    with pytest.raises(ValueError, match="breaks the fake model"):
        process.infer(["ok", "fail"])
    assert process.infer(["pid"]) == [str(pid)]
    assert process.restarts == []


def test_a_child_that_dies_is_replaced_and_the_call_fails_cleanly(process):
    first = process.pid()
    with pytest.raises(ModelProcessDied):
        process.infer(["ok", "die"])
    assert process.restarts == [1]
    assert process.infer(["pid"]) != [str(first)]
    assert process.infer(["x"]) == ["X"]


def test_the_child_leaves_when_its_parent_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from models.process import ModelProcess
        p = ModelProcess("fake", {FACTORY!r}, {{}})
        p.start()
        print(p.pid(), flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(child), "the model process outlived its killed parent"
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
