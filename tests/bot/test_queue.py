"""The durable queue: end to end through huey's SQLite storage, a worker killed with
pending events and restarted, crash mid-task, retries through the queue."""

from __future__ import annotations

import json
import signal
import time

import pytest
import responses

from bot.app import create_app
from bot.github import PyGithubClient
from bot.queue import TaskQueue, make_huey
from bot.store import Store
from bot.worker import Worker
from bot_helpers import SECRET, FakeGitHub, issue_payload, run_pending, run_scheduled, signed, transient


@pytest.fixture(params=["sqlite", "postgres+redis"])
def urls(request, tmp_path):
    """(store URL, queue URL): SQLite files, or a real PostgreSQL and a real Redis."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.sqlite3'}", f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    return request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url")


def fresh(tmp_path, github=None, predictor=None, urls=None):
    """A new process's view of the same files (or servers): new Store, new huey, new Worker."""
    from bot.predictor import BundlePredictor
    from bot_helpers import TEST_STRATEGY

    db_url, queue_url = urls or (f"sqlite:///{tmp_path / 'bot.sqlite3'}", f"sqlite:///{tmp_path / 'queue.sqlite3'}")
    store = Store(db_url)
    github = github or FakeGitHub(config="threshold: 0.5")
    # a repository without a config file gets "threshold: 0.5": the keyword test model has no
    # validation data, so at the default precision it would only suggest
    worker = Worker(store, github, predictor or BundlePredictor(fallback_strategy=TEST_STRATEGY), backoff_base=0.01,
                    default_config_text="threshold: 0.5")
    queue = TaskQueue(make_huey(queue_url), lambda: worker)
    app = create_app(secret=SECRET, store=store, queue=queue).test_client()
    return store, github, worker, queue, app


def post(app, payload, delivery_id, event="issues"):
    headers, body = signed(payload, event, delivery_id)
    return app.post("/webhook", data=body, headers=headers)


def test_end_to_end_through_the_queue(tmp_path, urls):
    store, github, worker, queue, app = fresh(tmp_path, urls=urls)
    for n in range(1, 6):
        assert post(app, issue_payload(number=n, title="a bug"), f"d{n}").status_code == 202
    assert queue.depth()["pending"] == 5 and github.added == []  # nothing happens in the request
    assert run_pending(queue) == ["done"] * 5
    assert sorted(github.added) == [("octo/repo", n, ["bug"]) for n in range(1, 6)]


def test_worker_killed_with_pending_events_then_restarted(tmp_path, urls):
    # the web app accepts 10 deliveries while no worker runs (or the worker was killed)
    store, github, _, queue, app = fresh(tmp_path, urls=urls)
    for n in range(10):
        assert post(app, issue_payload(number=n + 1, title="a question"), f"d{n}").status_code == 202
    # one of them was redelivered by GitHub meanwhile
    assert post(app, issue_payload(number=4, title="a question"), "d3").status_code == 200
    del store, queue, app  # "kill" everything in this process

    # restart: new objects on the same SQLite files
    store2, github2, _, queue2, _ = fresh(tmp_path, urls=urls)
    assert queue2.depth()["pending"] == 10
    assert run_pending(queue2) == ["done"] * 10
    assert sorted(n for _, n, _ in github2.added) == list(range(1, 11))  # nothing lost, nothing doubled
    assert store2.status_counts() == {"done": 10}
    # a second restart with recovery finds nothing left to do
    _, github3, _, queue3, _ = fresh(tmp_path, urls=urls)
    assert queue3.recover(stale_after=0) == 0 and run_pending(queue3) == [] and github3.added == []


def test_worker_killed_in_the_middle_of_a_task(tmp_path, urls):
    store, github, worker, queue, app = fresh(tmp_path, urls=urls)
    post(app, issue_payload(number=1, title="a bug"), "d1")
    post(app, issue_payload(number=2, title="a bug"), "d2")
    # the worker took d1 off the queue and claimed it, then died before finishing
    task = queue.huey.dequeue()
    assert store.claim("d1") is not None
    del task
    store2, github2, _, queue2, _ = fresh(tmp_path, urls=urls)
    assert run_pending(queue2) == ["done"]  # d2; d1 is stuck in 'processing'...
    assert store2.delivery("d1")["status"] == "processing"
    assert queue2.recover(stale_after=0) == 1  # ...until recovery puts it back
    assert run_pending(queue2) == ["done"]
    assert sorted(github2.added) == [("octo/repo", 1, ["bug"]), ("octo/repo", 2, ["bug"])]
    # a recent claim is left alone (it may belong to another live worker)
    post(app, issue_payload(number=3, title="a bug"), "d3")
    assert store2.claim("d3") is not None
    assert queue2.recover(stale_after=600) == 0


def test_task_enqueued_twice_runs_once(tmp_path):
    store, github, worker, queue, app = fresh(tmp_path)
    post(app, issue_payload(title="a bug"), "d1")
    queue.enqueue("d1")
    assert sorted(run_pending(queue)) == ["done", "not_claimed"]
    assert len(github.added) == 1


