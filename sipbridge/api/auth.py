"""API keys: `Authorization: Bearer <key>` on every route but the public ones.

A client address that keeps presenting wrong keys is throttled (`throttle.FailureThrottle`): past
`api_auth_failure_limit` failures within `api_auth_failure_window` seconds it gets 429 with
Retry-After, without its key being looked at, until the window ends. Keys may be as short as 8
characters (config.py), so online guessing must cost; only failures count, and a success clears
the count, so a client with a good key never reaches the limit by itself.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from sipbridge.api import keys
from sipbridge.errors import AuthThrottled, StartupError, Unauthorized

PUBLIC_PATHS = frozenset({"/v1/openapi.json", "/v1/health"})


def key_matches(presented: str, accepted: frozenset[str]) -> bool:
    # Compare against every key in constant time, so timing reveals neither key nor match.
    # aiohttp hands undecodable header bytes over as surrogates: keep them, so they only mismatch.
    candidate = presented.encode("utf-8", "surrogateescape")
    found = False
    for key in accepted:
        found |= hmac.compare_digest(candidate, key.encode())
    return found


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in PUBLIC_PATHS:
        throttle = request.app[keys.AUTH_THROTTLE]
        client = request.remote or "unknown"
        wait = throttle.retry_after(client)
        if wait is not None:
            raise AuthThrottled(
                "too many requests with a wrong or missing API key from this address",
                retry_after=wait,
            )
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            throttle.failed(client)
            raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
        if not key_matches(presented.strip(), request.app[keys.API_KEYS]):
            throttle.failed(client)
            raise Unauthorized("the API key is not valid")
        throttle.succeeded(client)
    return await handler(request)


def stored_or_new_key(data_dir: Path) -> tuple[str, Path, bool]:
    """The key kept in the data dir, made on first use: a fresh install is never open.

    The file is the only credential of the API: one that others can read (group or other bits
    set) is refused, with the command that fixes it, rather than used or silently changed.
    """
    path = data_dir / "api-key"
    if path.is_file():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise StartupError(
                f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
            )
        return path.read_text().strip(), path, False
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    # O_EXCL with 0600 from the start: never a moment with a readable key, whatever the umask.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key, path, True
