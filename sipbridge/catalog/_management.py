"""Management.* (and Network.UploadBgCapture): device state, configuration, UI simulation,
sessions (manuals 000, 001, 002, 003).

Which manual lists a command decides the firmware lines that have it (`_lines.py`); versions
named in the manual tighten that (powerStatus PVOS 9.0; sessions PVOS 8.3 / 9.2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, RootModel, model_validator

from sipbridge.catalog._commands import CommandData, CommandSpec, Delivery, NoData, Output
from sipbridge.catalog._fields import ConfigParam, Digits1to5, LineNumber, Text, Url
from sipbridge.catalog._lines import (
    AFTER_6_4_0,
    CONFIG_PARAMETER_LIMIT,
    MANUAL_000,
    MANUAL_001,
    MANUAL_002,
    MANUAL_003,
    Availability,
    Line,
    documented_in,
)

# -- inputs -----------------------------------------------------------------------------------


class ConfigNames(RootModel[list[ConfigParam]]):
    """getConfig: the parameter names to read; at least one (manual 002). The 1,000 here is
    only a sanity bound: the per-line limit is the spec's `item_limit` (20 on UCS lines)."""

    model_config = {"frozen": True}
    root: list[ConfigParam] = Field(min_length=1, max_length=1000)


class ConfigValues(RootModel[dict[ConfigParam, Text]]):
    """setConfig: parameter -> value, stored at the phone's "local" level; at least one."""

    model_config = {"frozen": True}
    root: dict[ConfigParam, Text] = Field(min_length=1, max_length=1000)


class ExportConfigData(CommandData):
    Url: Url
    ConfigType: Literal["ConfigFiles", "Local", "Web", "Device", "All"]


class TransferTypeData(CommandData):
    Type: Literal["Consultative", "Blind", "Safe"]


# Manual 000 and 002, SimulateKeyEvent: the key labels of VVX, Edge E and Trio 8300; LineN up
# to 12 (no EM or pagination lines).
_KEY = re.compile(
    r"SoftKey[1-5]|Line([1-9]|1[0-2])|Arrow(Down|Left|Right|Up)|Select|Delete|Dialpad[0-9]"
    r"|DialpadStar|DialpadPound|Handsfree|Headset|MicMute|Transfer|VolDown|VolUp|Menu|Redial"
    r"|Applications"
)
KeySet = Literal["full", "audio"]
"""Which SimulateKeyEvent labels a family takes (a profile's `key_set`)."""

# Manual 002, SimulateKeyEvent: Trio C60 and every CCX but the 350 take only these three.
AUDIO_KEYS = frozenset({"MicMute", "VolDown", "VolUp"})


def key_refused(key_set: KeySet, key_name: str) -> str | None:
    """Why `key_name` is not a key of this family, or None."""
    if key_set == "audio" and key_name not in AUDIO_KEYS:
        return (
            f"{key_name!r} is not a key of this phone: Trio C60 and CCX take only "
            f"{', '.join(sorted(AUDIO_KEYS))} (manual 002, Management.SimulateKeyEvent)"
        )
    return None


class KeyEventData(CommandData):
    Type: Literal["Tap"]
    KeyName: str = Field(pattern=rf"^({_KEY.pattern})$")


class TextInputData(CommandData):
    Value: Text
    ReplaceText: Literal["true", "false"] | None = None


class HookData(CommandData):
    Type: Literal["Up", "Down"]


class Position(CommandData):
    X: Digits1to5
    Y: Digits1to5


class TouchData(CommandData):
    """Tap/Press/Release take one position, Swipe two to five (manual 002)."""

    Type: Literal["Tap", "Press", "Release", "Swipe"]
    Positions: list[Position] = Field(min_length=1, max_length=5)
    Duration: Digits1to5 | None = None
    Easing: str | None = Field(None, pattern=r"^([0-9]|[1-3][0-9]|40)$")

    @model_validator(mode="after")
    def _positions_fit_the_type(self) -> TouchData:
        count = len(self.Positions)
        if self.Type == "Swipe" and count < 2:
            raise ValueError("a Swipe needs 2 to 5 positions")
        if self.Type != "Swipe" and count != 1:
            raise ValueError(f"a {self.Type} takes exactly one position")
        return self


class SkypeSignInData(CommandData):
    Address: Text
    User: Text
    Password: Text
    Domain: Text = Field(description="Empty string where the account has no domain.")
    LockCode: Digits1to5 | None = None


