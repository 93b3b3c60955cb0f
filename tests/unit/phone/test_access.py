"""The phone credentials file: defaults, per-phone entries, secrets kept out of text."""

import pytest

from sipbridge.errors import ProfileError
from sipbridge.phone.access import PhoneAccessBook, load_access

FILE = """
[default]
password = "default-secret-1"

[phones."1001"]
password = "phone-secret-2"
url = "https://10.0.0.5:8443"
auth = "digest"

[phones."1002"]
user = "Admin2"
"""


def test_entries_fall_back_to_the_default():
    book = PhoneAccessBook.parse(FILE)
    one = book.for_phone("1001")
    assert (one.user, one.auth, one.url) == ("Polycom", "digest", "https://10.0.0.5:8443")
    assert one.password is not None and one.password.get_secret_value() == "phone-secret-2"
    two = book.for_phone("1002")
    assert (two.user, two.url) == ("Admin2", None)
    assert two.password is not None and two.password.get_secret_value() == "default-secret-1"
    assert book.for_phone("9999").password is not None
    assert PhoneAccessBook().for_phone("1001").password is None


def test_passwords_never_show_in_text():
    book = PhoneAccessBook.parse(FILE)
    entry = book.for_phone("1001")
    assert "phone-secret-2" not in repr(entry) and "phone-secret-2" not in str(entry)
    with pytest.raises(ProfileError) as info:
        PhoneAccessBook.parse('[phones."1"]\npassword = "leaky-secret"\nurl = "ftp://x"\n')
    assert "leaky-secret" not in info.value.detail and "url" in info.value.detail


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(ProfileError):
        PhoneAccessBook.parse("[default\n")
    with pytest.raises(ProfileError):
        PhoneAccessBook.parse('[default]\nuser = "a:b"\n')  # RFC 7617: no colon in a user-id
    with pytest.raises(ProfileError):
        load_access(tmp_path / "missing.toml")
    path = tmp_path / "phones.toml"
    path.write_text(FILE)
    path.chmod(0o600)
    assert load_access(path).for_phone("1001").auth == "digest"
    assert load_access(None).for_phone("1001").password is None
