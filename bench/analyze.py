"""The models' own speed: the trunk against the separate task models, and the base encoder.

News: `sentinel analyze` (sentiment + entities) on 64 demo headlines, read by the trunk
(one encoder pass, the default) and by the separate task models (two passes, the
committed ``models/artifacts/sentiment`` and ``entities``), against the base encoder's
forward pass alone. Chat: the chat models' path (``ChatModels.infer``: sentiment,
entities, intent, customer state, retrieval, template openings, escalation) on 64
banking77 test messages, trunk against separate models. These run in float32; the trunk and the
base encoder also run in bfloat16 (``SENTINEL_DTYPE=bfloat16``, the default on CPUs with AMX-BF16
units: ``served_dtype`` in the result). Every figure is measured in the
same run, in alternating rounds, so the ratios are not skewed by a noisy machine.

Run: ``python -m bench.analyze [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import random

import torch
from rich.table import Table
from transformers import AutoModel, AutoTokenizer

from bench.common import alternating_rates, headlines, save
from infra.progress import console
from infra.settings import ARTIFACTS, get_settings
from models.analysis import Analyzer
from models.encoder import base_encoder_path
from models.runtime import cpu_has_amx_bf16, dtype_name, pick_device

SEPARATE = {"sentiment_model": str(ARTIFACTS / "sentiment"), "entity_model": str(ARTIFACTS / "entities"),
            "intent_model": str(ARTIFACTS / "intent"), "customer_state_model": str(ARTIFACTS / "customer_state")}


def chat_messages(n: int) -> list[str]:
    from models.training.datasets import SPLIT_SEED, banking77_splits

    test = banking77_splits(get_settings().data_dir)["test"]
    return [test.texts[i] for i in random.Random(SPLIT_SEED + 2).sample(range(len(test.texts)), n)]


def main(rounds: int = 7, n: int = 64) -> dict:
    from models.chat import load_models

    settings = get_settings().model_copy(update={"chat_opening": "template", "dtype": "float32"})
    separate = settings.model_copy(update=SEPARATE)
    texts, messages = headlines(n), chat_messages(n)
    base = base_encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    device = pick_device(settings.device)  # the forward runs where the models run (bench/gpu.sh: CUDA)
    encoder = AutoModel.from_pretrained(base).to(device).eval()
    bf16 = settings.model_copy(update={"dtype": "bfloat16"})
    encoder_bf16 = AutoModel.from_pretrained(base, torch_dtype=torch.bfloat16).to(device).eval()
    analyzers = {"trunk": Analyzer.from_settings(settings), "separate": Analyzer.from_settings(separate),
                 "trunk_bf16": Analyzer.from_settings(bf16)}
    chats = {"trunk": load_models(settings), "separate": load_models(separate), "trunk_bf16": load_models(bf16)}
    assert analyzers["trunk"].trunk is not None and analyzers["separate"].trunk is None
    assert chats["trunk"].trunk is not None and chats["separate"].trunk is None
    for analyzer in analyzers.values():
        analyzer.warm_up()
    tokens = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    chat_tokens = [len(ids) for ids in tokenizer(messages)["input_ids"]]

    def forward_only(net):
        with torch.inference_mode():
            net(**tokenizer(texts, padding=True, return_tensors="pt").to(device))
        if device.type == "cuda":
            torch.cuda.synchronize()

    runs = {
        "encoder_forward": lambda: forward_only(encoder),
        "analyze_trunk": lambda: analyzers["trunk"].analyze_texts(texts),
        "analyze_separate": lambda: analyzers["separate"].analyze_texts(texts),
        "chat_trunk": lambda: chats["trunk"].infer(messages),
        "chat_separate": lambda: chats["separate"].infer(messages),
        "encoder_forward_bf16": lambda: forward_only(encoder_bf16),
        "analyze_trunk_bf16": lambda: analyzers["trunk_bf16"].analyze_texts(texts),
        "chat_trunk_bf16": lambda: chats["trunk_bf16"].infer(messages),
    }
    for fn in runs.values():
        fn()
    rates = alternating_rates(runs, n, rounds)
    result = {
        "inputs": n, "batch_size": n, "rounds": rounds,
        "mean_tokens": round(sum(tokens) / n, 1), "max_tokens": max(tokens),
        "chat_mean_tokens": round(sum(chat_tokens) / n, 1), "chat_max_tokens": max(chat_tokens),
        **{f"{k}_per_s": round(v, 1) for k, v in rates.items()},
        "ratio_analyze_trunk_to_forward": round(rates["analyze_trunk"] / rates["encoder_forward"], 3),
        "ratio_analyze_separate_to_forward": round(rates["analyze_separate"] / rates["encoder_forward"], 3),
        "ratio_chat_trunk_to_separate": round(rates["chat_trunk"] / rates["chat_separate"], 3),
        "cpu_amx_bf16": cpu_has_amx_bf16(),
        "served_dtype": dtype_name(get_settings().device, get_settings().dtype),
        "ratio_analyze_trunk_bf16_to_forward_bf16": round(rates["analyze_trunk_bf16"] / rates["encoder_forward_bf16"], 3),
        "ratio_analyze_trunk_bf16_to_forward": round(rates["analyze_trunk_bf16"] / rates["encoder_forward"], 3),
        "ratio_chat_trunk_bf16_to_separate": round(rates["chat_trunk_bf16"] / rates["chat_separate"], 3),
    }
    table = Table(title=f"batch {n}: headlines ~{result['mean_tokens']} tokens, chat ~{result['chat_mean_tokens']}")
    table.add_column("what")
    table.add_column("texts/s", justify="right")
    for name, label in (("encoder_forward", "base encoder forward only"),
                        ("analyze_trunk", "analyze, trunk (one pass)"),
                        ("analyze_separate", "analyze, separate models (two passes)"),
                        ("chat_trunk", "chat models' path, trunk"),
                        ("chat_separate", "chat models' path, separate models"),
                        ("encoder_forward_bf16", "base encoder forward only, bf16"),
                        ("analyze_trunk_bf16", "analyze, trunk, bf16"),
                        ("chat_trunk_bf16", "chat models' path, trunk, bf16")):
        table.add_row(label, f"{rates[name]:.1f}")
    console.print(table)
    console.print(f"analyze/forward: trunk {result['ratio_analyze_trunk_to_forward']}, separate "
                  f"{result['ratio_analyze_separate_to_forward']}; chat trunk/separate "
                  f"{result['ratio_chat_trunk_to_separate']}; bf16: analyze/forward bf16 "
                  f"{result['ratio_analyze_trunk_bf16_to_forward_bf16']}, analyze/forward fp32 "
                  f"{result['ratio_analyze_trunk_bf16_to_forward']}, chat/separate fp32 "
                  f"{result['ratio_chat_trunk_bf16_to_separate']}")
    console.print(f"written to {save('analyze', result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=64)
    args = parser.parse_args()
    main(args.rounds, args.n)
