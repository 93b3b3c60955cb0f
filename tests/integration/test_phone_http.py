"""The phone's REST API as a second transport: real gateway, real UA, simulated phones serving
both SIP and HTTP on 127.0.0.1, real SQLite; one test per profile and per auth method."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiohttp import ClientSession, encode_basic_auth, web
from aiohttp.test_utils import TestClient

from sipbridge.sim import SimPhone, SimPhoneServer
from sipbridge.sim.http import SimAuth, SimHttpPhone, SimHttpServer
from tests.helpers import free_port
from tests.integration.conftest import AUTH, register

PASSWORD = "S3cret-Admin-1"


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Lab:
    """Simulated phones (SIP + HTTP) and the credentials file that points at them."""

    tmp_path: object
    servers: list[SimPhoneServer | SimHttpServer] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)

    async def phone(
        self,
        phone_id: str,
        *,
        auth: tuple[SimAuth, ...] = ("basic",),
        password: str = PASSWORD,
        credential: str | None = None,
        sessions: bool = False,
        processing_time: float = 0.0,
        clock: Clock | None = None,
        access_auth: str | None = None,
    ) -> tuple[SimPhone, SimPhoneServer, SimHttpPhone]:
        phone = SimPhone(phone_id)
        sip = await _sip_server(phone)
        http = SimHttpPhone(
            phone,
            password=password,
            auth=auth,
            sessions=sessions,
            processing_time=processing_time,
            clock=clock or Clock(),
        )
        web = SimHttpServer(http)
        await web.start()
        self.servers += [sip, web]
        entry = f'[phones."{phone_id}"]\nurl = "{web.url}"\n'
        if credential is not None:
            entry += f'password = "{credential}"\n'
        if access_auth is not None:
            entry += f'auth = "{access_auth}"\n'
        self.entries.append(entry)
        return phone, sip, http

    def credentials_file(self):
        path = self.tmp_path / "phones.toml"  # type: ignore[operator]
        path.write_text(f'[default]\npassword = "{PASSWORD}"\n\n' + "\n".join(self.entries))
        path.chmod(0o600)
        return path

    async def close(self) -> None:
        for server in self.servers:
            await server.stop()


async def _sip_server(phone: SimPhone) -> SimPhoneServer:
    """The SIP side on a port free for UDP and TCP; a port taken in between is tried again."""
    for _ in range(10):
        server = SimPhoneServer(phone, port=free_port())
        try:
            await server.start()
        except OSError:
            await server.stop()
            continue
        return server
    raise RuntimeError("no free SIP port for the simulated phone")


@pytest.fixture
async def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    await lab.close()


@pytest.fixture
def start_gateway(gateway_factory, lab):
    async def start() -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = await gateway_factory(
            phone_credentials_file=lab.credentials_file()
        )
        return client

    return start


async def command(client, phone, command_uri, data=None, transport="auto"):
    response = await client.post(
        f"/v1/phones/{phone}/commands?transport={transport}",
        json={"command_uri": command_uri, "data": data or {}},
        headers=AUTH,
    )
    return response.status, await response.json()


async def act(client, call_id, action, transport="auto"):
    response = await client.post(
        f"/v1/calls/{call_id}/{action}?transport={transport}", headers=AUTH
    )
    return response.status, await response.json()


# -- per profile: the realistic User-Agent decides transport and what is allowed -----------------

SIP_CAPABLE = [
    ("PolycomVVX-VVX_411-UA/6.4.3.5018", ("basic",)),
    ("PolycomRealPresenceTrio-Trio_8800-UA/7.2.2.1094", ("basic",)),
    ("FileTransport PolyCCX-CCX_600-UA/8.0.2.3267 (SN:482567b5313f) Type/Application", ("basic",)),
    ("PolyCCX-CCX_500-UA/9.4.1.0508", ("SHA-256", "MD5")),
    ("PolyEdge-Edge_E350-UA/8.3.1.0614_f04ea4691c59", ("SHA-256", "MD5")),
    ("PolycomRealPresenceTrio-Trio_C60-UA/9.2.1.0123", ("SHA-256", "MD5")),
]


@pytest.mark.parametrize(("user_agent_string", "auth"), SIP_CAPABLE)
async def test_profiles_with_rest_over_sip_hold_over_sip_and_query_over_http(
    lab, start_gateway, user_agent_string, auth
):
    phone, sip, http = await lab.phone("1001", auth=auth)
    call = phone.add_call()
    gateway = await start_gateway()
    await register(gateway, "1001", sip.contact, call.call_id, user_agent=user_agent_string)

    status, result = await act(gateway, call.call_id, "hold")
    assert (status, result["transport"], result["sip_status"]) == (200, "sip", 200), result
    assert call.state == "held" and http.log.requests == []

    status, result = await command(gateway, "1001", "/api/v2/webCallControl/callStatus")
    assert (status, result["transport"], result["http_status"]) == (200, "http", 200), result
    assert (result["poly_status"], result["poly_meaning"]) == (2000, "success")
    assert [c["CallState"] for c in result["data"]] == ["Hold"]
    assert result["sip_status"] is None


async def test_a_basic_profile_phone_that_offers_digest_never_gets_basic(lab, start_gateway):
    """Issue #14 item 3: the password goes in clear only to a phone that asks for nothing else."""
    _phone, sip, http = await lab.phone("1001", auth=("SHA-256",))
    gateway = await start_gateway()
    await register(
        gateway, "1001", sip.contact, user_agent="PolycomVVX-VVX_450-UA/5.9.5.0614"
    )
    for _ in range(2):
        status, listed = await command(gateway, "1001", "/api/v2/webCallControl/callStatus")
        assert status == 200, listed
    assert "basic" not in {r[2] for r in http.log.requests}
    assert {r[2] for r in http.log.requests if r[3] == 200} == {"digest-SHA-256"}


