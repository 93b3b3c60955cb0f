"""One thread owns pjsip: the session's UA, started outside any loop, is driven by whichever
loop of its thread sends, and refuses (never aborts on) a send from another thread."""

from __future__ import annotations

import asyncio
import threading

from sipbridge.sip._pjsua2 import PjsuaSender
from sipbridge.sip.action_uri import OutgoingRequest
from tests.helpers import SippPhone, free_port


def _notify(port: int) -> OutgoingRequest:
    return OutgoingRequest(
        target_uri=f"sip:1001@127.0.0.1:{port}",
        headers=(("Event", "ACTION-URI"),),
        content_type="application/json",
        body=b'{"command-URI":"/api/v1/callctrl/holdCall","data":{"Ref":"c@h"}}',
    )


def test_a_new_loop_on_the_owner_thread_drives_the_same_ua(user_agent: PjsuaSender, tmp_path):
    phone = SippPhone(
        scenario="phone_ok.xml", port=free_port(), workdir=tmp_path, calls=2
    ).start()
    try:
        for _ in range(2):  # two loops one after the other, as two tests would have
            answer = asyncio.run(user_agent.send(_notify(phone.port)))
            assert (answer.status, answer.from_wire) == (200, True)
    finally:
        phone.kill()


def test_a_send_from_another_thread_is_refused_not_fatal(user_agent: PjsuaSender):
    answers = []
    thread = threading.Thread(
        target=lambda: answers.append(asyncio.run(user_agent.send(_notify(9))))
    )
    thread.start()
    thread.join(timeout=10)
    [answer] = answers
    assert (answer.status, answer.from_wire) == (503, False)
    assert "another thread" in answer.reason
