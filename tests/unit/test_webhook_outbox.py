"""Pure parts of webhooks: the backoff schedule, the outbox state machine, the URL guard, and
the outbox on a real in-memory tracker (cursor and pending rows together)."""

import ipaddress

from sipbridge.api.webhook_delivery import outside, url_problem
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.webhook_store import (
    DEAD,
    DELIVERED,
    PENDING,
    WebhookStore,
    after_attempt,
    backoff,
    new_secret,
)

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def test_backoff_doubles_up_to_the_cap_with_jitter_inside_the_step():
    steps = [backoff(n, base=2, cap=60, jitter=lambda: 0.999999) for n in range(1, 8)]
    assert [round(s) for s in steps] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff(3, base=2, cap=60, jitter=lambda: 0.0) == 8 * 0.1


def test_state_machine_delivered_retried_dead():
    def attempt(tries: int, ok: bool):
        return after_attempt(
            tries=tries, ok=ok, now=100.0, max_tries=3, base=1.0, cap=10.0, jitter=lambda: 0.5
        )

    assert attempt(1, True).state == DELIVERED
    retry = attempt(2, False)
    assert retry.state == PENDING and retry.next_at > 100.0
    assert attempt(3, False).state == DEAD


def test_url_guard_form():
    assert url_problem("http://127.0.0.1:8/x") is None
    assert url_problem("https://hooks.example/x") is None
    assert "http" in (url_problem("ftp://127.0.0.1/") or "")
    assert "credentials" in (url_problem("http://a:b@127.0.0.1/") or "")
    assert "host" in (url_problem("http:///x") or "")
    assert url_problem("http://127.0.0.1:99999/") is not None


def test_addresses_outside_the_allowed_networks():
    assert outside(["127.0.0.1", "::1"], LOOPBACK) == []
    assert outside(["10.0.0.1", "127.0.0.2", "fe80::1%eth0"], LOOPBACK) == [
        "10.0.0.1",
        "fe80::1%eth0",
    ]


def test_secret_is_standard_webhooks_form():
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret) >= 6 + 32


def test_outbox_commits_one_pending_row_per_matching_hook_and_advances_the_cursor():
    store = TrackerStore(":memory:")
    hooks = WebhookStore(store)
    store.record_event("command.queued", phone="1")  # before any webhook: not delivered
    every = hooks.create(url="http://127.0.0.1/a", types=(), phone=None)
    only_2 = hooks.create(url="http://127.0.0.1/b", types=("command.queued",), phone="2")
    store.record_event("command.queued", phone="1")
    store.record_event("command.queued", phone="2")
    assert hooks.enqueue_new_events() == 2
    assert hooks.enqueue_new_events() == 0  # the cursor moved with the rows
    due = hooks.due(store.now() + 1, limit=10)
    assert len(due) == 3
    assert [d.webhook_id for d in due].count(only_2.id) == 1
    assert len({d.message_id for d in due if d.webhook_id == every.id}) == 2
    store.execute("DELETE FROM events")  # pruning: the payload lives in the row
    assert all(d.payload.startswith("{") for d in hooks.due(store.now() + 1, limit=10))
