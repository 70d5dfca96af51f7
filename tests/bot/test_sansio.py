"""The webhook protocol without Flask: signatures, parsing, routing."""

from __future__ import annotations

import json

import pytest

from bot import sansio
from bot.sansio import WebhookError, parse_delivery, route, sign, verify_signature
from bot_helpers import SECRET, issue_payload, signed

FIXTURE_EVENTS = ["issues", "ping", "installation", "installation_repositories"]


def test_github_docs_signature_vector():
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(b"Hello, World!", "It's a Secret to Everybody") == expected
    verify_signature(b"Hello, World!", expected, "It's a Secret to Everybody")


@pytest.mark.parametrize("signature", [None, "", "sha256=" + "0" * 64, "sha1=abc", "garbage", "sha256=\u00e9"])
def test_missing_or_wrong_signature_is_401(signature):
    with pytest.raises(WebhookError) as err:
        verify_signature(b"Hello, World!", signature, "It's a Secret to Everybody")
    assert err.value.status == 401


def test_signature_of_another_secret_is_rejected():
    headers, body = signed(issue_payload(), secret="other")
    with pytest.raises(WebhookError) as err:
        parse_delivery(headers, body, SECRET)
    assert err.value.status == 401


def test_no_configured_secret_is_a_programming_error():
    with pytest.raises(ValueError):
        verify_signature(b"x", sign(b"x", "s"), "")


def test_valid_delivery_parses():
    headers, body = signed(issue_payload(installation=42), delivery_id="abc")
    d = parse_delivery(headers, body, SECRET)
    assert (d.delivery_id, d.event, d.action, d.repo, d.issue_number, d.installation_id) == \
        ("abc", "issues", "opened", "octo/repo", 7, 42)


def test_headers_are_case_insensitive():
    headers, body = signed(issue_payload())
    d = parse_delivery({k.lower(): v for k, v in headers.items()}, body, SECRET)
    assert d.event == "issues"


def test_oversized_body_is_413_before_hashing():
    body = b"x" * (sansio.MAX_BODY_BYTES + 1)
    with pytest.raises(WebhookError) as err:
        parse_delivery({"X-Hub-Signature-256": "nope"}, body, SECRET)
    assert err.value.status == 413


@pytest.mark.parametrize("drop,status", [("X-GitHub-Event", 400), ("X-GitHub-Delivery", 400),
                                         ("Content-Type", 415), ("X-Hub-Signature-256", 401)])
def test_missing_headers(drop, status):
    headers, body = signed(issue_payload())
    del headers[drop]
    with pytest.raises(WebhookError) as err:
        parse_delivery(headers, body, SECRET)
    assert err.value.status == status


def test_wrong_content_type_is_415():
    headers, body = signed(issue_payload())
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    with pytest.raises(WebhookError) as err:
        parse_delivery(headers, body, SECRET)
    assert err.value.status == 415


def test_content_type_with_charset_is_fine():
    headers, body = signed(issue_payload())
    headers["Content-Type"] = "application/json; charset=utf-8"
    assert parse_delivery(headers, body, SECRET).event == "issues"


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[1, 2]", b"null", b""])
def test_malformed_or_non_object_json_is_400(body):
    headers, _ = signed({})
    headers["X-Hub-Signature-256"] = sign(body, SECRET)
    with pytest.raises(WebhookError) as err:
        parse_delivery(headers, body, SECRET)
    assert err.value.status == 400


# -- routing ----------------------------------------------------------------------------------

def _route(payload, event="issues", logins=frozenset()):
    return route(sansio.Delivery("d", event, payload), logins)


@pytest.mark.parametrize("action", ["opened", "reopened"])
def test_opened_and_reopened_label(action):
    assert _route(issue_payload(action)).kind == sansio.LABEL


def test_edited_labels_only_when_title_or_body_changed():
    assert _route(issue_payload("edited", changes={"title": {"from": "x"}})).kind == sansio.LABEL
    assert _route(issue_payload("edited", changes={"body": {"from": "x"}})).kind == sansio.LABEL
    assert _route(issue_payload("edited", changes={"milestone": {}})).kind == sansio.IGNORE
    assert _route(issue_payload("edited")).kind == sansio.IGNORE


