"""A small thread-safe LRU for the process-wide caches of loaded models and encoders.

Loading a transformer takes seconds and memory, so a process (the bot, a benchmark) keeps
the ones it uses; a bound keeps a long-running process that meets many configurations from
holding every model it ever loaded. Evicting an entry only drops the cache's reference: an
object still held by a strategy stays alive and usable.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``maxsize`` entries; the least recently used one goes first."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()
        # re-entrant: a factory may itself use another entry of the same cache
        self._lock = threading.RLock()

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        """The value for ``key``, made by ``factory()`` when absent. The lock is held while
        the factory runs, so two threads asking for the same model load it once."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            value = factory()
            self._data[key] = value
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
            return value

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            return default

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
