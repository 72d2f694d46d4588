"""Where the app's reducer may raise (prediction, the censorship check), only its call is under the catch.

Whatever the reducer raises is the app's refusal (the master refuses too, and says why); the
contract check that follows (:meth:`ResourceType.checked`: freeze, the depth and JSON rules) is
ours, and a bug there raises instead of reading as a refusal.
"""

from __future__ import annotations

from typing import Any

import pytest

import movex_p2p as mx
from movex_p2p.censorship import Unconfirmed, _acceptable
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.resource.predictor import _try
from movex_p2p.resource.replica import Replica
from movex_p2p.resource.state import freeze


def rules(state: Any, action: mx.Action) -> Any:
    if action.type == "refuse":
        raise ValueError("not your turn")
    return {"n": state["n"] + 1}


Counter = mx.ResourceType("boundary", rules, initial={"n": 0})
STATE = freeze({"n": 0})


class OurBug(Exception):
    """Stands for a bug in our own contract check."""


@pytest.fixture
def broken_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def checked(self: mx.ResourceType, state: Any, result: Any, action: mx.Action) -> Any:
        raise OurBug("freeze broke")

    monkeypatch.setattr(mx.ResourceType, "checked", checked)


def unconfirmed(action: mx.Action) -> Unconfirmed:
    return Unconfirmed(
        term=Term(1),
        master=PeerId("m"),
        author=PeerId("a"),
        rid=Rid("boundary:b"),
        seq=1,
        action=action,
        endorsement=b"",
        proof=b"",
    )


REPLICA = Replica(rid=Rid("boundary:b"), type=Counter, state=STATE)


def test_the_apps_refusal_is_a_refusal() -> None:
    assert _try(Counter, STATE, mx.Action("refuse")) is STATE  # the prediction leaves it out
    assert _try(Counter, STATE, mx.Action("add")) == {"n": 1}
    assert _acceptable(unconfirmed(mx.Action("refuse")), REPLICA, Counter) is False
    assert _acceptable(unconfirmed(mx.Action("add")), REPLICA, Counter) is True


@pytest.mark.usefixtures("broken_check")
def test_a_bug_in_our_check_raises_in_the_prediction_and_the_censorship_check() -> None:
    with pytest.raises(OurBug):
        _try(Counter, STATE, mx.Action("add"))
    with pytest.raises(OurBug):
        _acceptable(unconfirmed(mx.Action("add")), REPLICA, Counter)
    assert _try(Counter, STATE, mx.Action("refuse")) is STATE  # the app's refusal never reaches the check


def test_a_callback_that_raises_is_logged_with_its_traceback_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The app's callbacks on the network's loop: each failure logged with its traceback, none breaks the loop;
    on the app's own thread (no log), the exception reaches the app."""
    import logging

    from movex_p2p.callbacks import Callbacks

    def broken(value: int) -> None:
        raise KeyError(value)

    seen: list[int] = []
    on_loop: Callbacks[[int]] = Callbacks("on_update of counter:c", log=logging.getLogger("movex_p2p.test"))
    on_loop.add(broken)
    on_loop.add(seen.append)
    with caplog.at_level(logging.ERROR, logger="movex_p2p.test"):
        on_loop(7)
    assert seen == [7]
    [record] = caplog.records
    assert record.getMessage() == "on_update of counter:c callback raised"
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError
    on_thread: Callbacks[[int]] = Callbacks("on_update of counter:c")
    on_thread.add(broken)
    with pytest.raises(KeyError):
        on_thread(7)
