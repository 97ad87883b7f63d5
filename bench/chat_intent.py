"""Chat's speed as served (the intent teacher, ``SENTINEL_INTENT_TEACHER_MODEL``, reads every message; sentiment
without the news cascade) against the trunk alone and against chat as served before (no intent teacher, the
sentiment cascade on): ``ChatModels.infer`` (sentiment, entities, intent, customer state, the draft from
templates), one batch of ``n`` banking77 test messages, fp32, in alternating rounds (median), so the ratios are
measured in one run.

Run: ``python -m bench.chat_intent [--rounds 7] [--n 32]``; writes docs/bench/chat_intent.json.
"""

from __future__ import annotations

import argparse
import random

from bench.common import alternating_rates, print_table, save
from infra.settings import get_settings


def main(rounds: int = 7, n: int = 32) -> dict:
    from models.chat import load_models
    from models.sentiment import SentimentCascade
    from models.training.datasets import SPLIT_SEED, banking77_splits

    settings = get_settings().model_copy(update={"dtype": "float32", "chat_opening": "template"})
    if not settings.intent_teacher_model:
        raise SystemExit("SENTINEL_INTENT_TEACHER_MODEL is empty: set it to the intent teacher's folder to compare")
    test = banking77_splits(settings.data_dir)["test"]
    texts = [test.texts[i] for i in random.Random(SPLIT_SEED + 1).sample(range(len(test.texts)), n)]
    alone = settings.model_copy(update={"intent_teacher_model": ""})
    before = load_models(alone)
    before.analyzer.sentiment.cascade = SentimentCascade.from_settings(settings)  # what chat read with before
    configs = {"trunk alone": load_models(alone), "with the intent teacher": load_models(settings),
               "before: the sentiment cascade": before}
    tokenizer = configs["trunk alone"].intents.loaded.tokenizer
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    result = {"inputs": n, "batch_size": n, "rounds": rounds, "dtype": "float32",
              "mean_tokens": round(sum(lengths) / n, 1), "max_tokens": max(lengths),
              "intent_teacher": settings.intent_teacher_model.rsplit("/", 1)[-1]}
    for models in configs.values():
        models.infer(texts)  # warm-up
    rates = alternating_rates({name: (lambda m=models: m.infer(texts)) for name, models in configs.items()},
                              n, rounds)
    result |= {"trunk_alone_per_s": round(rates["trunk alone"], 1),
               "with_teacher_per_s": round(rates["with the intent teacher"], 1),
               "before_per_s": round(rates["before: the sentiment cascade"], 1),
               "ratio_with_teacher_to_alone": round(rates["with the intent teacher"] / rates["trunk alone"], 3),
               "ratio_with_teacher_to_before": round(rates["with the intent teacher"]
                                                     / rates["before: the sentiment cascade"], 3)}
    print_table("chat messages/s: as served (the intent teacher) against the trunk alone and chat before", result)
    save("chat_intent", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=32)
    args = parser.parse_args()
    main(args.rounds, args.n)
