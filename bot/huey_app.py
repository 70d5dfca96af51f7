"""The huey instance for a separate worker process (production)::

    huey_consumer bot.huey_app.huey -w 2 -k thread

It reads the same environment variables as the web app (bot.settings) and re-enqueues
unfinished deliveries when it starts. The worker (and its model) is built by the first task
that needs it, once for all threads (:class:`bot.queue.TaskQueue`)."""

from __future__ import annotations

from bot.queue import TaskQueue, make_huey
from bot.settings import Settings, build_worker

settings = Settings.from_env()
huey = make_huey(settings.queue_url)
queue = TaskQueue(huey, lambda: build_worker(settings))


@huey.on_startup()
def _recover_once() -> None:
    queue.recover_once()  # on_startup runs in every worker thread; the recovery runs once
