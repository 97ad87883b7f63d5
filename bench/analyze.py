"""`sentinel analyze` throughput (sentiment + entities) against the base encoder's forward pass.

Both are measured in the same run on the same 64 headlines, alternating rounds,
so the ratio is not skewed by a noisy machine. Run: ``python -m bench.analyze``.
"""

from __future__ import annotations

import statistics
import time

import torch
from rich.table import Table
from transformers import AutoModel, AutoTokenizer

from bench.common import headlines, save
from infra.progress import console, progress
from models.analysis import Analyzer
from models.encoder import base_encoder_path


def main(rounds: int = 7, n: int = 64) -> dict:
    texts = headlines(n)
    base = base_encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    encoder = AutoModel.from_pretrained(base).eval()
    analyzer = Analyzer.from_settings()
    analyzer.warm_up()
    tokens = [len(ids) for ids in tokenizer(texts)["input_ids"]]

    def forward_only():
        with torch.inference_mode():
            encoder(**tokenizer(texts, padding=True, return_tensors="pt"))

    def analyze():
        analyzer.analyze_texts(texts)

    forward_only()
    times = {"encoder_forward": [], "analyze": []}
    with progress() as bar:
        task = bar.add_task("rounds", total=rounds, info="")
        for _ in range(rounds):
            for name, fn in (("encoder_forward", forward_only), ("analyze", analyze)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
            bar.update(task, advance=1)
    rates = {k: n / statistics.median(v) for k, v in times.items()}
    result = {
        "inputs": n, "batch_size": n, "mean_tokens": round(sum(tokens) / n, 1), "max_tokens": max(tokens),
        "rounds": rounds,
        "encoder_forward_sentences_per_s": round(rates["encoder_forward"], 1),
        "analyze_sentences_per_s": round(rates["analyze"], 1),
        "ratio_analyze_to_forward": round(rates["analyze"] / rates["encoder_forward"], 3),
    }
    table = Table(title=f"{n} headlines, ~{result['mean_tokens']} tokens, batch {n}")
    table.add_column("what")
    table.add_column("sentences/s", justify="right")
    table.add_row("base encoder forward only", f"{rates['encoder_forward']:.1f}")
    table.add_row("analyze (sentiment + entities)", f"{rates['analyze']:.1f}")
    console.print(table)
    console.print(f"written to {save('analyze', result)}")
    return result


if __name__ == "__main__":
    main()
