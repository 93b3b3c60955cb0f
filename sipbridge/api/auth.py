"""API keys: `Authorization: Bearer <key>` on every route but the public ones."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from sipbridge.api import keys
from sipbridge.errors import Unauthorized

PUBLIC_PATHS = frozenset({"/v1/openapi.json", "/v1/health"})


def key_matches(presented: str, accepted: frozenset[str]) -> bool:
    # Compare against every key in constant time, so timing reveals neither key nor match.
    found = False
    for key in accepted:
        found |= hmac.compare_digest(presented.encode(), key.encode())
    return found


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in PUBLIC_PATHS:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
        if not key_matches(presented.strip(), request.app[keys.API_KEYS]):
            raise Unauthorized("the API key is not valid")
    return await handler(request)


def stored_or_new_key(data_dir: Path) -> tuple[str, Path, bool]:
    """The key kept in the data dir, made on first use: a fresh install is never open."""
    path = data_dir / "api-key"
    if path.is_file():
        return path.read_text().strip(), path, False
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key, path, True
