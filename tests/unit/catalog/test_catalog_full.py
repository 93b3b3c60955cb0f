"""The whole catalog of manuals 000-003: every command, its firmware lines, its transport."""

import json

import pytest

from sipbridge import catalog
from sipbridge.catalog import parse_version
from sipbridge.errors import InvalidInput, PayloadTooLarge

# (name, method, path) for every command the manuals describe.
MANUAL_COMMANDS = {
    ("deviceInfo", "GET", "/api/v1/mgmt/device/info"),
    ("deviceInfoV2", "GET", "/api/v2/mgmt/device/info"),
    ("networkInfo", "GET", "/api/v1/mgmt/network/info"),
    ("networkStats", "GET", "/api/v1/mgmt/network/stats"),
    ("lineInfo", "GET", "/api/v1/mgmt/lineInfo"),
    ("lineInfoV2", "GET", "/api/v2/mgmt/lineInfo"),
    ("getConfig", "POST", "/api/v1/mgmt/config/get"),
    ("setConfig", "POST", "/api/v1/mgmt/config/set"),
    ("exportConfig", "POST", "/api/v1/mgmt/config/export"),
    ("safeRestart", "POST", "/api/v1/mgmt/safeRestart"),
    ("safeReboot", "POST", "/api/v1/mgmt/safeReboot"),
    ("factoryReset", "POST", "/api/v1/mgmt/factoryReset"),
    ("configReset", "POST", "/api/v1/mgmt/configReset"),
    ("configResetCloud", "POST", "/api/v1/mgmt/configReset/cloud"),
    ("configResetLocal", "POST", "/api/v1/mgmt/configReset/local"),
    ("configResetWeb", "POST", "/api/v1/mgmt/configReset/web"),
    ("configResetDevice", "POST", "/api/v1/mgmt/configReset/device"),
    ("runningConfig", "GET", "/api/v1/mgmt/device/runningConfig"),
    ("deviceStats", "GET", "/api/v1/mgmt/device/stats"),
    ("softwareUpdateStatus", "GET", "/api/v1/mgmt/device/softwareUpdateStatus"),
    ("sessionStats", "GET", "/api/v1/mgmt/media/sessionStats"),
    ("communicationInfo", "GET", "/api/v1/mgmt/media/communicationInfo"),
    ("locationInfo", "GET", "/api/v1/mgmt/location/info"),
    ("ledStatus", "GET", "/api/v1/mgmt/ledStatus"),
    ("bluetoothInfo", "GET", "/api/v1/mgmt/blueTooth/info"),
    ("pcPortInfo", "GET", "/api/v1/mgmt/pcPort/info"),
    ("pollForStatus", "GET", "/api/v1/mgmt/pollForStatus"),
    ("powerStatus", "GET", "/api/v1/mgmt/powerStatus"),
    ("mrPairInfo", "GET", "/api/v1/mgmt/mrpair/info"),
    ("getTransferType", "GET", "/api/v1/mgmt/transferType/get"),
    ("setTransferType", "POST", "/api/v1/mgmt/transferType/set"),
    ("simulateKeyEvent", "POST", "/api/v1/mgmt/simulateKeyEvent"),
    ("simulateTextInput", "POST", "/api/v1/mgmt/simulateTextInput"),
    ("simulateHook", "POST", "/api/v1/mgmt/simulateHook"),
    ("simulateTouch", "POST", "/api/v1/mgmt/simulateTouch"),
    ("uixml", "GET", "/api/v1/mgmt/uixml"),
    ("updateConfiguration", "POST", "/api/v1/mgmt/updateConfiguration"),
    ("webSignIn", "POST", "/api/v1/mgmt/webSignIn"),
    ("webSignInCancel", "GET", "/api/v1/mgmt/webSignInCancel"),
    ("skypeSignIn", "POST", "/api/v1/mgmt/skype/signIn"),
    ("skypeSignOut", "POST", "/api/v1/mgmt/skype/signOut"),
    ("screenCapture", "POST", "/api/v1/mgmt/screencapture"),
    ("uploadBgCapture", "POST", "/api/v1/mgmt/network/uploadBgCapture"),
    ("sessionCreate", "GET", "/api/v1/mgmt/session/create"),
    ("sessionList", "GET", "/api/v1/mgmt/session/get"),
    ("sessionDelete", "GET", "/api/v1/mgmt/session/delete"),
    ("ping", "POST", "/api/v1/diag/ping"),
    ("dnsInfo", "GET", "/api/v1/diag/dns/info"),
    ("dnsQuery", "POST", "/api/v1/diag/dns/query"),
    ("ntpInfo", "GET", "/api/v1/diag/ntp/info"),
    ("ntpQuery", "POST", "/api/v1/diag/ntp/query"),
    ("traceroute", "POST", "/api/v1/diag/traceroute"),
    ("callStatus", "GET", "/api/v1/webCallControl/callStatus"),
    ("callStatusV2", "GET", "/api/v2/webCallControl/callStatus"),
    ("callLogs", "GET", "/api/v1/mgmt/callLogs"),
    ("callLogsMissed", "GET", "/api/v1/mgmt/callLogs/missed"),
    ("callLogsReceived", "GET", "/api/v1/mgmt/callLogs/received"),
    ("callLogsPlaced", "GET", "/api/v1/mgmt/callLogs/placed"),
    ("sipStatus", "POST", "/api/v1/webCallControl/sipStatus"),  # manual 002; GET on UCS 5/6 lines
    ("getPresence", "GET", "/api/v1/mgmt/getPresence"),
}


