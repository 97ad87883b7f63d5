"""The headline embedding of stories: pooled inside the article's pass, or a pass of its own; and its cost.

For the first ``--n`` Reuters headlines of ``news_headlines/`` with their descriptions (title and body, as
the news agent reads them): the cosine between the embedding head pooled over the headline's tokens inside
the whole text (the same pass) and the headline's own embedding (a pass over the headline alone), and the
time of the article pass against the extra headline pass, through the trunk's embedding head and through the
base encoder (``SENTINEL_STORY_EMBEDDING=trunk|base``), in one run (one thread, twice).

Run: ``OMP_NUM_THREADS=1 python -m bench.story_headlines --data ../shared/data [--n 256]``.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from models.analysis import Analyzer
from models.encoder import encode_texts
from models.sentences import SentenceEncoder
from models.trunk import EMBEDDING, head_module, token_range
from schemas.events import NewsEvent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--n", type=int, default=256)
    args = parser.parse_args()
    with open(args.data / "news_headlines" / "reuters_headlines.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))[: args.n]
    events = [NewsEvent(id=str(i), title=r["Headlines"], text=r["Description"]) for i, r in enumerate(rows)]
    contents, titles = [e.content for e in events], [e.title.strip() for e in events]
    analyzer = Analyzer.from_settings()
    trunk = analyzer.trunk
    net = trunk.loaded.model
    layer = getattr(net, head_module(EMBEDDING))
    alone = trunk.read(titles, [EMBEDDING])[EMBEDDING].float()
    inside = []
    with torch.inference_mode():
        for content, title in zip(contents, titles):
            feature = encode_texts(trunk.loaded.tokenizer, [content], trunk.max_length)[0]
            ids = torch.tensor([feature["input_ids"]])
            batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            if "shape_ids" in feature:
                batch["shape_ids"] = torch.tensor([feature["shape_ids"]])
            embeds = net.encoder.embeddings.word_embeddings(batch["input_ids"])
            if "shape_ids" in batch:
                embeds = embeds + net.shape_embedding(batch["shape_ids"])
            states = net.encoder(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state[0]
            end = token_range(feature, 0, len(title))[1]
            pooled = torch.cat([states[:end], states[-1:]]).mean(0)  # [CLS], the headline's tokens, [SEP]
            inside.append(F.normalize(layer(pooled).float(), dim=-1))
    cos = (torch.stack(inside) * alone).sum(-1)
    print(f"{len(events)} headlines pooled inside their article vs alone: median cosine {cos.median():.3f}, "
          f"minimum {cos.min():.3f}, below 0.86: {float((cos < 0.86).float().mean()):.0%}")
    base = SentenceEncoder.from_settings()
    analyzer.analyze_texts(contents[:8], side_by_side=False)
    base.embed(titles[:8])
    for _ in range(2):
        started = time.perf_counter()
        analyzer.analyze_texts(contents, side_by_side=False)
        article = time.perf_counter() - started
        started = time.perf_counter()
        trunk.read(titles, [EMBEDDING])
        headline = time.perf_counter() - started
        started = time.perf_counter()
        base.embed(titles)
        own = time.perf_counter() - started
        print(f"article pass {article:.2f} s; headline pass through the trunk's embedding head {headline:.2f} s "
              f"(+{headline / article:.0%}), through the base encoder {own:.2f} s (+{own / article:.0%})")


if __name__ == "__main__":
    main()
