"""Which part answers an inbound SIP request: the tracker's feed (REGISTER, dialog and reg
events, OPTIONS, INFO) or the PBX relay (ACTION-URI NOTIFYs). Built with both parts and handed
to the listener at construction, so the tracker never has to know the relay."""

from __future__ import annotations

from collections.abc import Awaitable

from sipbridge.pbx.relay import ActionUriRelay
from sipbridge.sip.listener import Reply, Source
from sipbridge.sip.message import SipRequest, header_params
from sipbridge.tracker.sip_feed import SipFeed


class InboundRouter:
    """The listener's `RequestRouter`: the feed for what the tracker learns from, the relay
    (when there is one) for commands a PBX sends."""

    def __init__(self, feed: SipFeed, relay: ActionUriRelay | None = None) -> None:
        self._feed = feed
        self._relay = relay
        self.allowed_methods = feed.allowed_methods
        self._events = feed.events + (("ACTION-URI",) if relay is not None else ())

    def handle(self, request: SipRequest, source: Source) -> Reply | Awaitable[Reply]:
        if request.method != "NOTIFY":
            return self._feed.handle(request, source)
        event = header_params(request.headers.get("Event") or "")[0].strip().lower()
        if event == "action-uri" and self._relay is not None:
            return self._relay.relay(request, source)
        if event in (known.lower() for known in self._feed.events):
            return self._feed.handle(request, source)
        # RFC 6665 §8.2.1: an event package we do not take; Allow-Events lists those we do.
        return Reply(
            status=489, reason="Bad Event", headers=(("Allow-Events", ", ".join(self._events)),)
        )
