"""Failed authentications per client address, for both auth middlewares (bounded memory)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED_CLIENTS = 10_000  # addresses with recent failures; the oldest are forgotten first


@dataclass
class _Failures:
    since: float
    count: int


class FailureThrottle:
    """Failed authentications per client address in fixed windows; bounded memory."""

    def __init__(
        self,
        *,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_TRACKED_CLIENTS,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._max_clients = max_clients
        self._clients: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None if it is not throttled."""
        entry = self._current(client)
        if entry is None or entry.count < self._limit:
            return None
        return max(1, math.ceil(entry.since + self._window - self._clock()))

    def failed(self, client: str) -> None:
        entry = self._current(client)
        if entry is None:
            if len(self._clients) >= self._max_clients:
                self._clients.popitem(last=False)
            entry = self._clients[client] = _Failures(since=self._clock(), count=0)
        entry.count += 1

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def _current(self, client: str) -> _Failures | None:
        entry = self._clients.get(client)
        if entry is not None and self._clock() - entry.since >= self._window:
            del self._clients[client]
            return None
        return entry
