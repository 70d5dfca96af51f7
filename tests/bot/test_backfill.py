"""``issue-labeler backfill`` (bot/backfill.py) against GitHub mocked with ``responses``: the
real PyGithubClient, the worker's path, a store on SQLite, a bundle with fixed scores."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
import responses
from responses import matchers
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.backfill import BackfillError, backfill
from bot.github import PyGithubClient
from bot.store import Base
from bot.worker import Worker
from bot_helpers import tiered_predictor

API = "https://api.github.com:443"  # PyGithub spells the default port out
REPO = "octo/repo"
REPO_LABELS = {"bug": "Something isn't working", "documentation": None, "question": None, "enhancement": None,
               "wontfix": None, "priority: high": None}
# the model: bug sure enough to apply at the default precision 0.9, question only a
# suggestion, documentation and feature (an alias of enhancement) below
SCORES = {"bug": 0.95, "question": 0.6, "documentation": 0.1, "feature": 0.3}
CONFIG = "aliases: {feature: enhancement}\nskip_if_labelled: false\n"
HUMAN = {"login": "alice", "type": "User"}


def rest_issue(number: int, title: str, *, labels=(), user=HUMAN, pull_request: bool = False,
               created_at: str = "2025-01-02T03:04:05Z") -> dict:
    """An issue object shaped like GitHub's REST answer (the fields the bot reads, and a few more)."""
    issue = {"url": f"https://api.github.com/repos/{REPO}/issues/{number}", "id": 5000 + number,
             "number": number, "title": title, "body": "details", "state": "open", "user": user,
             "labels": [{"id": i, "name": l, "color": "ededed", "default": False} for i, l in enumerate(labels)],
             "comments": 0, "created_at": created_at, "updated_at": created_at, "author_association": "NONE"}
    if pull_request:
        issue["pull_request"] = {"url": f"https://api.github.com/repos/{REPO}/pulls/{number}"}
    return issue


ISSUES = [  # newest first, as GitHub lists them
    rest_issue(9, "Fix the crash", pull_request=True),
    rest_issue(8, "Add a dark mode", labels=["enhancement"]),            # carries a label the bot can apply
    rest_issue(7, "Crash on start", labels=["priority: high"]),           # a label outside the model's set
    rest_issue(6, "Crash when saving"),                                   # a human removed "bug" before
    rest_issue(5, "Crash [bug] when loading"),
    rest_issue(4, "Bump a dependency", user={"login": "dependabot[bot]", "type": "Bot"}),
]


def mock_repo(issues=ISSUES, config: str | None = CONFIG) -> None:
    """The repository's labels, config, open issues, issue re-reads and the two writes."""
    responses.get(f"{API}/repos/{REPO}/labels",
                  json=[{"id": i, "name": n, "description": d, "color": "ededed", "default": False}
                        for i, (n, d) in enumerate(REPO_LABELS.items())])
    if config is None:
        responses.get(f"{API}/repos/{REPO}/contents/.github/issue-labeler.yml", status=404,
                      json={"message": "Not Found"})
    else:
        responses.get(f"{API}/repos/{REPO}/contents/.github/issue-labeler.yml",
                      json={"type": "file", "encoding": "base64", "name": "issue-labeler.yml",
                            "path": ".github/issue-labeler.yml", "sha": "abc", "size": len(config),
                            "content": base64.b64encode(config.encode()).decode()})
    responses.get(f"{API}/repos/{REPO}/issues", json=issues,
                  match=[matchers.query_param_matcher({"state": "open", "sort": "created", "direction": "desc",
                                                       "per_page": "100"})])
    for issue in issues:
        n = issue["number"]
        responses.get(f"{API}/repos/{REPO}/issues/{n}", json=issue)
        responses.post(f"{API}/repos/{REPO}/issues/{n}/labels", json=[], status=200)
        responses.post(f"{API}/repos/{REPO}/issues/{n}/comments", json={"id": 100 + n, "body": "x"}, status=201)


def writes() -> list[tuple[str, str, object]]:
    """(method, path, body) of every request that was not a GET."""
    out = []
    for call in responses.calls:
        if call.request.method != "GET":
            path = call.request.url.replace(API, "")
            out.append((call.request.method, path, json.loads(call.request.body)))
    return out


def row_counts(store) -> dict[str, int]:
    with store.session() as s:
        return {t.name: s.execute(select(func.count()).select_from(t)).scalar_one()
                for t in Base.metadata.sorted_tables}


@pytest.fixture
def bf_worker(store, monkeypatch, tmp_path) -> Worker:
    predictor, _ = tiered_predictor(monkeypatch, tmp_path, SCORES)
    github = PyGithubClient(token="t0ken", throttle=False)
    return Worker(store, github, predictor, max_attempts=3)


