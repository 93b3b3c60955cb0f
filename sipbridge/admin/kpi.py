"""sipbridge's own KPIs in the tree of manual 004 section 11: what they are, how commands are
counted, and the maths the device API does on them (percentiles, cursors, intervals). No I/O:
`admin/kpi_recorder.py` samples and persists, `admin/kpi_views.py` answers HTTP.

Every value has a flat name: `group/global/pm` for a group's global entity, or
`group/element/id/pm` for one indexed entity (a phone, a transport, a SIP method). Counters
count within one interval; gauges are the last sample of the interval. Latency is kept as
fixed-bucket histograms (`latency/<entity>/bucket.<i>` counts and `sumMs`), so intervals and
workers sum exactly and p50/p90/p99 are computed from the summed buckets.
"""

from __future__ import annotations

import bisect
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sipbridge import errors
from sipbridge.tracker.models import CommandLogEntry

APPLICATION = "sipbridge"
APPLICATION_DESCRIPTION = "sipbridge gateway statistics"

# Upper bounds (ms) of the latency buckets; the last bucket is open (over 30 s). One bucket is
# the resolution: a percentile is interpolated linearly inside the bucket it falls in.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
    1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 30_000,
)  # fmt: skip
BUCKETS = len(LATENCY_BOUNDS_MS) + 1

# Past this many phones seen in one process, further phones are counted under "other": a
# flood of distinct phone ids must not grow the counters without bound.
MAX_PHONES = 10_000
OTHER_PHONE = "other"


@dataclass(frozen=True)
class Pm:
    """One performance monitoring parameter: its id, name, what it counts, its unit."""

    id: str
    name: str
    description: str
    unit: str = "count"
    gauge: bool = False  # the last sample of the interval, not a count within it


@dataclass(frozen=True)
class Element:
    """An indexed entity kind of a group (manual's "ipGroup"): ids come from the data."""

    id: str
    description: str
    pms: tuple[Pm, ...]


@dataclass(frozen=True)
class Group:
    id: str
    description: str
    global_pms: tuple[Pm, ...]
    elements: tuple[Element, ...] = field(default=())

    def element(self, element_id: str) -> Element | None:
        return next((e for e in self.elements if e.id == element_id), None)


_COMMAND_PMS = (
    Pm("requested", "Commands requested", "Commands that ended, however they ended"),
    Pm("sent", "Commands sent", "Commands that reached a phone (a NOTIFY or a REST call left)"),
    Pm("succeeded", "Commands succeeded", "Commands the phone accepted"),
    Pm(
        "failed",
        "Commands failed",
        "Commands that ended with an error other than a timeout: refused by sipbridge "
        "(bad input, unknown call, queue full), rejected or unreachable phone",
    ),
    Pm("timedOut", "Commands timed out", "Commands with no final answer by the deadline (504)"),
)
_LATENCY_PMS = (
    Pm("count", "Commands timed", "Commands sent to a phone whose latency is counted"),
    Pm("mean", "Mean latency", "Mean time from request to the phone's final answer", "ms"),
    Pm("p50", "Median latency", "50th percentile latency (interpolated in its bucket)", "ms"),
    Pm("p90", "90th percentile latency", "90th percentile latency", "ms"),
    Pm("p99", "99th percentile latency", "99th percentile latency", "ms"),
)

