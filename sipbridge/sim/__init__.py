"""A Poly phone simulator: REST over SIP (ACTION-URI NOTIFY), with the phone's limits."""

from sipbridge.sim.phone import POLY_TO_SIP, Received, SimCall, SimPhone, Verdict, new_call_id
from sipbridge.sim.server import SimPhoneServer

__all__ = [
    "POLY_TO_SIP",
    "Received",
    "SimCall",
    "SimPhone",
    "SimPhoneServer",
    "Verdict",
    "new_call_id",
]
