"""``issue-labeler retrain OWNER/REPO`` with GitHub mocked by ``responses``: the issues are
fetched incrementally, and the label set comes from the repository's labels and its
``.github/issue-labeler.yml`` (the bot's config: allow/deny, aliases backwards)."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest
import responses
from typer.testing import CliRunner

from bot.cli import app
from bot.config import RepoConfig
from bot.policy import training_label_map

REPO = "acme/widgets"
API = re.compile(r"https://api\.github\.com(:443)?/repos/acme/widgets")
WORDS = {"bug": "crash traceback segfault", "enhancement": "feature proposal support",
         "documentation": "docs typo readme", "wontfix": "old unsupported platform"}
CONFIG = "deny: [wontfix]\naliases: {feature: enhancement}\n"
REPO_LABELS = {"bug": "Something isn't working", "enhancement": "New feature or request",
               "documentation": "Improvements or additions to documentation", "wontfix": None, "question": None}
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_job_summary(monkeypatch):
    """Tests that run inside GitHub Actions must not write to the real job summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def issues(n: int = 40) -> list[dict]:
    names = list(WORDS)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    out = []
    for i in range(n):
        label = names[i % 4]
        t = (start + timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append({"number": i + 1, "title": f"{WORDS[label]} {i}", "body": f"about {WORDS[label].split()[i % 3]}",
                    "labels": [{"name": label}], "created_at": t, "updated_at": t})
    return out


def mock_github(listing, queries):
    def issues_page(request):
        query = parse_qs(urlparse(request.url).query)
        queries.append(query)
        body = listing if "since" not in query else []
        return 200, {"Content-Type": "application/json"}, json.dumps(body if query.get("page", ["1"]) == ["1"] else [])

    responses.add_callback(responses.GET, re.compile(API.pattern + r"/issues(\?.*)?$"), callback=issues_page)
    responses.get(re.compile(API.pattern + r"/contents/\.github/issue-labeler\.yml"),
                  json={"type": "file", "encoding": "base64", "name": "issue-labeler.yml",
                        "path": ".github/issue-labeler.yml", "sha": "abc", "size": len(CONFIG),
                        "content": base64.b64encode(CONFIG.encode()).decode()})
    responses.get(re.compile(API.pattern + r"/labels(\?.*)?$"),
                  json=[{"id": i, "name": name, "description": d, "color": "ededed"}
                        for i, (name, d) in enumerate(REPO_LABELS.items())])


def test_training_label_map_follows_the_config():
    config = RepoConfig(deny=["wontfix"], aliases={"feature": "Enhancement"})
    data = training_label_map(config, REPO_LABELS)
    assert data["labels"] == {"bug": "bug", "enhancement": "feature", "documentation": "documentation",
                              "question": "question"}
    assert data["descriptions"]["feature"] == "New feature or request"
    assert list(training_label_map(RepoConfig(allow=["bug"]), REPO_LABELS)["labels"]) == ["bug"]


@responses.activate
def test_retrain_from_the_repository_twice(tmp_path):
    queries: list[dict] = []
    mock_github(issues(), queries)
    args = ["retrain", REPO, "--registry", str(tmp_path / "reg"), "--strategy", "naive_bayes", "--token", "t0ken"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "fetching acme/widgets" in result.stderr and "40 issue(s) read (40 new)" in result.stderr
    report = json.loads(next((tmp_path / "reg" / REPO / "reports").glob("*.json")).read_text())
    # wontfix denied, enhancement learnt as its alias, question has no issue
    assert report["data"]["labels"] == ["bug", "feature", "documentation"]
    assert report["data"]["labels_left_out"] == ["question"]
    assert report["data"]["sizes"]["unlabelled"] == 10  # the wontfix issues
    assert (tmp_path / "reg" / REPO / "data" / "issues.jsonl").is_file()

    queries.clear()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output  # as good as the active one: margin 0 promotes
    assert queries[0]["since"] == ["2025-02-09T00:00:00Z"] and "0 issue(s) read" in result.stderr
    assert json.loads(next((tmp_path / "reg" / REPO / "reports").glob("*v0002.json")).read_text())["data"]["fetch"] == \
        {"read": 0, "new": 0, "total": 40, "since": "2025-02-09T00:00:00Z"}


@responses.activate
def test_without_a_token_every_label_in_the_data(tmp_path):
    mock_github(issues(), [])
    result = runner.invoke(app, ["retrain", REPO, "--registry", str(tmp_path / "reg"), "--strategy", "naive_bayes"],
                           env={"GITHUB_TOKEN": ""})
    assert result.exit_code == 0, result.output
    assert "no GitHub token" in result.stderr and "label set: every label in the data" in result.stderr
    report = json.loads(next((tmp_path / "reg" / REPO / "reports").glob("*.json")).read_text())
    assert report["data"]["labels"] == ["bug", "documentation", "enhancement", "wontfix"]


@responses.activate
def test_github_failure_exits_1(tmp_path):
    responses.get(re.compile(API.pattern + r"/issues(\?.*)?$"), json={"message": "Server Error"}, status=500)
    result = runner.invoke(app, ["retrain", REPO, "--registry", str(tmp_path / "reg"), "--token", "t"])
    assert result.exit_code == 1, result.output
    assert "fetching acme/widgets failed" in result.stderr and "left as it was" in result.stderr
