"""sipbridge beside a real Kamailio: REGISTERs replicated to it, a call through Kamailio learned
from the phone's dialog events, and the ACTION-URI NOTIFY sent straight or through Kamailio."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.api import create_app, keys
from tests.helpers import Kamailio, SippPhone, free_port, run_sipp_uac, wait_for
from tests.integration.conftest import AUTH, Borrowed, gateway_settings

CALL_ID = "kamcall-1@127.0.0.1"
UA = "PolyEdge-E450-UA/8.3.0.0123"


@pytest.mark.parametrize("through_kamailio", [False, True], ids=["direct", "outbound-proxy"])
async def test_call_through_kamailio_is_learned_and_held(tmp_path, user_agent, through_kamailio):
    kam_port = free_port()
    settings = gateway_settings(
        tmp_path,
        subscribe_dialogs="sip",
        sip_outbound_proxy=f"sip:127.0.0.1:{kam_port};lr" if through_kamailio else None,
    )
    app = create_app(settings, sender_factory=lambda _: Borrowed(user_agent))
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    listener = app[keys.LISTENER].port
    kamailio = Kamailio(port=kam_port, listener=f"sip:127.0.0.1:{listener}", workdir=tmp_path)
    phone = SippPhone(
        scenario="phone_dialog_events.xml",
        port=free_port(),
        workdir=tmp_path,
        calls=3,
        keys={"callid": CALL_ID},
    )
    try:
        kamailio.start()
        phone.start()
        # The phone registers with Kamailio, not with sipbridge.
        registered = await asyncio.to_thread(
            run_sipp_uac,
            "phone_register.xml",
            f"127.0.0.1:{kam_port}",
            tmp_path,
            keys={"contact_port": str(phone.port), "expires": "300", "ua": UA},
        )
        assert registered.returncode == 0, registered.stderr[-2000:]

        async def replicated():
            response = await client.get("/v1/phones/1001", headers=AUTH)
            return response.status == 200 and await response.json()

        record = await wait_for(replicated)
        assert record["contact"] == f"sip:1001@127.0.0.1:{phone.port}"
        assert record["user_agent"] == UA and record["learned_from"] == "register"

        async def subscribed():
            return app[keys.SUBSCRIPTIONS].active()

        await wait_for(subscribed)
        # A caller rings 1001 through Kamailio; the phone answers and reports the dialog.
        caller = asyncio.create_task(
            asyncio.to_thread(
                run_sipp_uac,
                "caller_uac.xml",
                f"127.0.0.1:{kam_port}",
                tmp_path,
                extra=("-cid_str", "kamcall-%u@%s"),
            )
        )

        async def learned():
            response = await client.get(f"/v1/calls/{CALL_ID}", headers=AUTH)
            return response.status == 200 and await response.json()

        call = await wait_for(learned)
        assert (call["phone"], call["state"]) == ("1001", "connected")

        response = await client.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
        assert response.status == 200, await response.text()
        assert (await response.json())["sip_status"] == 200
        assert (await caller).returncode == 0
        assert phone.finish(timeout=15) == 0, kamailio.log()[-3000:]
        by_method = {r.method: r for r in phone.received}
        assert set(by_method) >= {"SUBSCRIBE", "INVITE", "ACK", "BYE", "NOTIFY"}
        notify = by_method["NOTIFY"]
        assert notify.headers.get("Event") == "ACTION-URI"
        assert CALL_ID.encode() in notify.body
        # Through Kamailio, the request carries Kamailio's Via above sipbridge's.
        for method in ("SUBSCRIBE", "NOTIFY"):
            vias = by_method[method].headers.get_all("Via")
            assert len(vias) == (2 if through_kamailio else 1), (method, vias)
    finally:
        phone.kill()
        kamailio.stop()
        await client.close()
