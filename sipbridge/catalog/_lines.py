"""Firmware lines and versions: which phones a command exists on (pure data, no I/O).

A *line* is a firmware family that shares one command set; each manual documents one or more:

* ``ucs-5``  VVX UC Software 5.x (manual 001 is 5.8.0; manual 002 covers VVX from 5.9 on)
* ``ucs-6``  VVX UC Software 6.x (manual 000 is 6.4.0; manual 002)
* ``trio-ucs-5``  Trio 8500/8800 UC Software 5.x (manual 003 is 5.9.2)
* ``trio-ucs-7``  Trio 8500/8800 UC Software 7.x (manual 002, from 7.2)
* ``pvos``  Poly Voice Software 8.x / 9.x: CCX, Trio C60, Trio 8300, Edge E (manual 002)

A command's availability maps each line to the first version that has it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

Line = Literal["ucs-5", "ucs-6", "trio-ucs-5", "trio-ucs-7", "pvos"]
LINES: tuple[Line, ...] = ("ucs-5", "ucs-6", "trio-ucs-5", "trio-ucs-7", "pvos")

Version = tuple[int, ...]
"""A firmware version as numbers, e.g. (6, 4, 2, 4567); compared element by element."""

_VERSION = re.compile(r"^\d+(\.\d+){0,4}$")


def parse_version(text: str) -> Version:
    """`"6.4.2.4567"` -> (6, 4, 2, 4567); ValueError if it is not dotted numbers."""
    text = text.strip()
    if not _VERSION.fullmatch(text):
        raise ValueError(f"{text!r} is not a firmware version (dotted numbers)")
    return tuple(int(part) for part in text.split("."))


def format_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


Availability = Mapping[Line, Version]

ANY: Version = (0,)

# The lines each manual documents, and from which version (see the module docstring).
MANUAL_000: Availability = {"ucs-6": ANY}
MANUAL_001: Availability = {"ucs-5": ANY}
MANUAL_003: Availability = {"trio-ucs-5": ANY}
# Manual 002, "About this guide": minimum VVX UCS 5.9, Trio 8500/8800 UCS 7.2, PVOS 8.0.
MANUAL_002: Availability = {
    "ucs-5": (5, 9),
    "ucs-6": ANY,
    "trio-ucs-7": (7, 2),
    "pvos": (8, 0),
}
# A command manual 002 lists and manual 000 (UCS 6.4.0) does not: on VVX UCS 6 it is taken to
# have come with 6.4.2, the first UCS 6 release manual 002 names (issue 16, item 5).
AFTER_6_4_0: Version = (6, 4, 2)
ALL_MANUALS: tuple[Availability, ...] = (MANUAL_000, MANUAL_001, MANUAL_002, MANUAL_003)
# Lines with a hard limit of 20 parameters per getConfig / setConfig (4009 past it): manual 000
# (UCS 6.4.0), 001 (UCS 5.8.0) and 003 (Trio UCS 5.9.2). Only manual 002 says "no maximum"
# (20 KB of content only); it is followed only where no other manual covers the line.
CONFIG_PARAMETER_LIMIT: Mapping[Line, int] = {"ucs-5": 20, "ucs-6": 20, "trio-ucs-5": 20}


def documented_in(
    *manuals: Availability, since: Mapping[Line, Version] | None = None
) -> dict[Line, Version]:
    """Union of the manuals' lines (earliest version wins), then `since` tightens lines."""
    merged: dict[Line, Version] = {}
    for manual in manuals:
        for line, version in manual.items():
            merged[line] = min(version, merged.get(line, version))
    for line, version in (since or {}).items():
        merged[line] = version
    return merged


def describe(availability: Availability) -> str:
    """Human text for `sipbridge catalog`: 'ucs-6, pvos 8.6+'."""
    parts = []
    for line in LINES:
        if line in availability:
            version = availability[line]
            parts.append(line if version == ANY else f"{line} {format_version(version)}+")
    return ", ".join(parts)


def lines_of(availabilities: Iterable[Availability]) -> set[Line]:
    return {line for availability in availabilities for line in availability}
