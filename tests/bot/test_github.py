"""PyGithubClient against GitHub mocked with ``responses``, shaped after the recorded
exchanges in ../shared/fixtures/github-rest (hand-written equivalents when that folder is
absent), and the retry-delay rules."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
import responses

from bot.github import (DEFAULT_LABELS, PermanentGitHubError, PyGithubClient, TransientGitHubError,
                        load_private_key, retry_delay)

# PyGithub spells the default port out in its URLs
API = "https://api.github.com:443"
REPO = "octokit-fixture-org/hello-world"
RATE_HEADERS = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": "1507651200",
                "Content-Type": "application/json; charset=utf-8"}
LABELS_JSON = [{"id": 1000 + i, "node_id": "MDA6RW50aXR5MQ==", "url": f"{API}/repos/{REPO}/labels/{name}",
                "name": name, "color": "ededed", "default": True, "description": desc}
               for i, (name, desc) in enumerate(DEFAULT_LABELS.items())]


def recorded(shared_fixtures, scenario: str, method: str, path_end: str) -> dict:
    """One recorded exchange: {status, headers (str values, no hop-by-hop), response}."""
    for ex in json.loads((shared_fixtures / "github-rest" / scenario / "normalized-fixture.json").read_text()):
        if ex["method"].lower() == method.lower() and ex["path"].endswith(path_end):
            headers = {k: str(v) for k, v in ex["headers"].items()
                       if k.lower() not in ("content-length", "connection", "transfer-encoding")}
            return {"status": ex["status"], "headers": headers, "response": ex["response"], "body": ex["body"]}
    raise LookupError(f"{scenario}: no {method} ...{path_end}")


@pytest.fixture
def client():
    return PyGithubClient(token="t0ken", throttle=False)


@responses.activate
def test_labels_with_descriptions_from_the_recorded_exchange(client, shared_fixtures):
    ex = recorded(shared_fixtures, "labels", "get", "/labels/labels")
    responses.get(f"{API}/repos/{REPO}/labels", json=ex["response"], status=ex["status"], headers=ex["headers"])
    labels = client.labels(REPO, None)
    assert labels["bug"] == "Something isn't working" and "documentation" in labels
    assert responses.calls[0].request.headers["Authorization"] == "token t0ken"


@responses.activate
def test_labels_hand_written(client):
    responses.get(f"{API}/repos/{REPO}/labels", json=LABELS_JSON, headers=RATE_HEADERS)
    assert client.labels(REPO, None) == DEFAULT_LABELS


@responses.activate
def test_add_labels_is_one_post(client, shared_fixtures):
    ex = recorded(shared_fixtures, "add-labels-to-issue", "post", "/issues/1/labels")
    responses.post(f"{API}/repos/{REPO}/issues/1/labels", json=ex["response"], status=ex["status"],
                   headers=ex["headers"])
    client.add_labels(REPO, 1, ["Foo", "bAr", "baZ"], None)
    assert len(responses.calls) == 1
    sent = json.loads(responses.calls[0].request.body)
    # GitHub takes the bare list (PyGithub) or {"labels": [...]} (the recorded octokit call)
    assert (sent if isinstance(sent, list) else sent["labels"]) == ex["body"]["labels"] == ["Foo", "bAr", "baZ"]


@responses.activate
def test_config_from_the_default_branch_and_missing_config(client):
    text = "mode: suggest\n"
    responses.get(f"{API}/repos/{REPO}/contents/.github/issue-labeler.yml",
                  json={"type": "file", "encoding": "base64", "name": "issue-labeler.yml",
                        "path": ".github/issue-labeler.yml", "sha": "abc", "size": len(text),
                        "content": base64.b64encode(text.encode()).decode()}, headers=RATE_HEADERS)
    assert client.config_text(REPO, None) == text
    assert "ref" not in responses.calls[0].request.url  # no ref: GitHub reads the default branch
    responses.replace(responses.GET, f"{API}/repos/{REPO}/contents/.github/issue-labeler.yml",
                      json={"message": "Not Found"}, status=404)
    assert client.config_text(REPO, None) is None


@responses.activate
def test_comment_created_then_edited_in_place(client):
    responses.post(f"{API}/repos/{REPO}/issues/3/comments", json={"id": 77, "body": "one"}, status=201)
    responses.patch(f"{API}/repos/{REPO}/issues/comments/77", json={"id": 77, "body": "two"})
    assert client.upsert_comment(REPO, 3, None, "one", None) == 77
    assert client.upsert_comment(REPO, 3, 77, "two", None) == 77
    assert [c.request.method for c in responses.calls] == ["POST", "PATCH"]  # lazy: no GET first
    assert json.loads(responses.calls[1].request.body) == {"body": "two"}
    # the comment was deleted by someone: a new one is posted
    responses.replace(responses.PATCH, f"{API}/repos/{REPO}/issues/comments/77", json={"message": "Not Found"},
                      status=404)
    responses.replace(responses.POST, f"{API}/repos/{REPO}/issues/3/comments", json={"id": 78}, status=201)
    assert client.upsert_comment(REPO, 3, 77, "three", None) == 78


@responses.activate
def test_issue_reread(client):
    responses.get(f"{API}/repos/{REPO}/issues/3", json={"number": 3, "title": "T", "body": None, "state": "open",
                                                        "labels": [{"name": "bug"}]})
    assert client.issue(REPO, 3, None) == {"title": "T", "body": None, "labels": [{"name": "bug"}], "state": "open"}


# -- errors -------------------------------------------------------------------------------------

@responses.activate
def test_secondary_rate_limit_403_is_transient(client):
    responses.get(f"{API}/repos/{REPO}/labels", status=403, headers={"Retry-After": "42"},
                  json={"message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                                   "before you try again.",
                        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
    with pytest.raises(TransientGitHubError) as err:
        client.labels(REPO, None)
    assert err.value.status == 403 and err.value.delay == 42
    assert len(responses.calls) == 1  # PyGithub did not sleep and retry by itself


@responses.activate
def test_secondary_rate_limit_without_retry_after_waits_a_minute(client):
    responses.get(f"{API}/repos/{REPO}/labels", status=403,
                  json={"message": "You have exceeded a secondary rate limit."})
    with pytest.raises(TransientGitHubError) as err:
        client.labels(REPO, None)
    assert err.value.delay >= 60


@responses.activate
def test_primary_rate_limit_waits_until_reset():
    now = 1_700_000_000.0
    client = PyGithubClient(token="t", throttle=False, clock=lambda: now)
    responses.get(f"{API}/repos/{REPO}/labels", status=403, json={"message": "API rate limit exceeded for user."},
                  headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now) + 120)})
    with pytest.raises(TransientGitHubError) as err:
        client.labels(REPO, None)
    assert err.value.delay == pytest.approx(121)


@responses.activate
def test_429_honours_retry_after(client):
    responses.post(f"{API}/repos/{REPO}/issues/1/labels", status=429, headers={"Retry-After": "3"},
                   json={"message": "Too Many Requests"})
    with pytest.raises(TransientGitHubError) as err:
        client.add_labels(REPO, 1, ["bug"], None)
    assert err.value.delay == 3 and err.value.status == 429


@pytest.mark.parametrize("status", [500, 502, 503])
@responses.activate
def test_5xx_is_transient(client, status):
    responses.get(f"{API}/repos/{REPO}/labels", status=status, json={"message": "Server Error"})
    with pytest.raises(TransientGitHubError):
        client.labels(REPO, None)


@responses.activate
def test_network_error_is_transient(client):
    import requests

    responses.get(f"{API}/repos/{REPO}/labels", body=requests.ConnectionError("connection refused"))
    with pytest.raises(TransientGitHubError):
        client.labels(REPO, None)


@responses.activate
def test_422_validation_error_is_permanent(client, shared_fixtures):
    ex = recorded(shared_fixtures, "errors", "post", "/errors/labels")
    responses.post(f"{API}/repos/{REPO}/issues/1/labels", json=ex["response"], status=ex["status"],
                   headers=ex["headers"])
    with pytest.raises(PermanentGitHubError) as err:
        client.add_labels(REPO, 1, ["bug"], None)
    assert err.value.status == 422 and "Validation Failed" in str(err.value)


@responses.activate
def test_403_without_rate_limit_is_permanent(client):
    responses.post(f"{API}/repos/{REPO}/issues/1/labels", status=403,
                   json={"message": "Resource not accessible by integration"})
    with pytest.raises(PermanentGitHubError):
        client.add_labels(REPO, 1, ["bug"], None)


def test_retry_delay_rules():
    now = 1000.0
    assert retry_delay(429, {"Retry-After": "5"}, 1, now=now) == 5
    assert retry_delay(403, {"retry-after": "Thu, 01 Jan 1970 00:17:00 GMT"}, 1, now=now) == 20
    assert retry_delay(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1100"}, 1, now=now) == 101
    assert retry_delay(403, {}, 1, now=now, message="secondary rate limit") == 60
    assert retry_delay(429, {}, 8, now=now) == 256
    assert retry_delay(502, {}, 1, now=now) == 2 and retry_delay(502, {}, 3, now=now) == 8
    assert retry_delay(None, None, 2, now=now) == 4
    assert retry_delay(503, {"Retry-After": "99999"}, 1, now=now, cap=600) == 600
    assert retry_delay(404, {}, 1, now=now) is None
    assert retry_delay(403, {}, 1, now=now, message="Resource not accessible") is None


# -- GitHub App authentication ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


@responses.activate
def test_app_installation_token_is_cached_until_it_expires(pem):
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()]
    client = PyGithubClient(app_id=123, private_key=pem, throttle=False, clock=lambda: now[0])
    expires = datetime.fromtimestamp(now[0], timezone.utc) + timedelta(hours=1)

    def token_reply(request):
        n = len([c for c in responses.calls if "access_tokens" in c.request.url])
        assert request.headers["Authorization"].startswith("Bearer ")  # the App's JWT
        return 201, {}, json.dumps({"token": f"ghs_{n}", "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    "permissions": {"issues": "write"}, "repository_selection": "all"})

    responses.add_callback(responses.POST, f"{API}/app/installations/99/access_tokens", callback=token_reply)
    responses.get(f"{API}/repos/{REPO}/labels", json=LABELS_JSON)
    client.labels(REPO, 99)
    client.labels(REPO, 99)
    assert client.token_requests == 1
    assert responses.calls[-1].request.headers["Authorization"] == "token ghs_0"
    now[0] += 3600 - 30  # less than a minute left: a new token
    client.labels(REPO, 99)
    assert client.token_requests == 2
    assert responses.calls[-1].request.headers["Authorization"] == "token ghs_1"


def test_app_mode_needs_an_installation_id(pem):
    client = PyGithubClient(app_id=123, private_key=pem, throttle=False)
    with pytest.raises(PermanentGitHubError):
        client.labels(REPO, None)


def test_private_key_as_text_escaped_text_or_file(pem, tmp_path):
    assert load_private_key(pem) == pem
    assert load_private_key(pem.replace("\n", "\\n")) == pem
    path = tmp_path / "key.pem"
    path.write_text(pem)
    assert load_private_key(str(path)) == pem
    with pytest.raises(ValueError):
        load_private_key(str(tmp_path / "missing.pem"))


def test_retry_after_on_a_non_retryable_status_is_ignored():
    assert retry_delay(404, {"Retry-After": "5"}, 1, now=0) is None
    assert retry_delay(422, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "100"}, 1, now=0) is None
    assert retry_delay(403, {"Retry-After": "5"}, 1, now=0) == 5  # GitHub's secondary-limit signal


@responses.activate
def test_labels_follow_link_pagination(client):
    from responses import matchers

    page2 = "https://api.github.com/repositories/1/labels?per_page=100&page=2"  # as GitHub writes it
    responses.get(f"{API}/repos/{REPO}/labels", json=LABELS_JSON[:5],
                  headers={"Link": f'<{page2}>; rel="next", <{page2}>; rel="last"'},
                  match=[matchers.query_param_matcher({"per_page": "100"})])
    responses.get(f"{API}/repositories/1/labels", json=LABELS_JSON[5:],
                  match=[matchers.query_param_matcher({"per_page": "100", "page": "2"})])
    assert client.labels(REPO, None) == DEFAULT_LABELS and len(responses.calls) == 2


@responses.activate
def test_repo_installation_as_the_app_and_none_with_a_token(pem, client):
    responses.get(f"{API}/repos/{REPO}/installation", json={"id": 99, "app_id": 123})
    app_client = PyGithubClient(app_id=123, private_key=pem, throttle=False)
    assert app_client.repo_installation(REPO) == 99
    assert responses.calls[0].request.headers["Authorization"].startswith("Bearer ")  # the App's JWT
    assert client.repo_installation(REPO) is None and len(responses.calls) == 1  # a token needs none
