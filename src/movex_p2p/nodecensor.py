"""NodeCore's hooks for proof of censorship (:mod:`movex_p2p.censorship`): routing only, pure.

Kept out of :class:`~movex_p2p.nodecore.NodeCore` so that class stays small: each function is one
of its steps, called with the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .censorship import CensorMessage, Declined, author_of, grievance, proposal_of
from .election import machine as el
from .errors import RemoteProtocolError
from .resource import effects as fx
from .resource import messages as rm
from .resource.pending import PendingQueue

if TYPE_CHECKING:
    from .ids import PeerId
    from .nodecore import NodeCore

__all__ = ["check_censorship", "gossip_unconfirmed", "on_censor"]


def on_censor(core: NodeCore, sender: PeerId, msg: CensorMessage) -> None:
    """As master: apply an author's unconfirmed proposal (or say why not); else watch it and hand it on."""
    client = core.client
    if isinstance(msg, Declined):
        if sender == client.master:
            core.censor.declined(msg.author, msg.rid, msg.seq)
        return
    if author_of(msg, client.sealing.room, core.verifier) is None:
        raise RemoteProtocolError(f"an unconfirmed proposal {msg.author} did not sign for this room")
    if msg.term != client.term or msg.author == msg.master:
        return  # another term's (or a master's own): it proves nothing here
    if core.master is not None:
        endorse, propose = proposal_of(msg, client.sealing.room)
        core.history.endorsed(msg.author, endorse)
        effects = core._serve(msg.author, propose)
        for effect in effects:  # the forwarder hears of a refusal (the author gets its own answer)
            if type(effect) is fx.Send and type(effect.message) is rm.Rejected and sender != msg.author:
                why = effect.message.reason
                declined = Declined(term=msg.term, author=msg.author, rid=msg.rid, seq=msg.seq, reason=why)
                core.outbox.send(sender, declined)
        core._effects(effects)
        return
    res = client.replicas.get(msg.rid)
    if sender != msg.author or msg.master != client.master or res is None:
        return  # only its author gossips it, about our master
    if core.censor.hold(msg, core._now, res.version):
        core.outbox.send(msg.master, msg)  # an honest master applies what it is handed


def gossip_unconfirmed(core: NodeCore, stuck: fx.Stuck) -> None:
    """Our oldest action on a stuck resource, signed for this room and master, to every peer."""
    client = core.client
    items = client.pending(stuck.rid)
    res = client.replicas.get(stuck.rid)
    if not items or res is None or stuck.master != client.master or stuck.master == core.me:
        return
    if items[0].private is not None and not items[0].sealed:
        return  # its private half is the master's to see: no evidence others can check
    propose = PendingQueue.propose(stuck.rid, items[0], items[0].seq - 1, client.term)
    msg = grievance(core.signer, client.sealing.room, propose, stuck.master)
    core.censor.hold(msg, core._now, res.version)
    for peer in core.peers:
        core.outbox.send(peer, msg)


def check_censorship(core: NodeCore) -> None:
    """Report a master that censors an author (each proposal once); under ``distrust``, vote it out (once)."""
    censor = core.censor
    for censored in censor.check(core._now, core.client.master, core.client.replicas, core.types, core.peers):
        core._events.append(censored)
        if censor.policy == "distrust" and censored.master not in censor.censoring:
            censor.censoring.add(censored.master)
            core._elect(el.Distrust(peer=censored.master))
