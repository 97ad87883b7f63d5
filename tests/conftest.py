from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import ARTIFACTS, PROJECT_ROOT

DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data folder {DATA} is absent (CI always has it)")
    return DATA


@pytest.fixture(scope="session")
def sentiment_model():
    from models.sentiment import SentimentClassifier

    return SentimentClassifier.from_settings()


@pytest.fixture(scope="session")
def entity_model():
    from models.entities import EntityRecognizer

    return EntityRecognizer.from_settings()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    return ARTIFACTS


@pytest.fixture
def services(tmp_path):
    """A fresh embedded broker and database for one integration test."""
    from infra.harness import start_services

    s = start_services(tmp_path)
    yield s
    s.broker.stop()
    s.postgres.stop()


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A migrated embedded PostgreSQL for one test module (its tests clear the tables they use)."""
    from infra.db import make_engine, migrate
    from infra.embedded import EmbeddedPostgres

    postgres = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "pgdata", delete_on_stop=True).start()
    migrate(postgres.url)
    engine = make_engine(postgres.url)
    yield engine
    engine.dispose()
    postgres.stop()
