"""Races, faults and hostile input (issue #13): one decision per issue at a time, failed
deliveries recoverable, a worker killed N times ends in ``poison``; on SQLite and on a real
PostgreSQL (tests/bot/conftest.py)."""

from __future__ import annotations

import json
import multiprocessing
import os
import queue as queue_mod
import threading
import time

import pytest

from bot.app import create_app
from bot.github import COMMENT_MARKER, DEFAULT_LABELS, TransientGitHubError
from bot.predictor import BundlePredictor
from bot.store import Store
from bot.worker import Worker
from bot_helpers import SECRET, TEST_STRATEGY, issue_payload, signed


class RaceGitHub:
    """A thread-safe GitHub stand-in that keeps each issue's state (title, body, labels,
    comments) and is slow enough (a few ms per call) that unserialised work overlaps."""

    dry_run = False

    def __init__(self, config: str, latency: float = 0.005):
        self.config = config
        self.latency = latency
        self.lock = threading.Lock()
        self.issues: dict[int, dict] = {}
        self.comments: dict[int, dict[int, str]] = {}   # issue -> {comment id: body}
        self.created: dict[int, int] = {}               # issue -> comments created
        self.next_id = 1000

    def _wait(self):
        time.sleep(self.latency)

    def labels(self, repo, inst):
        self._wait()
        return dict(DEFAULT_LABELS)

    def config_text(self, repo, inst):
        self._wait()
        return self.config

    def issue(self, repo, number, inst):
        self._wait()
        with self.lock:
            i = self.issues[number]
            return {"title": i["title"], "body": i["body"], "labels": [{"name": l} for l in sorted(i["labels"])]}

    def add_labels(self, repo, number, labels, inst):
        self._wait()
        with self.lock:
            self.issues[number]["labels"].update(labels)

    def upsert_comment(self, repo, number, comment_id, body, inst):
        self._wait()
        with self.lock:
            mine = self.comments.setdefault(number, {})
            if comment_id in mine:
                mine[comment_id] = body
                return comment_id
            self.next_id += 1
            mine[self.next_id] = body
            self.created[number] = self.created.get(number, 0) + 1
            return self.next_id

    def find_comment(self, repo, number, inst):
        with self.lock:
            return next((cid for cid, b in self.comments.get(number, {}).items() if COMMENT_MARKER in b), None)


def _run_workers(db_url: str, github, ids: list[str], n_workers: int, timeout: float = 60.0) -> dict[str, str]:
    """``n_workers`` threads, each with its own Store (engine) and Worker, as separate
    processes would have, take delivery ids from one queue; a deferred delivery goes back."""
    work: queue_mod.Queue = queue_mod.Queue()
    for d in ids:
        work.put(d)
    final: dict[str, str] = {}
    predictor = BundlePredictor(fallback_strategy=TEST_STRATEGY)
    errors: list[BaseException] = []

    def run():
        store = Store(db_url)
        w = Worker(store, github, predictor, repo_cache_seconds=0, lease_wait=0.005, backoff_base=0.01)
        try:
            while len(final) < len(ids):
                try:
                    d = work.get(timeout=0.05)
                except queue_mod.Empty:
                    continue
                out = w.process(d)
                if out.retry_in is not None:
                    time.sleep(min(out.retry_in, 0.02))
                    work.put(d)
                elif out.status != "not_claimed":
                    final[d] = out.status
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            store.engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not errors, errors
    return final


ISSUES = 10


def _opened_and_edited(store: Store, github: RaceGitHub) -> list[str]:
    """For each issue, an ``opened`` (title says bug) and an ``edited`` (title now says
    documentation) delivery, both already received: the edit happened before either ran."""
    ids = []
    for n in range(1, ISSUES + 1):
        old, new = "Crash on start: a bug", "Crash on start: a bug in the documentation"
        github.issues[n] = {"title": new, "body": "see title", "labels": set()}
        opened = issue_payload("opened", number=n, title=old, body="see title")
        edited = issue_payload("edited", number=n, title="documentation: wrong example", body="see title",
                               changes={"title": {"from": old}})
        for kind, payload in (("o", opened), ("e", edited)):
            did = f"{kind}{n}"
            store.add_delivery(did, "issues", json.dumps(payload), action=payload["action"], repo="octo/repo",
                               issue_number=n)
            ids.append(did)
    return ids


@pytest.mark.parametrize("workers", [2, 8])
def test_opened_and_edited_together_apply_at_most_max_labels(db_url, workers):
    github = RaceGitHub("mode: apply\nmax_labels: 1\nthreshold: 0.5")
    store = Store(db_url)
    final = _run_workers(db_url, github, _opened_and_edited(store, github), workers)
    assert len(final) == 2 * ISSUES
    for n in range(1, ISSUES + 1):
        assert len(github.issues[n]["labels"]) == 1, github.issues[n]  # max_labels: 1, never two
        assert len(store.bot_labels("octo/repo", n)) == 1
    assert store.status_counts().get("done", 0) + store.status_counts().get("ignored", 0) == 2 * ISSUES


@pytest.mark.parametrize("workers", [2, 8])
def test_opened_and_edited_together_leave_one_comment(db_url, workers):
    github = RaceGitHub("mode: suggest\nmax_labels: 2\nthreshold: 0.5")
    store = Store(db_url)
    final = _run_workers(db_url, github, _opened_and_edited(store, github), workers)
    assert set(final.values()) == {"done"}
    for n in range(1, ISSUES + 1):
        assert github.created[n] == 1, n                 # one comment per issue, edited in place
        (body,) = github.comments[n].values()
        # the later delivery acted on the newest title (it re-read the issue): documentation
        assert "`documentation`" in body and "`bug`" in body
    assert github.issues[1]["labels"] == set()         # suggest mode adds nothing


