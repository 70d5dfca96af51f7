"""Download the issues (and pull requests) of a repository with PyGithub, as JSONL.

Two ways, both writing the REST issue objects unchanged, one per line:

* :func:`fetch_issues` (``issue-labeler fetch``): every issue, oldest first, resumable: run
  the same command again after an interruption and it continues after the last complete line.
* :func:`fetch_updates` (``issue-labeler retrain OWNER/REPO``): incremental. The first run
  reads every issue; later runs ask only for those updated since the newest ``updated_at``
  seen before (GitHub's ``since=``) and merge them in by issue number, the newer
  ``updated_at`` winning (a relabelled issue replaces its old copy). The state of the last
  run is kept beside the data (:data:`STATE_FILE`).

Rate limits are honoured by PyGithub's ``GithubRetry`` (it waits for ``Retry-After`` /
``X-RateLimit-Reset`` on 403 and 429 answers, including secondary limits). GitHub failing
raises :class:`~labeler.errors.FetchError`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import requests
from github import Auth, Github, GithubException, GithubRetry
from tqdm import tqdm

from labeler.data import parse_time
from labeler.errors import FetchError, LabelerError
from labeler.registry import check_repo

#: beside the data file of :func:`fetch_updates`: the repository and the newest ``updated_at`` read
STATE_FILE = "fetch-state.json"


def _complete_lines(path: Path) -> int:
    """Count complete JSON lines, cutting off a partial last line left by an interruption."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as fh:
            fh.truncate(end)
    return data[:end].count(b"\n")


def _github(token: str | None, base_url: str, per_page: int, retries: int) -> Github:
    return Github(auth=Auth.Token(token) if token else None, base_url=base_url, per_page=per_page, lazy=True,
                  retry=GithubRetry(total=retries))


def _failure(exc: GithubException | requests.RequestException, repo: str) -> str:
    """What went wrong, in one line."""
    if isinstance(exc, GithubException):
        message = exc.data.get("message") if isinstance(exc.data, dict) else exc.data
        return f"GitHub answered {exc.status} for {repo}: {message}"
    return f"fetching {repo} failed: {exc}"


def _pages(issues, per_page: int, first_page: int = 0):
    """The pages of a PyGithub listing (lists of issues), from ``first_page`` on."""
    page = first_page
    while True:
        items = issues.get_page(page)
        if not items:
            return
        yield items
        if len(items) < per_page:
            return
        page += 1


def fetch_issues(repo: str, output: str | Path, *, token: str | None = None, state: str = "all",
                 per_page: int = 100, base_url: str = "https://api.github.com",
                 progress: bool = True, retries: int = 10) -> int:
    """Write all issues of ``OWNER/REPO`` to ``output``; returns how many lines it holds.

    Issues are listed oldest first (``sort=created, direction=asc``), so the listing is
    stable and a resumed run skips the pages (and the part of a page) already written."""
    check_repo(repo)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = _complete_lines(output)
    gh = _github(token, base_url, per_page, retries)
    try:
        issues = gh.get_repo(repo).get_issues(state=state, sort="created", direction="asc")
        first_page, skip = divmod(done, per_page)
        with open(output, "a", encoding="utf-8") as fh, \
                tqdm(initial=done, unit="issue", disable=not progress, desc=repo) as bar:
            for items in _pages(issues, per_page, first_page):
                for issue in items[skip:]:
                    # the listed object as GitHub sent it: ``raw_data`` would first re-fetch
                    # every issue on its own (PyGithub completes list items lazily)
                    fh.write(json.dumps(issue._rawData, ensure_ascii=False) + "\n")
                    done += 1
                    bar.update(1)
                fh.flush()
                skip = 0
    except (GithubException, requests.RequestException) as exc:
        raise FetchError(f"{_failure(exc, repo)} ({done} issues written to {output}; run again to resume)") from None
    return done


