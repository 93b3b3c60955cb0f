"""Webhook delivery: the SSRF guard and the one outbox task (worker 0).

Signing follows the Standard Webhooks specification through its own library
(`standardwebhooks.Webhook.sign`): headers `webhook-id`, `webhook-timestamp`,
`webhook-signature`, so receivers verify with any of its implementations.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
from standardwebhooks import Webhook as Signer

from sipbridge.config import Settings
from sipbridge.errors import InvalidInput, SipBridgeError
from sipbridge.sip.access import Network, parse_networks
from sipbridge.tracker.webhook_store import Delivery, WebhookStore, after_attempt

log = logging.getLogger(__name__)

# A receiver's answer is read at most this far: its body only goes in the delivery log.
_ANSWER_BYTES = 1024
_IDLE_POLL = 0.25


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL's form, or None: http/https only, a host, no
    credentials in it (they would sit in the database and the logs)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "no credentials in the URL (user:password@): the secret signs every request"
    return None


def outside(addresses: Iterable[str], allow: Iterable[Network]) -> list[str]:
    """The addresses that lie in none of the allowed networks."""
    nets = tuple(allow)
    wrong = []
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not any(ip.version == net.version and ip in net for net in nets):
            wrong.append(address)
    return wrong


async def resolve(host: str) -> list[str]:
    """Every address of `host`, off the loop (getaddrinfo runs in the default executor)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def check_target(url: str, allow: Iterable[Network], *, field: str = "url") -> None:
    """Refuse (422 naming `field`) a URL of the wrong form or whose host resolves to any
    address outside `webhook_allow`. Run at creation and again before each POST, so a name
    that later resolves elsewhere (DNS rebinding) is caught at delivery."""
    problem = url_problem(url)
    if problem is not None:
        raise InvalidInput.one(field, problem)
    host = urlsplit(url).hostname or ""
    try:
        addresses = await asyncio.wait_for(resolve(host), timeout=5.0)
    except (OSError, TimeoutError) as exc:
        raise InvalidInput.one(field, f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise InvalidInput.one(field, f"{host} has no address")
    wrong = outside(addresses, allow)
    if wrong:
        raise InvalidInput.one(
            field, f"{host} resolves to {', '.join(wrong)}, outside webhook_allow"
        )


class Deliverer:
    """Moves events into the outbox and POSTs what is due, at most `webhook_concurrency` at
    once. Every state change is committed before the next step, so kill -9 at any point leaves
    either a pending row (sent again) or a recorded outcome."""

    def __init__(
        self, store: WebhookStore, settings: Settings, session: aiohttp.ClientSession
    ) -> None:
        self._store = store
        self._settings = settings
        self._session = session
        self._allow = parse_networks(settings.webhook_allow)
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)
        self._in_flight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                while self._store.enqueue_new_events():
                    pass
                self._start_due()
            except SipBridgeError as exc:
                log.warning("webhook outbox: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=_IDLE_POLL)
            self._wake.clear()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start_due(self) -> None:
        room = self._settings.webhook_concurrency - len(self._in_flight)
        if room <= 0:
            return
        for delivery in self._store.due(time.time(), limit=room + len(self._in_flight)):
            if delivery.id in self._in_flight or len(self._in_flight) >= (
                self._settings.webhook_concurrency
            ):
                continue
            self._in_flight.add(delivery.id)
            task = asyncio.get_running_loop().create_task(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            async with self._slots:
                status, error, latency = await self._post(delivery)
            ok = status is not None and 200 <= status < 300
            outcome = after_attempt(
                tries=delivery.tries + 1,
                ok=ok,
                now=time.time(),
                max_tries=self._settings.webhook_max_tries,
                base=self._settings.webhook_backoff_base,
                cap=self._settings.webhook_backoff_cap,
                jitter=random.random,
            )
            self._store.record_attempt(
                delivery,
                outcome,
                at=time.time(),
                status=status,
                error=error,
                latency_ms=latency,
            )
            if outcome.state == "dead":
                log.warning(
                    "webhook %s: delivery %d dead after %d tries (%s)",
                    delivery.webhook_id,
                    delivery.id,
                    delivery.tries + 1,
                    error or status,
                )
        except SipBridgeError as exc:
            log.warning("webhook delivery %d: %s", delivery.id, exc)
        finally:
            self._in_flight.discard(delivery.id)
            self._wake.set()

    async def _post(self, delivery: Delivery) -> tuple[int | None, str | None, float]:
        started = time.monotonic()
        try:
            hook = self._store.get(delivery.webhook_id)
        except SipBridgeError as exc:
            return None, str(exc), 0.0
        try:
            await check_target(hook.url, self._allow)
        except InvalidInput as exc:
            return None, exc.problems[0].message, 0.0
        body = delivery.payload
        sent_at = datetime.now(tz=UTC)
        signature = Signer(hook.secret).sign(delivery.message_id, sent_at, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
            "user-agent": "sipbridge-webhooks",
        }
        try:
            async with self._session.post(
                hook.url,
                data=body.encode(),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout),
            ) as answer:
                await answer.content.read(_ANSWER_BYTES)
                latency = (time.monotonic() - started) * 1000
                error = None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
                return answer.status, error, latency
        except (aiohttp.ClientError, TimeoutError) as exc:
            latency = (time.monotonic() - started) * 1000
            return None, f"{type(exc).__name__}: {exc}"[:300], latency
