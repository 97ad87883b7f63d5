"""The performance harness, one command: models, pipeline, naive baseline and generation, in one run.

(a) model-only throughput of sentiment + entities over sequence lengths 32/64/128 and
    batch sizes 1..256 (texts cut to exactly that many tokens);
(b) the news pipeline end to end on the embedded stack: throughput against the models'
    own throughput at the worker's batch settings, p50/p99 latency at 25/50/90% load,
    and peak RSS under a 10x burst (``bench.pipeline``);
(c) the naive baseline: one message at a time through a HF ``pipeline()`` per task
    (``bench.naive``): in the served dtype between (b)'s rounds, each end-to-end round against the
    naive runs just before and after it; in fp32 before and after (b), the mean of the two;
(d) generation: reply drafts/s batched and one at a time (``bench.replies``).

Prints a table, writes ``docs/bench/performance.json`` and ``docs/bench/performance.png``.
Run: ``python -m bench.performance [--quick]``.
"""

from __future__ import annotations

import argparse
import time

from bench import naive, pipeline, replies
from bench.common import RESULTS, headlines, print_table, save
from infra.progress import console, progress

LENGTHS = (32, 64, 128)
BATCHES = (1, 4, 16, 64, 256)


def _texts_of(tokenizer, length: int, n: int) -> list[str]:
    """``n`` texts of at least ``length`` tokens (headlines joined), cut to ``length`` by the models."""
    pool = headlines(4 * n, seed=9)
    texts = []
    for i in range(n):
        text = pool[i]
        k = 1
        while len(tokenizer(text)["input_ids"]) < length:
            text += " " + pool[(i + k * n) % len(pool)]
            k += 1
        texts.append(text)
    return texts


def sweep(lengths=LENGTHS, batches=BATCHES, min_items: int = 128) -> list[dict]:
    from models.analysis import Analyzer

    analyzer = Analyzer.from_settings()
    analyzer.warm_up()
    models = [m for m in (analyzer.sentiment, analyzer.entities, analyzer.trunk) if m is not None]
    rows = []
    with progress() as bar:
        task = bar.add_task("model-only sweep", total=len(lengths) * len(batches), info="")
        for length in lengths:
            texts_all = _texts_of(analyzer.sentiment.loaded.tokenizer, length, max(max(batches), min_items))
            for batch in batches:
                for m in models:
                    m.max_length, m.max_batch, m.token_budget = length, batch, batch * length
                texts = texts_all[: max(batch, min_items)]
                analyzer.analyze_texts(texts[:batch])  # warm this shape
                started = time.perf_counter()
                analyzer.analyze_texts(texts)
                rate = len(texts) / (time.perf_counter() - started)
                rows.append({"seq_len": length, "batch": batch, "sentences_per_s": round(rate, 1)})
                bar.update(task, advance=1, info=f"L={length} b={batch}: {rate:.0f}/s")
    return rows


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for length in LENGTHS:
        rows = [r for r in result["model_sweep"] if r["seq_len"] == length]
        left.plot([r["batch"] for r in rows], [r["sentences_per_s"] for r in rows], marker="o", label=f"{length} tokens")
    left.axhline(result["naive_messages_per_s"], color="grey", linestyle="--", label="naive (HF pipeline, batch 1)")
    left.set_xscale("log", base=2)
    left.set_xlabel("batch size")
    left.set_ylabel("sentences/s (sentiment + entities)")
    left.set_title("model-only throughput")
    left.legend()
    p = result["pipeline"]
    loads = [k for k in ("25%", "50%", "90%") if f"load_{k}_p50_s" in p]
    right.plot(loads, [p[f"load_{k}_p50_s"] for k in loads], marker="o", label="p50")
    right.plot(loads, [p[f"load_{k}_p99_s"] for k in loads], marker="o", label="p99")
    right.set_xlabel("load (share of end-to-end throughput)")
    right.set_ylabel("seconds, Kafka record to database commit")
    right.set_title(f"news pipeline latency (e2e {p['end_to_end_events_per_s']} events/s)")
    right.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "performance.png", dpi=110)


