"""`issue-labeler serve` for real: a subprocess with the web app and the worker, a signed
delivery over HTTP, a naive-Bayes bundle as the default and a registry version for the
example's repository, dry-run; then a graceful stop (SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bot.cli import EXAMPLE_ISSUE, example_delivery

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (requests.RequestException, sqlite3.Error):
            pass
        time.sleep(0.1)
    return None


@pytest.mark.slow
def test_serve_labels_a_signed_delivery_in_dry_run(tmp_path, toy):
    from labeler.bundle import Bundle
    from labeler.registry import Registry

    texts, label_sets, labels, descriptions = toy
    Bundle.train("naive_bayes", texts, label_sets, labels=labels, descriptions=descriptions).save(tmp_path / "nb")
    repo = EXAMPLE_ISSUE["repository"]["full_name"]
    registry = Registry(tmp_path / "registry")
    registry.add(repo, tmp_path / "nb")
    registry.promote(repo, 1)
    port = _free_port()
    env = {**os.environ, "GITHUB_WEBHOOK_SECRET": "s3cret", "ISSUE_LABELER_BUNDLE": str(tmp_path / "nb"),
           "ISSUE_LABELER_REGISTRY": str(registry.root),
           "ISSUE_LABELER_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
           "ISSUE_LABELER_QUEUE_URL": f"sqlite:///{tmp_path / 'queue.sqlite3'}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for var in ("GITHUB_TOKEN", "GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "ISSUE_LABELER_CONFIG"):
        env.pop(var, None)
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--log-level", "WARNING"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        health = _wait(lambda: requests.get(f"{base}/healthz", timeout=1).json())
        assert health and health["dry_run"] is True and "nb" in health["model"] and "registry" in health["model"]
        assert health["registry"]["repos"][repo]["loaded"] is None  # nothing scored yet
        headers, body = example_delivery("s3cret", delivery_id="serve-1")
        assert requests.post(f"{base}/webhook", data=body, headers=headers, timeout=5).status_code == 202
        assert requests.post(f"{base}/webhook", data=body, headers=headers, timeout=5).json()["status"] == "duplicate"
        headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
        assert requests.post(f"{base}/webhook", data=body, headers=headers, timeout=5).status_code == 401

        def done():
            with sqlite3.connect(tmp_path / "store.sqlite3") as c:
                row = c.execute("select d.status, d.result, p.model_version from deliveries d join predictions p "
                                "on p.delivery_id = d.delivery_id where d.delivery_id='serve-1'").fetchone()
            return row if row and row[0] == "done" else None

        row = _wait(done)
        assert row, "the worker did not process the delivery"
        assert json.loads(row[1])["dry_run"] is True and row[2] == f"{repo}@1"
        assert requests.get(f"{base}/healthz", timeout=5).json()["registry"]["repos"][repo]["loaded"] == f"{repo}@1"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out
    assert f"model: registry {registry.root}" in out
