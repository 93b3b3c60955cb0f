import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from sipbridge.config import ConfigFileError, Settings, load_settings

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented_and_nothing_else():
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(), re.MULTILINE))
    assert documented == set(Settings.model_fields)


def test_toml_then_environment_precedence(tmp_path, monkeypatch):
    config = tmp_path / "s.toml"
    config.write_text('http_port = 9001\nsip_port = 5999\napi_keys = ["toml-key-0001"]\n')
    monkeypatch.setenv("SIPBRIDGE_SIP_PORT", "6001")
    settings = load_settings(config)
    assert (settings.http_port, settings.sip_port) == (9001, 6001)
    assert settings.api_keys == ("toml-key-0001",)


def test_api_keys_from_environment_are_comma_separated(monkeypatch):
    monkeypatch.setenv("SIPBRIDGE_API_KEYS", " key-one-123 ,key-two-456,")
    assert load_settings().api_keys == ("key-one-123", "key-two-456")


@pytest.mark.parametrize(
    ("name", "value"),
    [("SIPBRIDGE_API_KEYS", "short"), ("SIPBRIDGE_HTTP_HOST", "localhost")],
)
def test_bad_settings_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        load_settings()


def test_unknown_toml_key_and_missing_file_are_refused(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text("htp_port = 1\n")
    with pytest.raises(ValidationError, match="htp_port"):
        load_settings(config)
    with pytest.raises(ConfigFileError):
        load_settings(tmp_path / "missing.toml")


def test_contact_host_never_a_wildcard():
    assert Settings(sip_host="10.1.2.3").contact_host == "10.1.2.3"
    assert (
        Settings(sip_host="0.0.0.0", sip_contact_host="pbx.example.com").contact_host
        == "pbx.example.com"
    )
    assert Settings(sip_host="0.0.0.0").contact_host != "0.0.0.0"


def test_timer_f_follows_the_deadline_and_never_exceeds_it():
    assert Settings().transaction_timeout == 4.0  # 0.8 x the 5 s deadline
    assert Settings(command_deadline=20).transaction_timeout == 16.0
    assert Settings(command_deadline=60).transaction_timeout == 32.0  # RFC 3261's 64 x T1
    assert Settings(command_deadline=3, sip_transaction_timeout=3).transaction_timeout == 3
    with pytest.raises(ValidationError, match="must not exceed command_deadline"):
        Settings(command_deadline=3, sip_transaction_timeout=4)
    with pytest.raises(ValidationError, match="at least 1 s"):
        Settings(command_deadline=0.5)