def main(quick: bool = False) -> dict:
    console.rule("(a) model-only sweep")
    model_sweep = sweep(batches=(1, 16, 64) if quick else BATCHES)
    # The naive baseline in the served dtype runs between the pipeline's rounds, beside its model-only
    # runs, and each end-to-end round is compared with the naive runs just before and after it: this
    # machine's speed drifts within minutes. The fp32 naive baseline runs before and after the pipeline.
    texts = headlines(60 if quick else 200, seed=5)
    console.rule("(c) naive baseline in fp32, before the pipeline")
    naive_fp32_runs = [naive.naive_rate(texts, "float32")]  # issue 15's baseline
    console.rule("(b) news pipeline end to end, (c) the naive baseline between its rounds")
    pipe = pipeline.main(600 if quick else 1500, 20 if quick else 40, (0.25, 0.5, 0.9), burst=True,
                         rounds=1 if quick else 3, naive_texts=texts)
    console.rule("(c) naive baseline in fp32, after the pipeline")
    naive_fp32_runs.append(naive.naive_rate(texts, "float32"))
    naive_rate, naive_fp32 = pipe["naive_messages_per_s"], sum(naive_fp32_runs) / 2
    console.rule("(d) generation")
    gen = replies.main(8 if quick else 16)
    result = {
        "model_sweep": model_sweep,
        "served_dtype": pipe.get("served_dtype"),
        "naive_messages_per_s": round(naive_rate, 2),
        "naive_fp32_messages_per_s": round(naive_fp32, 2),
        "naive_rounds_messages_per_s": pipe["naive_rounds_messages_per_s"],
        "naive_fp32_runs_messages_per_s": [round(x, 2) for x in naive_fp32_runs],
        "pipeline": pipe,
        "generation": {k: v for k, v in gen.items() if k not in ("benchmark", "when", "hardware")},
        "ratio_end_to_end_to_model": pipe["ratio_end_to_end_to_model"],
        "ratio_end_to_end_to_in_worker_model": pipe["ratio_end_to_end_to_in_worker_model"],
        "ratio_end_to_end_to_naive_rounds": pipe["ratio_to_naive_rounds"],
        "ratio_end_to_end_to_naive": pipe["ratio_end_to_end_to_naive"],
        "ratio_end_to_end_to_naive_fp32": round(pipe["end_to_end_events_per_s"] / naive_fp32, 2),
    }
    headline = {
        "model-only, worker batch settings, each round (events/s)":
            " / ".join(map(str, pipe["model_only_rounds_events_per_s"])),
        "end-to-end, each round (events/s)": " / ".join(map(str, pipe["end_to_end_rounds_events_per_s"])),
        "end-to-end / model-only before and after, median of rounds": pipe["ratio_end_to_end_to_model"],
        "the worker's models, same run (events/s)": pipe["in_worker_model_events_per_s"],
        "end-to-end / the worker's models, same run": pipe["ratio_end_to_end_to_in_worker_model"],
        "naive HF pipeline, batch 1, between the rounds (messages/s)":
            " / ".join(map(str, result["naive_rounds_messages_per_s"])),
        "end-to-end / naive before and after, each round": " / ".join(map(str, pipe["ratio_to_naive_rounds"])),
        "end-to-end / naive, median of rounds": result["ratio_end_to_end_to_naive"],
        "naive in fp32 (messages/s, mean of before and after)":
            f"{result['naive_fp32_messages_per_s']} ({' / '.join(map(str, result['naive_fp32_runs_messages_per_s']))})",
        "end-to-end / naive in fp32": result["ratio_end_to_end_to_naive_fp32"],
        **{f"p99 at {k} load (s)": pipe.get(f"load_{k}_p99_s") for k in ("25%", "50%", "90%")},
        "peak RSS under 10x burst / steady RSS": pipe.get("burst_peak_to_steady_rss"),
        "drafts/s batched vs single": f"{gen.get('batched_drafts_per_s')} vs {gen.get('single_drafts_per_s')}",
    }
    print_table("Sentinel performance, one run", headline)
    path = save("performance", result)
    plot(result)
    console.print(f"written to {path} and {RESULTS / 'performance.png'}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and events (a smoke run)")
    main(parser.parse_args().quick)