def remove_bug_by_hand(store, number: int = 6) -> None:
    store.record_human_label(delivery_id=f"unlabeled-{number}", repo=REPO, issue_number=number, label="bug",
                             action="removed", actor="alice", after_bot=False, title="", body="", labels_after=[])


@responses.activate
def test_dry_run_only_reads_and_writes_nothing(bf_worker, store):
    remove_bug_by_hand(store)
    mock_repo()
    before = row_counts(store)
    report = backfill(bf_worker, REPO)
    assert {c.request.method for c in responses.calls} == {"GET"}
    assert row_counts(store) == before  # nothing recorded: not a prediction, not a lease
    assert report.labels == ["bug", "documentation", "enhancement", "question"]  # wontfix denied; alias kept
    assert (report.listed, report.pull_requests, report.labelled, report.handled) == (6, 1, 1, 0)
    rows = {r.number: r for r in report.rows}
    assert list(rows) == [7, 6, 5, 4]
    assert rows[7].apply == [("bug", 0.95)] and rows[7].suggest == [("question", 0.6)] and not rows[7].written
    assert rows[7].scores == [("bug", 0.95), ("question", 0.6), ("enhancement", 0.3)]  # through the alias
    assert rows[6].apply == [] and "bug: a human removed it from this issue" in rows[6].note
    assert rows[4].note.startswith("skipped: author dependabot[bot] is a bot")
    assert "dry run, nothing written" in report.summary()
    assert "2 would get 2 label(s), 3 would get a suggestion comment" in report.summary()


@responses.activate
def test_precision_option_replaces_the_config_s(bf_worker):
    mock_repo()
    report = backfill(bf_worker, REPO, precision=0.55)
    assert {r.number: r.apply for r in report.rows}[5] == [("bug", 0.95), ("question", 0.6)]


@responses.activate
def test_apply_adds_the_confident_labels_only_never_a_removed_one_and_a_rerun_skips_done_issues(bf_worker, store):
    remove_bug_by_hand(store)
    mock_repo()
    report = backfill(bf_worker, REPO, apply=True)
    posted = [(path, body) for method, path, body in writes() if path.endswith("/labels")]
    # the confident label only (question is a suggestion), and never on #6 where a human removed it
    assert sorted(posted) == [(f"/repos/{REPO}/issues/5/labels", ["bug"]), (f"/repos/{REPO}/issues/7/labels", ["bug"])]
    comments = sorted(path for method, path, body in writes() if path.endswith("/comments"))
    assert comments == [f"/repos/{REPO}/issues/{n}/comments" for n in (5, 6, 7)]  # mode apply-and-suggest
    assert not any(f"/issues/{n}/" in path for _, path, _ in writes() for n in (4, 8, 9))  # bot, labelled, PR
    # recorded like the worker's: the bot's labels (so a human's later removal is respected)
    assert store.bot_labels(REPO, 5) == ["bug"] and store.bot_labels(REPO, 6) == []
    assert store.handled_issues(REPO) == {5, 6, 7}
    assert store.comment(REPO, 6)["comment_id"] == 106
    assert "2 got 2 label(s), 3 got a suggestion comment" in report.summary()

    responses.calls.reset()
    again = backfill(bf_worker, REPO, apply=True)
    assert writes() == []
    assert again.handled == 3 and [r.number for r in again.rows] == [4]  # the bot's issue is looked at again


@responses.activate
def test_apply_rereads_the_issue_and_leaves_one_labelled_meanwhile(bf_worker, store):
    mock_repo([rest_issue(5, "Crash [bug] when loading")])
    responses.replace(responses.GET, f"{API}/repos/{REPO}/issues/5",
                      json=rest_issue(5, "Crash [bug] when loading", labels=["question"]))
    report = backfill(bf_worker, REPO, apply=True)
    assert writes() == [] and report.rows[0].note == "labelled since it was listed"
    assert store.handled_issues(REPO) == set()


@responses.activate
def test_a_rate_limit_is_waited_out_and_the_write_retried(bf_worker, store):
    mock_repo([rest_issue(5, "Crash [bug] when loading")], config="mode: apply\n")
    url = f"{API}/repos/{REPO}/issues/5/labels"
    responses.replace(responses.POST, url, status=403, headers={"Retry-After": "42"},
                      json={"message": "You have exceeded a secondary rate limit."})
    responses.post(url, json=[], status=200)  # the second try gets through
    waits = []
    report = backfill(bf_worker, REPO, apply=True, sleep=waits.append)
    assert waits == [42]
    assert [p for m, p, _ in writes()] == [f"/repos/{REPO}/issues/5/labels"] * 2
    assert store.bot_labels(REPO, 5) == ["bug"] and report.stopped is None


