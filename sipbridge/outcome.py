"""The one place that decides what a phone's answer means for the caller.

A 2xx final response means the phone took the command. Any other final response from the wire is
the phone's refusal (502 to the caller, with the phone's status and reason). A status the UA made
up itself is about the path, not the phone: 408 (Timer F, RFC 3261 §17.1.2.2) means no answer;
anything else means the phone could not be reached.
"""

from __future__ import annotations

from sipbridge.errors import PhoneRejected, PhoneTimeout, PhoneUnreachable
from sipbridge.sip.action_uri import SipAnswer


def accept_sip_answer(answer: SipAnswer) -> SipAnswer:
    """Return the answer if the phone accepted the command; raise the fitting RemoteError if not."""
    if 200 <= answer.status < 300:
        return answer
    if answer.from_wire:
        raise PhoneRejected(
            f"the phone answered {answer.status} {answer.reason}",
            sip_status=answer.status,
            sip_reason=answer.reason,
        )
    if answer.status == 408:
        raise PhoneTimeout("the phone did not answer the NOTIFY (SIP transaction timed out)")
    raise PhoneUnreachable(f"the NOTIFY could not be sent: {answer.status} {answer.reason}")
