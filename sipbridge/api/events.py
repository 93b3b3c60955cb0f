"""`GET /v1/events`: the event log as Server-Sent Events (aiohttp-sse), resumable.

One `EventHub` per worker reads the shared log (every worker's events) while somebody listens,
every `POLL_EVERY` seconds, and hands each new event to every matching subscriber's bounded
queue. A client that resumes (`Last-Event-ID`) is first replayed from the log, page by page as
fast as it reads, then joins the live stream with nothing lost or repeated in between (it is
subscribed before the replay and skips what it already had). A client that falls more than
`sse_queue_limit` events behind is cut off with a final `cutoff` event saying where to resume,
so a slow reader never grows memory; an id older than the log keeps gets 410 with the oldest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp_sse import sse_response

from sipbridge.errors import InvalidInput, SipBridgeError
from sipbridge.tracker.event_log import EVENT_TYPES, Event, EventFilter, EventLog

log = logging.getLogger(__name__)

POLL_EVERY = 0.05
REPLAY_PAGE = 500

routes = web.RouteTableDef()


@dataclass(eq=False)
class Subscriber:
    filter: EventFilter
    queue: asyncio.Queue[Event]
    # Set when the queue overflowed: the id of the last event it did get.
    cut_after: int | None = None
    last_id: int = 0


@dataclass
class EventHub:
    """The live end of the log for one worker's SSE clients."""

    log: EventLog
    queue_limit: int
    subscribers: set[Subscriber] = field(default_factory=set)
    position: int = 0
    closing: bool = False  # the service is stopping: streams end (on_shutdown)
    _task: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self.position = self.log.bounds()[1]
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, wanted: EventFilter, after: int) -> Subscriber:
        """A new subscriber, live from `position` on (the caller replays up to it)."""
        if not self.subscribers:
            # Nobody listened: the live end starts from now, not from where it last stopped.
            self.position = self.log.bounds()[1]
        subscriber = Subscriber(wanted, asyncio.Queue(self.queue_limit), last_id=after)
        self.subscribers.add(subscriber)
        self._wake.set()
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    async def _run(self) -> None:
        while True:
            if not self.subscribers:
                self._wake.clear()
                await self._wake.wait()
            # Pages under half a queue, and a turn for the readers after each: a burst reaches
            # a reader that keeps up whole; only one that does not fall behind.
            page = max(1, min(REPLAY_PAGE, self.queue_limit // 2))
            try:
                fresh = self.log.after(self.position, limit=page)
            except SipBridgeError as exc:
                log.warning("event stream: cannot read the event log: %s", exc.detail)
                fresh = []
            for event in fresh:
                self.position = event.id
                for subscriber in list(self.subscribers):
                    self._offer(subscriber, event)
            await asyncio.sleep(POLL_EVERY if len(fresh) < page else 0)

    def _offer(self, subscriber: Subscriber, event: Event) -> None:
        if subscriber.cut_after is not None or not subscriber.filter.matches(event):
            return
        try:
            subscriber.queue.put_nowait(event)
        except asyncio.QueueFull:
            # The reader drains what it has, then ends with a `cutoff` event.
            subscriber.cut_after = subscriber.last_id
            self.subscribers.discard(subscriber)


EVENT_HUB = web.AppKey("event_hub", EventHub)
HEARTBEAT = web.AppKey("sse_heartbeat", float)


def _filter(request: web.Request) -> EventFilter:
    types = tuple(t for t in request.query.get("types", "").split(",") if t)
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput.one(
            "types", f"unknown event types {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}"
        )
    return EventFilter(
        types=frozenset(types),
        phone=request.query.get("phone") or None,
        call_id=request.query.get("call_id") or None,
    )


def _resume_point(request: web.Request) -> int | None:
    text = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput.one("Last-Event-ID", f"{text[:40]!r} is not an event id")
    return int(text)


async def _replay(
    events: EventLog, after: int, wanted: EventFilter, until: int
) -> AsyncIterator[Event]:
    """The log from `after` up to `until` (the hub's position when the client joined)."""
    last = after
    while last < until:
        page = events.after(last, limit=REPLAY_PAGE)
        if not page:
            return
        for event in page:
            if event.id > until:
                return
            last = event.id
            if wanted.matches(event):
                yield event
        await asyncio.sleep(0)


def _sse_data(event: Event) -> str:
    return json.dumps(event.as_json(), separators=(",", ":"))


@routes.get("/v1/events")
async def events_stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events; resume with Last-Event-ID (docs/events.md)."""
    hub = request.app[EVENT_HUB]
    wanted = _filter(request)
    after = _resume_point(request)
    oldest, newest = hub.log.bounds()
    if after is not None and oldest and after < oldest - 1:
        response = web.json_response(
            {
                "type": "urn:sipbridge:problem:events-gone",
                "title": "Gone",
                "status": 410,
                "detail": f"events up to {oldest - 1} are no longer kept: resume from {oldest}",
                "oldest": oldest,
            },
            status=410,
            content_type="application/problem+json",
        )
        return response
    start = newest if after is None else min(after, newest)
    subscriber = hub.subscribe(wanted, start)
    joined_at = max(hub.position, start)  # replayed up to here, live after it
    try:
        async with sse_response(request, headers={"Cache-Control": "no-store"}) as stream:
            stream.ping_interval = request.app[HEARTBEAT]
            sent = start
            async for event in _replay(hub.log, start, wanted, joined_at):
                await stream.send(_sse_data(event), id=str(event.id), event=event.type)
                sent = event.id
            while not hub.closing:
                if subscriber.cut_after is not None and subscriber.queue.empty():
                    await stream.send(
                        json.dumps({"resume_from": sent, "reason": "the client fell behind"}),
                        event="cutoff",
                    )
                    break
                try:
                    event = await asyncio.wait_for(subscriber.queue.get(), 1.0)
                except TimeoutError:
                    continue
                if event.id <= sent:
                    continue  # already replayed
                await stream.send(_sse_data(event), id=str(event.id), event=event.type)
                sent = subscriber.last_id = event.id
        return stream
    finally:
        hub.leave(subscriber)
