"""Reply drafts: batched generation against one message at a time, in one run.

Measures drafts/s for the whole draft path (intent, retrieval, generated opening,
checks) with ``generator_max_batch`` messages per batch and with batches of one, and
the time to the first draft of a batch. Run: ``python -m bench.replies [--n 32]``.
"""

from __future__ import annotations

import argparse
import random
import time

from bench.common import print_table, save
from infra.progress import console, progress
from infra.settings import get_settings


def main(n: int = 32) -> dict:
    from models.analysis import Analyzer
    from models.training.datasets import SPLIT_SEED, banking77_splits
    from models.generator import ReplyGenerator
    from models.intent import IntentClassifier
    from models.knowledge import Retriever
    from models.replies import ReplyComposer

    s = get_settings()
    test = banking77_splits(s.data_dir)["test"]
    texts = [test.texts[i] for i in random.Random(SPLIT_SEED + 1).sample(range(len(test.texts)), n)]
    analyzer, intents = Analyzer.from_settings(s), IntentClassifier.from_settings(s)
    generator = ReplyGenerator.from_settings(s)
    # the generator's cost is what this measures (drafts default to templates)
    composer = ReplyComposer(Retriever.from_settings(s), generator, opening_mode="generated")

    def drafts(chunk):
        analysed = analyzer.analyze_texts(chunk)
        return composer.compose(chunk, intents.predict(chunk), [a[0] for a in analysed], [a[1] for a in analysed])

    drafts(texts[:2])  # warm-up
    batch = s.generator_max_batch
    timings = {}
    with progress() as bar:
        task = bar.add_task("drafts", total=2 * n, info="")
        start = time.perf_counter()
        first = None
        for i in range(0, n, batch):
            drafts(texts[i : i + batch])
            first = first or time.perf_counter() - start
            bar.update(task, advance=len(texts[i : i + batch]))
        timings["batched"] = (time.perf_counter() - start, first)
        start = time.perf_counter()
        first = None
        for text in texts:
            drafts([text])
            first = first or time.perf_counter() - start
            bar.update(task, advance=1)
        timings["single"] = (time.perf_counter() - start, first)
    result = {
        "messages": n, "batch_size": batch, "opening_max_new_tokens": 32,
        "generator": generator.source, "dtype": str(generator.dtype).removeprefix("torch."),
        "batched_drafts_per_s": round(n / timings["batched"][0], 2),
        "single_drafts_per_s": round(n / timings["single"][0], 2),
        "speedup_batched_over_single": round(timings["single"][0] / timings["batched"][0], 2),
        "time_to_first_draft_batched_s": round(timings["batched"][1], 2),
        "time_to_first_draft_single_s": round(timings["single"][1], 2),
    }
    print_table(f"reply drafts, {n} banking77 test messages", result)
    console.print(f"written to {save('replies', result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32)
    main(parser.parse_args().n)
