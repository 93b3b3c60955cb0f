"""Webhooks in the tracker database: the subscriptions, the outbox, and its retry policy.

At-least-once across kill -9 rests on one order: the cursor into the event log advances in the
same transaction that writes a pending delivery row per matching webhook, and that commits
before any POST. A POST whose outcome was not recorded stays pending and is sent again after a
restart, with the same `webhook-id` (Standard Webhooks, "Webhook-id": the same on every retry).
Each row carries its payload, so event-log pruning never takes what a delivery still needs.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sipbridge.errors import NotFound
from sipbridge.tracker.event_log import EventFilter, EventLog
from sipbridge.tracker.store import TrackerStore

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    secret: str
    types: tuple[str, ...]
    phone: str | None
    created_at: float

    @property
    def filter(self) -> EventFilter:
        return EventFilter(types=self.types, phone=self.phone)


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: str
    message_id: str
    event_id: int | None
    payload: str
    state: str
    tries: int
    next_at: float
    created_at: float
    last_at: float | None
    last_status: int | None
    last_error: str | None
    latency_ms: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "webhook_id": self.webhook_id,
            "message_id": self.message_id,
            "event_id": self.event_id,
            "state": self.state,
            "tries": self.tries,
            "next_at": self.next_at if self.state == PENDING else None,
            "created_at": self.created_at,
            "last_at": self.last_at,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "latency_ms": self.latency_ms,
        }


def new_secret() -> str:
    """`whsec_` + base64 of 24 random bytes: the form Standard Webhooks libraries read."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def backoff(tries: int, *, base: float, cap: float, jitter: Callable[[], float]) -> float:
    """Seconds before attempt `tries + 1`: exponential with full jitter ("Exponential Backoff
    And Jitter", AWS architecture blog), never below a tenth of the step so a burst of
    failures does not retry at once. `jitter()` returns a float in [0, 1)."""
    step = min(cap, base * 2.0 ** max(0, tries - 1))
    return step * (0.1 + 0.9 * jitter())


@dataclass(frozen=True)
class Outcome:
    """What one attempt became: the row's next state and when it is due again."""

    state: str
    next_at: float


def after_attempt(
    *,
    tries: int,
    ok: bool,
    now: float,
    max_tries: int,
    base: float,
    cap: float,
    jitter: Callable[[], float],
) -> Outcome:
    """The outbox state machine: pending -> delivered on a 2xx; pending -> pending (later) on a
    failure while tries < max_tries; pending -> dead after the last try."""
    if ok:
        return Outcome(DELIVERED, now)
    if tries >= max_tries:
        return Outcome(DEAD, now)
    return Outcome(PENDING, now + backoff(tries, base=base, cap=cap, jitter=jitter))


_DELIVERY_COLUMNS = (
    "id, webhook_id, message_id, event_id, payload, state, tries, next_at, created_at, "
    "last_at, last_status, last_error, latency_ms"
)


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(*row)


def _webhook(row: Sequence[Any]) -> Webhook:
    return Webhook(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], row[5])


