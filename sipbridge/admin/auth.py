"""Who is asking, and at which level: front-API keys (Bearer: /v1, /metrics) and device-API
users (HTTP Basic: /api, /api/v1, manual 004 section 3), checked against `admin/permissions.py`
(identities: `admin/identity.py`). Failures are throttled per client address by one throttle
for both schemes.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web
from aiohttp.typedefs import Handler

from sipbridge.admin import keys, permissions
from sipbridge.admin.identity import parse_basic
from sipbridge.admin.throttle import FailureThrottle
from sipbridge.errors import AuthThrottled, Forbidden, NotSetUp, Unauthorized
from sipbridge.levels import Level

BASIC_CHALLENGE = 'Basic realm="sipbridge"'
BEARER_CHALLENGE = 'Bearer realm="sipbridge"'

HOW_TO_SET_UP = (
    "the device API has no user yet: create one with "
    "'sipbridge users add admin --level security-administrator', or start with "
    "SIPBRIDGE_ADMIN_PASSWORD_FILE (docs/device-api.md)"
)


def throttled(request: web.Request, challenge: str = BEARER_CHALLENGE) -> FailureThrottle:
    """The throttle, or 429 when the client's address failed too often (both schemes)."""
    throttle = request.app[keys.AUTH_THROTTLE]
    wait = throttle.retry_after(request.remote or "unknown")
    if wait is not None:
        raise AuthThrottled(
            "too many requests with wrong or missing credentials from this address",
            retry_after=wait,
            challenge=challenge,
        )
    return throttle


async def basic_level(request: web.Request) -> Level:
    """The level of the device-API user making `request`, or 401 / 429 / 503."""
    gate = request.app[keys.USERS]
    if not gate.has_users():
        raise NotSetUp(HOW_TO_SET_UP)
    throttle = throttled(request, BASIC_CHALLENGE)
    client = request.remote or "unknown"
    given = parse_basic(request.headers.get("Authorization", ""))
    if given is None:
        throttle.failed(client)
        raise Unauthorized(
            "send a device-API user's name and password with HTTP Basic",
            challenge=BASIC_CHALLENGE,
        )
    level = await gate.level_of(given)
    if level is None:
        throttle.failed(client)
        raise Unauthorized("the user name or password is not valid", challenge=BASIC_CHALLENGE)
    throttle.succeeded(client)
    return level


def bearer_level(request: web.Request) -> Level | None:
    """The level of the Bearer key of `request`; None when it carries no Bearer key."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    throttle = throttled(request)
    level = request.app[keys.KEY_RING].level_of(presented.strip())
    client = request.remote or "unknown"
    if level is None:
        throttle.failed(client)
        raise Unauthorized("the API key is not valid")
    throttle.succeeded(client)
    return level


def is_device_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


@web.middleware
async def device_api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """/api and below: HTTP Basic, then the level table 2-2 asks for (403 below it, 405 with
    Allow for a method the resource lacks, at any level)."""
    if not is_device_api(request.path):
        return await handler(request)
    level = await basic_level(request)
    match = request.match_info
    if match.http_exception is not None and match.http_exception.status == 404:
        raise match.http_exception  # after authenticating: the tree is not shown to strangers
    # A method the route lacks has no route resource (aiohttp's 405): find its row by path.
    route = match.route.resource
    resource = (
        permissions.resource(route.canonical)
        if route is not None
        else permissions.resource_at(request.path)
    )
    if resource is None:
        raise web.HTTPNotFound()
    method = "GET" if request.method == "HEAD" else request.method
    needed = resource.methods.get(method)
    if needed is None:
        raise web.HTTPMethodNotAllowed(request.method, list(resource.methods))
    if level < needed:
        raise Forbidden(
            f"{request.method} {resource.route} needs {needed.title}; this user is {level.title}"
        )
    return await handler(request)


async def metrics_level(request: web.Request) -> Level | None:
    """/metrics: open to `metrics_allow` networks (None: no credentials asked); else a Bearer
    key or a device-API user, at least Monitor (401 otherwise)."""
    networks = request.app[keys.METRICS_ALLOW]
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        address = None
    if address is not None and any(address in network for network in networks):
        return None
    level = bearer_level(request)
    if level is not None:
        return level
    return await basic_level(request)
