"""Profiles from sip_profiles/*.toml: matching real User-Agents, versions, capabilities."""

from pathlib import Path

import pytest

from sipbridge import catalog
from sipbridge.config import Settings
from sipbridge.errors import ProfileError
from sipbridge.phone.profiles import book_of, load_profiles, parse_profile

BOOK = load_profiles(Settings().sip_profiles_dir)


@pytest.mark.parametrize(
    ("user_agent", "profile", "version", "sip", "auth"),
    [
        ("PolycomVVX-VVX_310-UA/5.8.0.16848", "vvx-ucs5", (5, 8, 0, 16848), False, ("basic",)),
        ("PolycomVVX-VVX_450-UA/6.4.0.1234", "vvx-ucs6", (6, 4, 0, 1234), False, ("basic",)),
        ("PolycomVVX-VVX_411-UA/6.4.3.5018", "vvx-ucs6", (6, 4, 3, 5018), True, ("basic",)),
        (
            "Polycom/5.4.3.2007 PolycomRealPresenceTrio-Trio_8800-UA/5.9.2.7215",
            "trio-ucs5",
            (5, 9, 2, 7215),
            False,
            ("basic",),
        ),
        ("PolycomRealPresenceTrio-Trio_8500-UA/7.2.2.1094", "trio-ucs7", (7, 2, 2, 1094), True, ("basic",)),
        (
            "FileTransport PolyCCX-CCX_600-UA/8.0.2.3267 (SN:482567b5313f) Type/Application",
            "ccx-pvos8",
            (8, 0, 2, 3267),
            True,
            ("basic",),
        ),
        ("PolyCCX-CCX_500-UA/9.1.0.0100", "ccx-pvos9", (9, 1, 0, 100), True, ("basic",)),
        ("PolyCCX-CCX_500-UA/9.4.1.0508", "ccx-pvos9", (9, 4, 1, 508), True, ("session", "digest")),
        ("PolycomRealPresenceTrio-Trio_C60-UA/9.2.1.0123", "trio-c60", (9, 2, 1, 123), True, ("session", "digest")),
        ("PolyEdge-Edge_E350-UA/8.2.0.0101", "edge-e-pvos8", (8, 2, 0, 101), True, ("basic",)),
        ("PolyEdge-Edge_E350-UA/8.3.1.0614_f04ea4691c59", "edge-e-pvos8", (8, 3, 1, 614), True, ("session", "digest")),
        ("PolyEdge-E450-UA/8.3.0.0123 (simulated)", "edge-e-pvos8", (8, 3, 0, 123), True, ("session", "digest")),
        ("PolyCCX-CCX_350-UA/1.3.0.0102", "ccx-350", (1, 3, 0, 102), False, ()),
        ("PolycomRealPresenceTrio-Trio_8300-UA/5.9.2.3473", "trio-8300-ucs5", (5, 9, 2, 3473), False, ("basic",)),
        ("PolycomRealPresenceTrio-Trio_8300-UA/8.1.2.0151", "trio-8300-pvos", (8, 1, 2, 151), True, ("basic",)),
        ("PolyEdge-Edge_V60-UA/8.6.1.0204", "edge-v-pvos", (8, 6, 1, 204), True, ("basic",)),
        # issue 16.12: manual 002 starts Trio UCS 7 at 7.2
        ("PolycomRealPresenceTrio-Trio_8800-UA/7.1.0.1", "trio-ucs7", (7, 1, 0, 1), False, ("basic",)),
    ],
)  # fmt: skip
def test_real_user_agents_find_their_profile(user_agent, profile, version, sip, auth):
    capabilities = BOOK.match(user_agent)
    assert capabilities is not None
    assert (capabilities.profile.name, capabilities.version) == (profile, version)
    assert (capabilities.rest_over_sip, capabilities.http_auth) == (sip, auth)


def test_unknown_user_agents_match_nothing():
    for ua in ("Asterisk PBX 20.1", "Yealink SIP-T54W 96.86.0.70", "PolycomVVX-VVX_411-UA/4.1.0"):
        assert BOOK.match(ua) is None
    assert BOOK.resolve(pinned=None, user_agent=None) is None