class ScreenCaptureData(CommandData):
    display: Literal["phone", "EM1", "EM2", "EM3"]
    page: LineNumber | None = None


class UploadBgCaptureData(CommandData):
    url: Url | None = None


class SessionIds(RootModel[list[str]]):
    model_config = {"frozen": True}
    root: list[str] = Field(min_length=1, max_length=10)


class LineInfoQuery(CommandData):
    line: LineNumber | None = None


# -- outputs ----------------------------------------------------------------------------------


class DeviceInfoOut(Output):
    ModelNumber: str | None = None
    FirmwareRelease: str | None = None
    DeviceType: str | None = None
    DeviceVendor: str | None = None
    UpTimeSinceLastReboot: str | None = None
    IPV4Address: str | None = None
    IPV6Address: str | None = None
    MACAddress: str | None = None


class FirmwareOut(Output):
    Application: str | None = None
    Updater: str | None = None
    BootBlock: str | None = None


class DeviceInfoV2Out(Output):
    ModelNumber: str | None = None
    DeviceVendor: str | None = None
    DeviceType: str | None = None
    MACAddress: str | None = None
    Firmware: FirmwareOut | None = None
    IPAddress: str | None = None
    IPStack: str | None = None
    UpTime: dict[str, str] | None = None
    AppState: str | None = None
    ReadyToUse: str | None = None
    SerialNumber: str | None = None
    SystemName: str | None = None


class NetworkInfoOut(Output):
    IPV4Address: str | None = None
    SubnetMask: str | None = None
    DefaultGateway: str | None = None
    DHCP: str | None = None
    DNSServer: str | None = None
    DNSDomain: str | None = None
    LANSpeed: str | None = None
    LANPortStatus: str | None = None
    VLANID: str | None = None
    SNTPAddress: str | None = None
    ProvServerAddress: str | None = None
    ProvServerType: str | None = None
    LLDP: str | None = None


class NetworkStatsOut(Output):
    UpTime: str | None = None
    RxPackets: int | str | None = None
    TxPackets: int | str | None = None


class LineInfoOut(Output):
    LineNumber: str | None = None
    Protocol: str | None = None
    SIPAddress: str | None = None
    ProxyAddress: str | None = None
    UserID: str | None = None
    Label: str | None = None
    LineType: str | None = None
    RegistrationStatus: str | None = None
    Port: str | None = None


class CallServerOut(Output):
    ID: str | None = None
    Address: str | None = None
    RegistrationStatus: str | None = None
    Port: str | None = None
    Expires: str | None = None
    Transport: str | None = None


class LineInfoV2Out(Output):
    ID: str | None = None
    Label: str | None = None
    Username: str | None = None
    RegistrationStatus: str | None = None
    Type: str | None = None
    CallAppearances: list[str] | None = None
    CallServers: list[CallServerOut] | None = None


class CpuOut(Output):
    Current: str | None = None
    Average: str | None = None


class DeviceStatsOut(Output):
    Memory: dict[str, object] | None = None
    CPU: CpuOut | None = None


class StreamOut(Output):
    Ref: str | None = None
    Category: str | None = None
    PacketsReceived: str | None = None
    PacketsSent: str | None = None
    PacketsLost: str | None = None
    Jitter: str | None = None
    Latency: str | None = None
    RxCodec: str | None = None
    TxCodec: str | None = None


class SessionStatsOut(Output):
    Ref: str | None = None
    SRTPCall: str | None = None
    Streams: list[StreamOut] | None = None


class CommunicationInfoOut(Output):
    CommunicationType: list[str] | None = None
    PhoneMuteState: str | None = None


class LedStateOut(Output):
    State: str | None = None
    Color: str | None = None


class LedStatusOut(Output):
    Lines: list[dict[str, str]] | None = None
    MWI: LedStateOut | None = None
    Mute: LedStateOut | None = None
    Speaker: LedStateOut | None = None
    Headset: LedStateOut | None = None


class BluetoothOut(Output):
    Enabled: str | None = None
    Version: str | None = None
    Devices: list[dict[str, str]] | None = None


class PcPortOut(Output):
    PCPortStatus: str | None = None
    PCMacAddress: str | None = None


class PollForStatusOut(Output):
    State: Literal["Idle", "Active", "Error"] | None = None
    StateData: str | None = None


class PowerStatusOut(Output):
    """Top level, next to Status (manual 002)."""

    CurrentState: Literal["PowerOn", "PowerIdle", "PowerOff", "PowerInCall"] | None = None