@responses.activate
def test_a_permanent_error_stops_the_run_and_says_so(bf_worker):
    mock_repo([rest_issue(6, "Crash twice"), rest_issue(5, "Crash")], config="mode: apply\n")
    responses.replace(responses.POST, f"{API}/repos/{REPO}/issues/6/labels", status=403,
                      json={"message": "Resource not accessible by integration"})
    report = backfill(bf_worker, REPO, apply=True)
    assert report.rows == [] and "#6" in report.stopped and "403" in report.stopped
    assert "STOPPED" in report.summary()


@responses.activate
def test_limit_and_pages(bf_worker):
    first = [rest_issue(1000 - i, f"PR {i}", pull_request=True) for i in range(100)]
    second = [rest_issue(6, "Crash"), rest_issue(5, "Crash again")]
    query = {"state": "open", "sort": "created", "direction": "desc", "per_page": "100"}
    responses.get(f"{API}/repos/{REPO}/labels", json=[{"name": n, "description": d} for n, d in REPO_LABELS.items()])
    responses.get(f"{API}/repos/{REPO}/contents/.github/issue-labeler.yml", status=404, json={"message": "Not Found"})
    responses.get(f"{API}/repos/{REPO}/issues", json=first, match=[matchers.query_param_matcher(query)])
    responses.get(f"{API}/repos/{REPO}/issues", json=second,
                  match=[matchers.query_param_matcher({**query, "page": "2"})])
    report = backfill(bf_worker, REPO, limit=1)
    assert [r.number for r in report.rows] == [6] and report.pull_requests == 100 and report.limited
    assert backfill(bf_worker, REPO).limited is False


@responses.activate
def test_an_issue_opened_within_the_delay_is_left_to_the_bot(bf_worker):
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    mock_repo([rest_issue(5, "Crash", created_at=now), rest_issue(4, "Old crash")], config="delay: 3600\n")
    rows = backfill(bf_worker, REPO).rows
    assert "within the config's delay" in rows[0].note and rows[1].apply == [("bug", 0.95)]


@responses.activate
def test_recorded_issue_listing(bf_worker, shared_fixtures, store):
    """GitHub's real issue objects (octokit's recorded paginate-issues scenario), one page."""
    exchanges = json.loads((shared_fixtures / "github-rest" / "paginate-issues" / "normalized-fixture.json").read_text())
    issues = [issue for ex in exchanges for issue in ex["response"]]
    headers = {k: str(v) for k, v in exchanges[0]["headers"].items()
               if k.lower() not in ("content-length", "connection", "transfer-encoding", "link")}
    mock_repo(issues)
    responses.replace(responses.GET, f"{API}/repos/{REPO}/issues", json=issues, headers=headers)
    report = backfill(bf_worker, REPO)
    assert report.listed == len(issues) == 13 and len(report.rows) == 13
    assert all(r.apply == [("bug", 0.95)] for r in report.rows)
    assert {c.request.method for c in responses.calls} == {"GET"} and store.handled_issues(REPO) == set()


def test_without_credentials_backfill_refuses(store, predictor):
    from bot.github import DryRunGitHub

    with pytest.raises(BackfillError, match="GITHUB_TOKEN"):
        backfill(Worker(store, DryRunGitHub(), predictor), REPO)


@responses.activate
def test_cli_dry_run_prints_the_table_and_a_summary(monkeypatch, tmp_path):
    from bot.cli import app

    tiered_predictor(monkeypatch, tmp_path, SCORES)
    for name in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "ISSUE_LABELER_CONFIG", "ISSUE_LABELER_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    monkeypatch.setenv("ISSUE_LABELER_BUNDLE", str(tmp_path / "tiered"))
    mock_repo([rest_issue(5, "Crash [bug] when loading")])
    db = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    result = CliRunner().invoke(app, ["backfill", REPO, "--database-url", db])
    assert result.exit_code == 0, result.output
    assert "would apply" in result.stdout and "Crash [bug] when loading" in result.stdout
    assert "bug 0.95" in result.stdout and result.stdout.strip().splitlines()[-1].startswith(f"{REPO}: 1 open issue")
    assert {c.request.method for c in responses.calls} == {"GET"}
    bad = CliRunner().invoke(app, ["backfill", "not-a-repo"])
    assert bad.exit_code == 2 and "OWNER/REPO" in bad.output


def test_only_the_live_bot_s_predictions_count_as_handled(store):
    for number, dry in ((5, False), (6, True)):
        store.record_prediction(delivery_id=f"d{number}", repo=REPO, issue_number=number, title="", body="",
                                model="m", scores={}, chosen=[], decision={}, dry_run=dry, seconds=0.0)
    assert store.handled_issues(REPO) == {5} and store.handled_issues("other/repo") == set()
