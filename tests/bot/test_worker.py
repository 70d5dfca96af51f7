"""The worker against an in-memory GitHub and the keyword test strategy."""

from __future__ import annotations

import json
import sqlite3

from bot.github import PermanentGitHubError
from bot.worker import Worker
from bot_helpers import FakeGitHub, deliver, issue_payload, transient

HUMAN = {"login": "bob", "type": "User"}


def test_opened_issue_gets_labels_and_everything_is_recorded(store, worker, fake_github):
    out = deliver(store, worker, issue_payload(title="Crash: a bug in the docs", body="see documentation"),
                  delivery_id="d1")
    assert out.status == "done"
    assert fake_github.added == [("octo/repo", 7, ["bug", "documentation"])]  # one call, max_labels=2
    assert store.bot_labels("octo/repo", 7) == ["bug", "documentation"]
    row = store.delivery("d1")
    assert row["status"] == "done" and row["attempts"] == 1
    result = json.loads(row["result"])
    assert result["applied"] == ["bug", "documentation"] and "repository labels" in result["model"]


def test_redelivery_is_not_processed_twice(store, worker, fake_github):
    deliver(store, worker, issue_payload(), delivery_id="same")
    assert store.add_delivery("same", "issues", "{}") is False  # the web app answers "duplicate"
    assert worker.process("same").status == "not_claimed"
    assert len(fake_github.added) == 1


def test_null_body_is_fine(store, worker, fake_github):
    assert deliver(store, worker, issue_payload(title="bug: crash", body=None)).status == "done"
    assert fake_github.added == [("octo/repo", 7, ["bug"])]


def test_edited_only_until_the_bot_labelled(store, worker, fake_github):
    out = deliver(store, worker, issue_payload("edited", title="nothing matches", changes={"title": {"from": "x"}}))
    assert out.status == "done" and fake_github.added == []
    deliver(store, worker, issue_payload("edited", title="a bug", changes={"title": {"from": "x"}}))
    assert fake_github.added == [("octo/repo", 7, ["bug"])]
    out = deliver(store, worker, issue_payload("edited", title="a bug with docs", changes={"body": {"from": "x"}}))
    assert out.status == "ignored" and len(fake_github.added) == 1


def test_removed_label_is_never_reapplied_and_counts_as_correction(store, worker, fake_github, tmp_path):
    deliver(store, worker, issue_payload(title="a bug"))
    out = deliver(store, worker, issue_payload("unlabeled", title="a bug", labels=[], label={"name": "bug"},
                                               sender=HUMAN))
    assert out.status == "done" and out.result["recorded"] == "correction"
    assert store.removed_labels("octo/repo", 7) == ["bug"]
    # the issue is reopened: the bot may label again, but never with "bug"
    deliver(store, worker, issue_payload("reopened", title="a bug and a question", labels=[]))
    assert fake_github.added[-1] == ("octo/repo", 7, ["question"])
    # a human adds "enhancement": a correction too
    deliver(store, worker, issue_payload("labeled", title="a bug and a question", labels=["question", "enhancement"],
                                         label={"name": "enhancement"}, sender=HUMAN))
    rows = list(store.corrections())
    assert len(rows) == 1
    row = rows[0]
    assert row["labels"] == ["question", "enhancement"] and row["removed"] == ["bug"]
    assert row["added"] == ["enhancement"] and row["text"].startswith("a bug and a question")
    assert sorted(row["bot_applied"]) == ["bug", "question"]


def test_bot_echo_of_its_own_label_is_not_a_correction(store, worker, fake_github):
    deliver(store, worker, issue_payload(title="a bug"))
    # with a personal token GitHub reports the bot's label as added by that user
    out = deliver(store, worker, issue_payload("labeled", labels=["bug"], label={"name": "bug"}, sender=HUMAN))
    assert out.status == "ignored" and list(store.corrections()) == []


def test_human_label_before_the_bot_acted_is_recorded_not_a_correction(store, worker):
    out = deliver(store, worker, issue_payload("labeled", labels=["bug"], label={"name": "bug"}, sender=HUMAN))
    assert out.result["recorded"] == "human label change" and list(store.corrections()) == []


