"""The alarm rules against a sink that records what they raise and clear."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sipbridge.admin.alarm_rules import AlarmRules
from sipbridge.errors import StoreError
from sipbridge.tracker.alarm_log import Alarm
from sipbridge.tracker.models import CommandLogEntry


@dataclass
class Sink:
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    failing: bool = False

    def raise_alarm(self, alarm: Alarm) -> bool:
        if self.failing:
            raise StoreError("disk I/O error")
        self.calls.append(("raise", alarm.key, alarm.severity))
        return True

    def clear_alarm(self, key: str) -> bool:
        if self.failing:
            raise StoreError("disk I/O error")
        self.calls.append(("clear", key, "cleared"))
        return True


def entry(outcome: str, phone: str | None = "1001", sent: bool | None = None) -> CommandLogEntry:
    if outcome == "PhoneTimeout" and sent is None:
        sent = True
    return CommandLogEntry(
        source="http:test", outcome=outcome, reason="r", phone_id=phone, sent=sent
    )


def rules(sink: Sink, **kwargs: object) -> AlarmRules:
    return AlarmRules(sink, unreachable_after=3, **kwargs)  # type: ignore[arg-type]


def test_three_consecutive_timeouts_raise_unreachable_once_and_an_answer_clears_it():
    sink = Sink()
    watch = rules(sink)
    for _ in range(2):
        watch.command_ended(entry("PhoneTimeout"), written=True)
    assert sink.calls == []
    for _ in range(3):
        watch.command_ended(entry("PhoneTimeout"), written=True)
    assert sink.calls == [("raise", "phone-unreachable:1001", "major")]
    watch.command_ended(entry("PhoneRejected"), written=True)
    assert sink.calls[-1] == ("clear", "phone-unreachable:1001", "cleared")
    watch.command_ended(entry("ok"), written=True)
    assert len(sink.calls) == 2


def test_an_answer_between_timeouts_restarts_the_count():
    sink = Sink()
    watch = rules(sink)
    for outcome in ["PhoneTimeout", "PhoneTimeout", "ok", "PhoneTimeout", "PhoneUnreachable"]:
        watch.command_ended(entry(outcome), written=True)
    assert sink.calls == []


def test_timeouts_that_never_left_and_other_phones_do_not_count():
    sink = Sink()
    watch = rules(sink)
    for _ in range(3):
        watch.command_ended(entry("PhoneTimeout", sent=False), written=True)
        watch.command_ended(entry("InvalidInput"), written=True)
    watch.command_ended(entry("PhoneTimeout", phone="2002"), written=True)
    assert sink.calls == []


def test_a_late_answer_clears_unreachable():
    sink = Sink()
    watch = rules(sink)
    for _ in range(3):
        watch.command_ended(entry("PhoneTimeout"), written=True)
    watch.late_outcome(entry("PhoneTimeout"), "PhoneTimeout")
    assert len(sink.calls) == 1
    watch.late_outcome(entry("PhoneTimeout"), "ok")
    assert sink.calls[-1] == ("clear", "phone-unreachable:1001", "cleared")


def test_an_alarm_raised_by_another_worker_is_cleared_here_after_sync():
    sink = Sink()
    watch = rules(sink)
    watch.command_ended(entry("ok"), written=True)
    assert sink.calls == []
    watch.sync({"phone-unreachable:1001": "major"})
    watch.command_ended(entry("ok"), written=True)
    assert sink.calls == [("clear", "phone-unreachable:1001", "cleared")]


def test_queue_full_is_a_warning_cleared_by_the_next_command_that_completes():
    sink = Sink()
    watch = rules(sink)
    watch.command_ended(entry("QueueFull"), written=True)
    watch.command_ended(entry("QueueFull"), written=True)
    watch.command_ended(entry("PhoneTimeout"), written=True)
    assert sink.calls == [
        ("raise", "phone-queue-full:1001", "warning"),
        ("clear", "phone-queue-full:1001", "cleared"),
    ]


def test_store_failing_writes_is_raised_then_cleared_and_a_failing_sink_never_raises():
    sink = Sink(failing=True)
    watch = rules(sink)
    watch.command_ended(entry("ok", phone=None), written=False)  # logged, not raised
    assert sink.calls == []
    sink.failing = False
    watch.command_ended(entry("ok", phone=None), written=False)
    watch.command_ended(entry("ok", phone=None), written=False)
    watch.command_ended(entry("ok", phone=None), written=True)
    assert sink.calls == [
        ("raise", "store-writes-failing", "major"),
        ("clear", "store-writes-failing", "cleared"),
    ]


def test_counted_phones_are_bounded_oldest_first():
    sink = Sink()
    watch = rules(sink, max_phones=2)
    for phone in ["a", "a", "b", "c"]:  # "c" makes "a" (two timeouts) the one forgotten
        watch.command_ended(entry("PhoneTimeout", phone=phone), written=True)
    for phone in ["b", "b", "a"]:  # a third for "b"; "a" starts again at one
        watch.command_ended(entry("PhoneTimeout", phone=phone), written=True)
    assert sink.calls == [("raise", "phone-unreachable:b", "major")]


def test_bind_failure_is_critical_until_the_next_start():
    sink = Sink()
    watch = rules(sink)
    watch.started("sip-listener")
    watch.start_failed("sip-listener", "Address already in use")
    assert sink.calls == [("raise", "bind:sip-listener", "critical")]
    fresh = rules(sink, active={"bind:sip-listener": "critical"})  # the next start
    fresh.started("sip-listener")
    assert sink.calls[-1] == ("clear", "bind:sip-listener", "cleared")


def test_worker_restart_then_settled():
    sink = Sink()
    watch = rules(sink)
    watch.worker_exited(2, 4242, -9)
    watch.worker_settled(2)
    assert sink.calls == [
        ("raise", "worker-restarted:2", "major"),
        ("clear", "worker-restarted:2", "cleared"),
    ]


def test_rate_limit_samples():
    sink = Sink()
    watch = rules(sink)
    watch.rate_limit_sample(0, 10)
    watch.rate_limit_sample(500, 10)
    watch.rate_limit_sample(20, 10)
    watch.rate_limit_sample(0, 10)
    assert sink.calls == [
        ("raise", "sip-rate-limit", "warning"),
        ("clear", "sip-rate-limit", "cleared"),
    ]


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [(31, []), (29, [("raise", "tls-certificate:tls_cert_file", "major")]),
     (-1, [("raise", "tls-certificate:tls_cert_file", "critical")])],
)  # fmt: skip
def test_certificate_expiry(days_left, expected):
    sink = Sink()
    now = 1_800_000_000.0
    rules(sink).certificate_checked("tls_cert_file", now + days_left * 86_400, now)
    assert sink.calls == expected


def test_a_renewed_certificate_clears_the_alarm():
    sink = Sink()
    watch = rules(sink)
    now = 1_800_000_000.0
    watch.certificate_checked("tls_cert_file", now + 86_400, now)
    watch.certificate_checked("tls_cert_file", now + 90 * 86_400, now)
    assert sink.calls[-1] == ("clear", "tls-certificate:tls_cert_file", "cleared")
