"""The durable queue: huey, with its SQLite storage on one machine or Redis beyond.

Only a ``delivery_id`` travels through the queue; the delivery itself is in the store. The
store is the source of truth, the queue only says "look at this one now":

* exactly once: a task for a delivery that is already done (a redelivery, a task enqueued
  twice, a retry racing a recovery) finds nothing to claim and returns (``Store.claim``);
* nothing lost: huey removes a task from its table when a worker takes it, so a worker
  killed mid-task loses that task; :meth:`TaskQueue.recover` (run when ``serve`` starts, and
  every few minutes by a periodic task) re-enqueues every unfinished delivery;
* retries: the worker returns how long to wait and the task schedules itself again. The
  attempt count, the wait and the last error live in the store, not in huey's task
  (huey's ``retries=``/``RetryTask`` keep the count in the queued message only), so the
  bound on attempts survives a restart and every error is visible in the database.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from huey import Huey, RedisHuey, SqliteHuey, crontab

from bot.store import Store
from bot.worker import Worker

log = logging.getLogger(__name__)

def make_huey(url: str, name: str = "issue-labeler") -> Huey:
    """``sqlite:///path`` (or a plain path) -> SqliteHuey; ``redis://...`` -> RedisHuey (needs
    the ``redis`` package)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False)
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
    if path.startswith("sqlite:"):
        raise ValueError(f"queue URL {url!r}: use sqlite:///path/to/file or redis://host:port/db")
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str(Path(path).expanduser()), results=False)


class TaskQueue:
    """Registers the bot's tasks on a huey instance. ``worker_factory`` builds the
    :class:`Worker` on first use, inside the process that runs tasks; huey's thread workers
    (``-k thread -w N``) share it, so it is built once under a lock, and
    :meth:`recover_once` (huey's ``on_startup`` runs in every worker thread) recovers once."""

    def __init__(self, huey: Huey, worker_factory: Callable[[], Worker], *, recover_every_minutes: int = 5,
                 stale_after: float = 600.0):
        self.huey = huey
        self._worker_factory = worker_factory
        self._worker: Worker | None = None
        self._lock = threading.Lock()
        self._recovered = False
        self.stale_after = stale_after

        @huey.task(name="bot.process_delivery")
        def process_delivery(delivery_id: str) -> str:
            outcome = self.worker.process(delivery_id)
            if outcome.retry_in is not None:
                process_delivery.schedule((delivery_id,), delay=outcome.retry_in)
            return outcome.status

        @huey.periodic_task(crontab(minute=f"*/{recover_every_minutes}"), name="bot.recover")
        def recover_periodically() -> int:
            return self.recover(self.stale_after)

        self.task = process_delivery
        self.recover_task = recover_periodically

    @property
    def worker(self) -> Worker:
        worker = self._worker
        if worker is None:
            with self._lock:  # two threads' first tasks must not build two workers (two models)
                if self._worker is None:
                    self._worker = self._worker_factory()
                worker = self._worker
        return worker

    def enqueue(self, delivery_id: str, delay: float | None = None) -> None:
        if delay:
            self.task.schedule((delivery_id,), delay=delay)
        else:
            self.task(delivery_id)

    def depth(self) -> dict[str, int]:
        """Tasks waiting to run now, and scheduled for later (retries, delays)."""
        return {"pending": self.huey.pending_count(), "scheduled": self.huey.scheduled_count()}

    def recover(self, stale_after: float | None = None, store: Store | None = None) -> int:
        """Re-enqueue every unfinished delivery (see the module docstring); returns how many."""
        store = store or self.worker.store
        unfinished = store.recover(self.stale_after if stale_after is None else stale_after)
        for delivery_id, due_in in unfinished:
            self.enqueue(delivery_id, delay=due_in or None)
        if unfinished:
            log.info("re-enqueued %d unfinished deliveries", len(unfinished))
        return len(unfinished)

    def recover_once(self) -> int | None:
        """:meth:`recover` the first time it is called on this queue, from whichever thread;
        None on every later call."""
        with self._lock:
            if self._recovered:
                return None
            self._recovered = True
        return self.recover()
