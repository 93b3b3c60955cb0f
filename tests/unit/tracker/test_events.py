import pytest

from sipbridge.tracker.events import EventBodyError, parse_dialog_info, parse_reginfo

DIALOG = b"""<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full"
             entity="sip:1001@pbx.example.com">
  <dialog id="d1" call-id="a1b2@10.0.0.5" local-tag="lt" remote-tag="rt" direction="recipient">
    <state>confirmed</state>
    <remote><identity>sip:2000@pbx.example.com</identity></remote>
  </dialog>
  <dialog id="d2" call-id="c3d4@10.0.0.5" direction="initiator">
    <state>confirmed</state>
    <local><target uri="sip:1001@10.0.0.5"><param pname="+sip.rendering" pval="no"/></target></local>
  </dialog>
  <dialog id="d3" call-id="e5f6@10.0.0.5" direction="recipient"><state>early</state></dialog>
  <dialog id="d4" call-id="g7h8@10.0.0.5"><state>terminated</state></dialog>
</dialog-info>"""


def test_dialog_states_map_to_call_states():
    info = parse_dialog_info(DIALOG)
    assert (info.version, info.full, info.entity) == (3, True, "sip:1001@pbx.example.com")
    states = {d.call_id: d.call_state() for d in info.dialogs}
    assert states == {
        "a1b2@10.0.0.5": "connected",
        "c3d4@10.0.0.5": "held",
        "e5f6@10.0.0.5": "ringing",
        "g7h8@10.0.0.5": None,
    }
    assert info.dialogs[0].remote_identity == "sip:2000@pbx.example.com"


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b'<dialog-info xmlns="urn:other" version="1" state="full"/>',
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="x" state="full"/>',
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="half"/>',
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full">&b;</dialog-info>',
    ],
)
def test_bad_or_hostile_bodies_are_refused(body):
    with pytest.raises(EventBodyError):
        parse_dialog_info(body)


def test_reginfo():
    body = b"""<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">
      <registration aor="sip:1001@pbx.example.com" id="r1" state="active">
        <contact id="c1" state="active" event="registered" expires="3600">
          <uri>sip:1001@10.0.0.5:5060</uri></contact>
      </registration>
      <registration aor="sip:1002@pbx.example.com" id="r2" state="terminated"/>
    </reginfo>"""
    info = parse_reginfo(body)
    first, second = info.registrations
    assert first.aor == "sip:1001@pbx.example.com"
    assert first.contacts[0].uri == "sip:1001@10.0.0.5:5060" and first.contacts[0].expires == 3600
    assert second.state == "terminated" and second.contacts == ()