def test_a_pin_beats_the_user_agent_and_without_a_version_assumes_the_floor():
    pinned = BOOK.resolve(pinned="vvx-ucs6", user_agent="Acme-Softphone/2.0")
    assert pinned is not None and pinned.profile.name == "vvx-ucs6"
    assert (pinned.version, pinned.version_known, pinned.rest_over_sip) == ((6, 0, 0), False, False)
    read = BOOK.resolve(pinned="vvx-ucs6", user_agent="Custom-UA/6.4.2.100")
    assert read is not None and read.version == (6, 4, 2, 100) and read.rest_over_sip
    with pytest.raises(ProfileError):
        BOOK.resolve(pinned="gone", user_agent=None)


@pytest.mark.parametrize(
    ("user_agent", "command", "reason"),
    [
        ("PolyEdge-Edge_E350-UA/8.3.1.0614", "joinCalls", "8.6"),
        ("PolyEdge-Edge_E350-UA/8.6.0.0001", "joinCalls", None),
        ("PolyCCX-CCX_500-UA/9.4.1.0508", "joinCalls", "9.5.0"),
        ("PolyCCX-CCX_600-UA/8.0.2.3267", "sessionCreate", "PVOS 9.2 on CCX"),
        ("PolyCCX-CCX_500-UA/9.4.1.0508", "sessionCreate", None),
        ("PolyEdge-Edge_E350-UA/8.3.1.0614", "powerStatus", "9.0"),
        ("PolycomVVX-VVX_411-UA/6.4.0.1", "warmTransfer", "6.4.2"),
        ("PolycomVVX-VVX_411-UA/6.4.3.1", "warmTransfer", None),
        ("PolycomVVX-VVX_411-UA/6.4.3.1", "ping", None),
        ("PolyCCX-CCX_500-UA/9.4.1.0508", "ping", "not in the pvos command set"),
        ("PolycomVVX-VVX_310-UA/5.8.0.1", "ledStatus", "5.9"),
        ("PolycomRealPresenceTrio-Trio_8800-UA/5.9.2.1", "simulateKeyEvent", None),
        ("PolyCCX-CCX_350-UA/1.3.0.0102", "holdCall", "no REST API"),
        # issue 16: availability per manual
        ("PolycomVVX-VVX_411-UA/6.4.3.1", "joinCalls", "not in the ucs-6"),
        ("PolycomRealPresenceTrio-Trio_8800-UA/7.2.2.1", "joinCalls", "not in the trio-ucs-7"),
        ("PolycomRealPresenceTrio-Trio_8800-UA/7.2.2.1", "warmTransfer", "not in the trio-ucs-7"),
        ("PolyEdge-Edge_V60-UA/8.6.1.0204", "joinCalls", None),
        ("PolycomRealPresenceTrio-Trio_8300-UA/8.1.2.0151", "joinCalls", "Edge E / Edge V"),
        ("PolycomVVX-VVX_411-UA/6.4.0.1", "softwareUpdateStatus", "6.4.2"),
        ("PolycomVVX-VVX_411-UA/6.4.0.1", "mrPairInfo", "6.4.2"),
        ("PolycomVVX-VVX_411-UA/6.4.0.1", "uploadBgCapture", "6.4.2"),
        ("PolycomVVX-VVX_310-UA/5.8.0.1", "uploadBgCapture", None),
        ("PolycomVVX-VVX_310-UA/5.8.0.1", "configResetCloud", "5.9"),
    ],
)
def test_what_a_phone_lacks_says_why(user_agent, command, reason):
    capabilities = BOOK.match(user_agent)
    assert capabilities is not None
    why = capabilities.lacks(catalog.lookup(command))
    if reason is None:
        assert why is None
    else:
        assert why is not None and reason in why


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("title = ", "not valid TOML"),
        ('title = "x"\nfamily = "x"\nuser_agent = ["x/(\\\\d)"]\nversion_floor = "1.0"', "version"),
        ('title = "x"\nfamily = "x"\nuser_agent = ["x/(?P<version>.)"]\nversion_floor = "one"', "version_floor"),
        ('title = "x"\nfamily = "x"\nuser_agent = ["(?P<version>1)"]\nversion_floor = "1"\n[lacks]\nexplode = "y"', "explode"),
        ('title = "x"\nfamily = "x"\nuser_agent = ["(?P<version>1)"]\nversion_floor = "1"\nfirmware_line = "pvos-7"', "firmware_line"),
    ],
)  # fmt: skip
def test_a_bad_profile_file_is_refused_with_its_name(text, problem):
    with pytest.raises(ProfileError, match="bad-one") as info:
        parse_profile("bad-one", text)
    assert problem in info.value.detail


