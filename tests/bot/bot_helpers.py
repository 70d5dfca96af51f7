"""Bot test helpers (imported by tests as ``bot_helpers``): a tiny keyword strategy registered for the tests (so the bot's tests do
not depend on zero_shot), an in-memory GitHub, signed deliveries, hand-written payloads."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import numpy as np

from bot.github import DEFAULT_LABELS, TransientGitHubError
from bot.predictor import BundlePredictor
from bot.sansio import sign
from labeler.bundle import LabelCall
from labeler.strategies import register
from labeler.strategies.base import Strategy

SECRET = "test-secret"
TEST_STRATEGY = "bot_test_keywords"


@register
class KeywordStrategy(Strategy):
    """Scores 0.9 for a label whose name appears in the text, else 0.05. Needs no training,
    like zero-shot; its explanation carries one neighbour so suggestion comments show it."""

    name = TEST_STRATEGY
    needs_training = False
    instances = 0

    def __init__(self, labels, descriptions=None, **params):
        super().__init__(labels, descriptions, **params)
        type(self).instances += 1

    def fit(self, texts, label_sets, *, valid=None, unlabelled=None):
        return self

    def predict_proba(self, texts):
        out = np.full((len(texts), len(self.labels)), 0.05)
        for i, text in enumerate(texts):
            for j, label in enumerate(self.labels):
                if label.lower() in text.lower():
                    out[i, j] = 0.9 - 0.01 * j
        return out

    def explain(self, text):
        from labeler.strategies import Explanation, Neighbour

        return Explanation(scores={}, neighbours=[Neighbour(id=12, number=12, title="An older crash", labels=["bug"],
                                                            similarity=0.83)])

    def _save(self, directory):
        pass

    def _load(self, directory):
        pass


class TieredBundle:
    """A bundle with ``Bundle.classify``'s contract and fixed scores: a label is "apply" when
    its score reaches the precision asked (the bundle's own target: 0.8), "suggest" from
    ``suggest_at``, else "below". Remembers the precisions it was asked for."""

    def __init__(self, scores: dict[str, float], suggest_at: float = 0.4):
        self.scores = dict(scores)
        self.labels = list(scores)
        self.suggest_at = suggest_at
        self.manifest = {"strategy": "tiered", "created": "today"}
        self.asked: list[float | None] = []

    def classify(self, texts, precision=None):
        self.asked.append(precision)
        target = 0.8 if precision is None else precision

        def call(label, score):
            decision = "apply" if score >= target else "suggest" if score >= self.suggest_at else "below"
            return LabelCall(label, score, decision)

        row = sorted((call(l, s) for l, s in self.scores.items()), key=lambda c: -c.score)
        return [list(row) for _ in texts]

    def explain(self, text):
        from labeler.strategies import Explanation, Neighbour

        return Explanation(scores=dict(self.scores), neighbours=[
            Neighbour(id=12, number=12, title="An older crash", labels=["bug"], similarity=0.83)])


def tiered_predictor(monkeypatch, tmp_path, scores: dict[str, float]) -> tuple[BundlePredictor, TieredBundle]:
    """A BundlePredictor whose default bundle is a :class:`TieredBundle`."""
    from labeler.bundle import Bundle

    bundle = TieredBundle(scores)
    monkeypatch.setattr(Bundle, "load", classmethod(lambda cls, path: bundle))
    return BundlePredictor(tmp_path / "tiered"), bundle


def issue_payload(action: str = "opened", *, number: int = 7, title: str = "App crash on start: a bug",
                  body: str | None = "It crashes", labels: list[str] | None = None, repo: str = "octo/repo",
                  author: dict | None = None, sender: dict | None = None, installation: int | None = None,
                  **extra: Any) -> dict[str, Any]:
    """A small hand-written ``issues`` payload shaped like GitHub's."""
    user = author or {"login": "alice", "type": "User"}
    payload = {
        "action": action,
        "issue": {"number": number, "title": title, "body": body, "state": "open", "user": user,
                  "labels": [{"name": l} for l in (labels or [])]},
        "repository": {"full_name": repo, "name": repo.split("/")[1], "default_branch": "main",
                       "owner": {"login": repo.split("/")[0]}},
        "sender": sender or user,
    }
    if installation is not None:
        payload["installation"] = {"id": installation}
    payload.update(extra)
    return payload


def signed(payload: dict | bytes, event: str = "issues", delivery_id: str | None = None,
           secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ({"Content-Type": "application/json", "X-GitHub-Event": event,
             "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
             "X-Hub-Signature-256": sign(body, secret), "User-Agent": "GitHub-Hookshot/test"}, body)


class FakeGitHub:
    """In-memory GitHub for worker tests: records calls; ``failures`` raises queued errors."""

    dry_run = False

    def __init__(self, labels: dict[str, str | None] | None = None, config: str | None = None):
        self.repo_labels = dict(labels if labels is not None else DEFAULT_LABELS)
        self.config = config
        self.added: list[tuple[str, int, list[str]]] = []
        self.comments: dict[int, str] = {}
        self.comment_calls: list[tuple[int | None, str]] = []
        self.issues: dict[tuple[str, int], dict] = {}
        self.failures: list[Exception] = []

    def _maybe_fail(self):
        if self.failures:
            raise self.failures.pop(0)

    def labels(self, repo, installation_id):
        self._maybe_fail()
        return dict(self.repo_labels)

    def config_text(self, repo, installation_id):
        self._maybe_fail()
        return self.config

    def issue(self, repo, number, installation_id):
        return copy.deepcopy(self.issues.get((repo, number)))

    def add_labels(self, repo, number, labels, installation_id):
        self._maybe_fail()
        self.added.append((repo, number, list(labels)))

    def upsert_comment(self, repo, number, comment_id, body, installation_id):
        self._maybe_fail()
        self.comment_calls.append((comment_id, body))
        if comment_id is None:
            comment_id = 1000 + len(self.comments)
        self.comments[comment_id] = body
        return comment_id



def store_delivery(store, payload: dict, event: str = "issues", delivery_id: str | None = None) -> str:
    """Store a delivery as the web app would (not processed); returns its id."""
    from bot.sansio import Delivery

    delivery_id = delivery_id or str(uuid.uuid4())
    d = Delivery(delivery_id, event, payload)
    store.add_delivery(delivery_id, event, json.dumps(payload), action=d.action, repo=d.repo,
                       issue_number=d.issue_number)
    return delivery_id


def deliver(store, worker, payload: dict, event: str = "issues", delivery_id: str | None = None):
    """Store a delivery as the web app would and process it at once; returns the Outcome."""
    return worker.process(store_delivery(store, payload, event, delivery_id))


def transient(delay: float = 1.0, status: int = 503) -> TransientGitHubError:
    return TransientGitHubError(f"HTTP {status}", status, delay)


def run_pending(queue, limit: int = 10_000) -> list[str]:
    """Run the queue's tasks that are due, in this thread, without a consumer (and the
    'restart' tests: a fresh TaskQueue on the same SQLite file). Tasks scheduled for later
    are moved to huey's schedule, not run; returns the statuses."""
    statuses = []
    for _ in range(limit):
        task = queue.huey.dequeue()
        if task is None:
            break
        value = queue.huey.execute(task)
        if value is not None:
            statuses.append(value)
    return statuses


def run_scheduled(queue) -> list[str]:
    """Move every scheduled task (whatever its time) to the queue and run it: walks through
    retries without waiting for the backoff."""
    import datetime

    statuses = []
    for raw in queue.huey.storage.read_schedule(datetime.datetime(9999, 1, 1)):
        task = queue.huey.deserialize_task(raw)
        task.eta = None
        value = queue.huey.execute(task)
        if value is not None:
            statuses.append(value)
    return statuses