class TransferTypeOut(Output):
    Type: Literal["Consultative", "Blind", "Safe", "Unknown"] | None = None


class ProvisioningOut(Output):
    ProvisioningState: str | None = None


class WebSignInOut(Output):
    Url: str | None = None
    Code: str | None = None


class SoftwareUpdateOut(Output):
    updateStatus: int | None = None
    description: str | None = None
    updateProgress: int | None = None


class SessionOut(Output):
    sessionId: str | None = None
    authLevel: str | None = None


class SessionInfoOut(SessionOut):
    remainingSeconds: str | None = None
    createdSecondsAgo: str | None = None


class SessionListOut(Output):
    Sessions: list[SessionInfoOut] | None = None


class SessionDeleteOut(Output):
    sessionsDeleted: list[str] | None = None
    sessionsNotFound: list[str] | None = None


# -- the commands -----------------------------------------------------------------------------

_MGMT = "/api/v1/mgmt/"
_EVERYWHERE = documented_in(MANUAL_000, MANUAL_001, MANUAL_002, MANUAL_003)
_NOT_5_8 = documented_in(MANUAL_000, MANUAL_002, MANUAL_003)  # added after UCS 5.8
_VVX_6_AND_002 = documented_in(MANUAL_000, MANUAL_002)
# In manual 002 only (not 000): on VVX UCS 6 from 6.4.2 (issue 16, item 5).
_002_ONLY = documented_in(MANUAL_002, since={"ucs-6": AFTER_6_4_0})
# Manual 002: sessions from PVOS 8.3.0 (Edge E) / 9.2.0 (CCX, Trio C60); CCX profiles tighten.
_SESSIONS: Availability = {"pvos": (8, 3)}


def _mgmt(
    name: str,
    path: str,
    manual: str,
    summary: str,
    *,
    method: Literal["GET", "POST"] = "POST",
    method_on: Mapping[Line, Literal["GET", "POST"]] | None = None,
    data: type[BaseModel] = NoData,
    output: type[Output] | None = None,
    availability: Availability = _EVERYWHERE,
    delivery: Delivery | None = None,
    query: bool = False,
    note: str = "",
    uri: str | None = None,
    item_limit: Mapping[Line, int] | None = None,
    clear_sip: bool = True,
) -> CommandSpec:
    # A command that answers with data is HTTP-only: a NOTIFY's 200 cannot carry it.
    chosen: Delivery = delivery or ("http-only" if output is not None else "any")
    return CommandSpec(
        name=name,
        command_uri=uri or _MGMT + path,
        data_model=data,
        summary=summary,
        manual_name=manual if "." in manual else f"Management.{manual}",
        group="Management",
        http_method=method,
        http_method_on=method_on or {},
        delivery=chosen,
        item_limit=item_limit or {},
        clear_sip=clear_sip,
        availability=availability,
        output_model=output,
        query=query,
        note=note,
    )


def _config_reset(scope: str, availability: Availability = _EVERYWHERE) -> CommandSpec:
    return _mgmt(
        f"configReset{scope.capitalize()}",
        f"configReset/{scope}",
        "ConfigReset",
        f"Reset the {scope} configuration.",
        availability=availability,
    )


