"""Idle TCP / TLS connections of sipbridge's own SIP stack, kept for the next request to a hop.

A connection per request cost a TCP (and for TLS a full handshake) round trip per command.
RFC 3261 §18.1.1 lets a client reuse a connection to the same destination, and §18.3 lets
either side close an idle one. So after its final response a connection waits here, keyed by
where it goes (address, port, TLS and the name its certificate was checked for), for at most
`idle_timeout` seconds, at most `per_hop` a hop and `max_idle` in all; past either bound it is
closed. While it waits, a watcher reads it: the peer closing (or resetting) it removes it at
once, and what the peer sends meanwhile (a stray response, a request we do not serve on this
connection) is framed and dropped, so the next request starts on a message boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field

from sipbridge.sip.message import SipParseError, StreamParser

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 30.0  # well under the 180 s a listener like ours keeps a silent connection
PER_HOP = 2  # one command a phone at a time (commands/lanes.py); phones behind one NAT share a hop
MAX_IDLE = 64
MAX_BUFFER = 65_536  # a phone's answer to a NOTIFY is small; a hostile stream stays bounded


@dataclass(frozen=True)
class Hop:
    """Where a connection goes, and the name its TLS peer was checked for (None: plain TCP)."""

    host: str
    port: int
    tls_name: str | None


@dataclass(eq=False)
class Stream:
    """One open connection and the framing state of what it has received."""

    hop: Hop
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    parser: StreamParser = field(default_factory=lambda: StreamParser(max_buffer=MAX_BUFFER))
    reused: bool = False  # taken from the pool (so it may have been closed under us)
    _watcher: asyncio.Task[None] | None = None
    _expiry: asyncio.TimerHandle | None = None

    def close(self) -> None:
        """Close at once (abort: no TLS close_notify dance with a peer that may be gone)."""
        if not self.writer.is_closing():
            self.writer.transport.abort()


class StreamPool:
    """Idle connections by hop, bounded in number and age (see the module docstring)."""

    def __init__(
        self,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        per_hop: int = PER_HOP,
        max_idle: int = MAX_IDLE,
    ) -> None:
        self._idle_timeout = idle_timeout
        self._per_hop = per_hop
        self._max_idle = max_idle
        self._idle: dict[Hop, list[Stream]] = {}
        self._count = 0

    @property
    def idle(self) -> int:
        return self._count

    async def take(self, hop: Hop) -> Stream | None:
        """An idle connection to `hop` that is still open, or None."""
        streams = self._idle.get(hop)
        while streams:
            stream = streams[-1]
            watcher = self._forget(stream, streams)
            if watcher is not None:
                # Its read must be over before ours starts (StreamReader has one reader).
                await asyncio.wait([watcher])
            if not stream.writer.is_closing() and not stream.reader.at_eof():
                stream.reused = True
                return stream
            stream.close()
            streams = self._idle.get(hop)
        return None

    def give_back(self, stream: Stream) -> None:
        """Keep `stream` for the next request to its hop, or close it if the pool is full."""
        streams = self._idle.setdefault(stream.hop, [])
        if (
            self._idle_timeout <= 0
            or stream.writer.is_closing()
            or len(streams) >= self._per_hop
            or self._count >= self._max_idle
        ):
            if not streams:
                del self._idle[stream.hop]
            stream.close()
            return
        loop = asyncio.get_running_loop()
        streams.append(stream)
        self._count += 1
        stream._watcher = loop.create_task(self._watch(stream))
        stream._expiry = loop.call_later(self._idle_timeout, self._expire, stream)

    def close(self) -> None:
        """Close every idle connection (at shutdown)."""
        for streams in list(self._idle.values()):
            for stream in list(streams):
                self._forget(stream, streams)
                stream.close()
        self._idle.clear()

    def _expire(self, stream: Stream) -> None:
        streams = self._idle.get(stream.hop)
        if streams is not None and stream in streams:
            self._forget(stream, streams)
            stream.close()

    def _forget(self, stream: Stream, streams: list[Stream]) -> asyncio.Task[None] | None:
        """Take `stream` out of the pool: its watcher (returned) and timer stop, the stream
        stays open."""
        if stream in streams:
            streams.remove(stream)
            self._count -= 1
        if not streams:
            self._idle.pop(stream.hop, None)
        if stream._expiry is not None:
            stream._expiry.cancel()
            stream._expiry = None
        watcher, stream._watcher = stream._watcher, None
        if watcher is None or watcher is asyncio.current_task():
            return None
        watcher.cancel()  # a pending read gives up nothing: the bytes stay in the buffer
        return watcher

    async def _watch(self, stream: Stream) -> None:
        """Read while idle: the peer's close removes the stream; its messages are dropped."""
        try:
            while data := await stream.reader.read(4096):
                stream.parser.feed(data)
                while stream.parser.next_message() is not None:
                    log.debug("dropped a message on an idle connection to %s", stream.hop)
        except asyncio.CancelledError:
            raise
        except (OSError, ssl.SSLError, SipParseError) as exc:
            log.debug("idle connection to %s failed: %s", stream.hop, exc)
        streams = self._idle.get(stream.hop)
        if streams is not None:
            self._forget(stream, streams)
        with contextlib.suppress(Exception):
            stream.close()
