"""The call-action table: each row's Poly command and the call's state after it."""

import pytest

from sipbridge import catalog
from sipbridge.commands.actions import CALL_ACTIONS, ENDED


@pytest.mark.parametrize(
    ("action", "before", "after"),
    [
        ("hold", "connected", "held"),
        ("resume", "held", "connected"),
        ("answer", "ringing", "connected"),
        ("end", "held", ENDED),
        ("reject", "ringing", ENDED),
        ("transfer", "connected", ENDED),
        ("warm-transfer", "held", ENDED),
        ("join", "held", "connected"),
        ("dtmf", "held", "held"),
        ("mute", "connected", "connected"),
    ],
)
def test_state_after(action, before, after):
    assert CALL_ACTIONS[action].state_after(before) == after


def test_every_action_names_a_catalog_command():
    for action in CALL_ACTIONS.values():
        assert catalog.lookup(action.command).name == action.command, action.name