def test_empty_or_missing_profile_directory_is_refused(tmp_path):
    with pytest.raises(ProfileError):
        load_profiles(tmp_path)
    with pytest.raises(ProfileError):
        load_profiles(tmp_path / "missing")
    with pytest.raises(ProfileError):
        book_of([])


def test_every_shipped_profile_has_a_file_and_a_line():
    names = {path.stem for path in Path(Settings().sip_profiles_dir).glob("*.toml")}
    assert names == set(BOOK.names()) == {
        "vvx-ucs5", "vvx-ucs6", "trio-ucs5", "trio-ucs7", "ccx-pvos8", "ccx-pvos9",
        "trio-c60", "edge-e-pvos8", "ccx-350", "trio-8300-ucs5", "trio-8300-pvos",
        "edge-v-pvos",
    }  # fmt: skip
    for profile in BOOK.profiles:
        assert profile.body_limit == catalog.MAX_BODY_BYTES
        assert (profile.firmware_line is None) == (not profile.rest_api)


@pytest.mark.parametrize(
    ("user_agent", "key", "refused"),
    [
        ("PolyCCX-CCX_500-UA/9.4.1.0508", "Dialpad1", True),
        ("PolyCCX-CCX_500-UA/9.4.1.0508", "VolUp", False),
        ("PolycomRealPresenceTrio-Trio_C60-UA/9.2.1.0123", "SoftKey1", True),
        ("PolyEdge-Edge_E350-UA/8.3.1.0614", "Dialpad1", False),
        ("PolycomRealPresenceTrio-Trio_8300-UA/8.1.2.0151", "SoftKey1", False),
    ],
)
def test_key_sets_per_family(user_agent, key, refused):
    """Manual 002, SimulateKeyEvent: Trio C60 and CCX take only MicMute, VolDown, VolUp."""
    from sipbridge.errors import NotSupportedByPhone

    capabilities = BOOK.match(user_agent)
    assert capabilities is not None
    command = catalog.build(catalog.lookup("simulateKeyEvent"), {"Type": "Tap", "KeyName": key})
    if refused:
        with pytest.raises(NotSupportedByPhone, match="MicMute"):
            capabilities.refuse_data(command)
    else:
        capabilities.refuse_data(command)


@pytest.mark.parametrize(
    ("user_agent", "limited"),
    [
        ("PolycomVVX-VVX_411-UA/6.4.3.1", True),
        ("PolycomVVX-VVX_310-UA/5.8.0.1", True),
        ("PolycomRealPresenceTrio-Trio_8800-UA/5.9.2.7215", True),
        ("PolyCCX-CCX_500-UA/9.4.1.0508", False),
        ("PolycomRealPresenceTrio-Trio_8800-UA/7.2.2.1", False),
    ],
)
def test_config_parameter_limit_per_line(user_agent, limited):
    """Manuals 000, 001, 003: at most 20 parameters (4009); 002 lifts it."""
    from sipbridge.errors import InvalidInput

    capabilities = BOOK.match(user_agent)
    assert capabilities is not None
    names = [f"feature.x{i}.enabled" for i in range(21)]
    for command in (
        catalog.build(catalog.lookup("getConfig"), names),
        catalog.build(catalog.lookup("setConfig"), dict.fromkeys(names, "1")),
    ):
        if limited:
            with pytest.raises(InvalidInput, match="at most 20"):
                capabilities.refuse_data(command)
        else:
            capabilities.refuse_data(command)
    capabilities.refuse_data(catalog.build(catalog.lookup("getConfig"), names[:20]))
