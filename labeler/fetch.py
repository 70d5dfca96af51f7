"""Download every issue (and pull request) of a repository with PyGithub, as JSONL.

The REST issue objects are written unchanged, one per line, oldest first. The download is
resumable: run the same command again after an interruption and it continues after the
last complete line. Rate limits are honoured by PyGithub's ``GithubRetry`` (it waits for
``Retry-After`` / ``X-RateLimit-Reset`` on 403 and 429 answers, including secondary limits).
"""

from __future__ import annotations

import json
from pathlib import Path

import requests
from github import Auth, Github, GithubException, GithubRetry
from tqdm import tqdm

from labeler.errors import LabelerError


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


def fetch_issues(repo: str, output: str | Path, *, token: str | None = None, state: str = "all",
                 per_page: int = 100, base_url: str = "https://api.github.com",
                 progress: bool = True, retries: int = 10) -> int:
    """Write all issues of ``OWNER/REPO`` to ``output``; returns how many lines it holds.

    Issues are listed oldest first (``sort=created, direction=asc``), so the listing is
    stable and a resumed run skips the pages (and the part of a page) already written."""
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise LabelerError(f"repository must be OWNER/REPO, got {repo!r}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = _complete_lines(output)
    gh = Github(auth=Auth.Token(token) if token else None, base_url=base_url, per_page=per_page, lazy=True,
                retry=GithubRetry(total=retries))
    try:
        issues = gh.get_repo(repo).get_issues(state=state, sort="created", direction="asc")
        page, skip = divmod(done, per_page)
        with open(output, "a", encoding="utf-8") as fh, \
                tqdm(initial=done, unit="issue", disable=not progress, desc=repo) as bar:
            while True:
                items = issues.get_page(page)
                if not items:
                    break
                for issue in items[skip:]:
                    # the listed object as GitHub sent it: ``raw_data`` would first re-fetch
                    # every issue on its own (PyGithub completes list items lazily)
                    fh.write(json.dumps(issue._rawData, ensure_ascii=False) + "\n")
                    done += 1
                    bar.update(1)
                fh.flush()
                skip = 0
                if len(items) < per_page:
                    break
                page += 1
    except (GithubException, requests.RequestException) as exc:
        if isinstance(exc, GithubException):
            message = exc.data.get("message") if isinstance(exc.data, dict) else exc.data
            what = f"GitHub answered {exc.status} for {repo}: {message}"
        else:
            what = f"fetching {repo} failed: {exc}"
        raise LabelerError(f"{what} ({done} issues written to {output}; run again to resume)") from None
    return done
