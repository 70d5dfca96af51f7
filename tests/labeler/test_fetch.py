"""`fetch` against GitHub's real recorded pagination exchange (octokit/fixtures), mocked
with `responses`: all pages, objects written unchanged, resumable, rate limits honoured;
incremental `fetch_updates` (retrain): since the last run only, merged by number."""

import json
import re
from urllib.parse import parse_qs, urlparse

import pytest
import responses

from labeler.errors import FetchError, LabelerError
from labeler.fetch import STATE_FILE, fetch_issues, fetch_updates

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


# -- incremental: fetch_updates ------------------------------------------------------------
REPO = "octokit-fixture-org/paginate-issues"


def serve_updates(pages, fail_on=None):
    """The recorded pages for a listing without ``since``; a later one answers ``pages``
    given as a callable of the ``since`` asked. Records each request's query."""
    queries = []

    def callback(request):
        query = parse_qs(urlparse(request.url).query)
        queries.append(query)
        assert query["sort"] == ["updated"] and query["direction"] == ["asc"] and query["state"] == ["all"]
        page = int(query.get("page", ["1"])[0])
        if fail_on == page:
            return 502, {"Content-Type": "application/json"}, json.dumps({"message": "Bad gateway"})
        listing = pages(query["since"][0]) if "since" in query else pages
        body = listing[page - 1] if page <= len(listing) else []
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    responses.add_callback(responses.GET, URL, callback=callback)
    return queries


@responses.activate
def test_fetch_updates_reads_only_what_changed(pages, tmp_path):
    bodies = [body for body, _ in pages]
    queries = serve_updates(bodies)
    path, result = fetch_updates(REPO, tmp_path, per_page=3, progress=False)
    assert (result.read, result.new, result.total, result.since) == (13, 13, 13, None)
    assert "since" not in queries[0]
    first = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(i["number"] for i in first) == list(range(1, 14))
    assert json.loads((tmp_path / STATE_FILE).read_text())["since"] == "2017-10-10T16:00:00Z"

    five = next(i for i in first if i["number"] == 5)
    relabelled = {**five, "labels": [{"name": "bug"}], "updated_at": "2017-10-12T09:00:00Z"}
    stale = {**first[0], "title": "an older copy", "updated_at": "2017-10-01T00:00:00Z"}
    new = {**five, "number": 14, "id": 99, "created_at": "2017-10-11T00:00:00Z", "updated_at": "2017-10-11T00:00:00Z"}
    responses.reset()
    queries = serve_updates(lambda since: [[stale, new, relabelled]] if since == "2017-10-10T16:00:00Z" else [])
    path, result = fetch_updates(REPO, tmp_path, per_page=3, progress=False)
    assert queries[0]["since"] == ["2017-10-10T16:00:00Z"]  # only issues updated since the last run
    assert (result.read, result.new, result.total, result.since) == (3, 1, 14, "2017-10-10T16:00:00Z")
    after = {i["number"]: i for i in map(json.loads, path.read_text().splitlines())}
    assert after[5]["labels"] == [{"name": "bug"}]          # the newer copy won
    assert after[first[0]["number"]] == first[0]            # an older copy did not
    assert list(after)[-1] == 14                            # oldest first, by created_at
    assert json.loads((tmp_path / STATE_FILE).read_text())["since"] == "2017-10-12T09:00:00Z"


@responses.activate
def test_fetch_updates_interrupted_changes_nothing(pages, tmp_path):
    serve_updates([body for body, _ in pages])
    path, _ = fetch_updates(REPO, tmp_path, per_page=3, progress=False)
    before, state = path.read_bytes(), (tmp_path / STATE_FILE).read_bytes()
    responses.reset()
    serve_updates(lambda since: [[{"number": 1}] * 3, [{"number": 2}] * 3], fail_on=2)
    with pytest.raises(FetchError, match="502.*left as it was"):
        fetch_updates(REPO, tmp_path, per_page=3, progress=False, retries=0)
    assert path.read_bytes() == before and (tmp_path / STATE_FILE).read_bytes() == state


def test_fetch_updates_refuses_another_repositorys_data(tmp_path):
    (tmp_path / STATE_FILE).write_text(json.dumps({"repo": "someone/else", "since": None}))
    with pytest.raises(LabelerError, match="holds the issues of someone/else"):
        fetch_updates(REPO, tmp_path)
