"""Coasting: the simulated world skips what idle cores do periodically, without changing it.

Most of what a long simulation would do is idle clients' CRLF keep-alives (a timer, a ping, a
pong, every keep-alive interval) and pools' heartbeat rounds (every heartbeat interval,
answered or vanishing), changing nothing.  While a core waits for nothing else and the paths
involved are fixed (reachable with no loss, jitter or duplication, so the network draws
nothing; or certainly cut) the world skips them: each periodic behaviour is a *cycle* of the
core (the protocol of emulator/coasting.py: a client's keep-alives, clients/keepalive.py, and
failback probes, clients/failback.py; a pool's heartbeats, emulator/registrar/heartbeats.py),
told what becomes of its messages; the world arms the core's next *other* deadline instead,
and when anything reaches the core (a timer, bytes, a failure, a command, any network change)
the cycle first catches up to now with the arithmetic the packets would have had; what is
still on its way then is sent for real and arrives when it would have.  docs/simulation.md,
Coasting.

Rules of this file:

* The :class:`Coaster` is the world's coordinator; the world owns one and calls it at three
  points only: when a core's deadline is armed (:meth:`Coaster.start`), before any input
  reaches a coasting core (:meth:`Coaster.uncoast` for a client, :meth:`Coaster.catch_up`
  for a pool), and when the network changed (:meth:`Coaster.network_changed`,
  :meth:`Coaster.settle`).
* The world hands over a core's coasting interface once, when it adds the core (a
  :class:`~emulator.coasting.Coasting`: its ``cycles`` and ``deadline_besides_cycles()``);
  the coordinator never looks for it in the core.  Every cycle, a client's or a pool's, goes
  through the same steps: :meth:`Coaster.path` for each of its flows, ``begin_coast``, then
  ``catch_up``/``end_coast`` and :meth:`Coaster.carry` for what is still on its way.
* A core coasts only under the network version it started under; a change ends every core's
  coasting (each catches up to ``now``) and each may start again under the new paths.
* A client's coast ends at its next input (an input may change what its cycles would do); a
  pool keeps coasting across its inputs: before each one the world brings its cycle up to
  ``now`` (:meth:`Coaster.catch_up`) without ending the coast (speed: a busy pool gets an
  input every few milliseconds, its heartbeats stay skipped).
* What the cores skip their cycles apply themselves, with the draws the packets would have
  made; this module only measures paths and carries what is still on its way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from emulator.coasting import Answered, Coasting, InFlight, Path
from emulator.net import Flow, Send
from emulator.registrar.pool import Pool
from emulator.sim.agenda import DATAGRAM, PONG

if TYPE_CHECKING:
    from emulator.coasting import Cycle
    from emulator.net import Core
    from emulator.sim.lazyrandom import LazyRandom
    from emulator.sim.world import World

__all__ = ["Coaster", "Uncertain"]

Uncertain = Literal[False]
"""What :meth:`Coaster.path` answers when the fate of a flow's messages is not certain (loss,
jitter, a refusal, a connection that may open): no cycle on that flow may coast."""

# What a core is to the coordinator: nothing that coasts; a core whose cycles coast until its
# next input (a client); a pool (its cycles coast across its inputs, and it answers heartbeats
# at once, which the datagram paths of its peers count on).
_NONE, _CYCLES, _POOL = 0, 1, 2

# What a skipped cycle's rounds are counted as.
_PINGS, _PROBES, _HEARTBEATS = 0, 1, 2


def _coaster(core: Core, coasting: Coasting | None) -> int:
    if isinstance(core, Pool):  # a pool answers heartbeats, with cycles or not
        return _POOL
    return _NONE if coasting is None else _CYCLES


@dataclass(slots=True)
class _Skipped:
    """A cycle being coasted, what its rounds count as (_PINGS, _PROBES, _HEARTBEATS) and how
    many it had skipped when this coast began."""

    cycle: Cycle
    counter: int
    before: int


class Coaster:
    """The coasting coordinator of one :class:`~emulator.sim.world.World` (see the module
    docstring)."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.pings_coasted = 0
        """Keep-alive round trips skipped (each would be two events)."""
        self.heartbeats_coasted = 0
        """Heartbeat rounds skipped (each would be three events or more)."""
        self.probes_coasted = 0
        """Failback probes to a cut-off primary skipped (two events each)."""
        self.agents: dict[int, tuple[_Skipped, ...]] = {}
        """Coasting clients: core index -> the cycles it skips.  The run loop checks it at
        every input (speed: a dict look-up) and ends the coast (:meth:`uncoast`)."""
        self.pools: dict[int, tuple[_Skipped, ...]] = {}
        """Coasting pools: core index -> the cycles it skips.  The world calls
        :meth:`catch_up` before each input; only a network change ends the coast."""
        self.kinds: list[int] = []
        """Per core, what it is to the coordinator (_NONE is 0), found once when it is added."""
        self._coasting: list[Coasting | None] = []
        """Per core, its coasting interface, given when it is added (None: no cycles)."""
        self._generators: list[LazyRandom | None] = []
        """Per core, its generator when it may be parked while the core coasts (memory: a
        Mersenne Twister is 2.5 KB, emulator/sim/lazyrandom.py); None: not parkable."""
        self.version = -1
        """The network version the coasting cores started under."""

    def add(
        self, core: Core, coasting: Coasting | None = None, generator: LazyRandom | None = None
    ) -> None:
        """A core was added to the world (the next index), with its coasting interface and
        its parkable generator."""
        self.kinds.append(_coaster(core, coasting))
        self._coasting.append(coasting)
        self._generators.append(generator)

    def replace(
        self,
        index: int,
        core: Core,
        coasting: Coasting | None = None,
        generator: LazyRandom | None = None,
    ) -> None:
        """A core was swapped for a fresh one (a restarted process), with its coasting
        interface: what the old one skipped ends with it."""
        self.agents.pop(index, None)
        self.pools.pop(index, None)
        self.kinds[index] = _coaster(core, coasting)
        self._coasting[index] = coasting
        self._generators[index] = generator

    # -- paths and what is in flight, for any cycle -------------------------------------------

    def path(self, index: int, flow: Flow) -> Path | Uncertain:
        """What becomes of every message core ``index`` sends on ``flow`` while the network
        stays as it is (:data:`emulator.coasting.Path`), or :data:`Uncertain`.

        On a stream flow: :class:`~emulator.coasting.Answered` when it is an open connection
        of ours to a core whose transport answers CRLF pings, over steady paths both ways
        (the message is a ping, the answer its pong); None when no connection exists and the
        far host is certainly unreachable (a new connection's SYN vanishes); else uncertain.
        On a datagram flow: see :meth:`_datagram_path`."""
        if flow.transport == "udp":
            return self._datagram_path(flow)
        world = self._world
        conn = world._conns.get((index, flow))
        network = world.network
        if conn is None:
            if network.reachable(flow.local[0], flow.remote[0]):
                return False  # a connection may open: what follows is not certain
            return None
        if conn.state != "open" or conn.a != index or conn.b not in world._pong_servers:
            return False
        src, dst = flow.local[0], conn.b_flow.local[0]
        out = network.steady_delay(src, dst)
        back = network.steady_delay(dst, src)
        if out is None or back is None:
            return False
        return Answered(out, back)

    def _datagram_path(self, flow: Flow) -> Path | Uncertain:
        """What becomes of every heartbeat on datagram ``flow`` while the network stays as it
        is: Answered when the peer pool answers it at once, None when it vanishes or its
        answer does, uncertain when neither is certain (loss, jitter, a refusal, not a pool).
        """
        world = self._world
        network = world.network
        src, (dst, port) = flow.local[0], flow.remote
        if not network.reachable(src, dst):
            return None  # the request vanishes
        target = world._listeners.get((dst, "udp", port))
        if target is None or self.kinds[target] != _POOL or not network.running(dst):
            return False  # refused (ICMP), or not a pool: only a pool answers and no more
        out = network.steady_delay(src, dst)
        if out is None:
            return False
        if not network.reachable(dst, src):
            return None  # the answer vanishes
        back = network.steady_delay(dst, src)
        if back is None or not network.running(src):
            return False  # a stopped pool's answers are refused, which the peer hears of
        return Answered(out, back)

    def carry(self, index: int, item: InFlight) -> None:
        """Put a message of a skipped round that is still on its way at ``now`` on the
        network as the network carried it when it was sent: it (or its answer) arrives when
        it would have.

        A datagram still travelling arrives then; one that reached its peer already is
        answered now by the peer, the answer arriving when it would have.  A ping's pong is
        delivered at ``sent_at + out + back``.  A stream message whose path is None is the
        first of a new connection whose SYN vanished: the connection is left lost (the
        sender's transaction times out).  A datagram whose path is None vanished."""
        world = self._world
        flow, path = item.send.flow, item.path
        if flow.transport != "udp":
            if path is None:
                world._lost_connection(index, flow)
            else:
                world._push(item.sent_at + path.out + path.back, (PONG, index, world._hold(flow)))
            return
        if path is None:
            return
        arrival = item.sent_at + path.out
        if arrival > world.now:
            world._push(arrival, (DATAGRAM, index, world._hold(flow), item.send.data))
        else:  # it reached the peer already, which answered at once
            self._answer_late(index, flow, item.send.data, arrival + path.back)

    # -- the three calls of the world ---------------------------------------------------------

    def start(self, index: int, deadline: float) -> float | None:
        """Begin skipping what ``index`` does periodically, if it can; returns the deadline
        to arm instead (its next other deadline) or ``deadline`` unchanged.

        Each cycle whose flows' paths are all certain begins, in the order the core lists
        them, told the core's next deadline besides it (``deadline_besides_cycles()`` and the
        deadlines of the cycles not coasting by then)."""
        world = self._world
        if self.version != world.network.version:
            return deadline  # a change not yet caught up with: network_changed will retry
        core = self._coasting[index]
        if core is None or index in self.agents or index in self.pools:
            return deadline  # coasting already: next_deadline() leaves the skipped rounds out
        pool = self.kinds[index] == _POOL
        skipped: list[_Skipped] | None = None
        cycles = core.cycles
        for cycle in cycles:
            flows = cycle.coast_flows()
            if flows is None:
                continue
            paths: dict[Flow, Path] = {}
            answered = False
            for flow in flows:
                path = self.path(index, flow)
                if path is False:
                    break
                paths[flow] = path
                answered = answered or path is not None
            else:
                other = core.deadline_besides_cycles()
                for each in cycles:
                    if each is not cycle:
                        value = each.deadline()
                        if value is not None and (other is None or value < other):
                            other = value
                if cycle.begin_coast(paths, other):
                    counter = _HEARTBEATS if pool else _PINGS if answered else _PROBES
                    if skipped is None:
                        skipped = []
                    skipped.append(_Skipped(cycle, counter, cycle.rounds_coasted))
        if skipped is None:
            return deadline
        if pool:
            self.pools[index] = tuple(skipped)
        else:
            # A tuple: a list grown by append keeps room for four (memory, issue 20: one per
            # coasting client).
            self.agents[index] = tuple(skipped)
            generator = self._generators[index]
            if generator is not None:
                # Memory: idle until its next input, and a catch-up rarely draws; the next
                # draw refills its words where it stopped (emulator/sim/lazyrandom.py).
                generator.park()
        return world._cores[index].next_deadline()

    def uncoast(self, index: int, at_timer: bool = False) -> None:
        """Bring a coasting core to the world's ``now`` and end its coast: what it skipped is
        applied, and what is still on its way then is sent for real, arriving when it would
        have."""
        world = self._world
        world._scheduled[index] = None
        skipped = self.agents.pop(index, None)
        if skipped is None:
            skipped = self.pools.pop(index)
        # What falls due exactly now went out already, unless a scenario step acts first (it
        # was scheduled before the timers due now) or the core's own timer is due now:
        # handle_timer then does it, in its own order (a probe's draws after a refresh's).
        inclusive = not (world._in_call or at_timer)
        for each in skipped:
            cycle = each.cycle
            in_flight = cycle.end_coast(world.now, inclusive=inclusive)
            rounds = cycle.rounds_coasted - each.before  # counted when a coast ends
            if each.counter == _PINGS:
                self.pings_coasted += rounds
            elif each.counter == _PROBES:
                self.probes_coasted += rounds
            else:
                self.heartbeats_coasted += rounds
            for item in in_flight:
                self.carry(index, item)

    def catch_up(self, index: int, *, inclusive: bool = True) -> None:
        """Before an input reaches coasting pool ``index``: its cycles apply the rounds
        skipped up to now (their draws included) and go on coasting.  ``inclusive``: a round
        due exactly now went out already (False for a scenario step or fault, which acts
        before the timers of its instant)."""
        now = self._world.now
        for each in self.pools[index]:
            each.cycle.catch_up(now, inclusive=inclusive)

    def _answer_late(self, index: int, flow: Flow, data: bytes, arrival: float) -> None:
        """The peer of ``flow`` answers ``data`` now; its answer reaches ``index`` at
        ``arrival``, as if it had answered when the request reached it (a pool answers a
        heartbeat at once and draws nothing from the network, so only the clock differs)."""
        world = self._world
        dst = flow.remote
        target = world._listeners.get((dst[0], "udp", dst[1]))
        if target is None:
            return  # no longer listening: its answer cannot be made again (not a pool's way)
        if target in self.pools:  # a coasting peer catches up before its input, as always
            self.catch_up(target)
        peer = world._cores[target]
        back = Flow("udp", dst, flow.local)
        peer.receive(data, back, world.now)
        for action in peer.actions():
            if isinstance(action, Send) and action.flow == back:
                world._push(arrival, (DATAGRAM, target, world._hold(back), action.data))
            elif isinstance(action, Send):
                world._send_datagram(target, action.flow, action.data)
        world._flush(target)

    def settle(self) -> None:
        """Bring every coasting core up to the world's ``now``; they may coast again
        afterwards, under the network as it is then."""
        self.version = -1
        self.network_changed()

    def network_changed(self) -> None:
        """Paths may have changed: every coasting core catches up to now, then may coast
        again under the new paths."""
        world = self._world
        self.version = world.network.version
        if not (self.agents or self.pools):
            return
        for index in [*self.agents, *sorted(self.pools)]:
            if index in self.agents or index in self.pools:
                self.uncoast(index)
                world._flush(index)
