"""The Flask app: a thin adapter around :mod:`bot.sansio`.

``POST /webhook``: size limit, signature, headers and JSON are checked by
:func:`bot.sansio.parse_delivery`; an accepted delivery is stored (its ``X-GitHub-Delivery``
is unique in the store) and its id enqueued; the answer is 202 within milliseconds, the
labelling happens in the worker. A redelivery is answered 200 and not enqueued again; pings
and deliveries no handler takes (:mod:`bot.routing`, :mod:`bot.handlers`) are stored as
``ignored`` and answered 200.

``GET /healthz``: queue depth, delivery counts by status, the model in use, dry-run or not,
and with a model registry its active version per repository (and, where the web app shares
the worker's process, the version that process scores each repository with), read from the
registry's small JSON files: no model is loaded to answer.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from bot import sansio
from bot.handlers import router as default_router
from bot.queue import TaskQueue
from bot.routing import Router
from bot.store import Store

log = logging.getLogger(__name__)


def create_app(*, secret: str, store: Store, queue: TaskQueue | None, model: str = "",
               dry_run: bool = False, bot_logins: frozenset[str] = frozenset(),
               router: Router | None = None, registry: Callable[[], dict[str, Any] | None] | None = None) -> Flask:
    """Build the web app. ``queue`` None stores deliveries without enqueueing (they are picked
    up by :meth:`TaskQueue.recover`), which tests use to look at the web side alone.
    ``router`` decides which deliveries are queued (default: :data:`bot.handlers.router`);
    the worker must use the same one. ``registry`` returns ``/healthz``'s ``registry``
    section (:func:`bot.predictor.registry_status`; None: no registry)."""
    if not secret:
        raise ValueError("a webhook secret is required")
    router = router or default_router
    app = Flask("issue_labeler_bot", static_folder=None)  # no static route: the bot serves no files
    # werkzeug refuses to read a larger body (413) before we hash anything
    app.config["MAX_CONTENT_LENGTH"] = sansio.MAX_BODY_BYTES

    def error(status: int, message: str) -> tuple[Response, int]:
        return jsonify({"error": message}), status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        return error(413, "body is over GitHub's 25 MB limit")

    @app.post("/webhook")
    def webhook():
        body = request.get_data(cache=False)
        try:
            delivery = sansio.parse_delivery(request.headers, body, secret)
        except sansio.WebhookError as exc:
            log.info("rejected delivery %s (event %s): %s", sansio.safe_header(request.headers.get("X-GitHub-Delivery")),
                     sansio.safe_header(request.headers.get("X-GitHub-Event")), sansio.safe_header(exc.message, 300))
            return error(exc.status, exc.message)
        ping = delivery.event == "ping"  # the webhook's handshake, not an event for a handler
        route = router.route(delivery, bot_logins)
        final = ping or not route.handled
        # the validated payload (unpaired surrogates and NULs replaced: storable anywhere)
        payload_json = body.decode("utf-8") if delivery.payload is None else json.dumps(delivery.payload,
                                                                                      ensure_ascii=False)
        # a redelivery of a *failed* delivery reopens it (Store.add_delivery)
        new = store.add_delivery(delivery.delivery_id, delivery.event, payload_json, action=delivery.action,
                                 repo=delivery.repo, issue_number=delivery.issue_number,
                                 installation_id=delivery.installation_id,
                                 status="ignored" if final else "queued")
        if not new:
            return jsonify({"status": "duplicate", "delivery": delivery.delivery_id,
                            "detail": "already received; not processed again"}), 200
        if ping:
            return jsonify({"status": "pong", "zen": delivery.payload.get("zen")}), 200
        if final:
            return jsonify({"status": "ignored", "reason": route.reason}), 200
        if queue is not None:
            try:
                queue.enqueue(delivery.delivery_id)
            except Exception:  # stored durably: recovery will enqueue it
                log.exception("could not enqueue %s; it will be recovered", sansio.safe_header(delivery.delivery_id))
        return jsonify({"status": "queued", "delivery": delivery.delivery_id}), 202

    @app.get("/healthz")
    def healthz():
        info: dict[str, Any] = {"status": "ok", "model": model, "dry_run": dry_run}
        try:
            info["queue"] = queue.depth() if queue is not None else None
            info["deliveries"] = store.status_counts()
            if registry is not None:
                info["registry"] = registry()
            if info["deliveries"].get("poison"):  # quarantined: an operator should look
                info["poison"] = [d["delivery_id"] for d in store.deliveries("poison", 20)]
        except Exception as exc:
            info["status"] = "degraded"
            info["error"] = str(exc)
            return jsonify(info), 503
        return jsonify(info), 200

    return app


def create_app_from_env():
    """For gunicorn/waitress: ``gunicorn 'bot.app:create_app_from_env()'``. Reads the
    environment (bot.settings), fails at startup without ``GITHUB_WEBHOOK_SECRET``."""
    from bot.predictor import describe_model, registry_status
    from bot.queue import make_huey
    from bot.settings import Settings, build_worker, check_backends

    settings = Settings.from_env()
    secret = settings.require_secret()
    check_backends(settings)
    store = Store(settings.database_url)
    queue = TaskQueue(make_huey(settings.queue_url), lambda: build_worker(settings))
    model = describe_model(settings.bundle, registry=settings.registry, reload_seconds=settings.reload_seconds)

    def registry() -> dict[str, Any] | None:
        # this process only answers HTTP; the worker (huey_consumer) loads the models: no "loaded"
        return registry_status(settings.registry) if settings.registry else None

    return create_app(secret=secret, store=store, queue=queue, model=model, dry_run=settings.dry_run,
                      bot_logins=settings.bot_logins, registry=registry)
