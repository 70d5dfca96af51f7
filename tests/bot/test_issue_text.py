"""One issue, one text: training (labeler.data reading a REST issue object), the bot (a signed
webhook payload parsed by bot.sansio, scored by the worker) and export-corrections all see the
same string. Before issue #10 the bot scored ``"Crash"`` where training saw ``"Crash\\n\\n"``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.predictor import Scored
from bot.sansio import issue_text as payload_text
from bot.sansio import parse_delivery
from bot.worker import Worker
from bot_helpers import SECRET, FakeGitHub, deliver, issue_payload, signed
from labeler.data import LoadOptions, issue_text, load_issues

CASES = {
    "null body": ("Crash on start", None),
    "empty body": ("Crash on start", ""),
    "whitespace": ("  Crash on start \t", " \n  trace\n\n "),
    "very long body": ("Crash on start", "Traceback line\n" * 20_000),
}


class RecordingPredictor:
    """Says "bug" for every issue and remembers the texts it was asked about."""

    def __init__(self):
        self.texts: list[str] = []

    def score(self, text, repo_labels, *, repo=None, model=None, precision=None, neighbours=False):
        self.texts.append(text)
        return Scored({"bug": 0.9}, ["bug"], "recording")

    def describe(self):
        return "recording"


@pytest.mark.parametrize("case", list(CASES))
def test_training_the_bot_and_export_corrections_see_the_same_text(case, store, tmp_path):
    title, body = CASES[case]
    expected = issue_text(title, body)

    # training: a REST issue object in a JSONL file, as `issue-labeler fetch` writes them
    rest = {"number": 7, "title": title, "body": body, "labels": [{"name": "bug"}], "state": "open"}
    path = tmp_path / "issues.jsonl"
    path.write_text(json.dumps(rest) + "\n")
    training = load_issues(path, LoadOptions(deduplicate=False)).issues[0].text

    # the bot: a signed issues.opened delivery, parsed, then scored by the worker
    payload = issue_payload(title=title, body=body)
    headers, raw = signed(payload, delivery_id="opened")
    delivery = parse_delivery(headers, raw, SECRET)
    predictor = RecordingPredictor()
    worker = Worker(store, FakeGitHub(), predictor, repo_cache_seconds=0)
    assert deliver(store, worker, delivery.payload, delivery_id=delivery.delivery_id).status == "done"

    # export-corrections: a human takes the bot's label off
    human = {"login": "bob", "type": "User"}
    deliver(store, worker, issue_payload("unlabeled", title=title, body=body, label={"name": "bug"}, sender=human))
    out = tmp_path / "corrections.jsonl"
    result = CliRunner().invoke(app, ["export-corrections", "-o", str(out), "--database-url", store.url])
    assert result.exit_code == 0, result.output
    exported = json.loads(out.read_text().splitlines()[0])["text"]

    assert training == payload_text(delivery.issue) == predictor.texts[0] == exported == expected
