"""The SIP user agent as the rest of sipbridge gets it: pjsua2 (loaded only when one is built,
so that only `serve` and the integration tests load it), large requests over TCP from our own
stack, one digest challenge answered (`stream_sender.wire_sender`)."""

from __future__ import annotations

from sipbridge.sip.sender import NotifySender
from sipbridge.sip.stream_sender import wire_sender
from sipbridge.tls import SipTls


def user_agent(
    *,
    host: str,
    port: int,
    transaction_timeout: float,
    contact_host: str | None = None,
    tls: SipTls | None = None,
) -> NotifySender:
    from sipbridge.sip._pjsua2 import PjsuaSender

    agent = PjsuaSender(
        host=host,
        port=port,
        transaction_timeout=transaction_timeout,
        contact_host=contact_host,
        tls=tls,
    )
    return wire_sender(agent, transaction_timeout=transaction_timeout, tls=tls)
