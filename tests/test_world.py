"""The one virtual-time world: its timeline's order, the deadline merge, ``until`` and the no-progress guard."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from movex_p2p.links import Links
from movex_p2p.world import Timeline, World


def test_the_timeline_orders_by_time_then_insertion() -> None:
    timeline: Timeline[str] = Timeline()
    for when, item in ((2.0, "c"), (1.0, "a"), (2.0, "d"), (1.0, "b"), (0.5, "first")):
        timeline.at(when, item)
    assert timeline.next_at == 0.5
    assert [timeline.pop() for _ in range(len(timeline))] == ["first", "a", "b", "c", "d"]
    assert timeline.next_at is None


def test_removing_items_keeps_the_order_of_the_others() -> None:
    timeline: Timeline[int] = Timeline()
    for i in range(10):
        timeline.at(1.0, i)
    assert sorted(timeline.remove(lambda i: i % 3 == 0)) == [0, 3, 6, 9]
    assert sorted(timeline) == [1, 2, 4, 5, 7, 8]
    assert [timeline.pop() for _ in range(len(timeline))] == [1, 2, 4, 5, 7, 8]


class Echo(World[str, str]):
    """Items are logged; each core's timer re-arms ``period`` later, or stays put (a stuck core)."""

    def __init__(
        self, deadlines: dict[str, float | None], *, period: float = 1.0, resolution: float = 0.0, batch: bool = False
    ) -> None:
        super().__init__(Links(random.Random(0)), resolution=resolution, batch=batch)
        self.deadline = deadlines
        self.period = period
        self.log: list[tuple[float, str]] = []

    def _handle(self, item: str) -> None:
        self.log.append((self.now, item))
        if item == "spawn":
            self.timeline.at(self.now, "spawned")  # due now: handled at this instant

    def _deadlines(self) -> Iterable[tuple[str, float | None]]:
        return sorted(self.deadline.items())

    def _tick(self, key: str) -> None:
        self.log.append((self.now, f"tick {key}"))
        deadline = self.deadline[key]
        assert deadline is not None
        self.deadline[key] = deadline + self.period


def test_items_come_before_deadlines_at_the_same_time_and_ticks_go_in_order() -> None:
    world = Echo({"b": 1.0, "a": 1.0, "idle": None})
    world.timeline.at(1.0, "spawn")
    world.timeline.at(0.5, "early")
    assert world.run_until(2.5) is False
    assert world.log == [
        (0.5, "early"),
        (1.0, "spawn"),
        (1.0, "spawned"),
        (1.0, "tick a"),
        (1.0, "tick b"),
        (2.0, "tick a"),
        (2.0, "tick b"),
    ]
    assert world.now == 2.5


def test_until_is_asked_before_each_step_or_each_instant_in_batch() -> None:
    for batch, handled in ((False, ["one"]), (True, ["one", "two"])):
        world = Echo({}, batch=batch)
        world.timeline.at(1.0, "one")
        world.timeline.at(1.0, "two")
        assert world.run_until(5.0, until=lambda w: bool(w.log)) is True
        assert [item for _, item in world.log] == handled
        assert world.now == 1.0


def test_resolution_ticks_a_core_due_within_it_and_never_steps_by_less() -> None:
    world = Echo({"a": 1.00005}, period=0.00002, resolution=1e-4, batch=True)
    world.run_until(1.0002)
    assert [item for _, item in world.log] == ["tick a", "tick a"]
    assert [at for at, _ in world.log] == [1.00005, pytest.approx(1.00015)]


def test_a_deadline_that_does_not_advance_fails_the_run() -> None:
    world = Echo({"stuck": 1.0}, period=0.0)
    with pytest.raises(RuntimeError, match=r"no progress at t=1\.0"):
        world.run_until(2.0)