@pytest.mark.parametrize(
    "user_agent_string",
    [
        "PolycomVVX-VVX_450-UA/5.9.5.0614",
        "PolycomVVX-VVX_411-UA/6.4.0.1234",  # UCS 6.x before 6.4.2: no REST over SIP yet
        "PolycomRealPresenceTrio-Trio_8800-UA/5.9.2.7215",
    ],
)
async def test_profiles_without_rest_over_sip_get_call_control_over_http(
    lab, start_gateway, user_agent_string
):
    phone, sip, http = await lab.phone("1001")
    call = phone.add_call()
    gateway = await start_gateway()
    await register(gateway, "1001", sip.contact, call.call_id, user_agent=user_agent_string)

    # Ref by SIP Call-ID needs UCS 6.4.2: refused before anything is sent.
    status, problem = await act(gateway, call.call_id, "hold")
    assert (status, problem["errors"][0]["field"]) == (422, "call_id"), problem
    assert "call handles" in problem["detail"]
    # The handle from callStatus v2, then hold by handle: both over HTTP, Basic auth.
    status, listed = await command(gateway, "1001", "/api/v2/webCallControl/callStatus")
    assert status == 200, listed
    [handle] = [c["CallHandle"] for c in listed["data"]]
    status, result = await command(gateway, "1001", "holdCall", {"Ref": handle})
    assert (status, result["transport"], result["poly_status"]) == (200, "http", 2000), result
    assert call.state == "held"
    # The profile says Basic: asked first without credentials, Basic once the phone offered it.
    schemes = [(r[2], r[3]) for r in http.log.requests]
    assert schemes[0] == ("none", 401), schemes
    assert sip.phone.received == [] and {s for s, _ in schemes[1:]} == {"basic"}
    # Forcing SIP onto it says why it cannot work.
    status, problem = await command(gateway, "1001", "holdCall", {}, transport="sip")
    assert status == 422 and "over SIP" in problem["detail"]


async def test_ccx_350_has_no_rest_api(lab, start_gateway):
    phone, sip, http = await lab.phone("1001")
    call = phone.add_call()
    gateway = await start_gateway()
    await register(
        gateway, "1001", sip.contact, call.call_id, user_agent="PolyCCX-CCX_350-UA/1.3.0.0102"
    )
    for transport in ("auto", "http", "sip"):
        status, problem = await act(gateway, call.call_id, "hold", transport)
        assert status == 422 and "no REST API" in problem["detail"], problem
        assert problem["type"].endswith("not-supported-by-phone")
    assert sip.phone.received == [] and http.log.requests == []


