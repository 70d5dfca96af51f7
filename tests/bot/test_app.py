"""The Flask adapter: status codes, what is stored, what is queued, /healthz."""

from __future__ import annotations


import pytest

from bot.app import create_app
from bot.queue import TaskQueue, make_huey
from bot.sansio import MAX_BODY_BYTES, sign
from bot_helpers import SECRET, issue_payload, signed


@pytest.fixture
def queue(tmp_path, worker):
    return TaskQueue(make_huey(f"sqlite:///{tmp_path / 'queue.sqlite3'}"), lambda: worker)


@pytest.fixture
def client(store, queue):
    app = create_app(secret=SECRET, store=store, queue=queue, model="test model", dry_run=True)
    return app.test_client()


def post(client, payload, event="issues", delivery_id=None, **override):
    headers, body = signed(payload, event, delivery_id)
    headers.update(override)
    return client.post("/webhook", data=body, headers=headers)


def test_accepted_issue_is_stored_queued_and_answered_202(client, store, queue):
    r = post(client, issue_payload(), delivery_id="d1")
    assert r.status_code == 202 and r.json["status"] == "queued"
    assert store.delivery("d1")["status"] == "queued" and queue.depth()["pending"] == 1
    assert store.delivery("d1")["repo"] == "octo/repo"


def test_redelivery_is_acknowledged_not_queued_again(client, store, queue):
    assert post(client, issue_payload(), delivery_id="d1").status_code == 202
    r = post(client, issue_payload(), delivery_id="d1")
    assert r.status_code == 200 and r.json["status"] == "duplicate"
    assert queue.depth()["pending"] == 1


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64])
def test_missing_or_wrong_signature_is_401_and_nothing_stored(client, store, queue, signature):
    headers, body = signed(issue_payload(), delivery_id="bad")
    if signature is None:
        del headers["X-Hub-Signature-256"]
    else:
        headers["X-Hub-Signature-256"] = signature
    r = client.post("/webhook", data=body, headers=headers)
    assert r.status_code == 401
    assert store.delivery("bad") is None and store.status_counts() == {} and queue.depth()["pending"] == 0


def test_malformed_json_missing_headers_wrong_content_type(client, store):
    body = b"{oops"
    headers, _ = signed({})
    headers["X-Hub-Signature-256"] = sign(body, SECRET)
    assert client.post("/webhook", data=body, headers=headers).status_code == 400
    headers, body = signed(issue_payload())
    del headers["X-GitHub-Event"]
    assert client.post("/webhook", data=body, headers=headers).status_code == 400
    headers, body = signed(issue_payload())
    headers["Content-Type"] = "text/plain"
    assert client.post("/webhook", data=body, headers=headers).status_code == 415
    assert store.status_counts() == {}


def test_oversized_body_is_413(client, store):
    body = b" " * (MAX_BODY_BYTES + 1)
    headers, _ = signed({})
    r = client.post("/webhook", data=body, headers=headers)
    assert r.status_code == 413 and store.status_counts() == {}


def test_get_on_webhook_is_405(client):
    assert client.get("/webhook").status_code == 405


def test_ping_is_answered(client, store, queue):
    r = post(client, {"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping", delivery_id="p")
    assert r.status_code == 200 and r.json["status"] == "pong"
    assert store.delivery("p")["status"] == "ignored" and queue.depth()["pending"] == 0


def test_unhandled_event_is_acknowledged_and_ignored(client, store, queue):
    r = post(client, {"action": "created", "comment": {}}, event="issue_comment", delivery_id="c")
    assert r.status_code == 200 and r.json["status"] == "ignored"
    assert store.delivery("c")["status"] == "ignored" and queue.depth()["pending"] == 0


def test_healthz_reports_queue_depth_and_model(client):
    post(client, issue_payload())
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json["queue"] == {"pending": 1, "scheduled": 0} and r.json["model"] == "test model"
    assert r.json["deliveries"] == {"queued": 1} and r.json["dry_run"] is True


def test_an_app_without_secret_cannot_be_built(store):
    with pytest.raises(ValueError):
        create_app(secret="", store=store, queue=None)


def test_create_app_from_env_requires_the_secret(monkeypatch, tmp_path):
    from bot.app import create_app_from_env
    from bot.settings import SettingsError

    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("ISSUE_LABELER_DATABASE_URL", f"sqlite:///{tmp_path / 's.sqlite3'}")
    monkeypatch.setenv("ISSUE_LABELER_QUEUE_URL", f"sqlite:///{tmp_path / 'q.sqlite3'}")
    with pytest.raises(SettingsError, match="GITHUB_WEBHOOK_SECRET"):
        create_app_from_env()
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    app = create_app_from_env()
    assert app.test_client().get("/healthz").json["dry_run"] is True


def test_every_documented_payload_is_accepted_with_a_valid_signature(client, store, shared_fixtures):
    base = shared_fixtures / "github-webhooks" / "api.github.com"
    seen = 0
    for event in ("issues", "ping", "installation", "installation_repositories"):
        for path in sorted((base / event).glob("*.json")):
            body = path.read_bytes()
            headers, _ = signed(b"", event=event, delivery_id=f"{event}/{path.name}")
            headers["X-Hub-Signature-256"] = sign(body, SECRET)
            r = client.post("/webhook", data=body, headers=headers)
            assert r.status_code in (200, 202), (path, r.json)
            seen += 1
    assert seen > 30
    assert store.delivery("issues/opened.payload.json")["status"] == "queued"
    assert store.delivery("issues/deleted.payload.json")["status"] == "ignored"
    assert store.delivery("installation/created.payload.json")["status"] == "queued"
    assert store.delivery("ping/payload.json")["status"] == "ignored"