class WebhookStore:
    def __init__(self, store: TrackerStore) -> None:
        self._store = store
        self._events = EventLog(store)

    # -- subscriptions ---------------------------------------------------------------------

    def create(self, *, url: str, types: Sequence[str], phone: str | None) -> Webhook:
        hook = Webhook(
            id="wh_" + secrets.token_hex(8),
            url=url,
            secret=new_secret(),
            types=tuple(types),
            phone=phone,
            created_at=self._store.now(),
        )
        with self._store.transaction():
            # A new webhook sees events from now on: start the cursor at the log's end if the
            # outbox has none yet (the first webhook ever).
            self._ensure_cursor()
            self._store.execute(
                "INSERT INTO webhooks (id, url, secret, types, phone, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    hook.id,
                    hook.url,
                    hook.secret,
                    json.dumps(list(hook.types)),
                    hook.phone,
                    hook.created_at,
                ),
            )
        return hook

    def all(self) -> list[Webhook]:
        rows = self._store.execute(
            "SELECT id, url, secret, types, phone, created_at FROM webhooks ORDER BY created_at"
        )
        return [_webhook(r) for r in rows]

    def get(self, webhook_id: str) -> Webhook:
        rows = self._store.execute(
            "SELECT id, url, secret, types, phone, created_at FROM webhooks WHERE id = ?",
            (webhook_id,),
        )
        if not rows:
            raise NotFound(f"no webhook {webhook_id!r}")
        return _webhook(rows[0])

    def delete(self, webhook_id: str) -> None:
        with self._store.transaction():
            self._store.execute(
                "DELETE FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,)
            )
            if not self._store.execute(
                "DELETE FROM webhooks WHERE id = ? RETURNING id", (webhook_id,)
            ):
                raise NotFound(f"no webhook {webhook_id!r}")

    # -- the outbox ------------------------------------------------------------------------

    def _ensure_cursor(self) -> int:
        rows = self._store.execute("SELECT event_id FROM webhook_cursor WHERE only = 0")
        if rows:
            return int(rows[0][0])
        newest = self._events.bounds()[1]
        self._store.execute("INSERT INTO webhook_cursor (only, event_id) VALUES (0, ?)", (newest,))
        return newest

    def enqueue_new_events(self, *, limit: int = 500) -> int:
        """Turn the events past the cursor into pending deliveries, one per matching webhook,
        and advance the cursor, in one transaction. Returns how many events it read."""
        with self._store.transaction():
            cursor = self._ensure_cursor()
            events = self._events.after(cursor, limit=limit)
            if not events:
                return 0
            hooks = self.all()
            now = self._store.now()
            rows = []
            for event in events:
                payload = json.dumps(event.as_json(), separators=(",", ":"))
                for hook in hooks:
                    if hook.filter.matches(event):
                        rows.append(
                            (hook.id, f"evt_{event.id}", event.id, payload, PENDING, now, now)
                        )
            if rows:
                self._store.execute_many(
                    "INSERT INTO webhook_deliveries (webhook_id, message_id, event_id, payload, "
                    "state, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            self._store.execute(
                "UPDATE webhook_cursor SET event_id = ? WHERE only = 0", (events[-1].id,)
            )
            return len(events)

    def enqueue_ping(self, webhook_id: str) -> Delivery:
        hook = self.get(webhook_id)
        now = self._store.now()
        payload = json.dumps(
            {
                "id": None,
                "type": "webhook.ping",
                "time": now,
                "phone": None,
                "call_id": None,
                "sequence": None,
                "data": {"webhook": hook.id},
                "client_state": None,
            },
            separators=(",", ":"),
        )
        rows = self._store.execute(
            "INSERT INTO webhook_deliveries (webhook_id, message_id, event_id, payload, state, "
            f"next_at, created_at) VALUES (?, ?, NULL, ?, ?, ?, ?) RETURNING {_DELIVERY_COLUMNS}",
            (hook.id, "ping_" + secrets.token_hex(8), payload, PENDING, now, now),
        )
        return _delivery(rows[0])

    def due(self, now: float, *, limit: int) -> list[Delivery]:
        rows = self._store.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries "
            "WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?",
            (now, limit),
        )
        return [_delivery(r) for r in rows]

    def next_due_at(self) -> float | None:
        row = self._store.execute(
            "SELECT min(next_at) FROM webhook_deliveries WHERE state = 'pending'"
        )[0]
        return None if row[0] is None else float(row[0])

    def record_attempt(
        self,
        delivery: Delivery,
        outcome: Outcome,
        *,
        at: float,
        status: int | None,
        error: str | None,
        latency_ms: float,
    ) -> None:
        self._store.execute(
            "UPDATE webhook_deliveries SET state = ?, tries = tries + 1, next_at = ?, "
            "last_at = ?, last_status = ?, last_error = ?, latency_ms = ? WHERE id = ?",
            (outcome.state, outcome.next_at, at, status, error, latency_ms, delivery.id),
        )

    def deliveries(self, webhook_id: str, *, limit: int = 100) -> list[Delivery]:
        self.get(webhook_id)
        rows = self._store.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ? "
            "ORDER BY id DESC LIMIT ?",
            (webhook_id, limit),
        )
        return [_delivery(r) for r in rows]

    def redeliver(self, webhook_id: str, delivery_id: int) -> Delivery:
        """Send a delivered or dead message again, with its own webhook-id and a fresh budget
        of tries."""
        rows = self._store.execute(
            "UPDATE webhook_deliveries SET state = 'pending', tries = 0, next_at = ? "
            f"WHERE id = ? AND webhook_id = ? RETURNING {_DELIVERY_COLUMNS}",
            (self._store.now(), delivery_id, webhook_id),
        )
        if not rows:
            raise NotFound(f"no delivery {delivery_id} of webhook {webhook_id!r}")
        return _delivery(rows[0])
