"""A small LRU cache of rendered answers, keyed by the index generation.

A repeated question (same text and the same options) is answered from here without encoding,
searching or rendering again. The key starts with the generation of the index version that
answered, so a document change, which makes a new generation live, makes every older entry
unreachable (and they age out of the LRU). Thread-safe: the service fills it from worker
threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from typing import Generic, TypeVar

V = TypeVar("V")


def ask_key(
    generation: int,
    question: str,
    *,
    top_k: int | None,
    doc_ids: Iterable[str] | None,
    author: str | None,
    history: Sequence[str] | None,
    mode: str | None,
    speaker: str | None = None,
) -> tuple[Hashable, ...]:
    """The cache key of one /ask request against one index generation.

    Every option that can change the answer is part of it, as given (``doc_ids`` keep their
    order: it is the caller's, and a different order is merely a miss)."""
    return (
        generation,
        question,
        top_k,
        None if doc_ids is None else tuple(doc_ids),
        author,
        None if history is None else tuple(history),
        mode,
        speaker,
    )


class LRUCache(Generic[V]):
    """At most ``capacity`` entries; the least recently used goes first. ``capacity`` 0 turns
    the cache off (nothing is stored)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            try:
                value = self._items[key]
            except KeyError:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: V) -> None:
        if self.capacity == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
