"""The HTTP front API (/v1)."""

from sipbridge.api.app import create_app

__all__ = ["create_app"]
