"""The last few traces, by id, bounded in count and in bytes (least recently used dropped first).

Torch-free: the app makes its cache at start, before any model (or PyTorch) is loaded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, Protocol, TypeVar

from qkv.serve.inputs import NotFound

__all__ = ["Cached", "TraceCache"]


class Cached(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def nbytes(self) -> int: ...


E = TypeVar("E", bound=Cached)


class TraceCache(Generic[E]):
    """At most ``count`` entries holding ``max_bytes`` together; the newest is always kept, however large
    (the text limits bound it)."""

    def __init__(self, count: int, max_bytes: int) -> None:
        self.count, self.max_bytes = count, max_bytes
        self._entries: OrderedDict[str, E] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, entry: E) -> None:
        with self._lock:
            self._entries[entry.id] = entry
            self._entries.move_to_end(entry.id)
            while len(self._entries) > 1 and (len(self._entries) > self.count or self.nbytes > self.max_bytes):
                self._entries.popitem(last=False)

    def get(self, entry_id: str) -> E:
        """The entry ``entry_id`` (now the most recently used); a 404 when it was never made or is evicted."""
        with self._lock:
            entry = self._entries.get(entry_id)
            if entry is None:
                raise NotFound(f"no trace {entry_id[:40]!r} here (never made, or dropped to make room); trace again")
            self._entries.move_to_end(entry_id)
            return entry

    @property
    def nbytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries
