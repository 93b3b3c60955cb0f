"""Public surface of the sans-I/O SIP message layer (RFC 3261).

Import from here: `parse_message` for datagrams, `StreamParser` for stream transports,
`serialize` and `build_response` to answer, plus the small helpers the transaction layer needs.
The implementation lives in `_parser` (messages) and `uri` (URIs, addresses, parameters).
"""

from sipbridge.sip._parser import (
    Headers,
    SipMessage,
    SipRequest,
    SipResponse,
    StreamParser,
    build_response,
    cseq,
    header_params,
    parse_message,
    serialize,
    top_via_branch,
)
from sipbridge.sip.uri import SipParseError, SipUri, parse_name_addr, parse_uri, uri_host

__all__ = [
    "Headers",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "StreamParser",
    "build_response",
    "cseq",
    "header_params",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "serialize",
    "top_via_branch",
    "uri_host",
]
