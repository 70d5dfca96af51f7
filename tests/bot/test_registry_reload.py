"""The bot serves what was promoted: the registry's active version per repository, a newly
promoted one picked up within the reload interval while deliveries keep flowing, a broken one
never served, the version recorded on every prediction and shown by /healthz."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time

import pytest
import sqlalchemy as sa

from bot.app import create_app
from bot.predictor import BundlePredictor, describe_model, registry_status
from bot.settings import Settings, SettingsError, build_worker
from bot.store import PredictionRow, Store
from bot.worker import Worker
from bot_helpers import SECRET, TEST_STRATEGY, FakeGitHub, deliver, issue_payload, store_delivery
from labeler.bundle import Bundle
from labeler.registry import Registry, Version

REPO = "octo/widgets"


@pytest.fixture
def registry(tmp_path, toy) -> Registry:
    """Two naive Bayes versions of REPO: 1 active, 2 staged (trained on fewer issues)."""
    texts, label_sets, labels, descriptions = toy
    reg = Registry(tmp_path / "registry")
    reg.add(REPO, Bundle.train("naive_bayes", texts, label_sets, labels=labels, descriptions=descriptions))
    reg.add(REPO, Bundle.train("naive_bayes", texts[:9], label_sets[:9], labels=labels, descriptions=descriptions))
    reg.promote(REPO, 1)
    reg.stage(REPO, 2)
    return reg


def _predictor(registry: Registry, now: list[float]) -> BundlePredictor:
    return BundlePredictor(fallback_strategy=TEST_STRATEGY, registry=registry.root, reload_seconds=60,
                           clock=lambda: now[0])


def _versions(store: Store) -> dict[str, tuple[str | None, str]]:
    """delivery id -> (model_version, model) of its stored prediction."""
    with store.session() as s:
        return {r.delivery_id: (r.model_version, r.model) for r in s.execute(sa.select(PredictionRow)).scalars()}


class Consumer:
    """``threads`` threads sharing one Worker and taking delivery ids from one queue, as huey's
    thread consumer does; ``send`` stores deliveries of new issues and queues them."""

    def __init__(self, store: Store, worker: Worker, threads: int = 2):
        self.store, self.worker = store, worker
        self.work: queue.Queue = queue.Queue()
        self.outcomes: dict[str, str] = {}
        self.errors: list[BaseException] = []
        self.issues = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while (delivery_id := self.work.get()) is not None:
            try:
                self.outcomes[delivery_id] = self.worker.process(delivery_id).status
            except BaseException as exc:  # pragma: no cover - surfaced by the test
                self.errors.append(exc)

    def send(self, n: int) -> list[str]:
        ids = []
        for _ in range(n):
            self.issues += 1
            ids.append(store_delivery(self.store, issue_payload(number=self.issues, repo=REPO,
                                                                title=f"Crash number {self.issues}")))
            self.work.put(ids[-1])
        return ids

    def wait(self, ids: list[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(d in self.outcomes for d in ids) and not self.errors:
            assert time.monotonic() < deadline, "deliveries not processed in time"
            time.sleep(0.005)

    def stop(self) -> None:
        for _ in self.threads:
            self.work.put(None)
        for t in self.threads:
            t.join(10)


def test_promoted_version_is_picked_up_while_deliveries_are_processed(store, registry, monkeypatch):
    # the load of version 2 waits for the test's go: meanwhile the other thread keeps scoring
    loading, go = threading.Event(), threading.Event()
    load = Version.load

    def gated_load(self):
        if self.number == 2:
            loading.set()
            assert go.wait(20)
        return load(self)

    monkeypatch.setattr(Version, "load", gated_load)
    now = [0.0]
    worker = Worker(store, FakeGitHub(config="threshold: 0.5"), _predictor(registry, now), repo_cache_seconds=0)
    consumer = Consumer(store, worker)
    try:
        first = consumer.send(4)
        consumer.wait(first)
        batch = consumer.send(6)
        registry.promote(REPO)  # the staged version 2, while the batch is being processed
        now[0] = 59.0
        consumer.wait(batch)
        now[0] = 60.0  # a minute after the first check: the next delivery checks again
        swapping = consumer.send(1)
        assert loading.wait(20)
        during = consumer.send(4)  # scored by the other thread while version 2 loads
        consumer.wait(during)
        go.set()
        consumer.wait(swapping)
        after = consumer.send(4)
        consumer.wait(after)
    finally:
        go.set()
        consumer.stop()
    assert consumer.errors == []
    assert set(consumer.outcomes.values()) == {"done"}  # none failed
    recorded = _versions(store)
    assert set(recorded) == set(consumer.outcomes)  # a prediction for every delivery
    for version, model in recorded.values():
        assert model.startswith(f"{version} (naive_bayes, ")  # the description names the version
    assert {recorded[d][0] for d in first + batch + during} == {f"{REPO}@1"}  # not before the interval
    assert {recorded[d][0] for d in swapping + after} == {f"{REPO}@2"}
    assert worker.predictor.loaded_versions() == {REPO: f"{REPO}@2"}


def test_a_broken_new_version_keeps_the_old_one_serving(store, registry, caplog):
    now = [0.0]
    worker = Worker(store, FakeGitHub(config="threshold: 0.5"), _predictor(registry, now), repo_cache_seconds=0)
    assert deliver(store, worker, issue_payload(number=1, repo=REPO)).status == "done"
    broken = registry.add(REPO, registry.get(REPO, 1).path)
    (broken.path / "manifest.json").write_text("{ not json")
    registry.promote(REPO, broken.number)
    caplog.set_level(logging.ERROR, logger="bot.predictor")
    now[0] = 60.0
    assert deliver(store, worker, issue_payload(number=2, repo=REPO)).status == "done"
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"{REPO}: the registry's active model cannot be used (corrupt bundle {broken.path}: "
                              "manifest.json is not valid JSON")
    assert message.endswith(f"still scoring with {REPO}@1 (naive_bayes, {registry.get(REPO, 1).info['created']}), "
                            "trying again in 60 s")
    now[0] = 90.0  # within the interval: not tried again
    assert deliver(store, worker, issue_payload(number=3, repo=REPO)).status == "done"
    assert len(caplog.records) == 1
    # a half-copied registry (pointers.json cut short) is no worse
    (registry.root / REPO / "pointers.json").write_text('{"active": ')
    now[0] = 121.0
    assert deliver(store, worker, issue_payload(number=4, repo=REPO)).status == "done"
    assert len(caplog.records) == 2 and "unreadable" in caplog.records[-1].getMessage()
    # repaired (here: version 2 promoted): served at the next check
    registry.root.joinpath(REPO, "pointers.json").write_text(json.dumps({"active": 2, "staged": None, "backup": 1}))
    now[0] = 182.0
    assert deliver(store, worker, issue_payload(number=5, repo=REPO)).status == "done"
    assert [v for v, _ in _versions(store).values()] == [f"{REPO}@1"] * 4 + [f"{REPO}@2"]
    # a maintainer's correction is exported with the version that scored the issue
    store.record_human_label(delivery_id="fix-5", repo=REPO, issue_number=5, label="question", action="added",
                             actor="maintainer", after_bot=True, title="t", body="b", labels_after=["question"])
    assert [(c["number"], c["model_version"]) for c in store.corrections()] == [(5, f"{REPO}@2")]


def test_a_rollback_swaps_back_without_loading_again(registry, monkeypatch):
    now = [0.0]
    p = _predictor(registry, now)
    assert p.score("a crash", {}, repo=REPO).version == f"{REPO}@1"
    registry.promote(REPO)
    now[0] = 60.0
    assert p.score("a crash", {}, repo=REPO).version == f"{REPO}@2"
    registry.rollback(REPO)
    monkeypatch.setattr(Version, "load", lambda self: pytest.fail("version 1 was loaded again"))
    now[0] = 120.0
    assert p.score("a crash", {}, repo=REPO).version == f"{REPO}@1"  # from the (repo, version) cache


def test_which_model_answers(tmp_path, registry, toy):
    """A repository's `model:` name wins; then its registry version; then the default model."""
    texts, label_sets, labels, descriptions = toy
    Bundle.train("naive_bayes", texts, label_sets, labels=labels, descriptions=descriptions).save(tmp_path / "nb")
    p = BundlePredictor(fallback_strategy=TEST_STRATEGY, models_dir=tmp_path, registry=registry.root)
    assert p.score("a crash", {}, repo=REPO).version == f"{REPO}@1"
    named = p.score("a crash", {}, repo=REPO, model="nb")
    assert named.version is None and named.model.startswith("naive_bayes bundle nb")
    other = p.score("a bug", {"bug": None}, repo="octo/other")  # nothing in the registry
    assert other.version is None and "no trained bundle" in other.model
    assert p.score("a bug", {"bug": None}).version is None  # no repository given
    assert p.loaded_versions() == {REPO: f"{REPO}@1", "octo/other": None}


