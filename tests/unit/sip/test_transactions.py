import pytest

from sipbridge.sip.message import parse_message
from sipbridge.sip.transactions import TIMER_J, ServerTransactions, TransactionError


def request(branch="z9hG4bK-1", method="REGISTER", via_host="10.0.0.5:5060", cseq=1):
    text = (
        f"{method} sip:reg.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host};branch={branch}\r\n"
        "From: <sip:1001@example.com>;tag=a\r\nTo: <sip:1001@example.com>\r\n"
        f"Call-ID: c1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    return parse_message(text.encode())


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_retransmission_in_progress_is_absorbed_then_answered_again():
    clock = Clock()
    table = ServerTransactions(clock)
    first = table.receive(request())
    assert first.is_new
    again = table.receive(request())
    assert (again.is_new, again.resend) == (False, None)
    table.respond(first.key, b"SIP/2.0 200 OK", reliable=False)
    assert table.receive(request()).resend == b"SIP/2.0 200 OK"
    clock.now += TIMER_J + 0.1
    assert table.receive(request()).is_new  # Timer J fired: a new transaction


def test_same_branch_other_sent_by_or_method_is_another_transaction():
    table = ServerTransactions(Clock())
    assert table.receive(request()).is_new
    assert table.receive(request(via_host="10.0.0.6:5060")).is_new
    assert table.receive(request(method="OPTIONS")).is_new


def test_pre_3261_branch_matches_on_call_id_cseq_and_tags():
    table = ServerTransactions(Clock())
    assert table.receive(request(branch="old-1", cseq=1)).is_new
    assert not table.receive(request(branch="old-1", cseq=1)).is_new
    assert table.receive(request(branch="old-1", cseq=2)).is_new


def test_reliable_transport_forgets_at_once_and_double_respond_is_an_error():
    table = ServerTransactions(Clock())
    match = table.receive(request())
    table.respond(match.key, b"x", reliable=True)
    assert len(table) == 0
    match = table.receive(request(branch="z9hG4bK-2"))
    table.respond(match.key, b"x", reliable=False)
    with pytest.raises(TransactionError):
        table.respond(match.key, b"y", reliable=False)


def test_table_is_bounded():
    table = ServerTransactions(Clock(), max_entries=10)
    for n in range(50):
        table.receive(request(branch=f"z9hG4bK-{n}"))
    assert len(table) == 10


def test_proceeding_resends_the_provisional_until_the_final():
    table = ServerTransactions(Clock())
    match = table.receive(request())
    table.provisional(match.key, b"SIP/2.0 100 Trying")
    assert table.receive(request()).resend == b"SIP/2.0 100 Trying"
    table.respond(match.key, b"SIP/2.0 200 OK", reliable=False)
    assert table.receive(request()).resend == b"SIP/2.0 200 OK"
    with pytest.raises(TransactionError):
        table.provisional(match.key, b"SIP/2.0 100 Trying")
