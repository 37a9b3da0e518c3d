"""The simulated world: a virtual clock driving sans-IO cores over a simulated network.

The same cores as the live deployment (``Pool``, the fake DNS ``Authority``, client ``Agent``)
run here unchanged; this module only moves their bytes and calls their timers, like the asyncio
drivers do.  It is synchronous (Hypothesis rules cannot be async) and deterministic: one seed
derives every generator (per pool, per client, per network), events at equal times run in the
order they were scheduled, and the trace of a seed is byte-for-byte the same on every run.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from emulator.net import Address, CloseFlow, Flow, Send
from emulator.sim.network import Network
from emulator.sip.framing import PING, PONG
from emulator.values import immutable

__all__ = ["Core", "TraceEntry", "World"]


class Core(Protocol):
    """The driving contract (emulator/net.py) as the simulator uses it."""

    def receive(self, data: bytes, flow: Flow, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def next_deadline(self) -> float | None: ...
    def flow_failed(self, flow: Flow, now: float) -> None: ...
    def actions(self) -> list[Send | CloseFlow]: ...
    def events(self) -> list[Any]: ...


@immutable
class TraceEntry:
    """One line of a run's trace."""

    now: float
    source: str
    kind: str
    text: str

    def line(self) -> str:
        return f"{self.now:11.3f}  {self.source:<22} {self.text}"

    def to_json(self) -> dict[str, object]:
        return {
            "t": round(self.now, 6),
            "source": self.source,
            "kind": self.kind,
            "text": self.text,
        }


@dataclass(slots=True)
class _Conn:
    """A simulated TCP/TLS connection between a client-side and a server-side core."""

    a: int
    a_flow: Flow
    b: int
    b_flow: Flow
    state: str  # "open" | "lost" (SYN vanished) | "dead"
    last_delivery: dict[int, float] = field(default_factory=dict)
    # What network.transit() answered between the two hosts, both ways, when network.version
    # was paths_version; kept only while the network has no Link, so that transit() draws
    # nothing (speed: every keep-alive would ask both ways).
    paths_version: int = -1
    a_to_b: list[float] | None = None
    b_to_a: list[float] | None = None


# What an agenda entry does when its time comes.  Entries are flat tuples whose first element
# is one of these kinds (speed: a tuple per packet instead of a closure, whose function object
# and cells cost more to make and to call, and keep the cyclic garbage collector busy).
_TIMER = 0  # (_TIMER, core index): the core's next_deadline() is due
_CALL = 1  # (_CALL, fn): a scenario step, a fault
_STREAM = 2  # (_STREAM, conn #, to_b, data): bytes reach the b (or a) end of a connection
_DATAGRAM = 3  # (_DATAGRAM, sender index, flow #, data): a datagram reaches its destination
_FAIL = 4  # (_FAIL, core index, flow #): the core learns that a flow failed
_PONG = 5  # (_PONG, core index, flow #): a pong reaches the core that pinged, on that flow
# Why "flow #" and "conn #": the flow or connection an entry refers to waits in
# World._held_flows / _held_conns under a number, so that the entry holds only ints, bools and
# bytes.  Such a tuple is untracked by the cyclic garbage collector at its first pass; one
# holding a Flow is not.  Clients that signed in together act together, so thousands of
# entries wait at once, long enough to be promoted to the oldest generation, whose full sweeps
# (every object of the run) dominated runs of thousands of clients.


# What a core can coast (World._start_coasting): nothing, client keep-alives, pool heartbeats.
_NONE, _AGENT, _POOL = 0, 1, 2


def _coaster(core: object) -> int:
    if hasattr(core, "keepalive_coast"):
        return _AGENT
    if hasattr(core, "heartbeat_coast"):
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


