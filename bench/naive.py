"""The naive baseline: one message at a time through a Hugging Face ``pipeline()`` per task.

Sentinel's task networks (a mean-pooled sequence head; a token head with a word-shape
embedding) are not stock ``AutoModelFor...`` classes, so each task gets a small
``transformers.Pipeline`` subclass: ``preprocess`` tokenizes one text, ``_forward`` runs
the network, ``postprocess`` decodes, exactly as a stock pipeline does for its task.
The baseline measures the models alone (no broker, no database), which flatters it: an
end-to-end naive service would also pay a transaction and a produce per message.

Run: ``python -m bench.naive [--n 200]``.
"""

from __future__ import annotations

import argparse
import time

from transformers import Pipeline

from bench.common import headlines, print_table
from infra.progress import console, progress
from models.runtime import BatchedModel, collate


class TaskPipeline(Pipeline):
    """A Hugging Face pipeline over one Sentinel task model, one text per call."""

    def __init__(self, task_model: BatchedModel):
        self.task_model = task_model
        # Pipeline asks the model for its device; a TaskNet is a plain nn.Module.
        task_model.loaded.model.device = task_model.device
        super().__init__(model=task_model.loaded.model, tokenizer=task_model.loaded.tokenizer,
                         device=task_model.device)

    def _sanitize_parameters(self, **kwargs):
        return {}, {}, {}

    def preprocess(self, text: str):
        features = self.task_model.encode([text])
        return {"text": text, "features": features, "batch": collate(features)}

    def _forward(self, inputs):
        logits = self.task_model.loaded.logits(inputs["batch"]).float()
        length = len(inputs["features"][0]["input_ids"])
        return {**inputs, "logits": logits[0, :length] if logits.dim() == 3 else logits[0]}

    def postprocess(self, outputs):
        return self.task_model.decode([outputs["text"]], outputs["features"], [outputs["logits"]])[0]


class Naive:
    """The sentiment and entity pipelines of the served models (``dtype``: their number format, default the
    served one), built once so that a benchmark can time them again between its other runs."""

    def __init__(self, dtype: str = ""):
        from infra.settings import get_settings
        from models.analysis import Analyzer

        settings = get_settings()
        analyzer = Analyzer.from_settings(settings.model_copy(update={"dtype": dtype}) if dtype else settings)
        self.dtype = str(analyzer.sentiment.loaded.dtype)
        self.sentiment, self.entities = TaskPipeline(analyzer.sentiment), TaskPipeline(analyzer.entities)
        for text in ["Nokia shares fell.", "Apple Inc (NASDAQ: AAPL) rose after Tim Cook spoke in Paris."]:
            self.sentiment(text), self.entities(text)  # warm-up

    def rate(self, texts: list[str]) -> float:
        """Messages/s through both pipelines, one message at a time."""
        with progress() as bar:
            task = bar.add_task(f"naive: one message at a time ({self.dtype})", total=len(texts), info="")
            started = time.perf_counter()
            for text in texts:
                self.sentiment(text)
                self.entities(text)
                bar.update(task, advance=1)
            return len(texts) / (time.perf_counter() - started)


def naive_rate(texts: list[str], dtype: str = "") -> float:
    """Messages/s through the sentiment and entity pipelines, one message at a time (``dtype``: the
    models' number format, default the served one)."""
    return Naive(dtype).rate(texts)


def main(n: int = 200) -> dict:
    rate = naive_rate(headlines(n, seed=5))
    result = {"messages": n, "naive_messages_per_s": round(rate, 1)}
    print_table("naive baseline: HF pipeline() per task, batch 1", result)
    console.print("(run bench.performance for the comparison against the pipeline)")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    main(parser.parse_args().n)