def test_every_manual_command_is_in_the_catalog_with_its_method_and_path():
    listed = {(s.name, s.http_method, s.command_uri) for s in catalog.ALL_COMMANDS}
    assert listed >= MANUAL_COMMANDS
    assert len(catalog.ALL_COMMANDS) == len(MANUAL_COMMANDS) + 12  # plus the call control


def test_queries_that_answer_data_are_http_only_and_warm_transfer_sip_only():
    for spec in catalog.ALL_COMMANDS:
        if spec.output_model is not None:
            assert spec.http_only, spec.name
    assert {s.name for s in catalog.ALL_COMMANDS if s.sip_only} == {"warmTransfer"}
    assert not catalog.lookup("holdCall").http_only


@pytest.mark.parametrize(
    ("name", "line", "since"),
    [
        ("warmTransfer", "ucs-6", "6.4.2"),
        ("joinCalls", "pvos", "8.6"),
        ("powerStatus", "pvos", "9.0"),
        ("sessionCreate", "pvos", "8.3"),
        ("ledStatus", "ucs-5", "5.9"),  # not in manual 001 (5.8), in manual 002 (VVX 5.9+)
        ("uploadBgCapture", "ucs-5", "0"),  # in manual 001, not in manual 000
    ],
)
def test_firmware_lines_follow_the_manuals(name, line, since):
    assert catalog.lookup(name).availability[line] == parse_version(since)


def test_lines_a_command_lacks():
    assert set(catalog.lookup("screenCapture").availability) == {"ucs-6"}  # manual 000 only
    assert set(catalog.lookup("ping").availability) == {"ucs-6"}  # Diag: manual 000 only
    assert "trio-ucs-5" not in catalog.lookup("ledStatus").availability
    assert set(catalog.lookup("powerStatus").availability) == {"pvos"}


def test_get_config_takes_a_list_and_set_config_a_map():
    command = catalog.build(catalog.lookup("getConfig"), ["apps.restapi.enabled"])
    call = catalog.encode_http(command)
    assert (call.method, json.loads(call.body or b"")) == (
        "POST",
        {"data": ["apps.restapi.enabled"]},
    )
    with pytest.raises(InvalidInput):
        catalog.build(catalog.lookup("getConfig"), [])
    with pytest.raises(InvalidInput):
        catalog.build(catalog.lookup("setConfig"), {"bad name!": "1"})


