"""Group commit: the tracker writes made in one event-loop turn commit as one transaction.

Every command ends with two small writes (the call's new state, the command log entry). Each in
its own transaction costs a WAL append and the locking around it; at 200 commands in flight one
transaction for all the writes that are ready together costs a fraction of that. The
caller still awaits its own write: a command is answered only after what it changed committed,
so a crash never loses a write the client was told about.

A group is worth waiting a loop turn for only if another command could join it. Commands that
end in a write say they are under way (`under_way`); when the writer is the only one, its write
commits at once with whatever was deferred before it, which saves the command two loop turns (the
flush's and the wake-up after it; docs/performance.md has the figures).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar

from sipbridge.errors import StoreError
from sipbridge.tracker.store import TrackerStore

log = logging.getLogger(__name__)

Result = TypeVar("Result")

_Write = tuple[Callable[[], Any], "asyncio.Future[Any]"]


class GroupCommit:
    def __init__(self, store: TrackerStore) -> None:
        self.store = store
        self._pending: list[_Write] = []
        self._flush_scheduled = False
        self._under_way = 0

    def under_way(self) -> AbstractContextManager[None]:
        """Around a command that ends in a write: while others are under way, writes wait a
        turn to share a transaction; a lone command's write commits at once."""
        return _UnderWay(self)

    async def write(self, write: Callable[[], Result]) -> Result:
        """Run `write` (a store call) in the next group transaction; return once committed."""
        if self._under_way != 1:  # others under way, or nobody said (a caller outside one)
            return await self.defer(write)
        # The one command under way is this writer's: nobody else could join the group. Commit
        # now, with the writes deferred before this one (queue order is kept), and answer
        # without giving up the loop.
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((write, future))
        self._flush()
        return future.result()

    def defer(self, write: Callable[[], Result]) -> asyncio.Future[Result]:
        """Queue `write` for the next group transaction without waiting for it.

        Writes commit in the order they were queued, in this transaction or an earlier one
        than any write queued after: whoever awaits a later write knows this one committed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((write, future))
        if not self._flush_scheduled:
            # call_soon runs after every callback already ready in this turn: the writes of all
            # the commands whose answers came in the same poll join one transaction.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        # A flush scheduled before a write committed at once still runs: it finds nothing, or
        # the writes queued since.
        self._flush_scheduled = False
        if not batch:
            return
        # A caller cancelled meanwhile still has its write made: it records what a phone
        # already did, which stays true whoever stopped waiting.
        try:
            self._commit(batch)
        except BaseException:
            # SystemExit and the like, from a write: nobody in the batch may wait forever.
            for _, future in batch:
                _settle(future, exc=StoreError("the write was interrupted"))
            raise

    def _commit(self, batch: list[_Write]) -> None:
        try:
            with self.store.transaction():
                results = [write() for write, _ in batch]
        except Exception:
            # One write failed and the group rolled back: redo each on its own, so only the
            # failing write's caller sees the error.
            if len(batch) > 1:
                log.debug("group commit of %d writes failed; writing them one by one", len(batch))
            for write, future in batch:
                try:
                    with self.store.transaction():
                        result = write()
                except Exception as exc:  # handed to the caller, who decides
                    _settle(future, exc=exc)
                else:
                    _settle(future, result=result)
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


class _UnderWay(AbstractContextManager[None]):
    """Counts a command under way (a class: entered by every command, a generator costs more)."""

    __slots__ = ("_writes",)

    def __init__(self, writes: GroupCommit) -> None:
        self._writes = writes

    def __enter__(self) -> None:
        self._writes._under_way += 1

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._writes._under_way -= 1


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, exc: BaseException | None = None
) -> None:
    if future.done():  # the caller was cancelled; its write stands (see _flush)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