def test_the_issue_lease_is_exclusive_and_expires(db_url):
    now = [1000.0]
    store = Store(db_url, clock=lambda: now[0])
    assert store.acquire_issue("o/r", 1, "a", lease_seconds=10)
    assert not store.acquire_issue("o/r", 1, "b", lease_seconds=10)
    assert store.acquire_issue("o/r", 2, "b", lease_seconds=10)   # other issues are free
    now[0] += 11                                                   # a dead holder's lease expires
    assert store.acquire_issue("o/r", 1, "b", lease_seconds=10)
    store.release_issue("o/r", 1, "a")                            # not a's any more: no effect
    assert not store.acquire_issue("o/r", 1, "c")
    store.release_issue("o/r", 1, "b")
    assert store.acquire_issue("o/r", 1, "c")


# -- failed deliveries are recoverable ------------------------------------------------------

def test_redelivery_after_a_failed_github_write_is_processed_again(db_url):
    from bot_helpers import FakeGitHub

    store = Store(db_url)
    github = FakeGitHub(config="threshold: 0.5")
    worker = Worker(store, github, BundlePredictor(fallback_strategy=TEST_STRATEGY), max_attempts=2,
                    backoff_base=0.0)
    app = create_app(secret=SECRET, store=store, queue=None).test_client()
    headers, body = signed(issue_payload(title="a bug"), delivery_id="502-delivery")
    assert app.post("/webhook", data=body, headers=headers).status_code == 202
    github.failures = [TransientGitHubError("HTTP 502", 502, 0.0)] * 2  # the label write: 502, twice
    assert worker.process("502-delivery").status == "retry"
    assert worker.process("502-delivery").status == "failed"
    assert github.added == [] and store.delivery("502-delivery")["status"] == "failed"
    # GitHub redelivers the same delivery: 202, processed again, labelled once
    r = app.post("/webhook", data=body, headers=headers)
    assert r.status_code == 202 and r.json["status"] == "queued"
    assert worker.process("502-delivery").status == "done"
    assert github.added == [("octo/repo", 7, ["bug"])]
    # ...and a redelivery of a delivery that succeeded is still a duplicate
    r = app.post("/webhook", data=body, headers=headers)
    assert r.status_code == 200 and r.json["status"] == "duplicate"
    assert worker.process("502-delivery").status == "not_claimed" and len(github.added) == 1


def test_permanent_errors_fail_at_once_with_the_reason(store, fake_github, predictor):
    from bot.github import PermanentGitHubError
    from bot_helpers import deliver

    w = Worker(store, fake_github, predictor, max_attempts=5, repo_cache_seconds=0)
    fake_github.failures = [PermanentGitHubError("could not add labels: HTTP 422 Validation Failed", 422)]
    assert deliver(store, w, issue_payload(title="a bug"), delivery_id="p").status == "failed"
    row = store.delivery("p")
    assert row["attempts"] == 1 and "422" in row["error"]
    # a stored payload that fails validation (e.g. stored before validation existed): failed, not retried
    bad = issue_payload(title="a bug")
    bad["issue"]["number"] = True
    store.add_delivery("v", "issues", json.dumps(bad), action="opened", repo="octo/repo")
    out = w.process("v")
    assert out.status == "failed" and store.delivery("v")["attempts"] == 1 and "number" in store.delivery("v")["error"]


def _die_in_child(db_url: str, delivery_id: str) -> None:  # runs in a forked child
    class Killer:
        dry_run = False

        def labels(self, repo, inst):
            os._exit(137)  # the worker dies mid-delivery (OOM killer, segfault in a model)

        config_text = issue = add_labels = upsert_comment = labels

    store = Store(db_url)
    Worker(store, Killer(), BundlePredictor(fallback_strategy=TEST_STRATEGY), max_attempts=3,
           repo_cache_seconds=0).process(delivery_id)
    os._exit(0)


def test_a_delivery_that_kills_its_worker_n_times_is_poison(db_url):

    store = Store(db_url)
    store.add_delivery("killer", "issues", json.dumps(issue_payload(title="a bug")), action="opened",
                       repo="octo/repo", issue_number=7)
    ctx = multiprocessing.get_context("fork")
    for _ in range(3):  # max_attempts = 3 deaths
        p = ctx.Process(target=_die_in_child, args=(db_url, "killer"))
        p.start()
        p.join(30)
        assert p.exitcode == 137
        assert store.delivery("killer")["status"] == "processing"
        assert store.recover(stale_after=0) == [("killer", 0.0)]   # a restart takes it back
    # the fourth worker does not run it again: quarantined
    w = Worker(store, None, BundlePredictor(fallback_strategy=TEST_STRATEGY), max_attempts=3)
    assert w.process("killer").status == "not_claimed"
    row = store.delivery("killer")
    assert row["status"] == "poison" and row["attempts"] == 3 and "poison" in row["error"]
    assert store.recover(stale_after=0) == []                       # never retried forever
    assert [d["delivery_id"] for d in store.deliveries("poison")] == ["killer"]
    app = create_app(secret=SECRET, store=store, queue=None).test_client()
    assert app.get("/healthz").json["deliveries"]["poison"] == 1
    # an operator can still retry it by hand
    assert store.retry("killer") == ["killer"] and store.delivery("killer")["status"] == "queued"