@pytest.mark.parametrize(
    ("query", "ok"),
    [
        ({}, True),
        ({"handle": "b5576ff8"}, True),
        ({"line": "1"}, True),
        ({"line": "1", "sequence": "2"}, True),
        ({"sequence": "2"}, False),
        ({"handle": "b5576ff8", "line": "1"}, False),
        ({"handle": "b5576ff8", "sequence": "1"}, False),
    ],
)
def test_call_status_v2_query_rules(query, ok):
    spec = catalog.lookup("callStatusV2")
    if ok:
        call = catalog.encode_http(catalog.build(spec, query))
        assert (call.method, call.query, call.body) == ("GET", query, None)
    else:
        with pytest.raises(InvalidInput):
            catalog.build(spec, query)


def test_get_without_data_has_no_body_and_post_without_data_sends_json():
    info = catalog.encode_http(catalog.build(catalog.lookup("deviceInfoV2"), {}))
    assert (info.method, info.path, info.body) == ("GET", "/api/v2/mgmt/device/info", None)
    reboot = catalog.encode_http(catalog.build(catalog.lookup("safeReboot"), {}))
    assert (reboot.method, reboot.body) == ("POST", b"{}")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("simulateTouch", {"Type": "Swipe", "Positions": [{"X": "1", "Y": "2"}]}),
        ("simulateTouch", {"Type": "Tap", "Positions": [{"X": "1", "Y": "2"}] * 2}),
        ("simulateKeyEvent", {"Type": "Tap", "KeyName": "Line13"}),
        ("setTransferType", {"Type": "Attended"}),
        ("exportConfig", {"Url": "file:///etc/passwd", "ConfigType": "All"}),
        ("ping", {"Address": "host\r\nX"}),
        ("traceroute", {"Address": "example.com", "Hops": 0}),
    ],
)
def test_management_and_diag_inputs_are_validated(name, data):
    with pytest.raises(InvalidInput):
        catalog.build(catalog.lookup(name), data)


def test_valid_management_inputs_pass():
    cases: list[tuple[str, dict[str, object]]] = [
        ("simulateTouch", {"Type": "Swipe", "Positions": [{"X": "1", "Y": "2"}] * 3}),
        ("simulateKeyEvent", {"Type": "Tap", "KeyName": "Line12"}),
        ("ntpQuery", {"Server1": "pool.ntp.org"}),
        ("exportConfig", {"Url": "https://prov.example.com/up", "ConfigType": "ConfigFiles"}),
    ]
    for name, data in cases:
        catalog.build(catalog.lookup(name), data)


def test_http_body_over_20_kb_is_refused():
    names = [f"param.{n:05d}.with.a.long.name.for.padding" for n in range(600)]
    with pytest.raises(PayloadTooLarge):
        catalog.encode_http(catalog.build(catalog.lookup("getConfig"), names))


def test_methods_per_line():
    """sipStatus and webSignIn: GET in manuals 000/001, POST in 002 (issue 16.9)."""
    sip_status = catalog.build(catalog.lookup("sipStatus"), {})
    assert catalog.encode_http(sip_status, "ucs-6").method == "GET"
    assert catalog.encode_http(sip_status, "ucs-5").method == "GET"
    assert catalog.encode_http(sip_status, "pvos").method == "POST"
    web_sign_in = catalog.build(catalog.lookup("webSignIn"), {})
    assert catalog.encode_http(web_sign_in, "ucs-6").method == "GET"
    assert catalog.encode_http(web_sign_in, "pvos").method == "POST"


def test_catalog_facts_from_issue_16():
    join = catalog.lookup("joinCalls")
    assert dict(join.availability) == {"pvos": (8, 6)}
    warm = catalog.lookup("warmTransfer")
    assert dict(warm.availability) == {"ucs-6": (6, 4, 2), "pvos": (8, 0)}
    assert not catalog.lookup("setConfig").clear_sip
    assert {s.name for s in catalog.ALL_COMMANDS if s.notify_in_auto} == {
        s.name for s in catalog.ALL_COMMANDS if s.command_uri.startswith("/api/v1/callctrl/")
    }
    presence = catalog.lookup("getPresence").output_model
    assert presence is not None and "data" in presence.model_fields  # manual 001 nests it
    dial = catalog.lookup("dial").data_model.model_json_schema(by_alias=True)
    assert "dial plan" in dial["properties"]["Line"]["description"]