MANAGEMENT: tuple[CommandSpec, ...] = (
    _mgmt(
        "deviceInfo",
        "device/info",
        "DeviceInfo",
        "Model, firmware, addresses (v1, deprecated).",
        method="GET",
        output=DeviceInfoOut,
    ),
    _mgmt(
        "deviceInfoV2",
        "device/info",
        "DeviceInfo Version 2",
        "Model, firmware parts, addresses, uptime, state.",
        method="GET",
        output=DeviceInfoV2Out,
        uri="/api/v2/mgmt/device/info",
    ),
    _mgmt(
        "networkInfo",
        "network/info",
        "NetworkInfo",
        "Addresses, DHCP, DNS, VLAN, provisioning server.",
        method="GET",
        output=NetworkInfoOut,
    ),
    _mgmt(
        "networkStats",
        "network/stats",
        "NetworkStatistics",
        "Network uptime and packet counters.",
        method="GET",
        output=NetworkStatsOut,
    ),
    _mgmt(
        "lineInfo",
        "lineInfo",
        "LineInfo",
        "Every line's registration (v1, deprecated).",
        method="GET",
        output=LineInfoOut,
    ),
    _mgmt(
        "lineInfoV2",
        "lineInfo",
        "LineInfo Version 2",
        "Lines with call servers and forwarding; ?line= for one.",
        method="GET",
        data=LineInfoQuery,
        output=LineInfoV2Out,
        query=True,
        uri="/api/v2/mgmt/lineInfo",
    ),
    _mgmt(
        "getConfig",
        "config/get",
        "GetConfig",
        "Running values (and their source) of named parameters.",
        data=ConfigNames,
        output=Output,
        item_limit=CONFIG_PARAMETER_LIMIT,
        note="At most 20 names on ucs-5, ucs-6 and trio-ucs-5 (manuals 000, 001, 003: 4009); "
        "trio-ucs-7 and pvos only the 20 KB body limit (manual 002).",
    ),
    _mgmt(
        "setConfig",
        "config/set",
        "SetConfig",
        "Set parameters (local level).",
        data=ConfigValues,
        item_limit=CONFIG_PARAMETER_LIMIT,
        clear_sip=False,
        note="At most 20 parameters on ucs-5, ucs-6 and trio-ucs-5 (manuals 000, 001, 003). "
        "Never in a clear (UDP/TCP) SIP message: values can be passwords.",
    ),
    _mgmt(
        "exportConfig",
        "config/export",
        "ExportConfiguration",
        "Upload a configuration to a URL.",
        data=ExportConfigData,
    ),
    _mgmt("safeRestart", "safeRestart", "Restart", "Restart once no call is up."),
    _mgmt("safeReboot", "safeReboot", "Reboot", "Reboot once no call is up."),
    _mgmt("factoryReset", "factoryReset", "FactoryReset", "Reset the phone to factory state."),
    _mgmt(
        "configReset",
        "configReset",
        "ConfigReset",
        "Reset cloud, local, web and device.",
        note="UCS 5.8 has no cloud level: it resets local, web and device (manual 001).",
    ),
    _config_reset("cloud", _NOT_5_8),  # manual 001 lists configReset/local, web, device only
    _config_reset("local"),
    _config_reset("web"),
    _config_reset("device"),
    _mgmt(
        "runningConfig",
        "device/runningConfig",
        "RunningConfig",
        "Network, DNS, provisioning, syslog, SNTP and TR-069 settings in force.",
        method="GET",
        output=Output,
    ),
    _mgmt(
        "deviceStats",
        "device/stats",
        "DeviceStats",
        "CPU and memory use.",
        method="GET",
        output=DeviceStatsOut,
    ),
    _mgmt(
        "softwareUpdateStatus",
        "device/softwareUpdateStatus",
        "DeviceSoftwareUpdateStatus",
        "Progress of a software update (0 idle .. 3 success).",
        method="GET",
        output=SoftwareUpdateOut,
        availability=_002_ONLY,
    ),
    _mgmt(
        "sessionStats",
        "media/sessionStats",
        "SessionStats",
        "RTP statistics of the media sessions.",
        method="GET",
        output=SessionStatsOut,
    ),
    _mgmt(
        "communicationInfo",
        "media/communicationInfo",
        "CommunicationInfo",
        "Which media ports are open, and mute state.",
        method="GET",
        output=CommunicationInfoOut,
    ),
    _mgmt(
        "locationInfo",
        "location/info",
        "LocationInformation",
        "The civic location the phone holds.",
        method="GET",
        output=Output,
    ),
    _mgmt(
        "ledStatus",
        "ledStatus",
        "LedStatus",
        "Line, MWI, mute, speaker and headset LEDs.",
        method="GET",
        output=LedStatusOut,
        availability=_VVX_6_AND_002,
    ),
    _mgmt(
        "bluetoothInfo",
        "blueTooth/info",
        "BluetoothInfo",
        "Bluetooth state and paired devices.",
        method="GET",
        output=BluetoothOut,
        availability=_VVX_6_AND_002,
    ),
    _mgmt(
        "pcPortInfo",
        "pcPort/info",
        "PC_Port_Info",
        "The PC port's state and its device's MAC.",
        method="GET",
        output=PcPortOut,
        availability=_VVX_6_AND_002,
    ),
    _mgmt(
        "pollForStatus",
        "pollForStatus",
        "PollForStatus",
        "Idle, Active or Error, with detail.",
        method="GET",
        output=PollForStatusOut,
        note="The manuals list HTTPS as its only protocol.",
    ),
    _mgmt(
        "powerStatus",
        "powerStatus",
        "PowerStatus",
        "The display's power state.",
        method="GET",
        output=PowerStatusOut,
        availability={"pvos": (9, 0)},
    ),
    _mgmt(
        "mrPairInfo",
        "mrpair/info",
        "MrPairInfo",
        "Paired modular room devices.",
        method="GET",
        output=Output,
        availability=_002_ONLY,
    ),
    _mgmt(
        "getTransferType",
        "transferType/get",
        "GetTransferType",
        "The transfer type in force.",
        method="GET",
        output=TransferTypeOut,
    ),
    _mgmt(
        "setTransferType",
        "transferType/set",
        "SetTransferType",
        "Set the transfer type.",
        data=TransferTypeData,
    ),
    _mgmt(
        "simulateKeyEvent",
        "simulateKeyEvent",
        "SimulateKeyEvent",
        "Tap a key of the phone's UI.",
        data=KeyEventData,
        availability=_NOT_5_8,
    ),
    _mgmt(
        "simulateTextInput",
        "simulateTextInput",
        "SimulateTextInput",
        "Type text into the focused field.",
        data=TextInputData,
        availability=_NOT_5_8,
    ),
    _mgmt(
        "simulateHook",
        "simulateHook",
        "SimulateHook",
        "Take the phone off or on hook.",
        data=HookData,
        availability=_NOT_5_8,
    ),
    _mgmt(
        "simulateTouch",
        "simulateTouch",
        "SimulateTouch",
        "Tap, press, release or swipe on the screen.",
        data=TouchData,
    ),
    _mgmt(
        "uixml",
        "uixml",
        "Uixml",
        "The screen's contents as XML.",
        method="GET",
        output=Output,
        note="data is a string of XML, not an object.",
    ),
    _mgmt(
        "updateConfiguration",
        "updateConfiguration",
        "UpdateConfiguration",
        "Fetch the configuration from the provisioning server.",
        output=ProvisioningOut,
        availability=_NOT_5_8,
    ),
    _mgmt(
        "webSignIn",
        "webSignIn",
        "WebSignIn",
        "Start a Skype for Business web sign-in; answers the URL and code.",
        output=WebSignInOut,
        availability=_NOT_5_8,
        method_on={"ucs-6": "GET"},
        note="GET on ucs-6 (manual 000); POST elsewhere (manual 002; 003's page is blank).",
    ),
    _mgmt(
        "webSignInCancel",
        "webSignInCancel",
        "WebSignInCancel",
        "Cancel a web sign-in.",
        method="GET",
        output=Output,
        availability=_NOT_5_8,
    ),
    _mgmt(
        "skypeSignIn",
        "skype/signIn",
        "SkypeSignIn",
        "Sign in to Skype for Business (answers within 150 s).",
        data=SkypeSignInData,
        delivery="http-only",  # carries a password: never in a SIP message
    ),
    _mgmt("skypeSignOut", "skype/signOut", "SkypeSignOut", "Sign out of Skype for Business."),
    _mgmt(
        "screenCapture",
        "screencapture",
        "Screencapture",
        "A screenshot of the phone or an expansion module.",
        data=ScreenCaptureData,
        delivery="http-only",
        availability=MANUAL_000,
        note="Answers with an image, not JSON.",
    ),
    _mgmt(
        "uploadBgCapture",
        "network/uploadBgCapture",
        "Network.UploadBgCapture",
        "Upload the background packet capture (default: provisioning server).",
        data=UploadBgCaptureData,
        # In 001 (UCS 5.8) and 003, not in 000 (UCS 6.4.0): on UCS 6 from 6.4.2 (002).
        availability=documented_in(
            MANUAL_001, MANUAL_002, MANUAL_003, since={"ucs-6": AFTER_6_4_0}
        ),
    ),
    _mgmt(
        "sessionCreate",
        "session/create",
        "SessionCreate",
        "Open a REST session (needs Digest SHA-256); the token comes as a cookie.",
        method="GET",
        output=SessionOut,
        availability=_SESSIONS,
    ),
    _mgmt(
        "sessionList",
        "session/get",
        "SessionList",
        "Open sessions with their remaining time.",
        method="GET",
        output=SessionListOut,
        availability=_SESSIONS,
    ),
    _mgmt(
        "sessionDelete",
        "session/delete",
        "SessionDelete",
        "Close sessions by id.",
        method="GET",
        data=SessionIds,
        output=SessionDeleteOut,
        availability=_SESSIONS,
        note="Manual 002 gives GET with a JSON body.",
    ),
)