def test_human_label_changes_and_bot_ones():
    human = {"login": "bob", "type": "User"}
    bot = {"login": "issue-labeler[bot]", "type": "Bot"}
    assert _route(issue_payload("labeled", label={"name": "bug"}, sender=human)).kind == sansio.HUMAN_ADDED
    assert _route(issue_payload("unlabeled", label={"name": "bug"}, sender=human)).kind == sansio.HUMAN_REMOVED
    assert _route(issue_payload("labeled", label={"name": "bug"}, sender=bot)).kind == sansio.IGNORE
    assert _route(issue_payload("labeled", label={"name": "bug"}, sender=human), logins={"BOB"}).kind == sansio.IGNORE
    assert _route(issue_payload("labeled", sender=human)).kind == sansio.IGNORE  # no label


def test_other_events_and_odd_payloads_are_ignored():
    assert _route({"action": "created"}, "issue_comment").kind == sansio.IGNORE
    assert _route({"action": "opened"}).kind == sansio.IGNORE  # no issue
    assert _route({"action": "opened", "issue": "x", "repository": 3}).kind == sansio.IGNORE
    assert _route({"action": ["weird"], "issue": {"number": "7"}}).kind == sansio.IGNORE
    assert _route(issue_payload("closed")).kind == sansio.IGNORE
    assert _route({"zen": "hi"}, "ping").kind == sansio.PING
    assert _route({"action": "created"}, "installation").kind == sansio.INSTALLATION


def test_pull_request_event_routes_to_label_and_worker_checks_config():
    pr = {"action": "opened", "pull_request": {"number": 3, "title": "t", "body": None},
          "repository": {"full_name": "o/r"}}
    assert _route(pr, "pull_request").kind == sansio.LABEL


def test_issue_text_is_the_labelers_text():
    # the text training sees (labeler.data.issue_text): a null body is an empty one, nothing stripped
    assert sansio.issue_text({"title": "Crash", "body": None}) == "Crash\n\n"
    assert sansio.issue_text({"title": None, "body": None}) == "\n\n"
    assert sansio.issue_text({"title": "T", "body": "B"}) == "T\n\nB"
    assert sansio.issue_title_body({"title": "T"}) == ("T", "")


# -- the real payloads GitHub documents --------------------------------------------------------

def _fixture_files(root):
    base = root / "github-webhooks" / "api.github.com"
    return [(event, path) for event in FIXTURE_EVENTS for path in sorted((base / event).glob("*.json"))]


def test_every_documented_payload_is_accepted_and_routed(shared_fixtures):
    files = _fixture_files(shared_fixtures)
    assert len(files) > 30
    kinds = {}
    for event, path in files:
        body = path.read_bytes()
        headers, _ = signed(b"", event=event)
        headers["X-Hub-Signature-256"] = sign(body, SECRET)
        d = parse_delivery(headers, body, SECRET)
        kinds[f"{event}/{path.name}"] = route(d).kind
    assert kinds["issues/opened.payload.json"] == sansio.LABEL
    assert kinds["issues/opened.with-empty-body.payload.json"] == sansio.LABEL
    assert kinds["issues/reopened.payload.json"] == sansio.LABEL
    assert kinds["issues/unlabeled.payload.json"] == sansio.HUMAN_REMOVED
    assert kinds["issues/labeled.payload.json"] == sansio.HUMAN_ADDED
    assert kinds["issues/deleted.payload.json"] == sansio.IGNORE
    assert kinds["ping/payload.json"] == sansio.PING
    assert kinds["installation/created.payload.json"] == sansio.INSTALLATION
    edited = json.loads((shared_fixtures / "github-webhooks/api.github.com/issues/edited.payload.json").read_text())
    assert kinds["issues/edited.payload.json"] == (sansio.LABEL if {"title", "body"} & set(edited.get("changes", {}))
                                                   else sansio.IGNORE)
