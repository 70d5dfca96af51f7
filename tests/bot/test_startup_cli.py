"""Startup refuses bad configuration with one clear line and a non-zero exit; the
``deliveries`` commands (issue #13)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.settings import mask_url
from bot.store import Store
from bot_helpers import issue_payload


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("GITHUB_WEBHOOK_SECRET", "GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ISSUE_LABELER_DATABASE_URL", f"sqlite:///{tmp_path / 's.sqlite3'}")
    monkeypatch.setenv("ISSUE_LABELER_QUEUE_URL", f"sqlite:///{tmp_path / 'q.sqlite3'}")
    return monkeypatch


def refused(*args) -> str:
    r = CliRunner().invoke(app, ["serve", "--port", "0", *args])
    assert r.exit_code == 2, r.output  # typer.Exit(2), not a traceback
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


def test_whitespace_secret_is_refused(env):
    env.setenv("GITHUB_WEBHOOK_SECRET", "   ")
    assert "empty or only whitespace" in refused()
    env.setenv("GITHUB_WEBHOOK_SECRET", "")
    assert "GITHUB_WEBHOOK_SECRET" in refused()


def test_a_private_key_that_does_not_parse_is_refused(env, tmp_path):
    env.setenv("GITHUB_WEBHOOK_SECRET", "s3cret")
    env.setenv("GITHUB_APP_ID", "123")
    env.setenv("GITHUB_PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----\\nnot a key\\n-----END RSA PRIVATE KEY-----")
    assert "not a usable PEM private key" in refused()
    env.setenv("GITHUB_PRIVATE_KEY", str(tmp_path / "missing.pem"))
    assert "cannot be read" in refused()


def test_unreachable_database_and_queue_are_refused_with_masked_passwords(env, tmp_path):
    env.setenv("GITHUB_WEBHOOK_SECRET", "s3cret")
    env.setenv("ISSUE_LABELER_DATABASE_URL", "postgresql+psycopg://bot:hunter2@127.0.0.1:1/db")
    line = refused()
    assert "database" in line and "hunter2" not in line and "bot:***@" in line
    env.setenv("ISSUE_LABELER_DATABASE_URL", f"sqlite:///{tmp_path / 's.sqlite3'}")
    env.setenv("ISSUE_LABELER_QUEUE_URL", "redis://:hunter2@127.0.0.1:1/0")
    line = refused()
    assert "queue" in line and "hunter2" not in line


def test_mask_url():
    assert mask_url("postgresql+psycopg://u:pw@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    assert mask_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("sqlite:///x.sqlite3") == "sqlite:///x.sqlite3"


def test_deliveries_list_and_retry(env, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    for d, status in (("a", "failed"), ("b", "failed"), ("c", "done"), ("p", "poison")):
        store.add_delivery(d, "issues", json.dumps(issue_payload()), action="opened", repo="octo/repo",
                           issue_number=7)
        if status != "queued":
            store.finish(d, status, error=f"boom {d}")
    runner = CliRunner()
    r = runner.invoke(app, ["deliveries", "list", "--status", "failed"])
    assert r.exit_code == 0 and sorted(l.split("\t")[0] for l in r.stdout.splitlines() if "\t" in l) == ["a", "b"]
    r = runner.invoke(app, ["deliveries", "list"])
    assert "poison" in r.stdout and "boom c" in r.stdout
    r = runner.invoke(app, ["deliveries", "retry", "c"])
    assert r.exit_code == 1 and "is done" in r.output
    r = runner.invoke(app, ["deliveries", "retry", "p"])
    assert r.exit_code == 0 and store.delivery("p")["status"] == "queued"
    r = runner.invoke(app, ["deliveries", "retry", "--all-failed"])
    assert r.exit_code == 0 and "2 deliveries queued again" in r.stdout
    assert store.status_counts() == {"queued": 3, "done": 1}
    assert runner.invoke(app, ["deliveries", "retry"]).exit_code == 2
