"""A set of models in a child process: its own interpreter, its own CPU priority.

Chat's generation runs Python between every decoding step (sampling, stop criteria), so in
the worker's own process it holds the GIL for a good part of every second it runs and slows
news's event loop and model thread whatever the threads' priorities. In a child process it
competes only for CPU time, where the kernel serves the niced child last.

The child is a one-process ``ProcessPoolExecutor`` (spawned, never forked: the parent has
threads and torch state). A child that dies (killed, out of memory, a crash in native code)
is replaced and the call that was running fails with ``ModelProcessDied``, so the agent
loop retries its batch one event at a time and dead-letters only an event that kills it again.
A child that cannot be started again (out of memory, its files gone) is an outage: the call
fails with ``ModelsUnavailable``, the loop pauses and retries, and each later call tries to
start it again.

The child builds its models with a factory named ``"module:callable"`` called with the
settings; the object it returns offers ``infer(texts) -> list``, ``describe() -> dict`` and
``timed() -> list`` (the models whose per-phase timings the parent exports).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

log = logging.getLogger(__name__)

PhaseListener = Callable[[str, str, float], None]  # (task, phase, seconds)


class ModelProcessDied(RuntimeError):
    """The child process died during a call (it has been replaced)."""


class ModelsUnavailable(RuntimeError):
    """The models cannot run now: their process could not be started again. An outage, not the input's
    fault: the agent loop waits and retries the batch (``agents/loop.py``), it never dead-letters for it."""


class ModelProcess:
    def __init__(self, name: str, factory: str, settings, *, niceness: int = 0, threads: int = 1,
                 on_phase: PhaseListener | None = None, on_restart: Callable[[], None] | None = None):
        self.name = name
        self.factory = factory
        self.settings = settings
        self.niceness = niceness
        self.threads = threads
        self.on_phase = on_phase
        self.on_restart = on_restart
        self.info: dict = {}
        self._started = False  # start() was called and close() was not
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def start(self) -> dict:
        """Start the child and load its models (blocks until they are loaded); what they say of themselves."""
        with self._lock:
            self._pool = self._spawn()
            self._started = True
        return self.info

    def _spawn(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_child_start,
                                   initargs=(self.factory, self.settings, self.niceness, self.threads, os.getpid()))
        try:
            self.info = pool.submit(_child_describe).result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        return pool

    def infer(self, texts: list[str]) -> list:
        pool = self._pool
        if pool is None:
            if not self._started:
                raise RuntimeError(f"the {self.name} model process is not started")
            pool = self._respawn(None)  # an earlier start failed: try again (ModelsUnavailable if it fails again)
        try:
            results, phases = pool.submit(_child_infer, texts).result()
        except BrokenProcessPool:
            self._replace(pool)
            raise ModelProcessDied(f"the {self.name} model process died during a batch of {len(texts)}; "
                                   f"a new one has been started") from None
        if self.on_phase:
            for task, phase, seconds in phases:
                self.on_phase(task, phase, seconds)
        return results

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        log.error("%s model process died; starting a new one", self.name)
        self._respawn(broken)

    def _respawn(self, broken: ProcessPoolExecutor | None) -> ProcessPoolExecutor:
        """A new child in place of ``broken`` (None: in place of a start that failed); ModelsUnavailable
        when it cannot be started."""
        with self._lock:
            if self._pool is not broken:  # another caller already replaced it
                if self._pool is None:
                    raise ModelsUnavailable(f"the {self.name} model process is closed")
                return self._pool
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            started = time.monotonic()
            try:
                self._pool = self._spawn()
            except Exception as exc:  # noqa: BLE001 - any failure to start is an outage of the models
                log.error("%s model process cannot be started: %r", self.name, str(exc)[:500])
                raise ModelsUnavailable(f"the {self.name} model process cannot be started: "
                                        f"{type(exc).__name__}: {str(exc)[:300]}") from None
            log.warning("%s model process restarted in %.1f s", self.name, time.monotonic() - started)
            pool = self._pool
        if self.on_restart:
            self.on_restart()
        return pool

    def pid(self) -> int | None:
        """The child's process id (for tests and memory figures), or None."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return next(iter(processes), None)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self._started = False
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


# -- in the child ---------------------------------------------------------------------------------------
_models = None
_phases: list[tuple[str, str, float]] = []


def _child_start(factory: str, settings, niceness: int, threads: int, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    if niceness:
        os.nice(niceness)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()
    import torch

    torch.set_num_threads(max(1, threads))
    module, _, attribute = factory.partition(":")
    global _models
    _models = getattr(importlib.import_module(module), attribute)(settings)
    for model in _models.timed():
        model.timings.listeners.append(lambda phase, seconds, items, task=model.task:
                                       _phases.append((task, phase, seconds)))


def _exit_with_parent(parent: int) -> None:
    """A parent killed with SIGKILL cannot stop its child: the child notices and leaves."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _child_describe() -> dict:
    return _models.describe()


def _child_infer(texts: list[str]) -> tuple[list, list]:
    _phases.clear()
    results = _models.infer(texts)
    return results, list(_phases)