def test_healthz_shows_the_active_version_per_repository(store, registry, monkeypatch):
    now = [0.0]
    predictor = _predictor(registry, now)
    worker = Worker(store, FakeGitHub(config="threshold: 0.5"), predictor, repo_cache_seconds=0)
    client = create_app(secret=SECRET, store=store, queue=None, model=predictor.describe(),
                        registry=predictor.registry_status).test_client()
    created = {n: registry.get(REPO, n).info["created"] for n in (1, 2)}

    def active(n: int, loaded: str | None) -> dict:
        return {"version": n, "name": f"{REPO}@{n}", "strategy": "naive_bayes", "created": created[n], "loaded": loaded}

    monkeypatch.setattr(Version, "load", lambda self: pytest.fail("/healthz loaded a model"))
    health = client.get("/healthz").json
    assert health["registry"] == {"path": str(registry.root), "repos": {REPO: active(1, None)}}
    assert health["model"].startswith(f"registry {registry.root} (each repository's active version, checked every 60 s)")
    monkeypatch.undo()
    deliver(store, worker, issue_payload(number=1, repo=REPO))
    registry.promote(REPO)
    monkeypatch.setattr(Version, "load", lambda self: pytest.fail("/healthz loaded a model"))
    # the registry says 2 at once; this process scores with 1 until its next check
    assert client.get("/healthz").json["registry"]["repos"] == {REPO: active(2, f"{REPO}@1")}
    # the web app of a separate worker process (create_app_from_env) knows no loaded versions
    assert registry_status(registry.root)["repos"][REPO] == {k: v for k, v in active(2, None).items() if k != "loaded"}
    (registry.root / "octo" / "broken" / "versions" / "0001").mkdir(parents=True)
    (registry.root / "octo" / "broken" / "pointers.json").write_text("{")
    assert "unreadable" in client.get("/healthz").json["registry"]["repos"]["octo/broken"]["error"]


