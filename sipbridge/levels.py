"""Privilege levels of the device API (manual 004, section 2): Monitor < Administrator <
Security Administrator. Front-API keys carry one too (`/v1` reads need Monitor, the rest
Administrator)."""

from __future__ import annotations

import enum


class Level(enum.IntEnum):
    MONITOR = 1
    ADMINISTRATOR = 2
    SECURITY_ADMINISTRATOR = 3

    @property
    def title(self) -> str:
        """As manual 004 writes it: "Security Administrator"."""
        return self.name.replace("_", " ").title()

    @property
    def cli_name(self) -> str:
        """As the CLI and the database write it: "security-administrator"."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, text: str) -> Level:
        """From its CLI name or its title, any case; ValueError naming the choices."""
        key = text.strip().lower().replace(" ", "-").replace("_", "-")
        for level in cls:
            if level.cli_name == key:
                return level
        choices = ", ".join(level.cli_name for level in cls)
        raise ValueError(f"unknown level {text!r}: one of {choices}")
