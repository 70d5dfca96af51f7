"""What a webhook payload must look like before anything is stored or queued.

Two layers, both plain Python (no Flask, no I/O), called by :func:`bot.sansio.parse_delivery`
on every signed delivery and again by the worker on the stored payload:

1. :func:`sanitise`: the whole JSON value, whatever the event: nesting at most
   :data:`MAX_DEPTH` levels, strings at most :data:`MAX_STRING` characters, unpaired UTF-16
   surrogates and NUL characters replaced by U+FFFD (neither can be encoded as UTF-8 or
   stored in PostgreSQL text), so nothing downstream meets them.
2. pydantic models, strict types (``true`` is not an issue number, ``"7"`` is not either),
   of the parts of the payload the bot reads: the issue (or pull request), repository,
   installation, label, sender and changes of the events it handles. Numbers and ids are
   positive and below 2**63 (the store's BIGINT); names have the store's column lengths.
   Parts a handler does not need may be missing (the router answers ``ignored``); when present
   they must have the right type. Everything else in the payload is kept as it is.

A payload that fails either layer raises :class:`PayloadError`, which the web app answers
with ``422`` (never ``5xx``), and which the worker treats as permanent (never retried).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

MAX_DEPTH = 64             # GitHub's payloads nest about 6 levels
MAX_STRING = 1_000_000     # characters in any one string (a 25 MB body could hold one of 25 M)
MAX_ITEMS = 100_000        # entries in any one object or array
_BAD_CHARS = re.compile("[\ud800-\udfff\x00]")

Id = Annotated[StrictInt, Field(gt=0, lt=2**63)]
Name = Annotated[StrictStr, Field(max_length=200)]


class PayloadError(ValueError):
    """The payload is not one the bot accepts; ``str()`` says why, in one line."""


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class User(_Model):
    login: Optional[Name] = None
    type: Optional[Annotated[StrictStr, Field(max_length=100)]] = None


class Label(_Model):
    name: Name


class Issue(_Model):
    number: Id
    title: Optional[Annotated[StrictStr, Field(max_length=4096)]] = None
    body: Optional[Annotated[StrictStr, Field(max_length=MAX_STRING)]] = None
    user: Optional[User] = None
    labels: Optional[list[Label]] = None
    state: Optional[Annotated[StrictStr, Field(max_length=50)]] = None


class Repository(_Model):
    full_name: Annotated[StrictStr, Field(max_length=300, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]


class RepoRef(_Model):
    full_name: Optional[Annotated[StrictStr, Field(max_length=300)]] = None


class Installation(_Model):
    id: Id


class Event(_Model):
    """The fields every event the bot reads may carry."""

    action: Optional[Annotated[StrictStr, Field(max_length=100)]] = None
    repository: Optional[Repository] = None
    installation: Optional[Installation] = None
    sender: Optional[User] = None


class IssuesEvent(Event):
    issue: Optional[Issue] = None
    label: Optional[Label] = None
    changes: Optional[dict[str, Any]] = None


class PullRequestEvent(Event):
    pull_request: Optional[Issue] = None
    label: Optional[Label] = None
    changes: Optional[dict[str, Any]] = None


class InstallationEvent(Event):
    repositories: Optional[list[RepoRef]] = None
    repositories_added: Optional[list[RepoRef]] = None
    repositories_removed: Optional[list[RepoRef]] = None


MODELS: dict[str, type[Event]] = {
    "issues": IssuesEvent,
    "pull_request": PullRequestEvent,
    "installation": InstallationEvent,
    "installation_repositories": InstallationEvent,
}


def sanitise(value: Any) -> Any:
    """A copy of a parsed JSON value with unpaired surrogates and NULs replaced; raises
    :class:`PayloadError` when it nests too deep or holds a string or container too large.
    Iterative (an explicit stack), so no input can exhaust Python's recursion."""

    def clean(s: str) -> str:
        if len(s) > MAX_STRING:
            raise PayloadError(f"a string of {len(s)} characters (at most {MAX_STRING})")
        return _BAD_CHARS.sub("\ufffd", s) if _BAD_CHARS.search(s) else s

    def fresh(v: Any) -> Any:
        if isinstance(v, dict):
            return {}
        if isinstance(v, list):
            return []
        return clean(v) if isinstance(v, str) else v

    root = fresh(value)
    stack = [(value, root, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        src, dst, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PayloadError(f"JSON nested more than {MAX_DEPTH} levels deep")
        if len(src) > MAX_ITEMS:
            raise PayloadError(f"an object or array of {len(src)} entries (at most {MAX_ITEMS})")
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for k, v in items:
            c = fresh(v)
            if isinstance(dst, dict):
                dst[clean(k)] = c
            else:
                dst.append(c)
            if isinstance(v, (dict, list)):
                stack.append((v, c, depth + 1))
    return root


def validate(event: str, payload: Any) -> dict[str, Any]:
    """The sanitised payload of a delivery of ``event``, or :class:`PayloadError`."""
    if not isinstance(payload, dict):
        raise PayloadError("the payload is not a JSON object")
    clean = sanitise(payload)
    model = MODELS.get(event, Event)
    try:
        model.model_validate(clean)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "(payload)"
        raise PayloadError(f"{event} payload: {where}: {first.get('msg')} "
                           f"({exc.error_count()} problem(s))") from None
    return clean