def test_issue_a_human_already_labelled_is_left_alone(store, worker, fake_github):
    out = deliver(store, worker, issue_payload(title="a bug", labels=["question"]))
    assert out.status == "done" and fake_github.added == []
    assert out.result["decision"]["reason"] == "a human already labelled this issue"


def test_bots_and_listed_authors_are_skipped(store, worker, fake_github):
    bot = {"login": "dependabot[bot]", "type": "Bot"}
    assert deliver(store, worker, issue_payload(title="bug", author=bot)).status == "skipped"
    fake_github.config = "skip_authors: [Alice]\nthreshold: 0.5"
    assert deliver(store, worker, issue_payload(title="bug", number=8)).status == "skipped"
    assert fake_github.added == []


def test_invalid_config_is_logged_and_nothing_labelled(store, worker, fake_github, caplog):
    fake_github.config = "mode: [oops"
    out = deliver(store, worker, issue_payload(title="a bug"))
    assert out.status == "skipped" and "not valid YAML" in out.result["reason"]
    assert fake_github.added == [] and "not valid YAML" in caplog.text


def test_unknown_label_in_config_is_a_warning(store, worker, fake_github):
    fake_github.config = "allow: [bug, no-such-label]\nthreshold: 0.5"
    out = deliver(store, worker, issue_payload(title="a bug and a question"))
    assert out.status == "done" and fake_github.added == [("octo/repo", 7, ["bug"])]
    assert "no-such-label" in out.result["warnings"][0]


def test_mode_off(store, worker, fake_github):
    fake_github.config = "mode: 'off'"
    assert deliver(store, worker, issue_payload(title="a bug")).status == "skipped"


def test_suggest_mode_posts_one_comment_and_edits_it(store, worker, fake_github):
    fake_github.config = "mode: suggest"
    deliver(store, worker, issue_payload(title="a bug"))
    assert fake_github.added == [] and len(fake_github.comment_calls) == 1
    cid, body = fake_github.comment_calls[0][0], next(iter(fake_github.comments.values()))
    assert cid is None and "`bug` | 0.90" in body and "#12 An older crash" in body
    deliver(store, worker, issue_payload("edited", title="a question", changes={"title": {"from": "a bug"}}))
    assert len(fake_github.comment_calls) == 2 and fake_github.comment_calls[1][0] == 1000  # edited in place
    assert len(fake_github.comments) == 1 and "`question`" in fake_github.comments[1000]
    # the same suggestion again: no call at all
    deliver(store, worker, issue_payload("edited", title="a question", changes={"body": {"from": "x"}}))
    assert len(fake_github.comment_calls) == 2


def test_pull_requests_only_when_configured(store, worker, fake_github):
    pr = {"action": "opened", "pull_request": {"number": 9, "title": "fix a bug", "body": None,
                                               "user": {"login": "alice", "type": "User"}, "labels": []},
          "repository": {"full_name": "octo/repo"}, "sender": {"login": "alice"}}
    assert deliver(store, worker, pr, event="pull_request").status == "ignored"
    fake_github.config = "pull_requests: true\nthreshold: 0.5"
    assert deliver(store, worker, pr, event="pull_request").status == "done"
    assert fake_github.added == [("octo/repo", 9, ["bug"])]


def test_delay_defers_without_counting_an_attempt_then_rereads_the_issue(store, fake_github, predictor):
    now = [1000.0]
    store.clock = lambda: now[0]
    worker = Worker(store, fake_github, predictor, clock=lambda: now[0])
    fake_github.config = "delay: 60"
    out = deliver(store, worker, issue_payload(title="a bug"), delivery_id="late")
    assert out.status == "deferred" and out.retry_in == 60
    assert store.delivery("late")["attempts"] == 0 and store.delivery("late")["status"] == "queued"
    # meanwhile a human labelled it: the bot sees that on the re-read and stays away
    fake_github.issues[("octo/repo", 7)] = {"labels": [{"name": "question"}], "title": "a bug", "body": ""}
    now[0] += 61
    out = worker.process("late")
    assert out.status == "done" and fake_github.added == []