def test_retry_goes_through_the_queue_schedule(tmp_path):
    store, github, worker, queue, app = fresh(tmp_path)
    github.failures = [transient(delay=30.0, status=429)]
    post(app, issue_payload(title="a bug"), "d1")
    assert run_pending(queue) == ["retry"]
    assert queue.depth() == {"pending": 0, "scheduled": 1}
    assert store.delivery("d1")["status"] == "retry" and "429" in store.delivery("d1")["error"]
    assert run_scheduled(queue) == ["done"]  # without waiting the 30 s
    assert github.added == [("octo/repo", 7, ["bug"])] and store.delivery("d1")["attempts"] == 2


def test_deliveries_stored_while_the_queue_was_down_are_recovered(tmp_path):
    store, github, worker, queue, _ = fresh(tmp_path)
    app = create_app(secret=SECRET, store=store, queue=None).test_client()  # enqueue "failed"
    post(app, issue_payload(title="a bug"), "d1")
    assert queue.depth()["pending"] == 0
    assert queue.recover() == 1 and run_pending(queue) == ["done"]


@responses.activate
def test_end_to_end_with_pygithub_and_a_429(tmp_path):
    api = "https://api.github.com:443/repos/octo/repo"
    responses.get(f"{api}/contents/.github/issue-labeler.yml", status=404, json={"message": "Not Found"})
    responses.get(f"{api}/labels", json=[{"name": "bug", "description": "Something isn't working"},
                                         {"name": "question", "description": "Further information is requested"}])
    responses.post(f"{api}/issues/7/labels", status=429, headers={"Retry-After": "2"}, json={"message": "slow down"})
    responses.post(f"{api}/issues/7/labels", status=200, json=[{"name": "bug"}])
    gh = PyGithubClient(token="t", throttle=False)
    store, _, _, queue, app = fresh(tmp_path, github=gh)
    assert post(app, issue_payload(title="a bug"), "d1").status_code == 202
    assert run_pending(queue) == ["retry"]
    assert store.delivery("d1")["next_attempt_at"] is not None
    assert run_scheduled(queue) == ["done"]
    posts = [c for c in responses.calls if c.request.method == "POST"]
    assert len(posts) == 2 and json.loads(posts[1].request.body) == ["bug"]
    assert store.bot_labels("octo/repo", 7) == ["bug"]


def test_a_real_consumer_processes_everything_once(tmp_path, urls):
    store, github, worker, queue, app = fresh(tmp_path, urls=urls)
    for n in range(20):
        post(app, issue_payload(number=n + 1, title="a bug"), f"d{n}")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    consumer = queue.huey.create_consumer(workers=2, worker_type="thread", initial_delay=0.01, max_delay=0.05,
                                          periodic=False)
    try:
        consumer.start()
        deadline = time.monotonic() + 10
        while store.status_counts().get("done", 0) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        consumer.stop(graceful=True)
        for s, h in handlers.items():
            signal.signal(s, h)
    assert store.status_counts() == {"done": 20}
    assert sorted(n for _, n, _ in github.added) == list(range(1, 21))


def test_make_huey_urls(tmp_path):
    from huey import SqliteHuey

    assert isinstance(make_huey(str(tmp_path / "q.db")), SqliteHuey)
    assert isinstance(make_huey(f"sqlite:///{tmp_path / 'sub' / 'q.db'}"), SqliteHuey)
    with pytest.raises(ValueError):
        make_huey("sqlite://")


def test_thread_workers_share_one_worker_built_once(tmp_path):
    import threading

    built = []

    def slow_factory():
        time.sleep(0.05)  # loading a model takes a while: every thread's first task arrives meanwhile
        built.append(object())
        return built[-1]

    queue = TaskQueue(make_huey(f"sqlite:///{tmp_path / 'q.sqlite3'}"), slow_factory)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(queue.worker)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(w is built[0] for w in seen) and len(seen) == 8


def test_startup_recovery_runs_once_whatever_the_number_of_threads(tmp_path, monkeypatch):
    import importlib
    import sys
    import threading

    monkeypatch.setenv("ISSUE_LABELER_QUEUE_URL", f"sqlite:///{tmp_path / 'q.sqlite3'}")
    monkeypatch.setenv("ISSUE_LABELER_DATABASE_URL", f"sqlite:///{tmp_path / 's.sqlite3'}")
    sys.modules.pop("bot.huey_app", None)
    try:
        huey_app = importlib.import_module("bot.huey_app")
        calls = []
        monkeypatch.setattr(huey_app.queue, "recover", lambda *a, **k: calls.append(1) or time.sleep(0.02) or 0)
        threads = [threading.Thread(target=huey_app._recover_once) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert calls == [1]
    finally:
        sys.modules.pop("bot.huey_app", None)
