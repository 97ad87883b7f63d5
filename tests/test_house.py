"""The house's rules that a reader relies on, checked on the source: every topic name is written in one
module (``schemas/topics.py``)."""

from __future__ import annotations

import re

from infra.settings import PROJECT_ROOT
from schemas import topics

PACKAGES = ("agents", "models", "schemas", "infra", "bench")


def source_files():
    for package in PACKAGES:
        yield from sorted((PROJECT_ROOT / package).rglob("*.py"))


def test_every_topic_name_is_written_in_schemas_topics_alone():
    # "news", "chat" and "alerts" also name agents and tables: as topics they are what a topic call is given
    unique = [t.name for t in topics.ALL if "." in t.name or t.name == "deadletter"]
    shared = [t.name for t in topics.ALL if t.name not in unique]
    quoted = re.compile(r"""(?<![\w.])["'](?:%s)["']""" % "|".join(map(re.escape, unique))
                        + r"""|\b(?:topic|Received|follow|replay|produce)\([^)]*["'](?:%s)["']""" % "|".join(shared))
    found = {}
    for path in source_files():
        if path == PROJECT_ROOT / "schemas" / "topics.py" or "migrations" in path.parts:
            continue  # a migration is a frozen record of its day
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in quoted.finditer(line):
                found.setdefault(str(path.relative_to(PROJECT_ROOT)), []).append((n, match.group()))
    assert found == {}
