"""The interface the rest of sipbridge uses to send a NOTIFY, and a fake beside it.

The real implementation is `sipbridge.sip._pjsua2.PjsuaSender`; nothing else imports pjsua2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer


class NotifySender(Protocol):
    """Sends one out-of-dialog request (NOTIFY, SUBSCRIBE...) and waits for its final response.

    `start` binds what the sender needs (the UA's transports) and `stop` lets it go; wrappers
    pass both on to what they wrap. A failure to start is a `StartupError`.
    """

    def start(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def local_contact(self) -> str:
        """The Contact URI to put in requests so answers and reports come back here."""
        ...

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        """Send and wait. Cancellation abandons the wait, not the SIP transaction."""
        ...


class FakeSender:
    """Records what would be sent and answers with `responder` (default: 200 OK)."""

    def __init__(
        self,
        responder: Callable[[OutgoingRequest], SipAnswer] | None = None,
        *,
        delay: float = 0.0,
    ) -> None:
        self.sent: list[OutgoingRequest] = []
        self._responder = responder or (
            lambda _: SipAnswer(status=200, reason="OK", from_wire=True)
        )
        self._delay = delay

    @property
    def local_contact(self) -> str:
        return "sip:sipbridge@127.0.0.1:5070"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        self.sent.append(request)
        if self._delay:
            await asyncio.sleep(self._delay)
        return self._responder(request)
