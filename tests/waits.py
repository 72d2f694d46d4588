"""Waits on what peers do, never on a clock: a condition is looked at again after each step of a peer.

A peer changes only when its core steps (input, a due timer, an app command), and after every
step the driver hands the Ready to the peer's :class:`~movex_p2p.notifier.Notifier`, even an
empty one ("waiters on time-based conditions look again"). While ``agreement_waiters`` is
non-zero the Notifier sets and replaces its ``wake`` event at each of those steps: that is how
``Peer.wait_ready`` waits for time-based agreement, and how :func:`settled` waits here. So a
condition on peers' properties, bound resources or what their callbacks collected is looked at
exactly when it may have changed: no sleep, no polling period.

The ``within`` bound only turns a hang into a failure (generous: a loaded CI machine is slow);
no test asserts how fast something settled (speed targets live in benchmarks/).
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

import movex_p2p as mx

__all__ = ["WITHIN", "settled"]

WITHIN = 30.0
"""Seconds a wait may take before it fails the test: a bound on a hang, not a speed target."""


async def settled(predicate: Callable[[], bool], *peers: mx.Peer, within: float = WITHIN) -> None:
    """Return once ``predicate()`` holds; look again after each step of any of ``peers``.

    ``peers`` are those whose steps can make it true (whose properties, resources or callbacks it
    reads). AssertionError if it does not hold within ``within`` seconds.
    """
    if not peers:
        raise ValueError("name the peers whose steps can change the condition")
    notifiers = [peer._notifier for peer in peers]
    for notifier in notifiers:
        notifier.agreement_waiters += 1  # every step of this peer now sets (and replaces) notifier.wake
    try:
        with anyio.fail_after(within):
            while not predicate():
                wakes = [notifier.wake for notifier in notifiers]  # taken with the check: no step in between
                await _any_set(wakes)
    except TimeoutError:
        raise AssertionError(f"the condition did not hold within {within} s of steps") from None
    finally:
        for notifier in notifiers:
            notifier.agreement_waiters -= 1


async def _any_set(events: list[anyio.Event]) -> None:
    """Return once one of ``events`` is set."""
    if len(events) == 1:
        await events[0].wait()
        return
    async with anyio.create_task_group() as tg:
        for event in events:
            tg.start_soon(_set_then_cancel, event, tg.cancel_scope)


async def _set_then_cancel(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