def test_transient_errors_are_retried_then_succeed(store, worker, fake_github):
    fake_github.failures = [transient(delay=7.0, status=429)]
    out = deliver(store, worker, issue_payload(title="a bug"), delivery_id="r")
    assert out.status == "retry" and out.retry_in == 7.0
    row = store.delivery("r")
    assert row["status"] == "retry" and "429" in row["error"]
    out = worker.process("r")
    assert out.status == "done" and fake_github.added == [("octo/repo", 7, ["bug"])]
    assert store.delivery("r")["attempts"] == 2


def test_failure_while_adding_labels_is_retried_without_double_records(store, worker, fake_github):
    fake_github.failures = [None, None]  # placeholders consumed by labels/config reads below

    class FailOnAdd(FakeGitHub):
        calls = 0

        def add_labels(self, *a):
            type(self).calls += 1
            if type(self).calls == 1:
                raise transient(status=502)
            super().add_labels(*a)

    gh = FailOnAdd(config="threshold: 0.5")
    w = Worker(store, gh, worker.predictor, backoff_base=0.01)
    assert deliver(store, w, issue_payload(title="a bug"), delivery_id="x").status == "retry"
    assert store.bot_labels("octo/repo", 7) == []
    assert w.process("x").status == "done"
    assert gh.added == [("octo/repo", 7, ["bug"])] and store.bot_labels("octo/repo", 7) == ["bug"]


def test_bounded_attempts_then_failed_with_error(store, worker, fake_github):
    fake_github.failures = [transient(status=500) for _ in range(10)]
    outcomes = [deliver(store, worker, issue_payload(title="a bug"), delivery_id="f").status]
    outcomes += [worker.process("f").status for _ in range(4)]
    assert outcomes == ["retry", "retry", "failed", "not_claimed", "not_claimed"]  # max_attempts=3
    row = store.delivery("f")
    assert row["status"] == "failed" and "gave up after 3 attempts" in row["error"]


def test_backoff_grows_and_honours_the_larger_wait(store, fake_github, predictor):
    w = Worker(store, fake_github, predictor, max_attempts=5, backoff_base=2.0)
    fake_github.failures = [transient(delay=0.0), transient(delay=0.0), transient(delay=30.0)]
    waits = [deliver(store, w, issue_payload(title="bug"), delivery_id="b").retry_in]
    waits += [w.process("b").retry_in, w.process("b").retry_in]
    assert waits == [2.0, 4.0, 30.0]


def test_permanent_error_fails_at_once(store, worker, fake_github):
    fake_github.failures = [PermanentGitHubError("HTTP 404", 404)]
    out = deliver(store, worker, issue_payload(title="a bug"), delivery_id="p")
    assert out.status == "failed" and store.delivery("p")["error"] == "HTTP 404"


def test_unexpected_exception_never_escapes(store, fake_github):
    class Broken:
        def score(self, *a, **k):
            raise RuntimeError("model exploded")

    w = Worker(store, fake_github, Broken(), max_attempts=1)
    out = deliver(store, w, issue_payload(title="a bug"), delivery_id="e")
    assert out.status == "failed" and "model exploded" in store.delivery("e")["error"]


def test_unavailable_model_is_a_recorded_failure(store, fake_github):
    from bot.predictor import BundlePredictor

    w = Worker(store, fake_github, BundlePredictor(fallback_strategy="no_such_strategy"))
    out = deliver(store, w, issue_payload(title="a bug"), delivery_id="m")
    assert out.status == "failed" and "no_such_strategy" in store.delivery("m")["error"]


def _served(store):
    with sqlite3.connect(store.url[len("sqlite:///"):]) as c:
        return sorted(r for (r,) in c.execute("select repo from served_repos where active"))