class World:
    """A virtual-time world of cores on a simulated network.

    The agenda orders entries by (time, order of scheduling), as a heap of
    ``(time, sequence, entry)`` would, but it is kept as a heap of the *distinct* pending times
    and, for each time, a list of its entries in the order they were scheduled (appending keeps
    that order for free).  Same order, cheaper: entries at equal times are the rule here (fixed
    latencies keep clients that signed in together in lockstep), a float heap compares faster
    than a tuple heap, and an entry at a time already pending costs one append.
    """

    def __init__(self, seed: int, *, default_latency: float = 0.001, coast: bool = True) -> None:
        self.seed = seed
        self.coast = coast
        """Skip idle clients' keep-alive pings and pools' heartbeats while the network does
        not change ("coasting", docs/simulation.md); False simulates every packet.  Both give
        the same behaviour; the switch exists to show it (tests/scenario/test_coasting.py)."""
        self.pings_coasted = 0
        """Keep-alive round trips skipped by coasting (each would be two events)."""
        self.heartbeats_coasted = 0
        """Heartbeat rounds skipped by coasting (each would be three events or more)."""
        self.probes_coasted = 0
        """Failback probes to a cut-off primary skipped by coasting (two events each)."""
        self.now = 0.0
        self.network = Network(random.Random(f"{seed}:network"), default_latency)
        self.trace: list[TraceEntry] = []
        self.events_processed = 0
        self._times: list[float] = []  # heap of the times that have entries
        self._agenda: dict[float, list[tuple[Any, ...]]] = {}  # time -> entries, in order
        self._cores: list[Core] = []
        self._names: list[str] = []
        self._on_events: list[Callable[[int, list[Any]], None] | None] = []
        self._scheduled: list[float | None] = []
        self._listeners: dict[tuple[str, str, int], int] = {}
        self._conns: dict[tuple[int, Flow], _Conn] = {}
        # Per core, the flow it last sent on and that flow's connection: what
        # self._conns[(index, flow)] holds, kept while that entry stays (speed: a client sends
        # every keep-alive on the same Flow object, and hashing a Flow costs more than ``is``).
        self._last_flow: list[Flow | None] = []
        self._last_conn: list[_Conn | None] = []
        self._ephemeral: dict[str, itertools.count[int]] = {}
        self._pong_servers: set[int] = set()
        self._held_flows: dict[int, Flow] = {}  # flow # of a pending entry -> the flow
        self._held_conns: dict[int, _Conn] = {}  # conn # of a pending entry -> the connection
        self._handles = itertools.count()
        # Coasting (see the section at the end): client core index -> its _AgentCoast; per
        # core, whether it can coast (_NONE, _AGENT, _POOL); the network version the records
        # were made under.
        self._coasting: dict[int, _AgentCoast] = {}
        # Pools coast across their inputs (they catch up by themselves, Pool.heartbeat_coast):
        # only a network change ends it.
        self._coasting_pools: set[int] = set()
        self._coasters: list[int] = []
        self._coast_version = -1
        # True while a scenario step or fault (a _CALL entry) runs.  Such an entry was
        # scheduled before the timers due at its instant, so it acts before them: a ping or a
        # heartbeat round due exactly then has not gone out yet when it changes the network.
        # Between two run_until calls everything due at the instant reached has run.
        self._in_call = False

    # -- set-up -----------------------------------------------------------------------------

    def rng_for(self, name: str) -> random.Random:
        """The generator of one host or client, derived from the run seed."""
        return random.Random(f"{self.seed}:{name}")

    def add_core(
        self,
        name: str,
        core: Core,
        listen: Iterable[tuple[str, str, int]] = (),
        *,
        on_events: Callable[[int, list[Any]], None] | None = None,
        answers_pings: bool = False,
    ) -> int:
        """Attach a core listening on ``(address, transport, port)`` triples; returns its id."""
        index = len(self._cores)
        self._cores.append(core)
        self._names.append(name)
        self._on_events.append(on_events)
        self._scheduled.append(None)
        self._last_flow.append(None)
        self._last_conn.append(None)
        self._coasters.append(_coaster(core))
        for address, transport, port in listen:
            self.network.add_host(address)
            self._listeners[(address, transport, port)] = index
        if answers_pings:  # the transport answers CRLF pings, as the live driver does
            self._pong_servers.add(index)
        self._flush(index)
        return index

    def replace_core(self, index: int, core: Core) -> None:
        """Swap in a fresh core (a restarted process) keeping the listening ports."""
        self._coasting.pop(index, None)  # the old process's keep-alives end with it
        self._coasting_pools.discard(index)
        self._cores[index] = core
        self._coasters[index] = _coaster(core)
        self._scheduled[index] = None
        self._flush(index)

    def core(self, index: int) -> Core:
        """The core of ``index``, brought up to date first (see :meth:`wake`)."""
        self.wake(index)
        return self._cores[index]

    def wake(self, index: int) -> None:
        """End the keep-alive coasting of a core, if any, so that its state is what the
        skipped pings would have made it at :attr:`now`.  Call it before changing a core from
        outside (the simulated deployment does, in every command to a client)."""
        if index in self._coasting:
            self._uncoast(index)
            self._flush(index)

    def name(self, index: int) -> str:
        return self._names[index]

    def unlisten(self, index: int) -> None:
        for key in [k for k, v in self._listeners.items() if v == index]:
            del self._listeners[key]

    def listen(self, index: int, listen: Iterable[tuple[str, str, int]]) -> None:
        for address, transport, port in listen:
            self.network.add_host(address)
            self._listeners[(address, transport, port)] = index

    # -- time -------------------------------------------------------------------------------

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at virtual time ``when`` (a scenario step, a fault)."""
        self._push(when, (_CALL, fn))

    def _push(self, when: float, entry: tuple[Any, ...]) -> None:
        entries = self._agenda.get(when)
        if entries is None:
            self._agenda[when] = [entry]
            heapq.heappush(self._times, when)
        else:
            entries.append(entry)

    def run_until(self, until: float) -> None:
        times = self._times
        agenda = self._agenda
        scheduled = self._scheduled
        cores = self._cores
        flush = self._flush
        processed = self.events_processed  # counted in a local, stored when done (speed)
        coasting = self._coasting
        if self.network.version != self._coast_version:
            self._network_changed()  # changed between two runs: coasting cores catch up
        # The cores allocate many short-lived objects and few cycles: with the default
        # threshold (700) the cyclic collector ran every few hundred events and took ~15% of
        # a 10,000-client run (benchmarks/sim_bench.py).  A larger young generation for the
        # run, restored after it, keeps its behaviour and frees the same memory.
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 100_000), max(thresholds[1], 50), thresholds[2])
        try:
            while times and times[0] <= until:
                when = times[0]
                entries = agenda[when]
                if when > self.now:
                    self.now = when
                first = processed
                # A list iterator also yields what is appended while it runs: entries that
                # these entries schedule at ``when`` run in turn, after them.
                for entry in entries:
                    processed += 1
                    kind = entry[0]
                    if kind == _TIMER:
                        index = entry[1]
                        if scheduled[index] == when:  # else stale: the core re-armed since
                            scheduled[index] = None
                            if index in coasting:
                                self._uncoast(index, True)
                            cores[index].handle_timer(self.now)
                            flush(index)
                    elif kind == _PONG:
                        _, index, handle = entry
                        if index in coasting:
                            self._uncoast(index)
                        cores[index].receive(PONG, self._held_flows.pop(handle), self.now)
                        flush(index)
                    elif kind == _STREAM:
                        _, handle, to_b, data = entry
                        conn = self._held_conns.pop(handle)
                        if conn.state == "open":
                            if to_b:
                                peer, peer_flow = conn.b, conn.b_flow
                            else:
                                peer, peer_flow = conn.a, conn.a_flow
                            if peer in coasting:
                                self._uncoast(peer)
                            cores[peer].receive(data, peer_flow, self.now)
                            flush(peer)
                    elif kind == _DATAGRAM:
                        _, index, handle, data = entry
                        self._arrive_datagram(index, self._held_flows.pop(handle), data)
                    elif kind == _FAIL:
                        self._fail(entry[1], self._held_flows.pop(entry[2]))
                    else:
                        self.events_processed = processed  # up to date for a scenario step
                        self._in_call = True
                        try:
                            entry[1]()
                            if self.network.version != self._coast_version:
                                self._network_changed()
                        finally:
                            self._in_call = False
                    if times[0] != when:
                        break  # something was scheduled in the past (call_at): it runs first
                if times[0] != when:
                    agenda[when] = entries[processed - first :]  # runs after the earlier ones
                    continue
                heapq.heappop(times)
                del agenda[when]
        finally:
            self.events_processed = processed
            gc.set_threshold(*thresholds)
        if until > self.now:
            self.now = until

    def note(self, source: str, kind: str, text: str) -> None:
        self.trace.append(TraceEntry(self.now, source, kind, text))

    # -- driving ----------------------------------------------------------------------------

    def poke(self, index: int) -> None:
        """Collect what a core wants to do after a command was given to it."""
        if index in self._coasting:
            self._uncoast(index)
        if self.network.version != self._coast_version:
            self._network_changed()
        self._flush(index)

    def _flush(self, index: int) -> None:
        core = self._cores[index]
        for action in core.actions():
            if isinstance(action, Send):
                flow = action.flow
                if flow.transport == "udp":
                    self._send_datagram(index, flow, action.data)
                else:
                    self._send_stream(index, flow, action.data)
            else:
                self._close(index, action.flow)
        events = core.events()
        if events:
            handler = self._on_events[index]
            if handler is not None:
                handler(index, events)
        deadline = core.next_deadline()
        if deadline is not None and self._coasters[index] and self.coast:
            deadline = self._start_coasting(index, deadline)
        if deadline is not None:
            if deadline < self.now:
                deadline = self.now
            if deadline != self._scheduled[index]:
                self._scheduled[index] = deadline
                # self._push, inlined: this runs after every input of every core.
                entries = self._agenda.get(deadline)
                if entries is None:
                    self._agenda[deadline] = [(_TIMER, index)]
                    heapq.heappush(self._times, deadline)
                else:
                    entries.append((_TIMER, index))

    def _hold(self, flow: Flow) -> int:
        """Keep ``flow`` for a pending agenda entry; the entry holds the returned number."""
        handle = next(self._handles)
        self._held_flows[handle] = flow
        return handle

    def _deliver(self, index: int, data: bytes, flow: Flow) -> None:
        if index in self._coasting:
            self._uncoast(index)
        self._cores[index].receive(data, flow, self.now)
        self._flush(index)

    def _fail(self, index: int, flow: Flow) -> None:
        if index in self._coasting:
            self._uncoast(index)
        self._cores[index].flow_failed(flow, self.now)
        self._flush(index)

    def _send_datagram(self, index: int, flow: Flow, data: bytes) -> None:
        delays = self.network.transit(flow.local[0], flow.remote[0])
        if delays is None:
            return  # silent: the packet vanishes
        for delay in delays:
            self._push(self.now + delay, (_DATAGRAM, index, self._hold(flow), data))

    def _arrive_datagram(self, index: int, flow: Flow, data: bytes) -> None:
        dst = flow.remote
        target = self._listeners.get((dst[0], "udp", dst[1]))
        if target is None or not self.network.running(dst[0]):
            # ICMP port unreachable travels back to the sender (RFC 1122 §3.2.2.1).
            if self.network.reachable(dst[0], flow.local[0]):
                self._push(
                    self.now + self.network.default_latency, (_FAIL, index, self._hold(flow))
                )
            return
        self._deliver(target, data, Flow("udp", dst, flow.local))

    def _send_stream(self, index: int, flow: Flow, data: bytes) -> None:
        conn = self._last_conn[index]
        if conn is None or self._last_flow[index] is not flow:
            conn = self._conns.get((index, flow))
            if conn is None:
                conn = self._connect(index, flow)
                if conn is None:
                    return
            self._last_flow[index] = flow
            self._last_conn[index] = conn
        if conn.state != "open":
            if conn.state == "dead":
                self._push(
                    self.now + 2 * self.network.default_latency, (_FAIL, index, self._hold(flow))
                )
            return
        from_a = conn.a == index
        if from_a:
            peer, peer_flow = conn.b, conn.b_flow
        else:
            peer, peer_flow = conn.a, conn.a_flow
        network = self.network
        if conn.paths_version == network.version:
            delays = conn.a_to_b if from_a else conn.b_to_a
        else:
            delays = self._paths(conn, from_a, flow.local[0], peer_flow.local[0])
        if delays is None:
            return  # a silent host: bytes vanish, the connection itself stays up
        # TCP retransmits what a lossy link drops: streams lose no data, only time.
        if not delays:
            delay = 3 * network.default_latency
        elif len(delays) == 1:
            delay = delays[0]
        else:
            delay = max(delays)
        when = self.now + delay
        last = conn.last_delivery.get(peer, 0.0)
        if last > when:
            when = last  # in order: not before what was sent earlier on this connection
        conn.last_delivery[peer] = when
        if data == PING and peer in self._pong_servers:
            if conn.paths_version == network.version:
                back = conn.b_to_a if from_a else conn.a_to_b
            else:
                back = network.transit(peer_flow.local[0], flow.local[0])
            if back:
                handle = next(self._handles)
                self._held_flows[handle] = flow
                when += back[0]
                # self._push, inlined: a keep-alive is most of what a simulation does.
                entries = self._agenda.get(when)
                if entries is None:
                    self._agenda[when] = [(_PONG, index, handle)]
                    heapq.heappush(self._times, when)
                else:
                    entries.append((_PONG, index, handle))
            return
        handle = next(self._handles)
        self._held_conns[handle] = conn
        self._push(when, (_STREAM, handle, from_a, data))

    def _paths(self, conn: _Conn, from_a: bool, src: str, dst: str) -> list[float] | None:
        """network.transit(src, dst) for a connection; kept both ways when that draws nothing."""
        network = self.network
        if network.links:  # a Link may draw from the network's generator: ask every time
            return network.transit(src, dst)
        forward, backward = network.transit(src, dst), network.transit(dst, src)
        conn.a_to_b, conn.b_to_a = (forward, backward) if from_a else (backward, forward)
        conn.paths_version = network.version
        return forward

    def _connect(self, index: int, flow: Flow) -> _Conn | None:
        src, (dst, port) = flow.local[0], flow.remote
        network = self.network
        if not network.reachable(src, dst):
            conn = _Conn(index, flow, -1, flow, "lost")  # SYN vanished; the sender times out
            self._conns[(index, flow)] = conn
            return conn
        target = self._listeners.get((dst, flow.transport, port))
        if target is None or not network.running(dst):
            conn = _Conn(index, flow, -1, flow, "dead")  # RST
            self._conns[(index, flow)] = conn
            return conn
        counter = self._ephemeral.setdefault(src, itertools.count(49152))
        local: Address = (src, flow.local[1] or next(counter))
        server_flow = Flow(flow.transport, (dst, port), local)
        conn = _Conn(index, flow, target, server_flow, "open")
        self._conns[(index, flow)] = conn
        self._conns[(target, server_flow)] = conn  # may replace an equal flow's connection
        self._forget_last(target)
        return conn

    def _close(self, index: int, flow: Flow) -> None:
        conn = self._conns.get((index, flow))
        if conn is None:
            return
        other = (conn.b, conn.b_flow) if conn.a == index else (conn.a, conn.a_flow)
        self.wake(other[0])  # a coasting peer's skipped pings ran on this connection until now
        del self._conns[(index, flow)]
        conn.state = "dead"
        self._conns.pop(other, None)
        self._forget_last(index)
        self._forget_last(other[0])

    def _forget_last(self, index: int) -> None:
        """Drop a core's last-flow shortcut: its entries in self._conns changed."""
        if index >= 0:  # -1: the far end of a connection that never opened
            self._last_flow[index] = None
            self._last_conn[index] = None

    def reset_connections(self, address: str) -> None:
        """A host stopped: its connections are reset, and peers learn it when they next talk."""
        for (index, flow), conn in list(self._conns.items()):
            if conn.state == "open" and address in (conn.a_flow.local[0], conn.b_flow.local[0]):
                conn.state = "dead"
                peer_index = conn.a if conn.b_flow.local[0] == address else conn.b
                peer_flow = conn.a_flow if peer_index == conn.a else conn.b_flow
                if (index, flow) == (peer_index, peer_flow) and self.network.reachable(
                    address, peer_flow.local[0]
                ):
                    self._push(
                        self.now + self.network.default_latency,
                        (_FAIL, peer_index, self._hold(peer_flow)),
                    )
        self.settle()  # connections changed: every coasting core catches up

    # -- coasting ---------------------------------------------------------------------------
    #
    # Most of what a long simulation would do is idle clients' CRLF keep-alives (a timer, a
    # ping, a pong, every keep-alive interval) and pools' heartbeat rounds (every heartbeat
    # interval, answered or vanishing), changing nothing.  While a core waits for nothing
    # else and the paths involved are fixed (reachable with no loss, jitter or duplication,
    # so the network draws nothing; or certainly cut) the world skips them: the core is told
    # the delays, the world arms the core's next *other* deadline instead, and when anything
    # reaches the core (a timer, bytes, a failure, a command, any network change) the core
    # first catches up to now (Agent.coast, Pool.coast_heartbeats) with the arithmetic the
    # packets would have had; what is still on its way then is sent for real and arrives
    # when it would have.  docs/simulation.md, Coasting.

    def _start_coasting(self, index: int, deadline: float) -> float | None:
        """Begin skipping what ``index`` does periodically, if it can; returns the deadline
        to arm instead (its next other deadline) or ``deadline`` unchanged."""
        network = self.network
        if self._coast_version != network.version:
            return deadline  # a change not yet caught up with: _network_changed will retry
        core: Any = self._cores[index]
        if self._coasters[index] == _AGENT:
            return self._start_agent_coasting(index, core, deadline)
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
        self._coasting_pools.add(index)
        after: float | None = core.next_deadline()
        return after

    def _start_agent_coasting(self, index: int, core: Any, deadline: float) -> float | None:
        """_start_coasting of a client: its keep-alives, its failback probes, or both."""
        probe = core.probe_coast()
        if probe is not None:
            flow = probe[0]
            src, dst = flow.local[0], flow.remote[0]
            if self.network.reachable(src, dst) or (index, flow) in self._conns:
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
        self._coasting[index] = _AgentCoast(flow, out, back, probe is not None)
        after: float | None = core.coast_deadline(
            keepalive=flow is not None, probes=probe is not None
        )
        return after

    def _keepalive_path(self, index: int, flow: Flow) -> tuple[Flow, float, float] | None:
        """``(flow, out, back)`` when every CRLF ping of ``index`` on ``flow`` is answered
        after fixed delays while the network stays as it is; None when not certain."""
        conn = self._conns.get((index, flow))
        if conn is None or conn.state != "open" or conn.a != index:
            return None
        if conn.b not in self._pong_servers:
            return None
        network = self.network
        src, dst = flow.local[0], conn.b_flow.local[0]
        out = network.steady_delay(src, dst)
        back = network.steady_delay(dst, src)
        if out is None or back is None:
            return None
        return flow, out, back

    def _heartbeat_path(self, flow: Flow) -> tuple[float, float] | Literal[False] | None:
        """What becomes of every heartbeat on ``flow`` while the network stays as it is:
        ``(out, back)`` delays when the peer pool answers it, None when it vanishes or its
        answer does, False when neither is certain (loss, jitter, a refusal, not a pool)."""
        network = self.network
        src, (dst, port) = flow.local[0], flow.remote
        if not network.reachable(src, dst):
            return None  # the request vanishes
        target = self._listeners.get((dst, "udp", port))
        if target is None or self._coasters[target] != _POOL or not network.running(dst):
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

    def _uncoast(self, index: int, at_timer: bool = False) -> None:
        """Bring a coasting core to :attr:`now`: what it skipped is applied, and what is
        still on its way at ``now`` is sent for real, arriving when it would have."""
        self._scheduled[index] = None
        core: Any = self._cores[index]
        if index in self._coasting:
            record = self._coasting.pop(index)
            if record.flow is not None:
                pong, pings = core.coast(
                    self.now, record.flow, record.out, record.back, inclusive=not self._in_call
                )
                self.pings_coasted += pings
                if pong is not None:  # the last ping is on its way: its pong arrives as it would
                    self._push(pong, (_PONG, index, self._hold(record.flow)))
            if record.probes:
                # At a timer of its own, what falls due then is left to handle_timer, which
                # does it in its own order (a probe's draws after a refresh's, say).
                flow, probes = core.coast_probes(
                    self.now, inclusive=not (self._in_call or at_timer)
                )
                self.probes_coasted += probes
                if flow is not None:  # a probe is on its way: its SYN vanished when sent
                    self._conns[(index, flow)] = _Conn(index, flow, -1, flow, "lost")
            return
        self._coasting_pools.discard(index)
        sends, rounds = core.coast_heartbeats(self.now, inclusive=not self._in_call)
        self.heartbeats_coasted += rounds
        # A round under way at now went out for real as of when it was sent; each heartbeat
        # to a peer that answers travels as the network carried it then.
        for send, sent_at, out, back in sends:
            arrival = sent_at + out
            if arrival > self.now:
                self._push(arrival, (_DATAGRAM, index, self._hold(send.flow), send.data))
            else:  # it reached the peer already, which answered at once
                self._answer_late(index, send.flow, send.data, arrival + back)

    def _answer_late(self, index: int, flow: Flow, data: bytes, arrival: float) -> None:
        """The peer of ``flow`` answers ``data`` now; its answer reaches ``index`` at
        ``arrival``, as if it had answered when the request reached it (a pool answers a
        heartbeat at once and draws nothing from the network, so only the clock differs)."""
        dst = flow.remote
        target = self._listeners.get((dst[0], "udp", dst[1]))
        if target is None:
            return  # no longer listening: its answer cannot be made again (not a pool's way)
        peer: Any = self._cores[target]
        back = Flow("udp", dst, flow.local)
        peer.receive(data, back, self.now)
        for action in peer.actions():
            if isinstance(action, Send) and action.flow == back:
                self._push(arrival, (_DATAGRAM, target, self._hold(back), action.data))
            elif isinstance(action, Send):
                self._send_datagram(target, action.flow, action.data)
        self._flush(target)

    def settle(self) -> None:
        """Bring every coasting core up to :attr:`now`; they may coast again afterwards, under
        the network as it is then (also: :attr:`pings_coasted` and :attr:`heartbeats_coasted`
        then count everything skipped)."""
        self._coast_version = -1
        self._network_changed()

    def _network_changed(self) -> None:
        """Paths may have changed: every coasting client catches up to now, then may coast
        again under the new paths."""
        self._coast_version = self.network.version
        if not (self._coasting or self._coasting_pools):
            return
        for index in [*self._coasting, *sorted(self._coasting_pools)]:
            if index in self._coasting or index in self._coasting_pools:
                self._uncoast(index)
                self._flush(index)
