"""Coasting: the simulated world skips what idle cores do periodically, without changing it.

Most of what a long simulation would do is idle clients' CRLF keep-alives (a timer, a ping, a
pong, every keep-alive interval) and pools' heartbeat rounds (every heartbeat interval,
answered or vanishing), changing nothing.  While a core waits for nothing else and the paths
involved are fixed (reachable with no loss, jitter or duplication, so the network draws
nothing; or certainly cut) the world skips them: the core is told the delays, the world arms
the core's next *other* deadline instead, and when anything reaches the core (a timer, bytes,
a failure, a command, any network change) the core first catches up to now (Agent.coast; a
pool's heartbeat cycle, emulator/registrar/heartbeats.py, through the Cycle protocol of
emulator/coasting.py) with the arithmetic the packets would have had; what is still on its way
then is sent for real and arrives when it would have.  docs/simulation.md, Coasting.

Rules of this file:

* The :class:`Coaster` is the world's coordinator; the world owns one and calls it at three
  points only: when a core's deadline is armed (:meth:`Coaster.start`), before any input
  reaches a coasting core (:meth:`Coaster.uncoast` for a client, :meth:`Coaster.catch_up`
  for a pool), and when the network changed
  (:meth:`Coaster.network_changed`, :meth:`Coaster.settle`).
* A core coasts only under the network version it started under; a change ends every core's
  coasting (each catches up to ``now``) and each may start again under the new paths.
* A pool keeps coasting across its inputs: before each one the world brings its cycle up to
  ``now`` (:meth:`Coaster.catch_up`) without ending the coast (speed: a busy pool gets an
  input every few milliseconds, its heartbeats stay skipped).
* What the cores skip they apply themselves, with the draws the packets would have made; this
  module only measures paths and carries what is still on its way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from emulator.coasting import Answered, Cycle, InFlight, Path
from emulator.net import Flow, Send
from emulator.registrar.pool import Pool
from emulator.sim.agenda import DATAGRAM, PONG

if TYPE_CHECKING:
    from emulator.net import Core
    from emulator.sim.world import World

__all__ = ["Coaster", "Uncertain"]

Uncertain = Literal[False]
"""What :meth:`Coaster.path` answers when the fate of a flow's messages is not certain (loss,
jitter, a refusal, a connection that may open): no cycle on that flow may coast."""

# What a core can coast: nothing, client keep-alives, pool heartbeats.
_NONE, _AGENT, _POOL = 0, 1, 2


def _coaster(core: object) -> int:
    if hasattr(core, "keepalive_coast"):
        return _AGENT
    if isinstance(core, Pool):  # a pool answers heartbeats, and may send some
        return _POOL
    return _NONE


@dataclass(slots=True)
class _AgentCoast:
    """What a client is skipping: its answered keep-alives (their flow, one-way delays out
    and back; flow None: none), its failback probes that vanish (probes True)."""

    flow: Flow | None
    out: float
    back: float
    probes: bool


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
        self.agents: dict[int, _AgentCoast] = {}
        """Coasting clients: core index -> what it skips.  The run loop checks it at every
        input (speed: a dict look-up)."""
        self.pools: dict[int, tuple[Cycle, int]] = {}
        """Coasting pools: core index -> its heartbeat cycle and the rounds it had skipped
        when this coast began.  A pool coasts across its inputs (the world calls
        :meth:`catch_up` before each); only a network change ends it."""
        self.kinds: list[int] = []
        """Per core, what it can coast (_NONE is 0: nothing), found once when it is added."""
        self.cycles: list[tuple[Cycle, ...]] = []
        """Per core, its coastable cycles (emulator/coasting.py), given when it is added: the
        world never looks for them in the core (no per-event look-up, no hasattr)."""
        self.version = -1
        """The network version the coasting cores started under."""

    def add(self, core: Core, cycles: Sequence[Cycle] = ()) -> None:
        """A core was added to the world (the next index), with its cycles."""
        self.kinds.append(_coaster(core))
        self.cycles.append(tuple(cycles))

    def replace(self, index: int, core: Core, cycles: Sequence[Cycle] = ()) -> None:
        """A core was swapped for a fresh one (a restarted process), with its cycles: what
        the old one skipped ends with it."""
        self.agents.pop(index, None)
        self.pools.pop(index, None)
        self.kinds[index] = _coaster(core)
        self.cycles[index] = tuple(cycles)

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

    def start(self, index: int, deadline: float) -> float | None:
        """Begin skipping what ``index`` does periodically, if it can; returns the deadline
        to arm instead (its next other deadline) or ``deadline`` unchanged."""
        world = self._world
        if self.version != world.network.version:
            return deadline  # a change not yet caught up with: network_changed will retry
        core: Any = world._cores[index]
        if self.kinds[index] == _AGENT:
            return self._start_agent(index, core, deadline)
        return self._start_pool(index, core, deadline)

    def _start_pool(self, index: int, pool: Pool, deadline: float) -> float | None:
        """:meth:`start` for a pool: its heartbeat cycle (given to the world with the pool)."""
        cycles = self.cycles[index]
        if index in self.pools or not cycles:
            return deadline  # coasting already (its next_deadline() leaves the rounds out)
        (cycle,) = cycles
        flows = cycle.coast_flows()
        if flows is None:
            return deadline
        paths: dict[Flow, Path] = {}
        for flow in flows:
            path = self.path(index, flow)
            if path is False:
                return deadline
            paths[flow] = path
        if not cycle.begin_coast(paths, pool.deadline_besides_cycles()):
            return deadline
        self.pools[index] = (cycle, cycle.rounds_coasted)
        return pool.next_deadline()

    def _start_agent(self, index: int, core: Any, deadline: float) -> float | None:
        """:meth:`start` for a client: its keep-alives, its failback probes, or both."""
        world = self._world
        probe = core.probe_coast()
        if probe is not None:
            flow = probe[0]
            src, dst = flow.local[0], flow.remote[0]
            if world.network.reachable(src, dst) or (index, flow) in world._conns:
                probe = None  # a probe may connect, or a connection is already there
        plan = core.keepalive_coast()
        if plan is not None:
            other = plan[2] if probe is None else core.coast_deadline()
            if other is not None and other < plan[1]:
                plan = None  # something else comes first: coast from then on, if at all
            else:
                plan = self._keepalive_path(index, plan[0])
        if plan is None and probe is None:
            return deadline
        if plan is None:
            out = back = 0.0
            flow = None
        else:
            flow, out, back = plan
        self.agents[index] = _AgentCoast(flow, out, back, probe is not None)
        after: float | None = core.coast_deadline(
            keepalive=flow is not None, probes=probe is not None
        )
        return after

    def _keepalive_path(self, index: int, flow: Flow) -> tuple[Flow, float, float] | None:
        """``(flow, out, back)`` when every CRLF ping of ``index`` on ``flow`` is answered
        after fixed delays while the network stays as it is; None when not certain."""
        if (index, flow) not in self._world._conns:
            return None
        path = self.path(index, flow)
        if not isinstance(path, Answered):
            return None
        return flow, path.out, path.back

    def uncoast(self, index: int, at_timer: bool = False) -> None:
        """Bring a coasting core to the world's ``now``: what it skipped is applied, and what
        is still on its way then is sent for real, arriving when it would have."""
        world = self._world
        world._scheduled[index] = None
        core: Any = world._cores[index]
        now = world.now
        if index in self.agents:
            record = self.agents.pop(index)
            if record.flow is not None:
                pong, pings = core.coast(
                    now, record.flow, record.out, record.back, inclusive=not world._in_call
                )
                self.pings_coasted += pings
                if pong is not None:  # the last ping is on its way: its pong arrives as it would
                    world._push(pong, (PONG, index, world._hold(record.flow)))
            if record.probes:
                # At a timer of its own, what falls due then is left to handle_timer, which
                # does it in its own order (a probe's draws after a refresh's, say).
                flow, probes = core.coast_probes(now, inclusive=not (world._in_call or at_timer))
                self.probes_coasted += probes
                if flow is not None:  # a probe is on its way: its SYN vanished when sent
                    world._lost_connection(index, flow)
            return
        cycle, before = self.pools.pop(index)
        in_flight = cycle.end_coast(now, inclusive=not world._in_call)
        self.heartbeats_coasted += cycle.rounds_coasted - before  # counted when a coast ends
        # A round under way at now went out for real as of when it was sent; each heartbeat
        # to a peer that answers travels as the network carried it then.
        for item in in_flight:
            self.carry(index, item)

    def catch_up(self, index: int, *, inclusive: bool = True) -> None:
        """Before an input reaches coasting pool ``index``: its heartbeat cycle applies the
        rounds skipped up to now (their draws included) and goes on coasting.
        ``inclusive``: a round due exactly now went out already (False for a scenario step
        or fault, which acts before the timers of its instant)."""
        self.pools[index][0].catch_up(self._world.now, inclusive=inclusive)

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
