"""Faults surface: a bug of ours fails the simulation and every property test, and a Peer reports it.

Only ProtocolError-class input is the sender's fault (dropped and reported as such); any other
exception while a core handles input is a Fault with its traceback. User code raising keeps its
documented meaning: a reducer raising in the master rejects the action, on a client's confirmed
entry it resyncs that replica.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import movex_p2p as mx
from movex_p2p.election.machine import ElectionConfig, Policy
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.node import Diagnostic
from movex_p2p.resource.client import ClientCore
from movex_p2p.resource.effects import Effect
from movex_p2p.simulation import Simulation, SimulationFault
from tests import test_migration_sim
from tests.resources import Counter
from tests.test_migration_sim import Log
from tests.waits import settled

MasterChangedFn = Callable[[ClientCore, PeerId | None, Term, float | None], list[Effect]]


def break_on_migration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ClientCore.master_changed raise KeyError once a peer learns of a SECOND master (a migration)."""
    original: MasterChangedFn = ClientCore.master_changed
    known: dict[int, PeerId] = {}  # each client's first master

    def broken(self: ClientCore, master: PeerId | None, term: Term, now: float | None = None) -> list[Effect]:
        seen = self.master or master
        first = None if seen is None else known.setdefault(id(self), seen)
        if master is not None and first is not None and master != first:
            raise KeyError("a bug planted mid-migration")
        return original(self, master, term, now)

    monkeypatch.setattr(ClientCore, "master_changed", broken)


def test_a_core_bug_mid_migration_fails_the_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = Simulation(3, types=[Log], seed=7, config=ElectionConfig(policy=Policy.AVAILABLE))
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1 and all(s.peers[p].core.client.synced for p in s.alive))
    rid = sim.create(sim.alive[-1], "log", "l")
    sim.run(0.5)
    sim.dispatch(sim.alive[0], rid, mx.Action("add", ["p0", 1]))
    break_on_migration(monkeypatch)
    sim.kill(sim.masters()[0])
    with pytest.raises(SimulationFault, match="KeyError: 'a bug planted mid-migration'") as info:
        sim.run(5.0)
    (fault, *_) = info.value.faults
    assert "master_changed" in fault.traceback  # the traceback says where


def test_the_migration_property_test_fails_on_that_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    args: dict[str, Any] = {"seed": 3, "size": 3, "kills": [], "kill_master_at": 0.3, "policy": Policy.AVAILABLE}
    args["loss"] = 0.05
    # the module, not the function, is imported: a test function imported here would be collected and run again
    prop = test_migration_sim.test_kills_never_lose_or_double_what_survivors_saw
    inner = prop.hypothesis.inner_test  # type: ignore[attr-defined]
    inner(**args)  # passes as it is
    break_on_migration(monkeypatch)
    with pytest.raises(SimulationFault, match="a bug planted mid-migration"):
        inner(**args)


def test_a_reducer_raising_on_a_confirmed_entry_resyncs_it_and_is_no_fault() -> None:
    failing = {"on": False}

    def flaky(state: Any, action: mx.Action) -> Any:
        if failing["on"]:
            raise RuntimeError("this peer's reducer disagrees")
        return {**state, "n": state["n"] + 1}

    Flaky = mx.ResourceType("flaky", flaky, initial={"n": 0})
    sim = Simulation(2, types=[Flaky], seed=1)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1 and all(s.peers[p].core.client.synced for p in s.alive))
    master = sim.masters()[0]
    other = next(p for p in sim.alive if p != master)
    rid = sim.create(master, "flaky", "f")
    assert sim.run(1.0, until=lambda s: s.peers[other].core.client.has(rid))
    sim.dispatch(master, rid, mx.Action("bump"))  # applied by the master (and its own replica) at once
    failing["on"] = True  # the other peer's reducer now raises on the confirmed entry
    sim.run(0.05)
    failing["on"] = False
    assert sim.peers[other].resyncs == 1
    assert sim.run(2.0, until=lambda s: s.converged(rid))
    assert sim.state(other, rid) == {"n": 1}


async def test_a_peer_logs_a_fault_with_its_traceback_and_reports_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    network = mx.LocalNetwork()
    async with (
        mx.Peer(room="f", types=[Counter], transport=network, seed=1, name="a") as a,
        mx.Peer(room="f", types=[Counter], transport=network, seed=2, name="b") as b,
    ):
        with anyio.fail_after(10):
            await a.wait_ready()
            await b.wait_ready()
        await settled(lambda: a.master_id is not None and a.master_id == b.master_id and a.ready and b.ready, a, b)
        client = b if a.is_master else a
        rid = await client.create(Counter, id="c")
        res = await client.bind(rid)
        diagnostics: list[Diagnostic] = []
        client.on_diagnostic(diagnostics.append)

        def broken(self: ClientCore, *args: Any, **kwargs: Any) -> list[Effect]:
            raise KeyError("a bug in the client")

        monkeypatch.setattr(ClientCore, "_on_applied", broken)
        with caplog.at_level(logging.ERROR, logger="movex_p2p"):
            res.dispatch(mx.Action("increment"))
            await settled(lambda: bool(diagnostics), client)
        monkeypatch.undo()
        (fault,) = diagnostics
        assert fault.kind == "fault"
        assert fault.reason == "KeyError('a bug in the client')"
        assert "_on_applied" in fault.detail
        assert client.stats["faults"] == 1
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert errors
        assert "Traceback" in errors[0].getMessage()
        assert "a bug in the client" in errors[0].getMessage()


async def test_dropped_input_is_reported_once_per_peer_and_reason() -> None:
    network = mx.LocalNetwork()
    async with (
        mx.Peer(room="d", types=[Counter], transport=network, seed=1, name="a") as a,
        mx.Peer(room="d", types=[Counter], transport=network, seed=2, name="b") as b,
    ):
        await settled(lambda: b.id in a.peers and a.id in b.peers, a, b)  # b sends: its end must be up too
        diagnostics: list[Diagnostic] = []
        a.on_diagnostic(diagnostics.append)
        assert b._endpoint is not None
        for _ in range(3):
            b._endpoint.send(a.id, b"\xff\x00garbage")
        await settled(lambda: a.stats["dropped"] >= 3, a)
        assert [(d.kind, d.peer) for d in diagnostics] == [("dropped", b.id)]
        assert "malformed frame" in diagnostics[0].reason


async def test_divergence_is_reported() -> None:
    network = mx.LocalNetwork()
    async with (
        mx.Peer(room="v", types=[Counter], transport=network, seed=1, name="a") as a,
        mx.Peer(room="v", types=[Counter], transport=network, seed=2, name="b") as b,
    ):
        with anyio.fail_after(10):
            await a.wait_ready()
            await b.wait_ready()
        await settled(lambda: a.master_id is not None and a.master_id == b.master_id and a.ready and b.ready, a, b)
        master, client = (a, b) if a.is_master else (b, a)
        rid = await master.create(Counter, id="c")
        res = await master.bind(rid)
        await client.bind(rid)
        replica = client._core.client.replicas[Rid(rid)]
        replica.write({"count": 666}, Term(replica.entry_term), replica.version)  # corrupted behind its back
        diagnostics: list[Diagnostic] = []
        client.on_diagnostic(diagnostics.append)
        await res.dispatch(mx.Action("increment"))
        await settled(lambda: client.resource_info(rid).checksum == res.checksum, client, master)
        assert [(d.kind, d.rid) for d in diagnostics] == [("diverged", rid)]
        assert diagnostics[0].reason.startswith("checksum mismatch: resynced; a reducer that is not pure")