@dataclass
class FetchResult:
    """What :func:`fetch_updates` did: ``read`` issues came from GitHub (``new`` of them not
    in the data before), the data file now holds ``total``; ``since`` is the ``updated_at``
    the listing started from (None: the first, full run)."""

    read: int
    new: int
    total: int
    since: str | None


def _newer_or_same(new: dict, old: dict) -> bool:
    """Whether ``new`` is at least as recent as ``old`` (by ``updated_at``; a copy without
    one loses to one with it)."""
    if not old.get("updated_at"):
        return True
    if not new.get("updated_at"):
        return False
    return parse_time(new["updated_at"]) >= parse_time(old["updated_at"])


def _order(issue: dict) -> tuple:
    """Oldest first, as :func:`fetch_issues` writes them (``created_at``, then number)."""
    created = issue.get("created_at")
    return (parse_time(created) if created else datetime.min.replace(tzinfo=timezone.utc),
            issue.get("number") or 0)


def fetch_updates(repo: str, data_dir: str | Path, *, token: str | None = None, state: str = "all",
                  per_page: int = 100, base_url: str = "https://api.github.com", progress: bool = True,
                  retries: int = 10) -> tuple[Path, FetchResult]:
    """Bring ``DATA_DIR/issues.jsonl`` up to date with ``OWNER/REPO``; returns its path and
    a :class:`FetchResult`.

    The listing is ``sort=updated, direction=asc`` and, after the first run, ``since=`` the
    newest ``updated_at`` read before (kept in ``DATA_DIR/fetch-state.json``; GitHub's own
    clock, so the machine's does not matter, and ``since`` is inclusive, so an issue updated
    in the same second is read again rather than missed). Fetched issues replace the copy
    with the same number unless that one is newer; the file is rewritten oldest first
    (``created_at``) in one atomic replace, then the state, so an interrupted run changes
    nothing and the next one asks again from the same point."""
    check_repo(repo)
    data_dir = Path(data_dir)
    data_file, state_file = data_dir / "issues.jsonl", data_dir / STATE_FILE
    since = None
    if state_file.is_file():
        try:
            recorded = json.loads(state_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LabelerError(f"{state_file} is not valid JSON ({exc}); delete it to fetch everything again") from None
        if recorded.get("repo") != repo:
            raise LabelerError(f"{data_dir} holds the issues of {recorded.get('repo')}, not {repo}")
        since = recorded.get("since") if data_file.is_file() else None
    kept: dict[int, dict] = {}
    if data_file.is_file():
        from labeler.data import iter_jsonl

        kept = {obj["number"]: obj for obj in iter_jsonl(data_file) if "number" in obj}
    listing = {"state": state, "sort": "updated", "direction": "asc"}
    if since:
        listing["since"] = parse_time(since)
    gh = _github(token, base_url, per_page, retries)
    read = new = 0
    newest = since
    try:
        issues = gh.get_repo(repo).get_issues(**listing)
        with tqdm(unit="issue", disable=not progress, desc=f"{repo} (updated since {since})" if since else repo) as bar:
            for items in _pages(issues, per_page):
                for item in items:
                    obj = item._rawData  # as GitHub sent it (see fetch_issues)
                    read += 1
                    bar.update(1)
                    old = kept.get(obj["number"])
                    new += old is None
                    if old is None or _newer_or_same(obj, old):
                        kept[obj["number"]] = obj
                    updated = obj.get("updated_at")
                    if updated and (newest is None or parse_time(updated) > parse_time(newest)):
                        newest = updated
    except (GithubException, requests.RequestException) as exc:
        raise FetchError(f"{_failure(exc, repo)} ({data_file} left as it was; run again)") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_file.with_name(data_file.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for obj in sorted(kept.values(), key=_order):
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    os.replace(tmp, data_file)
    tmp = state_file.with_name(state_file.name + ".tmp")
    tmp.write_text(json.dumps({"repo": repo, "since": newest, "fetched_at":
                               datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=2))
    os.replace(tmp, state_file)
    return data_file, FetchResult(read=read, new=new, total=len(kept), since=since)
