"""The one place where errors become HTTP responses: RFC 9457 problem JSON.

Every error a handler raises passes through `problem_middleware`: sipbridge's own errors by the
table below, aiohttp's HTTP exceptions (unknown route, wrong method, body over the limit) by their
status, and anything unexpected as a logged 500 whose body carries no traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from sipbridge import errors

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "urn:sipbridge:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"

# Most specific first: the first matching class decides; the last rows catch every error (the
# SIP twin, with the reasons for each SIP answer, is `pbx/relay.py SIP_STATUS`).
STATUS: tuple[tuple[type[errors.SipBridgeError], int, str], ...] = (
    (errors.MalformedBody, 400, "malformed-json"),
    (errors.AuthThrottled, 429, "auth-throttled"),
    (errors.Unauthorized, 401, "unauthorized"),
    (errors.Forbidden, 403, "forbidden"),
    (errors.StateConflict, 409, "call-state-conflict"),
    (errors.Conflict, 409, "conflict"),
    (errors.UnknownPhone, 404, "unknown-phone"),
    (errors.UnknownCall, 404, "unknown-call"),
    (errors.NotFound, 404, "not-found"),
    (errors.PayloadTooLarge, 413, "payload-too-large"),
    (errors.UnsupportedMediaType, 415, "unsupported-media-type"),
    (errors.NotSupportedByPhone, 422, "not-supported-by-phone"),
    (errors.TransportUnavailable, 422, "transport-unavailable"),
    (errors.InvalidInput, 422, "invalid-input"),
    (errors.QueueFull, 429, "phone-queue-full"),
    (errors.RequestError, 400, "bad-request"),
    # A phone's 503 is that phone's, for a while: the caller may retry (its Retry-After kept).
    (errors.PhoneUnavailable, 503, "phone-unavailable"),
    (errors.PhoneRejected, 502, "phone-rejected"),
    (errors.ContactNotAllowed, 502, "phone-contact-not-allowed"),
    (errors.ContactUnresolvable, 502, "phone-contact-unresolvable"),
    (errors.PhoneUnreachable, 502, "phone-unreachable"),
    (errors.ContactResolutionTimeout, 504, "phone-dns-timeout"),
    (errors.PhoneTimeout, 504, "phone-timeout"),
    (errors.PhoneBusy, 503, "phone-busy"),
    (errors.PhoneRefused, 502, "phone-refused"),
    (errors.PhoneAuthFailed, 502, "phone-auth-failed"),
    (errors.RemoteError, 502, "bad-gateway"),
    (errors.StoreError, 503, "store-unavailable"),
    (errors.NotSetUp, 503, "not-set-up"),
    (errors.ProfileError, 500, "profile-error"),
    (errors.SipBridgeError, 500, "internal"),
)


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    challenge: str = 'Bearer realm="sipbridge"',
    **extra: Any,
) -> web.Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = challenge
    return web.json_response(
        body, status=status, content_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


def from_error(exc: errors.SipBridgeError) -> web.Response:
    status, slug = 500, "internal"
    for cls, code, name in STATUS:
        if isinstance(exc, cls):
            status, slug = code, name
            break
    extra: dict[str, Any] = dict(exc.context)
    if isinstance(exc, errors.InvalidInput):
        extra["errors"] = [{"field": p.field, "message": p.message} for p in exc.problems]
    if isinstance(exc, errors.PhoneRejected):
        extra["sip_status"] = exc.sip_status
        extra["sip_reason"] = exc.sip_reason
    if isinstance(exc, errors.PhoneTimeout):
        # True: the command left and its outcome is unknown; false: it never left the queue.
        extra["sent"] = exc.sent
    if isinstance(exc, errors.PhoneRefused):
        extra["http_status"] = exc.http_status
        extra["poly_status"] = exc.poly_status
        extra["poly_meaning"] = exc.poly_meaning
    if isinstance(exc, errors.StateConflict):
        extra["state"] = exc.state
    if isinstance(exc, errors.Unauthorized):
        extra["challenge"] = exc.challenge
    response = problem_response(status, slug, exc.title, exc.detail, **extra)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def from_http_exception(exc: web.HTTPException) -> web.Response:
    status = exc.status
    detail = exc.text if exc.text and not exc.text.startswith(f"{status}:") else exc.reason
    if status == 413:
        detail = "the request body is over the size limit"
    slug = exc.reason.lower().replace(" ", "-")
    response = problem_response(status, slug, exc.reason, detail)
    allow = exc.headers.get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.SipBridgeError as exc:
        return from_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http_exception(exc)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(500, "internal", "Internal error", "see the service log")