def test_settings_and_description(tmp_path, registry):
    s = Settings.from_env({"ISSUE_LABELER_REGISTRY": str(registry.root), "ISSUE_LABELER_RELOAD_SECONDS": "5"})
    assert (s.registry, s.reload_seconds) == (str(registry.root), 5.0)
    assert Settings.from_env({}).reload_seconds == 60.0
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(SettingsError, match="ISSUE_LABELER_RELOAD_SECONDS"):
            Settings.from_env({"ISSUE_LABELER_RELOAD_SECONDS": bad})
    predictor = build_worker(s).predictor
    assert (predictor.registry.root, predictor.reload_seconds) == (registry.root, 5.0)
    assert predictor.describe() == describe_model(None, registry=registry.root, reload_seconds=5) == (
        f"registry {registry.root} (each repository's active version, checked every 5 s); "
        "without one: zero_shot on each repository's labels (no trained bundle configured)")
    missing = BundlePredictor(fallback_strategy=TEST_STRATEGY, registry=tmp_path / "nowhere")
    assert "does not exist" in missing.check()
    assert BundlePredictor(fallback_strategy=TEST_STRATEGY, registry=registry.root).check() is None


def test_model_version_column_is_added_to_an_old_database(db_url, caplog):
    """A database created before ``model_version`` existed gets the column; old rows keep NULL."""
    Store(db_url).engine.dispose()
    engine = sa.create_engine(db_url)
    with engine.begin() as c:  # back to the old schema, with one old prediction
        c.exec_driver_sql("ALTER TABLE predictions DROP COLUMN model_version")
        c.exec_driver_sql("INSERT INTO predictions (delivery_id, repo, issue_number, title, body, model, scores, "
                          "chosen, decision, dry_run, seconds, created_at) VALUES ('old', 'o/r', 1, '', '', "
                          "'nb bundle', '{}', '[]', '{}', false, 0, 0)")
    engine.dispose()
    caplog.set_level(logging.INFO, logger="bot.store")
    store = Store(db_url)
    Store(db_url).engine.dispose()  # a second process starting later: nothing left to add
    assert [r.getMessage() for r in caplog.records] == [
        "store: added the column predictions.model_version to an existing database"]
    store.record_prediction(delivery_id="new", repo="o/r", issue_number=2, title="", body="", model="o/r@2 (nb)",
                            model_version="o/r@2", scores={}, chosen=[], decision={}, dry_run=False, seconds=0)
    assert {d: v for d, (v, _) in _versions(store).items()} == {"old": None, "new": "o/r@2"}
    store.engine.dispose()
