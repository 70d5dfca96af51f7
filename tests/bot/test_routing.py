"""Decorator routing: the bot's handlers (bot.handlers) and the Router itself (bot.routing)."""

from __future__ import annotations

import json

import pytest

from bot.app import create_app
from bot.handlers import router
from bot.routing import Router
from bot.sansio import Delivery, parse_delivery, sign
from bot.worker import Worker
from bot_helpers import SECRET, FakeGitHub, deliver, issue_payload, run_pending, signed

FIXTURE_EVENTS = ["issues", "ping", "installation", "installation_repositories"]
HUMAN = {"login": "bob", "type": "User"}


def _handler(payload, event="issues", logins=frozenset()):
    """The name of the handler that takes the delivery, or None."""
    route = router.route(Delivery("d", event, payload), logins)
    return route.handler.__name__ if route.handled else None


@pytest.mark.parametrize("action", ["opened", "reopened"])
def test_opened_and_reopened_label(action):
    assert _handler(issue_payload(action)) == "issue_opened"


def test_edited_labels_only_when_title_or_body_changed():
    assert _handler(issue_payload("edited", changes={"title": {"from": "x"}})) == "issue_edited"
    assert _handler(issue_payload("edited", changes={"body": {"from": "x"}})) == "issue_edited"
    assert _handler(issue_payload("edited", changes={"milestone": {}})) is None
    assert _handler(issue_payload("edited")) is None
    route = router.route(Delivery("d", "issues", issue_payload("edited")))
    assert route.reason == "issues.edited without a title or body change"


def test_human_label_changes_and_bot_ones():
    bot = {"login": "issue-labeler[bot]", "type": "Bot"}
    assert _handler(issue_payload("labeled", label={"name": "bug"}, sender=HUMAN)) == "label_added"
    assert _handler(issue_payload("unlabeled", label={"name": "bug"}, sender=HUMAN)) == "label_removed"
    assert _handler(issue_payload("labeled", label={"name": "bug"}, sender=bot)) is None
    assert _handler(issue_payload("labeled", label={"name": "bug"}, sender=HUMAN), logins={"BOB"}) is None
    assert _handler(issue_payload("labeled", sender=HUMAN)) is None  # no label


def test_other_events_and_odd_payloads_are_ignored_never_raise():
    assert _handler({"action": "created"}, "issue_comment") is None
    assert _handler({"action": "opened"}) is None  # no issue
    assert _handler({"action": "opened", "issue": "x", "repository": 3}) is None
    assert _handler({"action": ["weird"], "issue": {"number": "7"}}) is None
    assert _handler(issue_payload("closed")) is None
    assert _handler({"zen": "hi"}, "ping") is None  # answered by the web app itself
    assert _handler({"action": "created"}, "installation") == "installation_added"
    assert _handler({"action": "whatever"}, "installation_repositories") == "installation_repositories"
    assert router.route(Delivery("d", "issue_comment", {})).reason == "event 'issue_comment' is not handled"
    assert router.route(Delivery("d", "issues", issue_payload("closed"))).reason == "issues.closed is not handled"


def test_pull_request_event_routes_to_labelling_and_the_worker_checks_config():
    pr = {"action": "opened", "pull_request": {"number": 3, "title": "t", "body": None},
          "repository": {"full_name": "o/r"}}
    assert _handler(pr, "pull_request") == "issue_opened"


def test_router_registration():
    r = Router()

    @r.register("issues", "opened")
    @r.register("issues", "reopened")
    def one(worker, d):
        return "done", {}

    @r.register("issues")
    def every_other_action(worker, d):
        return "done", {}

    with pytest.raises(ValueError, match="already has a handler"):
        r.add(one, "issues", "opened")
    assert r.route(Delivery("d", "issues", {"action": "opened"})).handler is one
    assert r.route(Delivery("d", "issues", {"action": "closed"})).handler is every_other_action
    assert r.route(Delivery("d", "issues", {})).handler is every_other_action
    assert r.routes() == [("issues", None, "every_other_action"), ("issues", "opened", "one"),
                          ("issues", "reopened", "one")]


def test_a_check_that_raises_does_not_crash_routing():
    r = Router()

    def broken(d, logins):
        raise KeyError("x")

    r.add(lambda w, d: ("done", {}), "issues", "opened", check=broken)
    route = r.route(Delivery("d", "issues", {"action": "opened"}))
    assert not route.handled and "not understood" in route.reason


def test_a_new_event_is_one_decorated_function(store, tmp_path):
    """The web app queues it and the worker runs it: no other file changes."""
    from bot.queue import TaskQueue, make_huey

    r = Router()
    seen = []

    @r.register("issue_comment", "created")
    def comment_created(worker, d):
        seen.append((worker, d.delivery_id, d.payload["comment"]["body"]))
        return "done", {"comment": d.payload["comment"]["body"]}

    worker = Worker(store, FakeGitHub(), predictor=None, router=r)
    queue = TaskQueue(make_huey(f"sqlite:///{tmp_path / 'q.sqlite3'}"), lambda: worker)
    client = create_app(secret=SECRET, store=store, queue=queue, router=r).test_client()
    headers, body = signed({"action": "created", "comment": {"body": "hi"}}, "issue_comment", "c1")
    assert client.post("/webhook", data=body, headers=headers).status_code == 202
    assert run_pending(queue) == ["done"]
    assert seen == [(worker, "c1", "hi")] and json.loads(store.delivery("c1")["result"]) == {"comment": "hi"}
    # and an event this router does not know is ignored, by the app and by the worker
    headers, body = signed(issue_payload(), "issues", "i1")
    assert client.post("/webhook", data=body, headers=headers).json["status"] == "ignored"
    assert deliver(store, worker, issue_payload(), delivery_id="i2").status == "ignored"


# -- the real payloads GitHub documents --------------------------------------------------------

def _fixture_files(root):
    base = root / "github-webhooks" / "api.github.com"
    return [(event, path) for event in FIXTURE_EVENTS for path in sorted((base / event).glob("*.json"))]


def test_every_documented_payload_is_accepted_and_routed(shared_fixtures):
    files = _fixture_files(shared_fixtures)
    assert len(files) > 30
    handlers = {}
    for event, path in files:
        body = path.read_bytes()
        headers, _ = signed(b"", event=event)
        headers["X-Hub-Signature-256"] = sign(body, SECRET)
        route = router.route(parse_delivery(headers, body, SECRET))
        handlers[f"{event}/{path.name}"] = route.handler.__name__ if route.handled else None
    assert handlers["issues/opened.payload.json"] == "issue_opened"
    assert handlers["issues/opened.with-empty-body.payload.json"] == "issue_opened"
    assert handlers["issues/reopened.payload.json"] == "issue_opened"
    assert handlers["issues/unlabeled.payload.json"] == "label_removed"
    assert handlers["issues/labeled.payload.json"] == "label_added"
    assert handlers["issues/deleted.payload.json"] is None
    assert handlers["ping/payload.json"] is None
    assert handlers["installation/created.payload.json"] == "installation_added"
    assert handlers["installation/deleted.payload.json"] == "installation_removed"
    edited = json.loads((shared_fixtures / "github-webhooks/api.github.com/issues/edited.payload.json").read_text())
    assert handlers["issues/edited.payload.json"] == ("issue_edited" if {"title", "body"} & set(edited.get("changes", {}))
                                                      else None)
