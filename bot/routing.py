"""Decorator routing, in the spirit of gidgethub's ``routing.py``: one function per event and
action, registered where it is written::

    router = Router()

    @router.register("issues", action="opened", check=about_an_issue)
    def issue_opened(worker, delivery):
        return worker.label(delivery)

A handler gets the :class:`~bot.worker.Worker` (store, GitHub client, model) and the
:class:`~bot.sansio.Delivery`, and returns ``(status, result)`` for the store. A handler
registered without an action gets every action of its event that has no handler of its own.

``check`` is an optional plain function ``(delivery, bot_logins) -> reason | None``: from the
payload alone it says why a delivery of that event and action is not for the bot (no issue
number, a label change made by a bot, an edit of something else than the title or body). The
web app asks :meth:`Router.route` before queueing, so such deliveries are answered ``200
ignored`` at once and never reach a worker; the worker asks it again and calls the handler.

Adding a webhook event is one decorated function in :mod:`bot.handlers`; nothing else changes.
Routing is plain Python with no I/O and never raises on an odd payload.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from bot.sansio import Delivery

log = logging.getLogger(__name__)

Handler = Callable[[Any, Delivery], "tuple[str, dict[str, Any]]"]
Check = Callable[[Delivery, frozenset[str]], "str | None"]


@dataclass(frozen=True)
class Route:
    """Where a delivery goes: ``handler`` (None: the bot does nothing with it) and why."""

    handler: Handler | None
    reason: str

    @property
    def handled(self) -> bool:
        return self.handler is not None


class Router:
    def __init__(self) -> None:
        self._routes: dict[tuple[str, str | None], tuple[Handler, Check | None]] = {}

    def add(self, handler: Handler, event: str, action: str | None = None, *, check: Check | None = None) -> None:
        key = (event, action)
        if key in self._routes:
            name = getattr(self._routes[key][0], "__name__", "?")
            raise ValueError(f"{event}.{action or '*'} already has a handler ({name})")
        self._routes[key] = (handler, check)

    def register(self, event: str, action: str | None = None, *,
                 check: Check | None = None) -> Callable[[Handler], Handler]:
        """Decorator: ``handler`` answers ``event`` (with ``action``, or every action)."""

        def decorator(handler: Handler) -> Handler:
            self.add(handler, event, action, check=check)
            return handler

        return decorator

    def routes(self) -> list[tuple[str, str | None, str]]:
        """``(event, action, handler name)`` for every registration, sorted."""
        return sorted(((e, a, getattr(h, "__name__", repr(h))) for (e, a), (h, _) in self._routes.items()),
                      key=lambda r: (r[0], r[1] or ""))

    def route(self, delivery: Delivery, bot_logins: frozenset[str] | set[str] = frozenset()) -> Route:
        """The handler for ``delivery``, or none with the reason."""
        event, action = delivery.event, delivery.action
        entry = self._routes.get((event, action)) if action is not None else None
        entry = entry or self._routes.get((event, None))
        name = f"{event}.{action}" if action is not None else event
        if entry is None:
            known = any(e == event for e, _ in self._routes)
            return Route(None, f"{name} is not handled" if known else f"event {event!r} is not handled")
        handler, check = entry
        if check is not None:
            try:
                reason = check(delivery, frozenset(bot_logins))
            except Exception as exc:  # a check must not crash the web app on an odd payload
                log.exception("routing check for %s failed", name)
                reason = f"{name}: payload not understood ({type(exc).__name__})"
            if reason:
                return Route(None, reason)
        return Route(handler, name)