def test_installation_events_track_served_repositories(store, worker):
    created = {"action": "created", "installation": {"id": 5},
               "repositories": [{"full_name": "o/a"}, {"full_name": "o/b"}], "sender": HUMAN}
    assert deliver(store, worker, created, event="installation").status == "done"
    assert _served(store) == ["o/a", "o/b"]
    changed = {"action": "removed", "installation": {"id": 5}, "repositories_removed": [{"full_name": "o/a"}],
               "repositories_added": [{"full_name": "o/c"}]}
    deliver(store, worker, changed, event="installation_repositories")
    assert _served(store) == ["o/b", "o/c"]
    deliver(store, worker, {"action": "deleted", "installation": {"id": 5}}, event="installation")
    assert _served(store) == []


def test_dry_run_records_what_it_would_do(store, predictor):
    from bot.github import DryRunGitHub

    w = Worker(store, DryRunGitHub(config_text="threshold: 0.5"), predictor)
    out = deliver(store, w, issue_payload(title="a bug"))
    assert out.status == "done" and out.result["dry_run"] and out.result["applied"] == ["bug"]


def test_real_payloads_never_crash_the_worker(store, worker, shared_fixtures):
    base = shared_fixtures / "github-webhooks" / "api.github.com"
    statuses = {}
    for event in ("issues", "installation", "installation_repositories", "label", "issue_comment", "ping"):
        for path in sorted((base / event).glob("*.json")):
            statuses[f"{event}/{path.name}"] = deliver(store, worker, json.loads(path.read_text()), event=event).status
    assert set(statuses.values()) <= {"done", "ignored", "skipped"}
    assert statuses["issues/opened.with-empty-body.payload.json"] == "done"
    assert statuses["installation/created.payload.json"] == "done"


def test_dry_run_records_do_not_block_going_live(store, predictor, fake_github):
    from bot.github import DryRunGitHub

    dry = Worker(store, DryRunGitHub(config_text="threshold: 0.5"), predictor)
    deliver(store, dry, issue_payload(title="a bug"))
    assert store.bot_labels("octo/repo", 7, dry_run=True) == ["bug"] and store.bot_labels("octo/repo", 7) == []
    live = Worker(store, fake_github, predictor)
    out = deliver(store, live, issue_payload("reopened", title="a bug"))
    assert out.result["applied"] == ["bug"] and fake_github.added == [("octo/repo", 7, ["bug"])]


def test_repository_labels_and_config_are_cached_briefly(store, predictor):
    now = [0.0]

    class Counting(FakeGitHub):
        reads = 0

        def labels(self, repo, installation_id):
            type(self).reads += 1
            return super().labels(repo, installation_id)

    gh = Counting(config="threshold: 0.5")
    w = Worker(store, gh, predictor, repo_cache_seconds=60, clock=lambda: now[0])
    for n in range(3):
        deliver(store, w, issue_payload(number=n + 1, title="a bug"))
    assert Counting.reads == 1 and len(gh.added) == 3
    gh.config = "mode: 'off'"
    now[0] = 61
    assert deliver(store, w, issue_payload(number=9, title="a bug")).status == "skipped"
    assert Counting.reads == 2


def test_the_worker_carries_out_the_policy_and_decides_nothing_itself(store, worker, fake_github, monkeypatch):
    from bot import policy

    # the config skips this author and a human labelled the issue, but the policy says: score
    fake_github.config = "skip_authors: [alice]\nthreshold: 0.5"
    monkeypatch.setattr(policy, "plan", lambda facts, config, now: policy.Plan(
        policy.SCORE, model_labels=dict(facts.repo_labels)))
    out = deliver(store, worker, issue_payload(title="a bug", labels=["question"]))
    assert out.status == "done" and fake_github.added == [("octo/repo", 7, ["bug"])]
    # and when it says stop, the worker stops with the policy's status and reason
    monkeypatch.setattr(policy, "plan", lambda facts, config, now: policy.Plan(policy.STOP, "skipped", "because"))
    out = deliver(store, worker, issue_payload(title="a bug", number=8))
    assert (out.status, out.result) == ("skipped", {"reason": "because"}) and len(fake_github.added) == 1
