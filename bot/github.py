"""GitHub access: PyGithub behind a small interface, plus a dry-run stand-in.

:class:`PyGithubClient` authenticates either as a GitHub App (app id + private key; one
installation access token per ``installation.id``, cached until shortly before it expires)
or with one token (a personal access token or a fine-grained token). It reads the
repository's labels with their descriptions and ``.github/issue-labeler.yml`` from the
default branch, re-reads an issue, adds labels in one call and creates or edits the
suggestion comment; for ``issue-labeler backfill`` it also lists the open issues a page at
a time and finds the App's installation on a repository.

PyGithub's own retrying is switched off (``retry=None``): its urllib3 retry sleeps inside the
call, which would block a worker thread for up to an hour on a rate limit. Instead every
GitHub error becomes :class:`TransientGitHubError` (with the delay GitHub asked for, see
:func:`retry_delay`) or :class:`PermanentGitHubError`, and the worker re-schedules the
delivery through the queue.

:class:`DryRunGitHub` is used when no credentials are configured: it reads nothing from
GitHub (the labels are GitHub's defaults or those of a local config file), writes nothing,
and the worker records what it would have done.
"""

from __future__ import annotations

import logging
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Mapping, Protocol

log = logging.getLogger(__name__)

#: GitHub's default labels for a new repository, with their descriptions.
DEFAULT_LABELS: dict[str, str] = {
    "bug": "Something isn't working",
    "documentation": "Improvements or additions to documentation",
    "duplicate": "This issue or pull request already exists",
    "enhancement": "New feature or request",
    "good first issue": "Good for newcomers",
    "help wanted": "Extra attention is needed",
    "invalid": "This doesn't seem right",
    "question": "Further information is requested",
    "wontfix": "This will not be worked on",
}

COMMENT_MARKER = "<!-- issue-labeler:suggestions -->"


