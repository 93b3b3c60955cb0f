"""Every error sipbridge reports, to an API client, a PBX or the operator, in one tree.

    SipBridgeError
    ├── RequestError              the caller's fault; nothing was sent to a phone
    │   ├── MalformedBody         body is not parseable JSON
    │   ├── UnsupportedMediaType  body is not application/json
    │   ├── PayloadTooLarge       request or composed command over its limit (Poly: 20 KB)
    │   ├── InvalidInput          a field is missing or breaks its rule (names the fields)
    │   │   ├── NotSupportedByPhone    the phone's profile lacks the command (says why)
    │   │   └── TransportUnavailable   the command cannot travel over the chosen transport
    │   ├── Unauthorized          no or unknown API key or user (says which scheme to use)
    │   │   └── AuthThrottled     ... too many of those from one address (retry later)
    │   ├── Forbidden             authenticated, but below the level the resource needs
    │   ├── Conflict              the request contradicts what exists (a name already taken)
    │   │   └── StateConflict     ... the tracked call is in the wrong state (`?force=true`)
    │   ├── NotFound              unknown route, phone, call or action
    │   │   ├── UnknownPhone
    │   │   └── UnknownCall
    │   └── QueueFull             the phone's command queue is full (retry later)
    ├── RemoteError               the phone or the network misbehaved
    │   ├── PhoneRejected         the phone answered with a non-2xx final response
    │   │   └── PhoneUnavailable  ... 503: the phone is overloaded for now (retry later)
    │   ├── PhoneUnreachable      no route/transport to the phone (local SIP failure)
    │   │   ├── ContactUnresolvable   the contact's name has no address (RFC 3263); not sent
    │   │   └── ContactNotAllowed     the contact resolves outside phone_networks; not sent
    │   ├── PhoneTimeout          no final answer before the deadline (says if it was sent)
    │   │   └── ContactResolutionTimeout  DNS did not answer for the contact; not sent
    │   ├── PhoneRefused          the phone's REST API answered a Poly failure code (4xxx/5xxx)
    │   │   └── PhoneBusy         ... 4001 or 403: busy with another request (retry later)
    │   └── PhoneAuthFailed       the phone's REST API refused our credentials
    ├── StoreError                the tracker's database failed (our side, not the caller's)
    ├── NotSetUp                  the device API has no user yet (says how to create one)
    ├── ProfileError              a sip_profiles file, a pin or the credentials file is wrong
    └── StartupError              a listener or the UA could not start (port in use, bad address)

The mapping to HTTP statuses and problem bodies lives in one place only: `sipbridge.api.problems`;
the mapping to SIP answers (the PBX relay) in `sipbridge.pbx.relay` (`SIP_STATUS`). Both add
`Retry-After` exactly when the error's `retry_after` is set (tests/unit/test_error_tables.py).
Foreign exceptions (`pj.Error`, `sqlite3.Error`, pydantic's `ValidationError`,
`aiohttp.ClientError`) are translated into these where they enter, with `raise ... from exc`.
A few sans-I/O modules keep an exception of their own that never leaves the module's caller:
a parser's (`SipParseError`, `EventBodyError`, `UnresolvableUri`), a state machine's
(`TransactionError`, `SubscriptionStateError`), the config file's (`ConfigFileError`, said by
the CLI) and the simulator's; each becomes one of these, or a SIP reply, where it is caught.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class SipBridgeError(Exception):
    """Base of every error sipbridge raises deliberately."""

    title = "sipbridge error"
    # Seconds after which the caller may try again (both boundaries send it as Retry-After).
    retry_after: int | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        # Facts about the command that failed (phone, call_id, ...), added to the problem body.
        self.context: dict[str, object] = {}


class RequestError(SipBridgeError):
    """The request cannot be carried out as given; nothing was sent to a phone."""


class MalformedBody(RequestError):
    title = "Malformed JSON"


class UnsupportedMediaType(RequestError):
    title = "Unsupported media type"


class PayloadTooLarge(RequestError):
    title = "Payload too large"


@dataclass(frozen=True, kw_only=True)
class FieldProblem:
    """One invalid field: where it is (dotted path) and what is wrong with it."""

    field: str
    message: str


class InvalidInput(RequestError):
    title = "Invalid input"

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = tuple(problems)
        detail = "; ".join(f"{p.field}: {p.message}" for p in self.problems)
        super().__init__(detail or "invalid input")

    @classmethod
    def one(cls, field: str, message: str) -> InvalidInput:
        return cls([FieldProblem(field=field, message=message)])


class NotSupportedByPhone(InvalidInput):
    title = "Not supported by the phone"


class TransportUnavailable(InvalidInput):
    title = "Transport not available"


class Unauthorized(RequestError):
    """`challenge` is the WWW-Authenticate the client is answered with: Bearer keys on /v1,
    HTTP Basic on the device API (/api/v1, manual 004 section 3)."""

    title = "Unauthorized"

    def __init__(self, detail: str, *, challenge: str = 'Bearer realm="sipbridge"') -> None:
        super().__init__(detail)
        self.challenge = challenge


class Forbidden(RequestError):
    """The credentials are good, the level is too low (manual 004, table 2-2)."""

    title = "Forbidden"


class Conflict(RequestError):
    title = "Conflict"


class StateConflict(Conflict):
    """The tracked call is not in a state the action makes sense in (the state guard)."""

    title = "Call state conflict"

    def __init__(self, detail: str, *, state: str) -> None:
        super().__init__(detail)
        self.state = state


class AuthThrottled(Unauthorized):
    """A client address failed to authenticate too often; it may try again after a while."""

    title = "Too many failed authentications"

    def __init__(
        self, detail: str, *, retry_after: int, challenge: str = 'Bearer realm="sipbridge"'
    ) -> None:
        super().__init__(detail, challenge=challenge)
        self.retry_after = retry_after


class NotFound(RequestError):
    title = "Not found"


class UnknownPhone(NotFound):
    title = "Unknown phone"


class UnknownCall(NotFound):
    title = "Unknown call"


class QueueFull(RequestError):
    """The phone already has `limit` commands waiting; Poly phones take one at a time."""

    title = "Phone queue full"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class RemoteError(SipBridgeError):
    """The phone (or the path to it) did not carry out the command."""


class PhoneRejected(RemoteError):
    """The phone's own non-2xx final answer; `headers` are the ones of it that a relay may have
    to pass on (a challenge, Allow, Accept...), `retry_after` its Retry-After in seconds."""

    title = "Phone rejected the command"

    def __init__(
        self,
        detail: str,
        *,
        sip_status: int,
        sip_reason: str,
        headers: tuple[tuple[str, str], ...] = (),
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.sip_status = sip_status
        self.sip_reason = sip_reason
        self.headers = headers
        self.retry_after = retry_after


class PhoneUnavailable(PhoneRejected):
    """The phone answered 503: overloaded or starting, for a while (RFC 3261 §21.5.4)."""

    title = "Phone temporarily unavailable"


class PhoneUnreachable(RemoteError):
    title = "Phone unreachable"


class PhoneTimeout(RemoteError):
    """No final answer by the deadline. `sent` says whether the command left: if not, it never
    reached the phone; if so, the phone may have carried it out (the outcome is unknown).

    `late`, when set, is the transaction still under way after its caller's deadline; it
    resolves when the transaction ends. The lanes set it to the sender's answer; `CallControl`
    replaces it with its reading of that answer (a `Completed` command, or the error it
    raises), which the journal records.
    """

    title = "Phone did not answer in time"

    def __init__(self, detail: str, *, sent: bool, late: asyncio.Future[Any] | None = None) -> None:
        super().__init__(detail)
        self.sent = sent
        self.late = late


# -- resolving a phone's contact (RFC 3263) and phone_networks --------------------------------


class ContactUnresolvable(PhoneUnreachable):
    title = "Phone contact cannot be resolved"


class ContactNotAllowed(PhoneUnreachable):
    """The contact's address lies outside `phone_networks`: nothing goes there, ever."""

    title = "Phone contact outside phone_networks"


class ContactResolutionTimeout(PhoneTimeout):
    """DNS gave no answer in time; the command never left (`sent` is always False)."""

    title = "DNS did not answer for the phone's contact"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, sent=False)


class PhoneRefused(RemoteError):
    """Over HTTP the phone answers a Poly status code (manual 002, "Error Codes")."""

    title = "Phone refused the command"

    def __init__(
        self, detail: str, *, http_status: int, poly_status: int | None, poly_meaning: str | None
    ) -> None:
        super().__init__(detail)
        self.http_status = http_status
        self.poly_status = poly_status
        self.poly_meaning = poly_meaning


class PhoneBusy(PhoneRefused):
    """The phone runs one request at a time and was busy with someone else's."""

    title = "Phone busy"
    retry_after = 1


class PhoneAuthFailed(RemoteError):
    title = "Phone refused the credentials"


class StoreError(SipBridgeError):
    title = "Tracker storage failed"


class NotSetUp(SipBridgeError):
    """No device-API user exists yet; the detail says how to create the first one."""

    title = "Not set up"


class ProfileError(SipBridgeError):
    title = "Profile or phone access configuration error"


class StartupError(SipBridgeError):
    title = "Cannot start"