GROUPS: tuple[Group, ...] = (
    Group(
        "commands",
        "Commands to phones (HTTP front API and PBX relay)",
        (
            *_COMMAND_PMS,
            Pm("queueFull", "Queue full", "Commands refused because the phone's queue was full"),
            Pm(
                "lateAnswers",
                "Late answers",
                "Final answers that came after their command had been answered 504",
            ),
        ),
        (
            Element("transport", "Per transport (sip, http)", _COMMAND_PMS),
            Element("phone", "Per phone (its id)", _COMMAND_PMS),
        ),
    ),
    Group(
        "latency",
        "Command latency of commands sent to a phone",
        _LATENCY_PMS,
        (Element("transport", "Per transport (sip, http)", _LATENCY_PMS),),
    ),
    Group(
        "queue",
        "Commands in the phones' queues (lanes)",
        (
            Pm("depth", "Queue depth", "Commands on the wire or waiting, last sample", gauge=True),
            Pm("onWire", "On the wire", "Commands sent and not yet answered", gauge=True),
            Pm(
                "waiting",
                "Waiting",
                "Commands waiting behind another to the same phone",
                gauge=True,
            ),
            Pm(
                "peak",
                "Peak depth",
                "Highest depth sampled (each second) in the interval, summed over workers",
                gauge=True,
            ),
        ),
    ),
    Group(
        "registrations",
        "Phone registrations (REGISTER copies, reginfo, tracker)",
        (
            Pm("registers", "REGISTERs", "REGISTER requests received"),
            Pm("bound", "Bound", "REGISTERs that registered or refreshed a phone"),
            Pm("unbound", "Unbound", "REGISTERs that removed a registration"),
            Pm("refused", "Refused", "REGISTERs answered with an error (401, 403, 400...)"),
            Pm("expired", "Expired", "Registrations that ran out and left the tracker"),
            Pm("active", "Active", "Phones registered in the tracker, last sample", gauge=True),
        ),
    ),
    Group(
        "dialogEvents",
        "Dialog and reg event NOTIFYs from phones (RFC 4235, RFC 3680)",
        (
            Pm("dialogNotifies", "Dialog NOTIFYs", "Event: dialog NOTIFYs received"),
            Pm("dialogRefused", "Dialog NOTIFYs refused", "Answered 481, 415 or 400"),
            Pm("regNotifies", "Reg NOTIFYs", "Event: reg NOTIFYs received"),
            Pm("regRefused", "Reg NOTIFYs refused", "Answered 415 or 400"),
        ),
    ),
    Group(
        "inbound",
        "SIP received by the listener",
        (
            Pm("received", "Received", "Messages received (before any check)"),
            Pm("retransmissions", "Retransmissions", "Requests absorbed as retransmissions"),
        ),
        (
            Element(
                "method",
                "New requests per SIP method (unknown methods: other)",
                (Pm("requests", "Requests", "New requests of this method"),),
            ),
            Element(
                "refusal",
                "Refusals per reason",
                (Pm("count", "Refusals", "Messages or connections refused for this reason"),),
            ),
            Element(
                "status",
                "Responses sent per status code",
                (Pm("responses", "Responses", "Final responses with this status"),),
            ),
        ),
    ),
    Group(
        "relay",
        "ACTION-URI NOTIFYs relayed from PBXs",
        (
            Pm("received", "Received", "ACTION-URI NOTIFYs taken for relay"),
            Pm("succeeded", "Succeeded", "Relayed commands answered 200"),
            Pm("refused", "Refused", "Relayed commands answered with an error"),
        ),
    ),
)

_GROUPS = {g.id: g for g in GROUPS}

# The refusal reasons the inbound group's `refusal` element has (listener's ListenerStats).
REFUSAL_REASONS = (
    "malformed",
    "forbidden",
    "rateLimited",
    "strangersUnrecorded",
    "connectionsRefused",
    "handshakesFailed",
)

PEAKS = {"queue/global/depth": "queue/global/peak"}


def group(group_id: str) -> Group | None:
    return _GROUPS.get(group_id)


def name(group_id: str, element: str, pm: str, entity: str | None = None) -> str:
    return f"{group_id}/{element}/{pm}" if entity is None else f"{group_id}/{element}/{entity}/{pm}"


def is_gauge(value_name: str) -> bool:
    group_id, element, rest = value_name.split("/", 2)
    pm_id = rest.rsplit("/", 1)[-1]
    owner = group(group_id)
    if owner is None or element != "global":
        return False
    return any(p.id == pm_id and p.gauge for p in owner.global_pms)


# -- counting commands ------------------------------------------------------------------------


def _outcome_kinds() -> dict[str, str]:
    """Error class name -> "timedOut" or "failed", and whether it reached a phone."""
    kinds: dict[str, str] = {}
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.PhoneTimeout):
            kinds[cls.__name__] = "timedOut"
        elif issubclass(cls, errors.PhoneUnreachable):
            kinds[cls.__name__] = "unreached"
        elif issubclass(cls, errors.RemoteError):
            kinds[cls.__name__] = "rejected"
        elif issubclass(cls, errors.SipBridgeError):
            kinds[cls.__name__] = "refused"
    return kinds


_KINDS = _outcome_kinds()


def classify(entry: CommandLogEntry) -> tuple[str, bool]:
    """("succeeded" | "failed" | "timedOut", whether the command reached a phone): rejected
    and timed-out commands that had left did; refusals and unreachable phones did not."""
    if entry.outcome == "ok":
        return "succeeded", True
    kind = _KINDS.get(entry.outcome, "refused")
    if kind == "timedOut":
        return "timedOut", entry.sent is not False
    return "failed", kind == "rejected"


def bucket_of(latency_ms: float) -> int:
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


class CommandCounters:
    """The command observer of the KPIs: cumulative counts in one dict, a few increments per
    command (the recorder turns them into per-interval deltas off the command path)."""

    def __init__(self, *, max_phones: int = MAX_PHONES) -> None:
        self.values: dict[str, float] = {}
        self._max_phones = max_phones
        self._phones: set[str] = set()

    def _add(self, key: str, amount: float = 1.0) -> None:
        values = self.values
        values[key] = values.get(key, 0.0) + amount

    def command_ended(self, entry: CommandLogEntry, *, written: bool) -> None:
        outcome = entry.outcome
        result, sent = classify(entry)
        prefixes = ["commands/global/"]
        if entry.transport:
            prefixes.append(f"commands/transport/{entry.transport}/")
        if entry.phone_id:
            phone = entry.phone_id
            if phone not in self._phones:
                if len(self._phones) >= self._max_phones:
                    phone = OTHER_PHONE
                else:
                    self._phones.add(phone)
            prefixes.append(f"commands/phone/{phone}/")
        for prefix in prefixes:
            self._add(prefix + "requested")
            self._add(prefix + result)
            if sent:
                self._add(prefix + "sent")
        if outcome == "QueueFull":
            self._add("commands/global/queueFull")
        if sent and entry.latency_ms is not None:
            bucket = f"bucket.{bucket_of(entry.latency_ms)}"
            self._add("latency/global/" + bucket)
            self._add("latency/global/sumMs", entry.latency_ms)
            if entry.transport:
                self._add(f"latency/transport/{entry.transport}/{bucket}")
                self._add(f"latency/transport/{entry.transport}/sumMs", entry.latency_ms)

    def late_outcome(self, entry: CommandLogEntry, outcome: str) -> None:
        self._add("commands/global/lateAnswers")


