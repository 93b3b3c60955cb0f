"""API keys: `Authorization: Bearer <key>` on every /v1 route but the public ones, at a level:
keys from the settings are Administrator, keys made with `sipbridge keys add` have their own.

A client address that keeps presenting wrong keys is throttled (`throttle.FailureThrottle`): past
`api_auth_failure_limit` failures within `api_auth_failure_window` seconds it gets 429 with
Retry-After, without its key being looked at, until the window ends. Keys may be as short as 8
characters (config.py), so online guessing must cost; only failures count, and a success clears
the count, so a client with a good key never reaches the limit by itself.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from sipbridge.admin.auth import bearer_level, is_device_api, throttled
from sipbridge.errors import Forbidden, StartupError, Unauthorized
from sipbridge.levels import Level

PUBLIC_PATHS = frozenset({"/v1/openapi.json", "/v1/health"})
METRICS_PATH = "/metrics"


# A front-API read (GET, HEAD) needs Monitor; commands and writes need Administrator.
READS = frozenset({"GET", "HEAD"})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """/v1 (all but the public paths): a Bearer key at the level the method needs. /api (the
    device API) and /metrics authenticate themselves (admin/auth.py)."""
    path = request.path
    if path in PUBLIC_PATHS or is_device_api(path) or path == METRICS_PATH:
        return await handler(request)
    level = bearer_level(request)
    if level is None:
        throttled(request).failed(request.remote or "unknown")
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    needed = Level.MONITOR if request.method in READS else Level.ADMINISTRATOR
    if level < needed:
        raise Forbidden(f"{request.method} {path} needs a key of level {needed.title}")
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
