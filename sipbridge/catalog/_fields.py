"""Field rules shared by the command models.

Every value that reaches a phone passes one of these rules first. They keep control characters
(CR, LF, NUL...) out entirely, so no input can break the JSON body or the SIP message around it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

# RFC 3261 §25.1: callid = word [ "@" word ]; the word alphabet below is the RFC's, verbatim.
_WORD = r"""[A-Za-z0-9\-.!%*_+`'~()<>:\\"/\[\]?{}]+"""
CALL_ID_PATTERN = rf"^{_WORD}(@{_WORD})?$"

CallRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=CALL_ID_PATTERN),
]
"""A SIP Call-ID or the phone's own call handle (manual 002: Ref accepts either)."""

# DTMF events of RFC 4733 §3.2 that a keypad can produce: 0-9 * # and A-D.
Digits = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9A-Da-d*#]+$")]

# A number or a SIP URI; printable, no whitespace at the ends, no control characters.
Destination = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"),
]

LineNumber = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]?$")]

# Printable text for free-form values (config values, UI text): no control characters at all.
Text = Annotated[str, StringConstraints(max_length=2048, pattern=r"^[^\x00-\x1f\x7f]*$")]

# A configuration parameter name such as apps.restapi.enabled or reg.1.address.
ConfigParam = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
]

# A host name or IP literal for the diagnostics commands.
Host = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.:\-\[\]%]+$")
]

# An absolute URL the phone uploads to (export, packet capture).
Url = Annotated[
    str,
    StringConstraints(
        min_length=8, max_length=1024, pattern=r"^(https?|ftps?|tftp)://[^\x00-\x20\x7f]+$"
    ),
]

Digits1to5 = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,5}$")]
"""A small number the manual shows as a string (coordinates, milliseconds, sequence)."""
