"""The webhook protocol without Flask: signatures, parsing, reading payloads (routing is in
test_routing.py)."""

from __future__ import annotations

import pytest

from bot import sansio
from bot.sansio import WebhookError, parse_delivery, sign, verify_signature
from bot_helpers import SECRET, issue_payload, signed

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


def test_issue_text_is_the_labelers_text():
    # the text training sees (labeler.data.issue_text): a null body is an empty one, nothing stripped
    assert sansio.issue_text({"title": "Crash", "body": None}) == "Crash\n\n"
    assert sansio.issue_text({"title": None, "body": None}) == "\n\n"
    assert sansio.issue_text({"title": "T", "body": "B"}) == "T\n\nB"
    assert sansio.issue_title_body({"title": "T"}) == ("T", "")
