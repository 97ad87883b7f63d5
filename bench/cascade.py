"""The served news configuration's speed against the student alone: `sentinel analyze` (sentiment and
entities) with the sentiment cascade on (``SENTINEL_SENTIMENT_CASCADE_MARGIN``: readings under the margin go to
the teacher, in one batch) and off, one batch, fp32, in alternating rounds (median), so each ratio is measured in
one run; on two sets of ``n`` texts: the benchmark headlines (``bench.common.headlines``: demo-feed title plus a
short body, which the student reads with confidence) and real Reuters and CNBC headlines (the first ``n`` of
``models/written/news_headline_orgs.jsonl``), where more of them go to the teacher.

Run: ``python -m bench.cascade [--rounds 7] [--n 64] [--margin M]``; writes docs/bench/cascade.json.
"""

from __future__ import annotations

import argparse

from bench.common import alternating_rates, headlines, print_table, save
from infra.settings import get_settings
from models.analysis import Analyzer


def main(rounds: int = 7, n: int = 64, margin: float | None = None) -> dict:
    settings = get_settings().model_copy(update={"dtype": "float32"})
    if margin is not None:
        settings = settings.model_copy(update={"sentiment_cascade_margin": margin})
    import json

    from infra.settings import PROJECT_ROOT

    real = [json.loads(line)["text"] for line in
            (PROJECT_ROOT / "models" / "written" / "news_headline_orgs.jsonl").read_text().splitlines()[:n]]
    sets = {"benchmark": headlines(n), "real": real}
    student = Analyzer.from_settings(settings.model_copy(update={"sentiment_cascade": "off"}))
    served = Analyzer.from_settings(settings.model_copy(update={"sentiment_cascade": "on"}))
    cascade = served.sentiment.cascade
    for analyzer in (student, served):
        analyzer.warm_up()
    result = {"inputs": n, "batch_size": n, "rounds": rounds, "dtype": "float32",
              "trunk": settings.trunk_model.rsplit("/", 1)[-1], "margin": cascade.threshold}
    tokenizer = student.trunk.loaded.tokenizer
    for set_name, texts in sets.items():
        lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
        result |= {f"{set_name}_mean_tokens": round(sum(lengths) / n, 1), f"{set_name}_max_tokens": max(lengths)}
        for analyzer in (student, served):
            analyzer.analyze_texts(texts)
        cascade.seen = cascade.routed = 0
        rates = alternating_rates({"student": lambda: student.analyze_texts(texts),
                                   "served": lambda: served.analyze_texts(texts)}, n, rounds, f"{set_name}: rounds")
        result |= {f"{set_name}_routed": round(cascade.routed / max(cascade.seen, 1), 4),
                   f"{set_name}_student_per_s": round(rates["student"], 1),
                   f"{set_name}_served_per_s": round(rates["served"], 1),
                   f"{set_name}_ratio_served_to_student": round(rates["served"] / rates["student"], 3)}
    print_table(f"analyze, cascade at margin {cascade.threshold} against the student alone", result)
    save("cascade", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--margin", type=float, default=None)
    args = parser.parse_args()
    main(args.rounds, args.n, args.margin)