async def test_pinned_profile_beats_the_user_agent(lab, start_gateway):
    phone, sip, _http = await lab.phone("1001")
    call = phone.add_call()
    gateway = await start_gateway()
    await register(
        gateway,
        "1001",
        sip.contact,
        call.call_id,
        user_agent="Acme-Softphone/2.0",
        profile="vvx-ucs5",
    )
    status, result = await command(gateway, "1001", "holdCall", {})
    assert (status, result["transport"]) == (200, "http"), result
    response = await gateway.put(
        "/v1/phones/1002", json={"contact": sip.contact, "profile": "no-such"}, headers=AUTH
    )
    assert response.status == 422


# -- per auth method --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "access_auth", "scheme"),
    [
        (("basic",), "basic", "basic"),
        (("MD5",), "digest", "digest-MD5"),
        (("SHA-256",), "digest", "digest-SHA-256"),
        (("SHA-256", "MD5"), "digest", "digest-SHA-256"),
        (("MD5", "SHA-256"), "digest", "digest-MD5"),  # aiohttp answers the first challenge
    ],
)
async def test_auth_methods_against_the_simulator(lab, start_gateway, auth, access_auth, scheme):
    _phone, sip, http = await lab.phone("1001", auth=auth, access_auth=access_auth)
    gateway = await start_gateway()
    await register(gateway, "1001", sip.contact, user_agent="PolyEdge-Edge_E350-UA/8.3.1.0614")
    for _ in range(3):
        status, result = await command(gateway, "1001", "deviceInfoV2")
        assert status == 200, result
        assert result["data"]["ModelNumber"] == "Edge E450"
    served = [r for r in http.log.requests if r[3] == 200]
    assert len(served) == 3 and {r[2] for r in served} == {scheme}


async def test_session_tokens_are_reused_renewed_and_deleted(lab, start_gateway):
    clock = Clock()
    _phone, sip, http = await lab.phone("1001", auth=("SHA-256", "MD5"), sessions=True, clock=clock)
    gateway = await start_gateway()
    ua = "PolyEdge-Edge_E350-UA/8.3.1.0614"
    await register(gateway, "1001", sip.contact, user_agent=ua)
    for _ in range(5):
        status, result = await command(gateway, "1001", "pollForStatus")
        assert status == 200, result
    assert http.log.sessions_created == 1
    assert [r[2] for r in http.log.requests if r[3] == 200][-5:] == ["session"] * 4 + ["session"]
    # The phone drops the session at its lifetime: the next command opens a new one.
    clock.now += 2000
    status, _ = await command(gateway, "1001", "pollForStatus")
    assert status == 200 and http.log.sessions_created == 2
    assert http.log.max_live_sessions == 1  # one at a time, far below the phone's 10
    await gateway.close()  # shutdown deletes the session it holds
    assert http.sessions == {} and http.log.sessions_deleted == 1


async def test_session_refused_falls_back_to_digest(lab, start_gateway):
    # MD5 offered first: aiohttp answers with MD5, and the phone wants SHA-256 for sessions.
    _phone, sip, http = await lab.phone("1001", auth=("MD5", "SHA-256"), sessions=True)
    gateway = await start_gateway()
    await register(gateway, "1001", sip.contact, user_agent="PolyCCX-CCX_500-UA/9.4.1.0508")
    status, result = await command(gateway, "1001", "deviceInfoV2")
    assert status == 200, result
    assert http.log.sessions_created == 0
    assert http.log.requests[-1][2] == "digest-MD5"


# -- refusals, limits and the shared lane ---------------------------------------------------------


async def test_poly_codes_reach_the_caller(lab, start_gateway):
    _phone, sip, _http = await lab.phone("1001", password="456", credential="456")
    _phone2, sip2, _http2 = await lab.phone("1002", credential="wrong-password")
    gateway = await start_gateway()
    ua = "PolycomVVX-VVX_411-UA/6.4.3.5018"
    await register(gateway, "1001", sip.contact, user_agent=ua)
    await register(gateway, "1002", sip2.contact, user_agent=ua)

    status, problem = await command(gateway, "1001", "deviceInfoV2")
    assert status == 502, problem
    assert (problem["poly_status"], problem["http_status"]) == (4010, 403)
    assert "default password" in problem["poly_meaning"]
    status, problem = await command(gateway, "1002", "deviceInfoV2")
    assert status == 502 and problem["type"].endswith("phone-auth-failed"), problem
    assert "wrong-password" not in str(problem)
    status, problem = await command(gateway, "1001", "callStatusV2", {"sequence": "1"})
    assert status == 422  # the query rules: sequence needs line


