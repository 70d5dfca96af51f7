"""The embedded server (waitress): slow and half-open connections do not block a delivery or
grow threads; no static route; 413 for a body over 25 MB, declared or chunked (issue #13)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from bot.app import create_app
from bot.server import serve_in_thread
from bot.store import Store
from bot_helpers import SECRET, issue_payload, signed


@pytest.fixture
def server(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    app = create_app(secret=SECRET, store=store, queue=None)
    srv = serve_in_thread(app, "127.0.0.1", 0, threads=4, channel_timeout=30)
    yield srv, f"http://127.0.0.1:{srv.effective_port}", store
    srv.close()


def test_half_open_connections_do_not_block_a_delivery_or_grow_threads(server):
    srv, base, store = server
    before = threading.active_count()
    idle = []
    for i in range(300):
        s = socket.create_connection(("127.0.0.1", srv.effective_port), timeout=5)
        if i % 2:  # half of them send half a request and stall
            s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
        idle.append(s)
    try:
        time.sleep(0.2)
        headers, body = signed(issue_payload(), delivery_id="through")
        t = time.monotonic()
        r = requests.post(f"{base}/webhook", data=body, headers=headers, timeout=5)
        assert r.status_code == 202 and time.monotonic() - t < 5
        assert threading.active_count() - before < 10  # a fixed pool: no thread per connection
        assert store.delivery("through")["status"] == "queued"
    finally:
        for s in idle:
            s.close()


def test_no_static_route(server):
    _, base, _ = server
    assert requests.get(f"{base}/static/app.py", timeout=5).status_code == 404


def _read_status(sock) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]) if data else 0


def test_declared_body_over_25_mb_gets_413_before_it_is_sent(server):
    srv, _, _ = server
    with socket.create_connection(("127.0.0.1", srv.effective_port), timeout=5) as s:
        s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 27262976\r\n\r\n")  # 26 MB declared, nothing sent
        assert _read_status(s) == 413


def test_chunked_body_over_25_mb_gets_413_while_it_is_sent(server):
    srv, _, store = server
    chunk = b"x" * (1 << 20)
    with socket.create_connection(("127.0.0.1", srv.effective_port), timeout=10) as s:
        s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"X-GitHub-Event: issues\r\nX-GitHub-Delivery: big\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        try:
            for _ in range(26):
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before all 26 MB were sent
        assert _read_status(s) == 413
    assert store.delivery("big") is None
