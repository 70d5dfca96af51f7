"""The huey instance for a separate worker process (production)::

    huey_consumer bot.huey_app.huey -w 2 -k thread

It reads the same environment variables as the web app (bot.settings) and re-enqueues
unfinished deliveries when it starts."""

from __future__ import annotations

from bot.queue import TaskQueue, make_huey
from bot.settings import Settings, build_worker

settings = Settings.from_env()
huey = make_huey(settings.queue_url)
queue = TaskQueue(huey, lambda: build_worker(settings))
_recovered = False


@huey.on_startup()
def _recover_once() -> None:
    global _recovered
    if not _recovered:  # on_startup runs once per worker thread
        _recovered = True
        queue.recover()
