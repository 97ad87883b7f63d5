"""The openings' evaluation and written-set tools: ``sentinel eval replies`` reports ``evaluate_openings``;
``sentinel openings-draft`` writes the rows to label (``models/written/openings_labelled.jsonl``)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from infra.settings import PROJECT_ROOT, Settings
from models.openings import LABELLED, LABELS, MODES, choose, load_templates, opening_problem, template_for  # noqa: F401


def sample_ids(n_test: int, n: int = 100, seed: int | None = None) -> list[int]:
    """The fixed sample of banking77 test rows (``random.Random(SPLIT_SEED).sample``, as ``sentinel eval replies``)."""
    from models.training.datasets import SPLIT_SEED

    return sorted(random.Random(SPLIT_SEED if seed is None else seed).sample(range(n_test), n))


def read_labelled(path: Path = LABELLED) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        for key in ("generated_label", "template_label"):
            if row.get(key) not in LABELS:
                raise ValueError(f"{path}: {row.get('id')}: {key} must be one of {LABELS}")
    return rows


def shares(labels: list[str]) -> dict:
    counts = Counter(labels)
    n = len(labels)
    return {"n": n, **{label: round(counts[label] / n, 4) if n else 0.0 for label in LABELS}}


def evaluate_openings(settings: Settings, labelled: Path = LABELLED, *, composer=None, analyzer=None,
                      intents=None) -> dict:
    """The opening check of ``sentinel eval replies`` (models already loaded may be passed in).

    - ``labelled_generated``, ``labelled_template``: shares right / wrong / empty in the labelled file;
      ``labelled_generated_mode``: the same for the opening ``generated`` mode would use (the generated
      sentence where it passes ``opening_problem``, else the template), and how many pass;
    - ``labels_current``: how many labelled generated openings the configured generator still gives
      (greedy, as the composer asks it: the rest are stale labels), and how many template openings
      changed in ``openings.json`` since they were labelled;
    - ``drafts``: for the configured ``chat_opening`` mode on the labelled messages, the share of
      drafts whose opening is generated, template or fallback.
    """
    from infra.progress import progress
    from models.analysis import Analyzer
    from models.generator import ReplyGenerator
    from models.intent import IntentClassifier
    from models.knowledge import Retriever
    from models.replies import ReplyComposer

    rows = read_labelled(labelled)
    texts = [r["message"] for r in rows]
    if composer is None:
        composer = ReplyComposer(Retriever.from_settings(settings), ReplyGenerator.from_settings(settings))
    analyzer = analyzer or Analyzer.from_settings(settings)
    intents = intents or IntentClassifier.from_settings(settings)
    mode = settings.chat_opening
    generator = composer.generator
    regenerated: list[str] = []
    sources: list[str] = []
    chunk = 16
    with progress() as bar:
        task = bar.add_task("openings", total=len(texts), info=mode)
        for start in range(0, len(texts), chunk):
            part = texts[start : start + chunk]
            analysed = analyzer.analyze_texts(part)
            entities = [a[1] for a in analysed]
            labels = [i.label for i in intents.predict(part)]
            if generator is not None:
                regenerated += composer.generated_sentences(part, entities)
            # what compose() uses (generated mode asks the generator again: it is what drafts get)
            sources += [o.source for o in composer.draft_openings(part, entities, labels, mode)]
            bar.update(task, advance=len(part))
    n = len(rows)
    reproduced = sum(a == r["generated"] for a, r in zip(regenerated, rows)) if generator is not None else None
    changed = sum(template_for(r["predicted_intent"]) != r["template"] for r in rows)
    # generated mode on the labelled rows: the generated sentence where it passes the checks, else the template
    passing = [opening_problem(r["generated"], r["message"]) is None for r in rows]
    in_generated_mode = [r["generated_label"] if ok else r["template_label"] for r, ok in zip(rows, passing)]
    source_counts = Counter(sources)
    return {
        "task": "openings", "model": generator.source if generator is not None else "none", "mode": mode,
        "labelled_generated": shares([r["generated_label"] for r in rows]),
        "labelled_template": shares([r["template_label"] for r in rows]),
        "labelled_generated_mode": {**shares(in_generated_mode), "generated_passing_checks": sum(passing)},
        "labels_current": {"n": n, "generated_reproduced": reproduced,
                           "generated_stale": None if reproduced is None else n - reproduced,
                           "templates_changed": changed},
        "drafts": {"n": n, "mode": mode, **{s: round(source_counts[s] / n, 4) if n else 0.0
                                            for s in ("generated", "template", "fallback")}},
        "labelled_file": str(labelled.relative_to(PROJECT_ROOT)) if labelled.is_relative_to(PROJECT_ROOT)
        else labelled.name,
    }


def draft_rows(data: Path, settings: Settings, previous: Path | None = LABELLED, n: int = 100, *, composer=None,
               analyzer=None, intents=None) -> list[dict]:
    """Rows to label: the fixed sample of banking77 test messages (``sample_ids``), the predicted intent, the
    generated opening as the composer asks for it (greedy, unchecked) and the predicted intent's template. A
    label is kept from ``previous`` where its row's sentence is unchanged, else left null for a reader."""
    from infra.progress import progress
    from models.analysis import Analyzer
    from models.training.datasets import banking77_splits
    from models.generator import ReplyGenerator
    from models.intent import IntentClassifier
    from models.replies import ReplyComposer

    test = banking77_splits(data)["test"]
    picks = sample_ids(len(test.texts), n)
    texts = [test.texts[i] for i in picks]
    old = {r["id"]: r for r in read_labelled(previous)} if previous and previous.is_file() else {}
    composer = composer or ReplyComposer(None, ReplyGenerator.from_settings(settings))
    analyzer = analyzer or Analyzer.from_settings(settings)
    intents = intents or IntentClassifier.from_settings(settings)
    rows: list[dict] = []
    with progress() as bar:
        task = bar.add_task("openings to label", total=len(texts), info="")
        for start in range(0, len(texts), 16):
            part = texts[start : start + 16]
            entities = [a[1] for a in analyzer.analyze_texts(part)]
            labels = [i.label for i in intents.predict(part)]
            sentences = composer.generated_sentences(part, entities)
            for k, (text, label, sentence) in enumerate(zip(part, labels, sentences)):
                i = picks[start + k]
                row_id = f"banking77-test-{i}"
                was = old.get(row_id, {})
                template = template_for(label) or ""
                same_sentence, same_template = was.get("generated") == sentence, was.get("template") == template
                rows.append({"id": row_id, "message": text, "gold_intent": test.labels[i], "predicted_intent": label,
                             "generated": sentence,
                             "generated_label": was.get("generated_label") if same_sentence else None,
                             "template": template,
                             "template_label": was.get("template_label") if same_template else None})
            bar.update(task, advance=len(part))
    return rows