# -- reading ----------------------------------------------------------------------------------


def percentile(buckets: Sequence[float], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of a latency histogram (`buckets[i]` commands in bucket i),
    interpolated linearly inside its bucket; the open last bucket gives its lower bound. None
    when the histogram is empty."""
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for index, count in enumerate(buckets):
        if count > 0 and seen + count >= rank:
            if index >= len(LATENCY_BOUNDS_MS):
                return LATENCY_BOUNDS_MS[-1]
            lower = LATENCY_BOUNDS_MS[index - 1] if index > 0 else 0.0
            upper = LATENCY_BOUNDS_MS[index]
            return round(lower + (upper - lower) * (rank - seen) / count, 3)
        seen += count
    return LATENCY_BOUNDS_MS[-1]  # pragma: no cover - rounding only


def entity_values(
    values: Mapping[str, float], group_id: str, element: str, entity: str | None
) -> dict[str, float | None]:
    """Every pm of one entity, in the catalogue's order (missing counters are 0)."""
    owner = _GROUPS[group_id]
    pms = owner.global_pms if element == "global" else _element(owner, element).pms
    prefix = f"{group_id}/{element}/" + ("" if entity is None else f"{entity}/")
    if group_id == "latency":
        buckets = [values.get(f"{prefix}bucket.{i}", 0.0) for i in range(BUCKETS)]
        count = sum(buckets)
        total_ms = values.get(prefix + "sumMs", 0.0)
        return {
            "count": count,
            "mean": round(total_ms / count, 3) if count else None,
            "p50": percentile(buckets, 0.50),
            "p90": percentile(buckets, 0.90),
            "p99": percentile(buckets, 0.99),
        }
    return {pm.id: values.get(prefix + pm.id, 0.0) for pm in pms}


def _element(owner: Group, element: str) -> Element:
    found = owner.element(element)
    if found is None:
        raise KeyError(element)
    return found


def entity_ids(values: Mapping[str, float], group_id: str, element: str) -> list[str]:
    """The ids of `element` that have values, sorted (numbers as numbers)."""
    prefix = f"{group_id}/{element}/"
    ids = {n[len(prefix) :].rsplit("/", 1)[0] for n in values if n.startswith(prefix)}
    return sorted(ids, key=lambda i: (0, int(i), "") if i.isdigit() else (1, 0, i))


def clean(value: float | None) -> float | int | None:
    """Whole numbers as JSON integers."""
    if value is None or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


# -- cursors and intervals --------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    items: list[str]
    cursor: dict[str, str]


def page(
    ids: Sequence[str], *, after: str | None = None, before: str | None = None, limit: int | None
) -> Page:
    """One page of `ids` (manual 004 section 11.2): `after=X` the ids following X, `before=X`
    the ids preceding X (the last `limit` of them), else from the start; the cursor names the
    first and last id of the whole listing, and the ids to pass as `before` / `after` for the
    previous / next page ("-1": none). `after` / `before` must name an id of the listing."""
    if after is not None and before is not None:
        raise errors.InvalidInput.one("after", "give after or before, not both")
    position = {value: index for index, value in enumerate(ids)}
    for label, given in (("after", after), ("before", before)):
        if given is not None and given not in position:
            raise errors.InvalidInput.one(label, f"{given!r} is not in this listing")
    size = len(ids) if limit is None else limit
    if after is not None:
        first = position[after] + 1
        last = min(len(ids), first + size)
    elif before is not None:
        last = position[before]
        first = max(0, last - size)
    else:
        first, last = 0, min(len(ids), size)
    items = list(ids[first:last])
    cursor = {
        "start": ids[0] if ids else "-1",
        "before": items[0] if items and first > 0 else "-1",
        "after": items[-1] if items and last < len(ids) else "-1",
        "end": ids[-1] if ids else "-1",
    }
    return Page(items, cursor)


def interval_bounds(now: float, length: float) -> tuple[float, float]:
    """The interval holding `now`: aligned on multiples of `length` since the epoch, so every
    worker (and a restarted one) agrees on it without talking to the others."""
    start = math.floor(now / length) * length
    return start, start + length
