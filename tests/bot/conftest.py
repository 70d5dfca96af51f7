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
