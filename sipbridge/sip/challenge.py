"""Answer a phone's (or a proxy's) digest challenge to our request: once, never more.

A phone or a proxy on the way may answer a NOTIFY with 401 (WWW-Authenticate) or 407
(Proxy-Authenticate). RFC 3261 §22.2 / §22.3: the UAC may resend with Authorization /
Proxy-Authorization computed from its credentials. One retry only: a second challenge means
the credentials are wrong, and trying again would only hold the phone's lane longer.

The retry lives inside one `send` call so the phone's lane (commands/lanes.py) stays held
across both attempts: no other command for the phone slips in between.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets

from sipbridge.sip import digest
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer
from sipbridge.sip.message import SipParseError, SipResponse, parse_message
from sipbridge.sip.sender import NotifySender

log = logging.getLogger(__name__)

CHALLENGES = (401, 407)


def challenge_in(answer: SipAnswer) -> digest.Challenge | None:
    """The challenge we can answer in a 401/407 from the wire, else None."""
    if answer.status not in CHALLENGES or not answer.from_wire or not answer.raw:
        return None
    try:
        response = parse_message(answer.raw.encode("utf-8", "replace"))
    except SipParseError:
        return None
    if not isinstance(response, SipResponse):
        return None
    wanted = "WWW-Authenticate" if answer.status == 401 else "Proxy-Authenticate"
    headers = tuple((name, value) for name, value in response.headers.items() if name == wanted)
    return digest.pick_challenge(headers)


def with_authorization(request: OutgoingRequest, challenge: digest.Challenge) -> OutgoingRequest:
    """The same request with the answer to `challenge` added (RFC 7616 §3.4, qop=auth)."""
    assert request.credentials is not None
    name, value = digest.authorization(
        challenge,
        method=request.method,
        uri=request.target_uri,
        username=request.credentials.user,
        password=request.credentials.password,
        cnonce=secrets.token_hex(16),
    )
    kept = tuple(h for h in request.headers if h[0] != name)
    return dataclasses.replace(request, headers=(*kept, (name, value)), credentials=None)


class ChallengeAnsweringSender:
    """A `NotifySender` that answers one digest challenge with the request's credentials."""

    def __init__(self, inner: NotifySender) -> None:
        self._inner = inner

    @property
    def local_contact(self) -> str:
        return self._inner.local_contact

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        answer = await self._inner.send(request)
        if request.credentials is None:
            return answer
        challenge = challenge_in(answer)
        if challenge is None:
            return answer
        log.info(
            "%s challenged with %d (%s); retrying once with credentials",
            request.method,
            answer.status,
            challenge.algorithm,
        )
        return await self._inner.send(with_authorization(request, challenge))

    def start(self) -> None:
        self._inner.start()

    def stop(self) -> None:
        self._inner.stop()
