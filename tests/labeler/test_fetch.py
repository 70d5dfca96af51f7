"""`fetch` against GitHub's real recorded pagination exchange (octokit/fixtures), mocked
with `responses`: all pages, objects written unchanged, resumable, rate limits honoured."""

import json
import re

import pytest
import responses

from labeler.errors import LabelerError
from labeler.fetch import fetch_issues

URL = re.compile(r"https://api\.github\.com(:443)?/repos/octokit-fixture-org/paginate-issues/issues.*")


@pytest.fixture
def pages(shared_fixtures):
    exchanges = json.loads((shared_fixtures / "github-rest/paginate-issues/normalized-fixture.json").read_text())
    return [(e["response"], e["headers"]) for e in exchanges]


def serve(pages, fail_on=None, rate_limit_once=None):
    calls = []

    def callback(request):
        found = re.search(r"[?&]page=(\d+)", request.url)
        page = int(found.group(1)) if found else 1
        calls.append(page)
        assert "state=all" in request.url and "direction=asc" in request.url
        if rate_limit_once == page and calls.count(page) == 1:
            return 429, {"Retry-After": "1", "Content-Type": "application/json"}, json.dumps({"message": "slow down"})
        if fail_on == page:
            return 502, {"Content-Type": "application/json"}, json.dumps({"message": "Bad gateway"})
        body, headers = pages[page - 1] if page <= len(pages) else ([], {})
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    responses.add_callback(responses.GET, URL, callback=callback)
    return calls


@responses.activate
def test_fetch_all_pages_unchanged(pages, tmp_path):
    serve(pages)
    out = tmp_path / "issues.jsonl"
    assert fetch_issues("octokit-fixture-org/paginate-issues", out, per_page=3, progress=False) == 13
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written == [issue for body, _ in pages for issue in body]


@responses.activate
def test_fetch_resumes_after_interruption(pages, tmp_path):
    out = tmp_path / "issues.jsonl"
    serve(pages, fail_on=3)
    with pytest.raises(LabelerError, match="502.*6 issues written.*run again to resume"):
        fetch_issues("octokit-fixture-org/paginate-issues", out, per_page=3, progress=False, retries=0)
    with open(out, "a") as fh:
        fh.write('{"partial": ')  # a line cut off by a crash
    responses.reset()
    calls = serve(pages)
    assert fetch_issues("octokit-fixture-org/paginate-issues", out, per_page=3, progress=False) == 13
    assert calls[0] == 3  # pages 1-2 not fetched again
    numbers = [json.loads(line)["number"] for line in out.read_text().splitlines()]
    assert len(numbers) == len(set(numbers)) == 13


@responses.activate
def test_fetch_waits_on_rate_limit(pages, tmp_path):
    calls = serve(pages, rate_limit_once=2)
    assert fetch_issues("octokit-fixture-org/paginate-issues", tmp_path / "i.jsonl", per_page=3, progress=False) == 13
    assert calls.count(2) == 2


def test_fetch_rejects_bad_repo_name(tmp_path):
    with pytest.raises(LabelerError, match="OWNER/REPO"):
        fetch_issues("just-a-name", tmp_path / "i.jsonl")
