"""The API key check: only a key equal to an accepted one passes, whatever it shares with it."""

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.admin.identity import key_matches
from sipbridge.api import create_app
from sipbridge.api.auth import stored_or_new_key
from sipbridge.config import Settings
from sipbridge.sip.sender import FakeSender


@pytest.fixture
def real_key(tmp_path) -> str:
    # A generated key: every one has the same length, so "right length" says nothing.
    key, _, made = stored_or_new_key(tmp_path / "keys")
    assert made
    return key


def near_misses(key: str) -> list[str]:
    flipped_last = key[:-1] + ("A" if key[-1] != "A" else "B")
    flipped_first = ("A" if key[0] != "A" else "B") + key[1:]
    return [
        "x" * len(key),  # a wrong key of the same length
        flipped_last,  # shares all but the last character
        flipped_first,  # differs only at the start
        key[:4] + "y" * (len(key) - 4),  # shares the first four characters
        key + "z",  # the key with something appended
        key[:-1],  # a prefix of the key
    ]


def test_only_the_exact_key_matches(real_key):
    accepted = frozenset({real_key, "other-key-0000"})
    assert key_matches(real_key, accepted)
    assert key_matches("other-key-0000", accepted)
    for miss in near_misses(real_key):
        assert not key_matches(miss, accepted), miss
    assert not key_matches(real_key, frozenset())


@pytest.fixture
async def client(tmp_path, real_key):
    settings = Settings(api_keys=(real_key,), data_dir=tmp_path, listen_port=0)
    async with TestClient(TestServer(create_app(settings, sender_factory=lambda _: FakeSender()))) as client:
        yield client


async def test_near_miss_keys_are_401_and_the_real_one_passes(client, real_key):
    ok = await client.get("/v1/phones", headers={"Authorization": f"Bearer {real_key}"})
    assert ok.status == 200, await ok.text()
    for miss in near_misses(real_key):
        response = await client.get("/v1/phones", headers={"Authorization": f"Bearer {miss}"})
        assert response.status == 401, miss
        assert response.content_type == "application/problem+json"


def test_a_made_key_is_kept_private_and_read_back_the_same(tmp_path):
    data_dir = tmp_path / "not" / "yet"  # parents made too
    key, path, made = stored_or_new_key(data_dir)
    assert made and path == data_dir / "api-key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(key) >= 32 and key.isprintable() and " " not in key
    assert path.read_text() == key + "\n"
    again, same_path, made_again = stored_or_new_key(data_dir)
    assert (again, same_path, made_again) == (key, path, False)


def test_a_key_is_made_in_an_existing_empty_data_dir(tmp_path):
    key, path, made = stored_or_new_key(tmp_path)
    assert made and path.read_text().strip() == key