class GitHubError(Exception):
    """A failed GitHub call."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class TransientGitHubError(GitHubError):
    """Worth retrying after ``delay`` seconds (rate limits, 5xx, network errors)."""

    def __init__(self, message: str, status: int | None = None, delay: float = 60.0):
        super().__init__(message, status)
        self.delay = delay


class PermanentGitHubError(GitHubError):
    """Retrying will not help (404, 422, missing permissions, bad credentials)."""


def _get(headers: Mapping[str, Any] | None, name: str) -> str | None:
    if not headers:
        return None
    lower = name.lower()
    for key, value in headers.items():
        if key.lower() == lower:
            return str(value)
    return None


def retry_delay(status: int | None, headers: Mapping[str, Any] | None, attempt: int, *,
                now: float | None = None, base: float = 2.0, cap: float = 3600.0,
                message: str = "") -> float | None:
    """Seconds to wait before retrying a failed call, or None when it should not be retried.

    Follows GitHub's rules for REST API rate limits: ``Retry-After`` (seconds or an HTTP
    date) wins; else, when ``X-RateLimit-Remaining`` is 0, wait until ``X-RateLimit-Reset``
    (epoch seconds); else a 403/429 that is a secondary rate limit waits at least a minute,
    growing exponentially; 5xx and network errors (``status`` None) back off exponentially
    from ``base`` seconds. Everything is capped at ``cap``."""
    now = time.time() if now is None else now
    backoff = min(cap, base * 2 ** max(attempt - 1, 0))
    retry_after = _get(headers, "Retry-After")
    remaining, reset = _get(headers, "X-RateLimit-Remaining"), _get(headers, "X-RateLimit-Reset")
    rate_limited = status == 429 or (status == 403 and (retry_after is not None or remaining == "0"
                                                        or "rate limit" in message.lower()))
    if not (rate_limited or status is None or status >= 500):
        return None  # 4xx other than rate limits: retrying will not help
    if retry_after is not None:
        try:
            return min(cap, max(0.0, float(retry_after)))
        except ValueError:
            try:
                return min(cap, max(0.0, parsedate_to_datetime(retry_after).timestamp() - now))
            except (TypeError, ValueError):
                pass
    if rate_limited and remaining == "0" and reset is not None:
        try:
            return min(cap, max(1.0, float(reset) - now + 1))
        except ValueError:
            pass
    if rate_limited:  # a secondary rate limit without a hint: GitHub says wait at least a minute
        return min(cap, max(60.0, backoff))
    return backoff


class GitHubClient(Protocol):
    """What the worker needs from GitHub. ``installation_id`` is None outside GitHub Apps."""

    dry_run: bool

    def labels(self, repo: str, installation_id: int | None) -> dict[str, str | None]: ...
    def config_text(self, repo: str, installation_id: int | None) -> str | None: ...
    def issue(self, repo: str, number: int, installation_id: int | None) -> dict[str, Any] | None: ...
    def add_labels(self, repo: str, number: int, labels: list[str], installation_id: int | None) -> None: ...
    def upsert_comment(self, repo: str, number: int, comment_id: int | None, body: str,
                       installation_id: int | None) -> int | None: ...


def load_private_key(value: str) -> str:
    """``GITHUB_PRIVATE_KEY`` is the PEM text itself (``\\n`` escapes allowed) or a file path."""
    if "-----BEGIN" in value:
        return value.replace("\\n", "\n")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"GITHUB_PRIVATE_KEY is neither PEM text nor a readable file: {value}")
    return path.read_text()


class PyGithubClient:
    """GitHub through PyGithub, as an App installation or with one token."""

    dry_run = False
    #: issues (and labels) per page of a listing
    PER_PAGE = 100

    def __init__(self, *, token: str | None = None, app_id: str | int | None = None,
                 private_key: str | None = None, base_url: str = "https://api.github.com",
                 throttle: bool = True, timeout: int = 15, clock=time.time):
        import github  # deferred: the web process never needs PyGithub

        if not token and not (app_id and private_key):
            raise ValueError("PyGithubClient needs a token or an app id with a private key")
        self._github = github
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.app_id = str(app_id) if app_id else None
        self.private_key = private_key
        self.clock = clock
        # PyGithub's default throttle (0.25 s between requests, 1 s between writes) is
        # GitHub's advice against secondary rate limits; tests switch it off.
        self._kwargs: dict[str, Any] = {"base_url": self.base_url, "retry": None, "lazy": True,
                                        "timeout": timeout, "per_page": self.PER_PAGE}
        if not throttle:
            self._kwargs.update(seconds_between_requests=None, seconds_between_writes=None)
        self._lock = threading.Lock()
        self._tokens: dict[int, tuple[str, float]] = {}   # installation id -> (token, expires at)
        self._clients: dict[Any, Any] = {}
        self.token_requests = 0

    # -- authentication -------------------------------------------------------------------
    def installation_token(self, installation_id: int) -> str:
        """An installation access token, from the cache while it has a minute left."""
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached and cached[1] - 60 > self.clock():
                return cached[0]
        with self._errors("create an installation token"):
            auth = self._integration().get_access_token(installation_id)
        expires = auth.expires_at.timestamp() if auth.expires_at else self.clock() + 3000
        with self._lock:
            self._tokens[installation_id] = (auth.token, expires)
            self.token_requests += 1
        return auth.token

    def _integration(self):
        gh = self._github
        return gh.GithubIntegration(auth=gh.Auth.AppAuth(int(self.app_id), self.private_key),
                                    base_url=self.base_url, retry=None)

    def repo_installation(self, repo: str) -> int | None:
        """The id of the App's installation on ``repo`` (``GET /repos/{repo}/installation``,
        signed as the App); None with a token, which needs none."""
        if not self.app_id:
            return None
        owner, name = repo.split("/", 1)
        with self._errors(f"find the App's installation on {repo}"):
            return self._integration().get_repo_installation(owner, name).id

    def _client(self, installation_id: int | None):
        gh = self._github
        if self.app_id:
            if installation_id is None:
                raise PermanentGitHubError("GitHub App mode, but the delivery has no installation id")
            token = self.installation_token(installation_id)
        else:
            token = self.token
        with self._lock:
            client = self._clients.get(token)
            if client is None:
                if len(self._clients) > 256:
                    self._clients.clear()
                client = self._clients[token] = gh.Github(auth=gh.Auth.Token(token), **self._kwargs)
            return client

    def _errors(self, what: str):
        return _ErrorTranslator(what, self._github, self.clock)

    # -- reads ------------------------------------------------------------------------------
    def labels(self, repo: str, installation_id: int | None) -> dict[str, str | None]:
        with self._errors(f"list the labels of {repo}"):
            return {l.name: l.description for l in self._client(installation_id).get_repo(repo).get_labels()}

    def config_text(self, repo: str, installation_id: int | None) -> str | None:
        from bot.config import CONFIG_PATH

        with self._errors(f"read {CONFIG_PATH} of {repo}"):
            try:
                content = self._client(installation_id).get_repo(repo).get_contents(CONFIG_PATH)
            except self._github.UnknownObjectException:
                return None
            if isinstance(content, list):  # a directory of that name
                return None
            return content.decoded_content.decode("utf-8", "replace")

    def issue(self, repo: str, number: int, installation_id: int | None) -> dict[str, Any] | None:
        with self._errors(f"read {repo}#{number}"):
            issue = self._client(installation_id).get_repo(repo).get_issue(number)
            return {"title": issue.title, "body": issue.body, "labels": [{"name": l.name} for l in issue.labels],
                    "state": issue.state}

    def open_issues(self, repo: str, installation_id: int | None, page: int) -> list[dict[str, Any]]:
        """Page ``page`` (from 0) of the repository's open issues, newest first, ``PER_PAGE``
        a page (fewer on the last, none past it), as GitHub's REST issue objects. Pull
        requests are among them (they carry a ``pull_request`` key), as GitHub lists them."""
        with self._errors(f"list the open issues of {repo}"):
            listing = self._client(installation_id).get_repo(repo).get_issues(state="open", sort="created",
                                                                             direction="desc")
            # the objects as GitHub sent them: ``raw_data`` would re-fetch each issue first
            return [issue._rawData for issue in listing.get_page(page)]

    # -- writes -----------------------------------------------------------------------------
    def add_labels(self, repo: str, number: int, labels: list[str], installation_id: int | None) -> None:
        """One ``POST /repos/{repo}/issues/{number}/labels`` (lazy objects: no reads first)."""
        with self._errors(f"add labels to {repo}#{number}"):
            self._client(installation_id).get_repo(repo).get_issue(number).add_to_labels(*labels)

    def upsert_comment(self, repo: str, number: int, comment_id: int | None, body: str,
                       installation_id: int | None) -> int | None:
        with self._errors(f"comment on {repo}#{number}"):
            issue = self._client(installation_id).get_repo(repo).get_issue(number)
            if comment_id is not None:
                try:
                    comment = issue.get_comment(comment_id)
                    comment.edit(body)
                    return comment_id
                except self._github.UnknownObjectException:
                    log.info("suggestion comment %s on %s#%s is gone; posting a new one", comment_id, repo, number)
            return issue.create_comment(body).id


class _ErrorTranslator:
    """Context manager: PyGithub/requests exceptions -> Transient/PermanentGitHubError."""

    def __init__(self, what: str, github_module, clock):
        self.what, self.gh, self.clock = what, github_module, clock

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        import requests

        if exc is None or isinstance(exc, GitHubError):
            return False
        if isinstance(exc, self.gh.GithubException):
            message = ""
            if isinstance(exc.data, dict):
                message = str(exc.data.get("message") or "")
            delay = retry_delay(exc.status, exc.headers, 1, now=self.clock(), message=message)
            text = f"could not {self.what}: HTTP {exc.status} {message}".strip()
            if delay is not None:
                raise TransientGitHubError(text, exc.status, delay) from exc
            raise PermanentGitHubError(text, exc.status) from exc
        if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            raise TransientGitHubError(f"could not {self.what}: {exc}", None, 5.0) from exc
        return False


class DryRunGitHub:
    """No credentials: read nothing from GitHub, write nothing; the worker records what it
    would have done. The label set is ``repository_labels`` from the local config file when
    it has one, else GitHub's default labels."""

    dry_run = True

    def __init__(self, labels: Mapping[str, str | None] | None = None, config_text: str | None = None):
        self._labels = dict(labels or DEFAULT_LABELS)
        self._config_text = config_text

    def labels(self, repo: str, installation_id: int | None) -> dict[str, str | None]:
        return dict(self._labels)

    def config_text(self, repo: str, installation_id: int | None) -> str | None:
        return self._config_text

    def issue(self, repo: str, number: int, installation_id: int | None) -> dict[str, Any] | None:
        return None  # the worker falls back on the payload's issue

    def add_labels(self, repo: str, number: int, labels: list[str], installation_id: int | None) -> None:
        log.info("dry-run: would add %s to %s#%s", labels, repo, number)

    def upsert_comment(self, repo: str, number: int, comment_id: int | None, body: str,
                       installation_id: int | None) -> int | None:
        log.info("dry-run: would comment on %s#%s", repo, number)
        return None
