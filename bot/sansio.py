"""The webhook protocol without I/O (in the spirit of gidgethub's ``sansio.py``).

Everything here is plain Python on bytes, dicts and dataclasses: no Flask, no network, no
database. The Flask app (:mod:`bot.app`) is a thin adapter that feeds a request's headers
and raw body to :func:`parse_delivery` and turns :class:`WebhookError` into an HTTP status;
which handler answers a delivery is decided by :mod:`bot.routing` (the handlers are in
:mod:`bot.handlers`), also without I/O.

Why not gidgethub itself: it is asyncio-oriented and its ``Event.from_http`` does not
distinguish "missing" from "wrong" signatures or cap the body size, and the verification is
twenty lines, so we keep them here where every branch is tested (``tests/bot/test_sansio.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from bot import schema
from bot.predictor import issue_text as _issue_text

_EVENT = re.compile(r"^[a-z_]+$")
_DELIVERY = re.compile(r"^[\x21-\x7e]+$")  # GitHub's are UUIDs; printable ASCII, no spaces

#: GitHub caps webhook payloads at 25 MB; anything larger is not from GitHub.
MAX_BODY_BYTES = 25 * 1024 * 1024

class WebhookError(Exception):
    """A delivery we refuse; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def sign(body: bytes, secret: str | bytes) -> str:
    """The ``X-Hub-Signature-256`` header value GitHub sends for ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str | None, secret: str | bytes) -> None:
    """Raise :class:`WebhookError` (401) unless ``signature`` is the HMAC-SHA256 of ``body``.

    A missing header is a rejection, never a pass; the comparison is constant-time
    (:func:`hmac.compare_digest`) so timing reveals nothing about the expected value."""
    if not secret:
        raise ValueError("no webhook secret configured")
    if not signature:
        raise WebhookError(401, "missing X-Hub-Signature-256 header")
    expected = sign(body, secret)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        raise WebhookError(401, "signature does not match (check the webhook secret)")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Flask/werkzeug headers are case-insensitive, a plain dict is not: look both ways.
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        for key, val in headers.items():
            if key.lower() == lower:
                return val
    return value


@dataclass
class Delivery:
    """One verified webhook delivery."""

    delivery_id: str
    event: str
    payload: dict[str, Any]
    body: bytes = field(repr=False, default=b"")
    received_at: float | None = None  # set by the worker from the store (the web app: now)

    @property
    def action(self) -> str | None:
        action = self.payload.get("action")
        return action if isinstance(action, str) else None

    @property
    def repo(self) -> str | None:
        """``owner/name`` of the repository, when the payload has one."""
        repo = self.payload.get("repository")
        if isinstance(repo, dict) and isinstance(repo.get("full_name"), str):
            return repo["full_name"]
        return None

    @property
    def installation_id(self) -> int | None:
        inst = self.payload.get("installation")
        if isinstance(inst, dict) and isinstance(inst.get("id"), int):
            return inst["id"]
        return None

    @property
    def issue(self) -> dict[str, Any] | None:
        """The issue (or, for ``pull_request`` events, the pull request) the event is about."""
        key = "pull_request" if self.event == "pull_request" else "issue"
        item = self.payload.get(key)
        return item if isinstance(item, dict) else None

    @property
    def issue_number(self) -> int | None:
        item = self.issue
        if item and isinstance(item.get("number"), int):
            return item["number"]
        return None


def parse_delivery(headers: Mapping[str, str], body: bytes, secret: str | bytes) -> Delivery:
    """Check a raw webhook request and return the :class:`Delivery`.

    Order matters: size first (cheap, and we never hash 1 GB), then the signature (nothing
    unauthenticated is parsed or stored), then headers and JSON. Raises
    :class:`WebhookError` with 413, 401, 400, 415 or 422 (:mod:`bot.schema`)."""
    if len(body) > MAX_BODY_BYTES:
        raise WebhookError(413, f"body of {len(body)} bytes is over GitHub's 25 MB limit")
    verify_signature(body, _header(headers, "X-Hub-Signature-256"), secret)
    event = _header(headers, "X-GitHub-Event")
    if not event:
        raise WebhookError(400, "missing X-GitHub-Event header")
    if len(event) > 100 or not _EVENT.match(event):
        raise WebhookError(400, "X-GitHub-Event header is not an event name")
    delivery_id = _header(headers, "X-GitHub-Delivery")
    if not delivery_id:
        raise WebhookError(400, "missing X-GitHub-Delivery header")
    if len(delivery_id) > 200:
        raise WebhookError(400, "X-GitHub-Delivery header is too long")
    if not _DELIVERY.match(delivery_id):
        raise WebhookError(400, "X-GitHub-Delivery header has characters a delivery id never has")
    content_type = (_header(headers, "Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        # GitHub can also send application/x-www-form-urlencoded (payload=...); we ask the
        # maintainer to choose JSON when creating the webhook (see bot/README.md).
        raise WebhookError(415, f"content type {content_type or '(none)'!r}: configure the webhook "
                                "to send application/json")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookError(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise WebhookError(400, f"body is JSON nested more than {schema.MAX_DEPTH} levels deep") from None
    if not isinstance(payload, dict):
        raise WebhookError(400, "body is JSON but not an object")
    return Delivery(delivery_id=delivery_id, event=event, payload=validate_payload(event, payload), body=body)


def validate_payload(event: str, payload: Any) -> dict[str, Any]:
    """The payload checked against :mod:`bot.schema` (strict types, bounded sizes, unpaired
    surrogates replaced); :class:`WebhookError` 422 when it fails."""
    try:
        return schema.validate(event, payload)
    except schema.PayloadError as exc:
        raise WebhookError(422, f"payload refused: {exc}") from None


_UNSAFE = re.compile(r"[^\x20-\x7e]")


def safe_header(value: Any, limit: int = 100) -> str:
    """A header value fit for a log line: printable ASCII only (others as ``?``), at most
    ``limit`` characters, so a hostile header cannot forge log lines or flood them."""
    if value is None:
        return "-"
    text = _UNSAFE.sub("?", str(value))
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


# -- reading payloads -----------------------------------------------------------------------

def is_bot_user(user: Any, bot_logins: frozenset[str] | set[str] = frozenset()) -> bool:
    """True for GitHub Apps/bots (``type: Bot`` or a ``[bot]`` login) and our own logins."""
    if not isinstance(user, dict):
        return False
    login = str(user.get("login") or "")
    return user.get("type") == "Bot" or login.endswith("[bot]") or login.lower() in {b.lower() for b in bot_logins}


def issue_title_body(issue: Mapping[str, Any]) -> tuple[str, str]:
    """The issue's title and body as strings (a null one is empty), as ``labeler.data``
    reads a REST issue object."""
    return str(issue.get("title") or ""), str(issue.get("body") or "")


def issue_text(issue: Mapping[str, Any]) -> str:
    """The text the model scores for a payload's issue: :func:`bot.predictor.issue_text`
    (``labeler.data.issue_text``, the function training uses) on its title and body."""
    return _issue_text(*issue_title_body(issue))


def label_names(issue: Mapping[str, Any]) -> list[str]:
    labels = issue.get("labels") or []
    return [l["name"] for l in labels if isinstance(l, dict) and isinstance(l.get("name"), str)]
