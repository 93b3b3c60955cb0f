import pytest

from sipbridge.commands.control import CALL_ACTIONS
from sipbridge.tracker.call_state import AFTER_ACTION, ENDED, UnknownAction, state_after


def test_every_front_api_action_has_a_row():
    assert set(CALL_ACTIONS) == set(AFTER_ACTION)


@pytest.mark.parametrize(
    ("action", "before", "after"),
    [
        ("hold", "connected", "held"),
        ("resume", "held", "connected"),
        ("answer", "ringing", "connected"),
        ("end", "held", ENDED),
        ("transfer", "connected", ENDED),
        ("dtmf", "held", "held"),
        ("mute", "connected", "connected"),
    ],
)
def test_state_after(action, before, after):
    assert state_after(action, before) == after


def test_unknown_action_is_a_named_error():
    with pytest.raises(UnknownAction):
        state_after("explode", "connected")