async def test_warm_transfer_over_http_is_refused_and_big_bodies_never_leave(lab, start_gateway):
    phone, sip, http = await lab.phone("1001")
    a, b = phone.add_call(), phone.add_call(state="held")
    gateway = await start_gateway()
    await register(
        gateway, "1001", sip.contact, a.call_id, user_agent="PolycomVVX-VVX_411-UA/6.4.3.5018"
    )
    response = await gateway.put(f"/v1/calls/{b.call_id}", json={"phone": "1001"}, headers=AUTH)
    assert response.status == 200
    response = await gateway.post(
        f"/v1/calls/{a.call_id}/warm-transfer?transport=http",
        json={"other_call_id": b.call_id},
        headers=AUTH,
    )
    problem = await response.json()
    assert response.status == 422 and "SIP-only" in problem["detail"], problem
    names = [f"param.{n:05d}.with.a.long.name.for.padding" for n in range(600)]
    status, _ = await command(gateway, "1001", "getConfig", names)
    assert status == 413
    assert http.log.requests == [] and sip.phone.received == []


async def test_phone_busy_with_someone_else_is_503_and_our_commands_share_one_lane(
    lab, start_gateway
):
    phone, sip, _http = await lab.phone("1001", processing_time=0.5)
    call = phone.add_call()
    gateway = await start_gateway()
    await register(
        gateway, "1001", sip.contact, call.call_id, user_agent="PolycomVVX-VVX_411-UA/6.4.3.5018"
    )

    # Someone else's request occupies the phone: ours is refused with 403 / 4001 -> 503.
    async with ClientSession() as other:
        url = lab.servers[1].url + "/api/v1/mgmt/pollForStatus"
        basic = {"Authorization": encode_basic_auth("Polycom", PASSWORD)}
        busy = asyncio.create_task(other.get(url, headers=basic))
        await asyncio.sleep(0.1)
        response = await gateway.post(
            "/v1/phones/1001/commands",
            json={"command_uri": "deviceInfoV2", "data": {}},
            headers=AUTH,
        )
        problem = await response.json()
        assert response.status == 503 and response.headers["Retry-After"] == "1", problem
        assert problem["poly_status"] == 4001
        (await busy).release()

    # Our own HTTP query and SIP hold to the same phone wait for each other: the hold is
    # answered only after the slow HTTP query finished.
    query = asyncio.create_task(command(gateway, "1001", "deviceInfoV2"))
    await asyncio.sleep(0.1)
    status, result = await act(gateway, call.call_id, "hold")
    assert (status, result["transport"]) == (200, "sip")
    assert query.done()
    status, result = await query
    assert (status, result["transport"]) == (200, "http")


async def test_a_rest_call_is_bounded_by_the_transaction_timeout_and_says_it_left(
    lab, gateway_factory
):
    """The phone's REST API holds the lane like a NOTIFY, so it ends within Timer F (1 s
    here), before the caller's 3 s deadline; the 504 says the request had left."""
    _phone, sip, _http = await lab.phone("1001", processing_time=2.0)
    gateway = await gateway_factory(
        phone_credentials_file=lab.credentials_file(), sip_transaction_timeout=1.0
    )
    await register(gateway, "1001", sip.contact, user_agent="PolycomVVX-VVX_411-UA/6.4.3.5018")

    status, problem = await command(gateway, "1001", "deviceInfoV2")

    assert (status, problem["sent"], problem["transport"]) == (504, True, "http"), problem
    assert "REST API within 1 s" in problem["detail"]  # its own bound, not the deadline
    page = await (await gateway.get("/v1/commands", headers=AUTH)).json()
    assert (page["commands"][0]["outcome"], page["commands"][0]["sent"]) == ("PhoneTimeout", True)
