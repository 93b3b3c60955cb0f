import json

import pytest

from sipbridge import catalog
from sipbridge.errors import InvalidInput, PayloadTooLarge

CALL_ID = "a1b2c3d4-e5f60718-293a4b5c@10.0.0.5"


def test_every_call_control_command_of_the_manual_is_in_the_catalog():
    names = {spec.name for spec in catalog.ALL_COMMANDS}
    assert names >= {
        "answerCall",
        "rejectCall",
        "ignoreCall",
        "endCall",
        "holdCall",
        "resumeCall",
        "transferCall",
        "warmTransfer",
        "sendDTMF",
        "mute",
        "joinCalls",
        "dial",
    }
    for spec in catalog.ALL_COMMANDS:
        if spec.command_uri.startswith("/api/v1/callctrl/"):
            assert spec.command_uri == f"/api/v1/callctrl/{spec.name}"


def test_only_warm_transfer_is_sip_only():
    assert [s.name for s in catalog.ALL_COMMANDS if s.sip_only] == ["warmTransfer"]


def test_lookup_by_uri_and_by_name_give_the_same_spec():
    assert catalog.lookup("/api/v1/callctrl/holdCall") is catalog.lookup("holdCall")


def test_lookup_of_unknown_command_names_the_field():
    with pytest.raises(InvalidInput) as info:
        catalog.lookup("/api/v1/callctrl/explode")
    assert info.value.problems[0].field == "command_uri"


def test_hold_body_is_exactly_one_command_with_poly_names():
    command = catalog.build(catalog.lookup("holdCall"), {"Ref": CALL_ID})
    body = json.loads(catalog.encode(command))
    assert body == {"command-URI": "/api/v1/callctrl/holdCall", "data": {"Ref": CALL_ID}}


def test_optional_fields_are_left_out_not_sent_as_null():
    command = catalog.build(catalog.lookup("dial"), {"Dest": "1002"})
    assert json.loads(catalog.encode(command))["data"] == {"Dest": "1002"}


@pytest.mark.parametrize(
    ("name", "data", "field"),
    [
        ("resumeCall", {}, "data.Ref"),
        ("transferCall", {"Ref": CALL_ID}, "data.TransferDest"),
        ("warmTransfer", {"Ref-A": CALL_ID}, "data.Ref-B"),
        ("sendDTMF", {"Digits": "12x"}, "data.Digits"),
        ("mute", {"state": "2"}, "data.state"),
        ("dial", {"Dest": "1002", "Type": "FAX"}, "data.Type"),
        ("holdCall", {"Ref": CALL_ID, "Extra": 1}, "data.Extra"),
        ("holdCall", {"Ref": "abc\r\nEvent: evil"}, "data.Ref"),
        ("transferCall", {"Ref": CALL_ID, "TransferDest": "1002\r\nX: y"}, "data.TransferDest"),
    ],
)
def test_invalid_data_names_the_field(name, data, field):
    with pytest.raises(InvalidInput) as info:
        catalog.build(catalog.lookup(name), data)
    assert field in [p.field for p in info.value.problems]


def test_body_over_20_kb_is_refused_before_sending():
    spec = catalog.lookup("transferCall")
    big = catalog.build(spec, {"Ref": "x" * 200, "TransferDest": "9" * 256})
    assert len(catalog.encode(big)) < catalog.MAX_BODY_BYTES
    # Each field's own length rule keeps a validated body under 20 KB; check the limit
    # itself with data built past those rules.
    huge = catalog.Command(
        spec=spec, data=big.data.model_copy(update={"transfer_dest": "9" * 21000})
    )
    with pytest.raises(PayloadTooLarge):
        catalog.encode(huge)
