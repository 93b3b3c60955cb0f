"""When sipbridge raises and clears its own alarms (issue 17; manual 004 section 9 for the API).

Sans-I/O: events in (a command ended, a start failed, a worker exited, a rate-limit sample, a
certificate's expiry date), calls to an `AlarmSink` out (tracker/alarm_log.py in the service,
a list in tests). The rules run on the event loop inside every command (admin/telemetry.py), so
the common case is a dict update; the sink is called only when an alarm changes state, as the
rules know it (`_active`, re-read from the database by every worker: `sync`, so an alarm raised
by one worker is cleared by another). A sink that fails (the store failing writes) is logged
and never reaches the command; the alarm is tried again on the next event.

The table of alarms, their keys and when each clears is in docs/device-api-alarms.md.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Protocol

from sipbridge.errors import SipBridgeError
from sipbridge.tracker.alarm_log import Alarm
from sipbridge.tracker.models import CommandLogEntry

log = logging.getLogger(__name__)

# Outcomes (error class names, as in the command log) that mean the phone did not answer.
NO_ANSWER = frozenset({"PhoneTimeout", "PhoneUnreachable"})
# ... and those that mean it answered, whatever it said.
ANSWERED = frozenset(
    {"ok", "PhoneRejected", "PhoneUnavailable", "PhoneRefused", "PhoneBusy", "PhoneAuthFailed"}
)
MAX_PHONES_COUNTED = 100_000
CERTIFICATE_WARNING_DAYS = 30
STORE_KEY = "store-writes-failing"
RATE_LIMIT_KEY = "sip-rate-limit"


class AlarmSink(Protocol):
    def raise_alarm(self, alarm: Alarm) -> bool: ...

    def clear_alarm(self, key: str) -> bool: ...


class AlarmRules:
    def __init__(
        self,
        sink: AlarmSink,
        *,
        unreachable_after: int,
        active: Mapping[str, str] | None = None,
        max_phones: int = MAX_PHONES_COUNTED,
    ) -> None:
        self._sink = sink
        self._unreachable_after = unreachable_after
        self._max_phones = max_phones
        self._timeouts: dict[str, int] = {}
        self._active: dict[str, str] = dict(active or {})

    def sync(self, active: Mapping[str, str]) -> None:
        """The active alarms as the database holds them (every worker's)."""
        self._active = dict(active)

    # -- the command path (CommandObserver) --------------------------------------------------

    def command_ended(self, entry: CommandLogEntry, *, written: bool) -> None:
        if written:
            self._clear(STORE_KEY)
        else:
            self._raise(
                Alarm(
                    key=STORE_KEY,
                    severity="major",
                    source="tracker",
                    description="tracker database failing writes (a command log entry was lost)",
                )
            )
        phone = entry.phone_id
        if phone is None:
            return
        outcome = entry.outcome
        if outcome == "QueueFull":
            self._raise(
                Alarm(
                    key=f"phone-queue-full:{phone}",
                    severity="warning",
                    source=f"phone:{phone}",
                    description=f"phone {phone} queue full: commands refused (429)",
                )
            )
            return
        self._clear(f"phone-queue-full:{phone}")
        # A 504 that never left (it waited in the queue past its deadline) says nothing of
        # the phone itself.
        if outcome in NO_ANSWER and entry.sent is not False:
            self._no_answer(phone)
        elif outcome in ANSWERED:
            self._answered(phone)

    def late_outcome(self, entry: CommandLogEntry, outcome: str) -> None:
        if entry.phone_id is not None and outcome in ANSWERED:
            self._answered(entry.phone_id)

    def _no_answer(self, phone: str) -> None:
        count = self._timeouts.pop(phone, 0) + 1
        if count == 1 and len(self._timeouts) >= self._max_phones:
            del self._timeouts[next(iter(self._timeouts))]  # the phone counted longest ago
        self._timeouts[phone] = count
        if count >= self._unreachable_after:
            self._raise(
                Alarm(
                    key=f"phone-unreachable:{phone}",
                    severity="major",
                    source=f"phone:{phone}",
                    description=f"phone {phone} unreachable: {count} consecutive timeouts",
                )
            )

    def _answered(self, phone: str) -> None:
        self._timeouts.pop(phone, None)
        self._clear(f"phone-unreachable:{phone}")

    # -- the service's own parts ---------------------------------------------------------------

    def start_failed(self, part: str, detail: str) -> None:
        """`part` ("sip-listener", "user-agent:worker 0") could not bind."""
        self._raise(
            Alarm(
                key=f"bind:{part}",
                severity="critical",
                source=part,
                description=f"{part} cannot start: {detail}",
            )
        )

    def started(self, part: str) -> None:
        self._clear(f"bind:{part}")

    def worker_exited(self, index: int, pid: int, code: int | None) -> None:
        self._raise(
            Alarm(
                key=f"worker-restarted:{index}",
                severity="major",
                source=f"worker:{index}",
                description=f"worker {index} (pid {pid}) exited with {code}; restarted",
            )
        )

    def worker_settled(self, index: int) -> None:
        """The restarted worker has kept running (workers.py `settle_after`)."""
        self._clear(f"worker-restarted:{index}")

    def rate_limit_sample(self, dropped: int, seconds: float) -> None:
        """How many inbound requests the SIP rate limit dropped in the last `seconds`."""
        if dropped <= 0:
            self._clear(RATE_LIMIT_KEY)
            return
        self._raise(
            Alarm(
                key=RATE_LIMIT_KEY,
                severity="warning",
                source="sip-listener",
                description=f"inbound SIP rate limit dropped {dropped} requests in the last "
                f"{seconds:.0f} s (registration storm?)",
            )
        )

    def certificate_checked(self, setting: str, not_after: float, now: float) -> None:
        """The certificate of `setting` expires at `not_after` (epoch seconds)."""
        key = f"tls-certificate:{setting}"
        days = (not_after - now) / 86_400
        if days > CERTIFICATE_WARNING_DAYS:
            self._clear(key)
            return
        when = datetime.datetime.fromtimestamp(not_after, datetime.UTC)
        when_text = when.strftime("%Y-%m-%d %H:%M UTC")
        expired = days <= 0
        self._raise(
            Alarm(
                key=key,
                severity="critical" if expired else "major",
                source=setting,
                description=f"TLS certificate of {setting} "
                + (f"expired on {when_text}" if expired else f"expires on {when_text}"),
            )
        )

    # -- the sink ----------------------------------------------------------------------------

    def _raise(self, alarm: Alarm) -> None:
        if self._active.get(alarm.key) == alarm.severity:
            return
        try:
            self._sink.raise_alarm(alarm)
        except SipBridgeError as exc:
            log.error("alarm %s not recorded: %s", alarm.key, exc.detail)
            return
        log.warning("alarm raised (%s): %s", alarm.severity, alarm.description)
        self._active[alarm.key] = alarm.severity

    def _clear(self, key: str) -> None:
        if key not in self._active:
            return
        try:
            self._sink.clear_alarm(key)
        except SipBridgeError as exc:
            log.error("alarm %s not cleared: %s", key, exc.detail)
            return
        log.info("alarm cleared: %s", key)
        del self._active[key]
