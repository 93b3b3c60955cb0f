"""A simulated phone on the network: its own SIP port (UDP and TCP) around a `SimPhone`.

Like a real Poly phone it works on one request at a time: a NOTIFY that arrives while another is
being processed is refused with 403 (manual 002, prerequisites). It absorbs retransmissions as a
non-INVITE server transaction does (RFC 3261 §17.2.2): a repeat of a request still in progress is
ignored, a repeat of a finished one gets the same response again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sipbridge.sim.phone import SimPhone, Verdict
from sipbridge.sip.listener import bind_udp_and_tcp
from sipbridge.sip.message import (
    SipParseError,
    SipRequest,
    StreamParser,
    build_response,
    cseq,
    parse_message,
    serialize,
    top_via_branch,
)

log = logging.getLogger(__name__)

_TIMER_J = 32.0  # how long a finished non-INVITE transaction remembers its response (§17.2.2)
_MAX_REMEMBERED = 4096

Reply = Callable[[bytes], None]


class SimPhoneServer:
    """Serve one `SimPhone` on host:port over UDP and TCP."""

    def __init__(
        self,
        phone: SimPhone,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        processing_time: float = 0.0,
    ) -> None:
        self.phone = phone
        self.host = host
        self.port = port
        self.processing_time = processing_time
        self._busy = False
        # The top Via of every NOTIFY taken in: which sender (which worker's UA) sent it.
        self.vias: list[str] = []
        self._done: OrderedDict[tuple[str, str, int], tuple[float, bytes | None]] = OrderedDict()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._to_tag = secrets.token_hex(4)

    @property
    def contact(self) -> str:
        return f"sip:{self.phone.extension}@{self.host}:{self.port}"

    async def start(self) -> None:
        self._udp, self._tcp, self.port = await bind_udp_and_tcp(
            self.host, self.port, lambda: _Datagrams(self), self._serve_stream
        )

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> SimPhoneServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- transport edges ------------------------------------------------------------------------

    def _datagram(self, data: bytes, addr: Any) -> None:
        transport = self._udp
        if transport is None:
            return

        def reply(payload: bytes) -> None:
            transport.sendto(payload, addr)

        self._receive(data, reply)

    async def _serve_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        parser = StreamParser()
        try:
            while chunk := await reader.read(65536):
                parser.feed(chunk)
                while (message := parser.next_message()) is not None:
                    if isinstance(message, SipRequest):
                        self._handle(message, writer.write)
        except (SipParseError, ConnectionError) as exc:
            log.debug("sim %s: closing stream: %s", self.phone.extension, exc)
        finally:
            writer.close()

    def _receive(self, data: bytes, reply: Reply) -> None:
        try:
            message = parse_message(data)
        except SipParseError as exc:
            log.debug("sim %s: dropped unparseable datagram: %s", self.phone.extension, exc)
            return
        if isinstance(message, SipRequest):
            self._handle(message, reply)

    # -- transactions ------------------------------------------------------------------------------

    def _handle(self, request: SipRequest, reply: Reply) -> None:
        try:
            key = (top_via_branch(request) or "", request.method, cseq(request)[0])
        except SipParseError:
            return
        self._forget_old()
        if key in self._done:
            _, response = self._done[key]
            if response is not None:  # None: still in progress, absorb the retransmission
                reply(response)
            return
        if request.method == "OPTIONS":
            self._finish(key, request, Verdict(status=200, reason="OK"), reply)
            return
        if request.method != "NOTIFY":
            self._finish(
                key,
                request,
                Verdict(status=405, reason="Method Not Allowed"),
                reply,
                extra=(("Allow", "NOTIFY, OPTIONS"),),
            )
            return
        if self._busy:
            self._finish(key, request, Verdict.poly(4001), reply)
            return
        self._busy = True
        self.vias.append(request.headers.get("Via") or "")
        self._done[key] = (time.monotonic(), None)
        task = asyncio.get_running_loop().create_task(self._process(key, request, reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, key: tuple[str, str, int], request: SipRequest, reply: Reply) -> None:
        try:
            if self.processing_time:
                await asyncio.sleep(self.processing_time)
            verdict = self.phone.handle_notify(
                event=request.headers.get("Event"),
                content_type=request.headers.get("Content-Type"),
                body=request.body,
            )
            log.info(
                "sim phone %s: %s -> %d %s",
                self.phone.extension,
                self.phone.received[-1].command_uri,
                verdict.status,
                verdict.reason,
            )
            self._finish(key, request, verdict, reply)
        finally:
            self._busy = False

    def _finish(
        self,
        key: tuple[str, str, int],
        request: SipRequest,
        verdict: Verdict,
        reply: Reply,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        headers = list(extra)
        if verdict.poly_code is not None and verdict.status >= 300:
            headers.append(("Warning", f'399 sim-phone "Poly {verdict.poly_code}"'))
        response = serialize(
            build_response(
                request, verdict.status, verdict.reason, to_tag=self._to_tag, headers=headers
            )
        )
        self._done[key] = (time.monotonic(), response)
        reply(response)

    def _forget_old(self) -> None:
        horizon = time.monotonic() - _TIMER_J
        while self._done:
            key, (when, response) = next(iter(self._done.items()))
            if (when >= horizon or response is None) and len(self._done) <= _MAX_REMEMBERED:
                break
            del self._done[key]


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, server: SimPhoneServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._server._datagram(data, addr)
