"""Coasting: the simulated world skips what idle cores do periodically, without changing it.

Most of what a long simulation would do is idle clients' CRLF keep-alives (a timer, a ping, a
pong, every keep-alive interval) and pools' heartbeat rounds (every heartbeat interval,
answered or vanishing), changing nothing.  While a core waits for nothing else and the paths
involved are fixed (reachable with no loss, jitter or duplication, so the network draws
nothing; or certainly cut) the world skips them: the core is told the delays, the world arms
the core's next *other* deadline instead, and when anything reaches the core (a timer, bytes,
a failure, a command, any network change) the core first catches up to now (a client's
cycles through the protocol of emulator/coasting.py, Pool.coast_heartbeats) with the
arithmetic the packets would have had; what is still on its way then is sent for real and
arrives when it would have.  docs/simulation.md, Coasting.

Rules of this file:

* The :class:`Coaster` is the world's coordinator; the world owns one and calls it at three
  points only: when a core's deadline is armed (:meth:`Coaster.start`), before any input
  reaches a coasting core (:meth:`Coaster.uncoast`), and when the network changed
  (:meth:`Coaster.network_changed`, :meth:`Coaster.settle`).
* A core coasts only under the network version it started under; a change ends every core's
  coasting (each catches up to ``now``) and each may start again under the new paths.
* What the cores skip they apply themselves, with the draws the packets would have made; this
  module only measures paths and carries what is still on its way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from emulator.coasting import Answered, Coasting, Cycle, Path
from emulator.net import Flow, Send
from emulator.sim.agenda import DATAGRAM, PONG

if TYPE_CHECKING:
    from emulator.net import Core
    from emulator.sim.world import World

__all__ = ["Coaster"]

# What a core can coast: nothing, its cycles (emulator/coasting.py: a client's keep-alives
# and failback probes), pool heartbeats.
_NONE, _CYCLES, _POOL = 0, 1, 2


def _coaster(core: object, cycling: bool) -> int:
    if cycling:
        return _CYCLES
    if hasattr(core, "heartbeat_coast"):
        return _POOL
    return _NONE


@dataclass(slots=True)
class _Skipped:
    """A cycle a core is coasting, and whether its rounds are answered (keep-alive pings,
    counted in pings_coasted) or vanish (failback probes, counted in probes_coasted)."""

    cycle: Cycle
    answered: bool


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
        self.agents: dict[int, list[_Skipped]] = {}
        """Cores coasting cycles (clients): core index -> the cycles it skips.  The run loop
        checks it at every input (speed: a dict look-up)."""
        self._cycling: list[Coasting | None] = []
        """Per core, the core as a :class:`~emulator.coasting.Coasting` (None: it has no
        cycles)."""
        # Pools coast across their inputs (they catch up by themselves, Pool.heartbeat_coast):
        # only a network change ends it.
        self.pools: set[int] = set()
        self.kinds: list[int] = []
        """Per core, what it can coast (_NONE is 0: nothing), found once when it is added."""
        self.version = -1
        """The network version the coasting cores started under."""

    def add(self, core: Core, cycling: Coasting | None) -> None:
        """A core was added to the world (the next index); ``cycling``: the core again, if it
        has cycles."""
        self.kinds.append(_coaster(core, cycling is not None))
        self._cycling.append(cycling)

    def replace(self, index: int, core: Core, cycling: Coasting | None) -> None:
        """A core was swapped for a fresh one (a restarted process): what the old one skipped
        ends with it."""
        self.agents.pop(index, None)
        self.pools.discard(index)
        self.kinds[index] = _coaster(core, cycling is not None)
        self._cycling[index] = cycling

    def start(self, index: int, deadline: float) -> float | None:
        """Begin skipping what ``index`` does periodically, if it can; returns the deadline
        to arm instead (its next other deadline) or ``deadline`` unchanged."""
        world = self._world
        if self.version != world.network.version:
            return deadline  # a change not yet caught up with: network_changed will retry
        cycling = self._cycling[index]
        if cycling is not None:
            return self._start_cycles(index, cycling, deadline)
        core: Any = world._cores[index]
        if core.coasting:
            return deadline  # its next_deadline() already leaves the heartbeats out
        flows = core.heartbeat_flows()
        if flows is None:
            return deadline
        paths: dict[str, tuple[float, float] | None] = {}
        for peer, flow in flows:
            path = self._heartbeat_path(flow)
            if path is False:
                return deadline
            paths[peer] = path
        if not core.heartbeat_coast(paths):
            return deadline
        self.pools.add(index)
        after: float | None = core.next_deadline()
        return after

    def _start_cycles(self, index: int, core: Coasting, deadline: float) -> float | None:
        """:meth:`start` for a core with cycles (a client: its keep-alives, its failback
        probes, or both).  Each cycle that can (its flows' paths are certain) begins, in the
        order the core lists them, told the core's next deadline besides it."""
        if index in self.agents:
            return deadline  # already coasting: next_deadline() leaves the skipped rounds out
        skipped: list[_Skipped] | None = None
        cycles = core.cycles
        for cycle in cycles:
            flows = cycle.coast_flows()
            if flows is None:
                continue
            paths: dict[Flow, Path] = {}
            answered = False
            for flow in flows:
                path = self._client_path(index, flow)
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
                    if skipped is None:
                        skipped = []
                    skipped.append(_Skipped(cycle, answered))
        if skipped is None:
            return deadline
        self.agents[index] = skipped
        after = self._world._cores[index].next_deadline()
        return after

    def _client_path(self, index: int, flow: Flow) -> Path | Literal[False]:
        """What becomes of every message ``index`` sends on its stream ``flow`` while the
        network stays as it is: Answered (an open connection to a host whose transport answers
        CRLF pings, after fixed delays), None (no connection yet and the peer unreachable:
        the SYN vanishes), False when neither is certain."""
        world = self._world
        network = world.network
        conn = world._conns.get((index, flow))
        if conn is None:
            if network.reachable(flow.local[0], flow.remote[0]):
                return False  # it may connect
            return None
        if conn.state != "open" or conn.a != index or conn.b not in world._pong_servers:
            return False
        src, dst = flow.local[0], conn.b_flow.local[0]
        out = network.steady_delay(src, dst)
        back = network.steady_delay(dst, src)
        if out is None or back is None:
            return False
        return Answered(out, back)

    def _heartbeat_path(self, flow: Flow) -> tuple[float, float] | Literal[False] | None:
        """What becomes of every heartbeat on ``flow`` while the network stays as it is:
        ``(out, back)`` delays when the peer pool answers it, None when it vanishes or its
        answer does, False when neither is certain (loss, jitter, a refusal, not a pool)."""
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
        return (out, back)

    def uncoast(self, index: int, at_timer: bool = False) -> None:
        """Bring a coasting core to the world's ``now``: what it skipped is applied, and what
        is still on its way then is sent for real, arriving when it would have."""
        world = self._world
        world._scheduled[index] = None
        core: Any = world._cores[index]
        now = world.now
        if index in self.agents:
            # What falls due exactly now went out already, unless a scenario step acts first
            # (it was scheduled before the timers due now) or the core's own timer is due now:
            # handle_timer then does it, in its own order (a probe's draws after a refresh's).
            inclusive = not (world._in_call or at_timer)
            for skipped in self.agents.pop(index):
                cycle = skipped.cycle
                rounds = cycle.rounds_coasted
                flights = cycle.end_coast(now, inclusive=inclusive)
                if skipped.answered:
                    self.pings_coasted += cycle.rounds_coasted - rounds
                else:
                    self.probes_coasted += cycle.rounds_coasted - rounds
                for flight in flights:
                    path = flight.path
                    if path is None:  # its SYN vanished when sent
                        world._lost_connection(index, flight.send.flow)
                    else:  # the last ping is on its way: its pong arrives as it would
                        arrival = flight.sent_at + path.out + path.back
                        world._push(arrival, (PONG, index, world._hold(flight.send.flow)))
            return
        self.pools.discard(index)
        sends, rounds = core.coast_heartbeats(now, inclusive=not world._in_call)
        self.heartbeats_coasted += rounds
        # A round under way at now went out for real as of when it was sent; each heartbeat
        # to a peer that answers travels as the network carried it then.
        for send, sent_at, out, back in sends:
            arrival = sent_at + out
            if arrival > now:
                world._push(arrival, (DATAGRAM, index, world._hold(send.flow), send.data))
            else:  # it reached the peer already, which answered at once
                self._answer_late(index, send.flow, send.data, arrival + back)

    def _answer_late(self, index: int, flow: Flow, data: bytes, arrival: float) -> None:
        """The peer of ``flow`` answers ``data`` now; its answer reaches ``index`` at
        ``arrival``, as if it had answered when the request reached it (a pool answers a
        heartbeat at once and draws nothing from the network, so only the clock differs)."""
        world = self._world
        dst = flow.remote
        target = world._listeners.get((dst[0], "udp", dst[1]))
        if target is None:
            return  # no longer listening: its answer cannot be made again (not a pool's way)
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
