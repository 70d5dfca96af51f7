"""The embedded HTTP server of ``issue-labeler serve``: waitress, not werkzeug's development
server.

waitress reads requests in one asyncore loop and hands only complete requests to a fixed
pool of ``threads``, so idle or half-open connections cost a socket, never a thread (300 of
them leave the thread count where it was and a real delivery is answered at once, see
``tests/bot/test_server.py``). Idle connections are closed after ``channel_timeout`` seconds;
up to ``connection_limit`` are open at once. A body over GitHub's 25 MB limit, declared
(``Content-Length``) or chunked, is answered 413 as soon as it passes the limit, before it is
buffered in full.
"""

from __future__ import annotations

import threading

from bot.sansio import MAX_BODY_BYTES


def make_server(app, host: str = "127.0.0.1", port: int = 8000, *, threads: int = 8,
                connection_limit: int = 1000, channel_timeout: int = 30):
    """A started-on-demand waitress server (``server.run()`` blocks; ``server.effective_port``
    is the bound port, ``server.close()`` stops listening)."""
    from waitress.server import create_server

    return create_server(app, host=host, port=port, threads=threads, connection_limit=connection_limit,
                         channel_timeout=channel_timeout, cleanup_interval=min(10, channel_timeout),
                         max_request_body_size=MAX_BODY_BYTES + 1,  # waitress refuses at >= the limit
                         ident="issue-labeler", expose_tracebacks=False, clear_untrusted_proxy_headers=True)


def serve_in_thread(app, host: str, port: int, **kwargs):
    """Start :func:`make_server` in a daemon thread; returns the server."""
    server = make_server(app, host, port, **kwargs)
    threading.Thread(target=server.run, name="webhook-server", daemon=True).start()
    return server
