"""The simulated world: a virtual clock driving sans-IO cores over a simulated network.

The same cores as the live deployment (``Pool``, the fake DNS ``Authority``, client ``Agent``)
run here unchanged; this module only moves their bytes and calls their timers, like the asyncio
drivers do.  It is synchronous (Hypothesis rules cannot be async) and deterministic: one seed
derives every generator (per pool, per client, per network), events at equal times run in the
order they were scheduled, and the trace of a seed is byte-for-byte the same on every run.

The world's parts have a module each: the agenda of what happens next (emulator/sim/agenda.py),
the network's paths and faults (emulator/sim/network.py), the coasting coordinator that skips
idle cores' periodic packets (emulator/sim/coasting.py) and the trace (emulator/sim/trace.py).
This module holds the cores, moves their bytes (datagrams, simulated connections) and runs the
agenda.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from emulator.coasting import Coasting
from emulator.net import Address, CloseFlow, Core, Effect, Flow, Send, TransportName
from emulator.sim.agenda import CALL, DATAGRAM, FAIL, PONG, STREAM, TIMER, Agenda, Entry
from emulator.sim.coasting import Coaster
from emulator.sim.history import Trace
from emulator.sim.lazyrandom import LazyRandom
from emulator.sim.network import Network
from emulator.sim.trace import TraceEntry
from emulator.sip.framing import PING
from emulator.sip.framing import PONG as PONG_BYTES
from emulator.wire import Packet, Tap, WireProtocol

__all__ = ["Core", "TraceEntry", "World"]


@dataclass(slots=True)
class _Conn:
    """A simulated TCP/TLS connection between a client-side and a server-side core."""

    a: int
    a_flow: Flow
    b: int
    b_flow: Flow
    state: str  # "open" | "lost" (SYN vanished) | "dead"
    # When the last bytes sent towards each end arrive there (in order: nothing sent later
    # arrives earlier).  Two floats, not a dict by peer (memory: a dict per connection was
    # 240 bytes per simulated client); towards b also when a is b (one slot, as a dict had).
    last_to_b: float = 0.0
    last_to_a: float = 0.0
    # What network.transit() answered between the two hosts, both ways, when network.version
    # was paths_version; kept only while the network has no Link, so that transit() draws
    # nothing (speed: every keep-alive would ask both ways).
    paths_version: int = -1
    a_to_b: list[float] | None = None
    b_to_a: list[float] | None = None


def _end(conn: _Conn, flow: Flow) -> int | None:
    """The core whose end of ``conn`` is ``flow`` (a first, as the world keys a connection
    that never opened, whose two flows are the same), None if neither."""
    if conn.a_flow is flow or conn.a_flow == flow:
        return conn.a
    if conn.b_flow is flow or conn.b_flow == flow:
        return conn.b
    return None


class _Conns:
    """The connections by ``(core index, flow)``: what a dict keyed by those pairs would
    hold, as :meth:`get`, item assignment, ``del``, :meth:`pop` and :meth:`items` show it.

    Memory: such a dict held a 64-byte key tuple per end of every connection (two per
    client).  Here the key is the flow alone and the value the connection, whose own fields
    say which core that flow's end is; only a flow that two cores use alike (never in a
    deployment: its hosts' addresses differ) keeps a dict ``core index -> connection``."""

    __slots__ = ("_by_flow",)

    def __init__(self) -> None:
        self._by_flow: dict[Flow, _Conn | dict[int, _Conn]] = {}

    def get(self, key: tuple[int, Flow]) -> _Conn | None:
        return self.find(key[0], key[1])

    def find(self, index: int, flow: Flow) -> _Conn | None:
        """``get((index, flow))`` without the pair (speed: a pool's every send asks)."""
        entry = self._by_flow.get(flow)
        if entry is None:
            return None
        if isinstance(entry, _Conn):
            # _end(entry, flow) == index, inlined
            if entry.a_flow is flow or entry.a_flow == flow:
                return entry if entry.a == index else None
            if entry.b_flow is flow or entry.b_flow == flow:
                return entry if entry.b == index else None
            return None
        return entry.get(index)

    def _by_index(self, flow: Flow) -> dict[int, _Conn]:
        entry = self._by_flow.get(flow)
        if entry is None:
            return {}
        if isinstance(entry, _Conn):
            end = _end(entry, flow)
            assert end is not None  # stored bare only when it names its core
            return {end: entry}
        return entry

    def _store(self, flow: Flow, conns: dict[int, _Conn]) -> None:
        if not conns:
            del self._by_flow[flow]
            return
        if len(conns) == 1:
            ((index, conn),) = conns.items()
            if _end(conn, flow) == index:
                self._by_flow[flow] = conn
                return
        self._by_flow[flow] = conns

    def __setitem__(self, key: tuple[int, Flow], conn: _Conn) -> None:
        index, flow = key
        entry = self._by_flow.get(flow)
        mine = entry is None or (isinstance(entry, _Conn) and _end(entry, flow) == index)
        if mine and _end(conn, flow) == index:
            self._by_flow[flow] = conn  # the usual case: one core's end, one connection
            return
        conns = dict(self._by_index(flow))
        conns[index] = conn
        self._store(flow, conns)

    def pop(self, key: tuple[int, Flow], default: _Conn | None = None) -> _Conn | None:
        index, flow = key
        entry = self._by_flow.get(flow)
        if entry is None:
            return default
        if isinstance(entry, _Conn):
            if _end(entry, flow) != index:
                return default
            del self._by_flow[flow]
            return entry
        conns = dict(entry)
        conn = conns.pop(index, None)
        if conn is None:
            return default
        self._store(flow, conns)
        return conn

    def __delitem__(self, key: tuple[int, Flow]) -> None:
        if self.pop(key) is None:
            raise KeyError(key)

    def __getitem__(self, key: tuple[int, Flow]) -> _Conn:
        conn = self.find(key[0], key[1])
        if conn is None:
            raise KeyError(key)
        return conn

    def __contains__(self, key: tuple[int, Flow]) -> bool:
        return self.find(key[0], key[1]) is not None

    def items(self) -> list[tuple[tuple[int, Flow], _Conn]]:
        """Every (core index, flow) and its connection, flow by flow in the order each flow
        was first keyed."""
        return [
            ((index, flow), conn)
            for flow in self._by_flow
            for index, conn in self._by_index(flow).items()
        ]

    def values(self) -> list[_Conn]:
        return [conn for _, conn in self.items()]

    def __len__(self) -> int:
        return sum(
            1 if isinstance(entry, _Conn) else len(entry) for entry in self._by_flow.values()
        )


_Ports = frozenset[tuple[str, int]]
"""(transport, port) pairs of one address."""


class _Listeners:
    """Which core listens on each ``(address, transport, port)``: :meth:`get` as a dict of
    those triples would answer.

    Memory: a simulated client listens on two ports of its own address, and a dict keyed by
    triples held two 64-byte tuples and two entries per client.  Here an address whose ports
    all belong to one core is one entry, ``(core index, its ports)``, the frozenset of ports
    shared by every address that listens on the same ones (every client); an address shared
    by several cores keeps a dict ``(transport, port) -> core index``."""

    __slots__ = ("_by_address", "_port_sets")

    def __init__(self) -> None:
        self._by_address: dict[str, tuple[int, _Ports] | dict[tuple[str, int], int]] = {}
        self._port_sets: dict[_Ports, _Ports] = {}
        """Each distinct set of ports, once (this world's own: nothing shared between worlds)."""

    def get(self, key: tuple[str, str, int]) -> int | None:
        return self.find(key[0], key[1], key[2])

    def find(self, address: str, transport: str, port: int) -> int | None:
        """``get((address, transport, port))`` without the triple."""
        entry = self._by_address.get(address)
        if entry is None:
            return None
        if isinstance(entry, tuple):
            return entry[0] if (transport, port) in entry[1] else None
        return entry.get((transport, port))

    def _ports(self, address: str) -> dict[tuple[str, int], int]:
        entry = self._by_address.get(address)
        if entry is None:
            return {}
        if isinstance(entry, tuple):
            return dict.fromkeys(sorted(entry[1]), entry[0])
        return dict(entry)

    def _store(self, address: str, ports: dict[tuple[str, int], int]) -> None:
        indexes = set(ports.values())
        if not indexes:
            self._by_address.pop(address, None)
        elif len(indexes) == 1:
            shared = frozenset(ports)
            shared = self._port_sets.setdefault(shared, shared)
            self._by_address[address] = (indexes.pop(), shared)
        else:
            self._by_address[address] = ports

    def __getitem__(self, key: tuple[str, str, int]) -> int:
        index = self.find(key[0], key[1], key[2])
        if index is None:
            raise KeyError(key)
        return index

    def __contains__(self, key: tuple[str, str, int]) -> bool:
        return self.find(key[0], key[1], key[2]) is not None

    def add(self, address: str, transport: str, port: int, index: int) -> None:
        """``index`` listens on the port from now on (in place of any core that did)."""
        ports = self._ports(address)
        ports[(transport, port)] = index
        self._store(address, ports)

    def remove(self, index: int) -> None:
        """``index`` listens nowhere from now on."""
        for address in list(self._by_address):
            ports = self._ports(address)
            self._store(address, {key: i for key, i in ports.items() if i != index})

    def __len__(self) -> int:
        """How many (address, transport, port) triples have a listener."""
        return sum(
            len(entry[1]) if isinstance(entry, tuple) else len(entry)
            for entry in self._by_address.values()
        )


class World:
    """A virtual-time world of cores on a simulated network.

    Entries of its agenda (emulator/sim/agenda.py) run in the order of (time, order of
    scheduling); the coasting coordinator (emulator/sim/coasting.py) is its own.
    """

    def __init__(self, seed: int, *, default_latency: float = 0.001, coast: bool = True) -> None:
        self.seed = seed
        self.coast = coast
        """Skip idle clients' keep-alive pings and pools' heartbeats while the network does
        not change ("coasting", docs/simulation.md); False simulates every packet.  Both give
        the same behaviour; the switch exists to show it (tests/scenario/test_coasting.py)."""
        self.now = 0.0
        self.network = Network(random.Random(f"{seed}:network"), default_latency)
        self.trace = Trace()
        """What happened, in order (emulator/sim/history.py: held as columns)."""
        self.events_processed = 0
        self._agenda = Agenda()
        self._cores: list[Core] = []
        self._names: list[str] = []
        self._on_events: list[Callable[[int, Sequence[Any]], None] | None] = []
        self._on_effects: list[Callable[[int, Effect], None] | None] = []
        self._scheduled: list[float | None] = []
        self._listeners = _Listeners()
        self._conns = _Conns()
        # Per core, the flow it last sent on and that flow's connection: what
        # self._conns[(index, flow)] holds, kept while that entry stays (speed: a client sends
        # every keep-alive on the same Flow object, and hashing a Flow costs more than ``is``).
        self._last_flow: list[Flow | None] = []
        self._last_conn: list[_Conn | None] = []
        # Per core, its one (TIMER, index) agenda entry, appended each time its timer is armed
        # (memory and speed: re-arming leaves the old entry pending, stale, until its time).
        self._timer_entries: list[Entry] = []
        self._ephemeral: dict[str, int] = {}  # host -> its next ephemeral port
        self._pong_servers: set[int] = set()
        self._held_flows: dict[int, Flow] = {}  # flow # of a pending entry -> the flow
        self._held_conns: dict[int, _Conn] = {}  # conn # of a pending entry -> the connection
        self._handles = itertools.count()
        # Each distinct answer of network.transit() that a connection keeps, once (bounded:
        # answers are kept only while the network has no Link, when each is [latency]).
        self._delay_lists: dict[tuple[float, ...], list[float]] = {}
        self._coaster = Coaster(self)
        # The coordinator's per-core tables, looked up at every input and after every flush
        # (speed: one attribute load less than through self._coaster; neither is ever rebound).
        self._coasting = self._coaster.agents
        self._coasting_pools = self._coaster.pools
        self._coast_kinds = self._coaster.kinds
        # True while a scenario step or fault (a CALL entry) runs.  Such an entry was
        # scheduled before the timers due at its instant, so it acts before them: a ping or a
        # heartbeat round due exactly then has not gone out yet when it changes the network.
        # Between two run_until calls everything due at the instant reached has run.
        self._in_call = False
        self.tap: Tap | None = None
        """Told of every packet sent, at the time it is sent (emulator/wire); None: no cost."""
        self._dns_listeners: set[Address] = set()

    # -- set-up -----------------------------------------------------------------------------

    def rng_for(self, name: str) -> random.Random:
        """The generator of one host or client, derived from the run seed."""
        return random.Random(f"{self.seed}:{name}")

    def parkable_rng_for(self, name: str) -> LazyRandom:
        """:meth:`rng_for`'s numbers from a generator that holds no Twister (2.5 KB) between
        draws, only words drawn ahead, dropped while its core coasts (emulator/sim/
        lazyrandom.py); give it to :meth:`add_core` as ``generator``.  Speed: a refill costs
        a reseed, so only for cores that draw little (clients), not for pools."""
        return LazyRandom(f"{self.seed}:{name}")

    def add_core(
        self,
        name: str,
        core: Core,
        listen: Iterable[tuple[str, str, int]] = (),
        *,
        on_events: Callable[[int, Sequence[Any]], None] | None = None,
        on_effect: Callable[[int, Effect], None] | None = None,
        answers_pings: bool = False,
        coasting: Coasting | None = None,
        protocol: WireProtocol = "sip",
        generator: LazyRandom | None = None,
    ) -> int:
        """Attach a core listening on ``(address, transport, port)`` triples; returns its id.

        ``on_effect`` performs the core's :class:`~emulator.net.Effect` actions (a client's
        cache writes).  ``coasting``: the core's coasting interface when it has periodic
        behaviours the world may coast (emulator/coasting.py: its ``cycles`` and
        ``deadline_besides_cycles()``; usually the core itself), given here once so that the
        world never looks for them.  ``protocol``: what the core speaks on its listening
        ports, for taps ("dns" for the fake DNS).  ``generator``: the core's generator when
        it is a :meth:`parkable_rng_for` one, parked whenever the core begins to coast."""
        index = len(self._cores)
        self._cores.append(core)
        self._names.append(name)
        self._on_events.append(on_events)
        self._on_effects.append(on_effect)
        self._scheduled.append(None)
        self._last_flow.append(None)
        self._last_conn.append(None)
        self._timer_entries.append((TIMER, index))
        self._coaster.add(core, coasting, generator)
        for address, transport, port in listen:
            self.network.add_host(address)
            self._listeners.add(address, transport, port, index)
            if protocol == "dns":
                self._dns_listeners.add((address, port))
        if answers_pings:  # the transport answers CRLF pings, as the live driver does
            self._pong_servers.add(index)
        self._flush(index)
        return index

    def replace_core(
        self,
        index: int,
        core: Core,
        coasting: Coasting | None = None,
        generator: LazyRandom | None = None,
    ) -> None:
        """Swap in a fresh core (a restarted process) keeping the listening ports;
        ``coasting`` and ``generator`` as for :meth:`add_core`."""
        # The old process's keep-alives end with it.
        self._coaster.replace(index, core, coasting, generator)
        self._cores[index] = core
        self._scheduled[index] = None
        self._flush(index)

    def core(self, index: int) -> Core:
        """The core of ``index``, brought up to date first (see :meth:`wake`)."""
        self.wake(index)
        return self._cores[index]

    def wake(self, index: int) -> None:
        """End the keep-alive coasting of a client, if any, or bring a coasting pool's
        heartbeats up to date, so that its state is what the skipped packets would have made
        it at :attr:`now`.  Call it before changing a core from
        outside (the simulated deployment does, in every command to a client)."""
        if index in self._coasting:
            self._coaster.uncoast(index)
            self._flush(index)
        elif index in self._coasting_pools:  # a pool catches up and goes on coasting
            self._coaster.catch_up(index, inclusive=not self._in_call)

    def end_coast(self, index: int) -> None:
        """End the coasting of core ``index``, if any: what it skipped is applied up to
        :attr:`now` and what is still on its way is sent for real.  Call it before changing
        what a core's cycles do (a pool's pairings or timers); the core may coast again at
        its next :meth:`poke`, under what it does then."""
        if index in self._coasting or index in self._coasting_pools:
            self._coaster.uncoast(index)

    def name(self, index: int) -> str:
        return self._names[index]

    def unlisten(self, index: int) -> None:
        self._listeners.remove(index)

    def listen(self, index: int, listen: Iterable[tuple[str, str, int]]) -> None:
        for address, transport, port in listen:
            self.network.add_host(address)
            self._listeners.add(address, transport, port, index)

    # -- time -------------------------------------------------------------------------------

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at virtual time ``when`` (a scenario step, a fault)."""
        self._agenda.push(when, (CALL, fn))

    def _push(self, when: float, entry: Entry) -> None:
        self._agenda.push(when, entry)

    def run_until(self, until: float) -> None:
        times = self._agenda.times
        agenda = self._agenda.entries
        scheduled = self._scheduled
        cores = self._cores
        flush = self._flush
        processed = self.events_processed  # counted in a local, stored when done (speed)
        coasting = self._coasting
        coasting_pools = self._coasting_pools
        coaster = self._coaster
        if self.network.version != coaster.version:
            coaster.network_changed()  # changed between two runs: coasting cores catch up
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
                    if kind == TIMER:
                        index = entry[1]
                        if scheduled[index] == when:  # else stale: the core re-armed since
                            scheduled[index] = None
                            if index in coasting:
                                self._coaster.uncoast(index, True)
                            elif index in coasting_pools:
                                coaster.catch_up(index)
                            cores[index].handle_timer(self.now)
                            flush(index)
                    elif kind == PONG:
                        _, index, handle = entry
                        if index in coasting:
                            self._coaster.uncoast(index)
                        cores[index].receive(PONG_BYTES, self._held_flows.pop(handle), self.now)
                        flush(index)
                    elif kind == STREAM:
                        _, handle, to_b, data = entry
                        conn = self._held_conns.pop(handle)
                        if conn.state == "open":
                            if to_b:
                                peer, peer_flow = conn.b, conn.b_flow
                            else:
                                peer, peer_flow = conn.a, conn.a_flow
                            if peer in coasting:
                                self._coaster.uncoast(peer)
                            elif peer in coasting_pools:
                                coaster.catch_up(peer)
                            cores[peer].receive(data, peer_flow, self.now)
                            flush(peer)
                    elif kind == DATAGRAM:
                        _, index, handle, data = entry
                        self._arrive_datagram(index, self._held_flows.pop(handle), data)
                    elif kind == FAIL:
                        self._fail(entry[1], self._held_flows.pop(entry[2]))
                    else:
                        self.events_processed = processed  # up to date for a scenario step
                        self._in_call = True
                        try:
                            entry[1]()
                            if self.network.version != coaster.version:
                                coaster.network_changed()
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
        self.trace.note(self.now, source, kind, text)

    # -- driving ----------------------------------------------------------------------------

    def poke(self, index: int) -> None:
        """Collect what a core wants to do after a command was given to it."""
        if index in self._coasting:
            self._coaster.uncoast(index)
        elif index in self._coasting_pools:
            self._coaster.catch_up(index, inclusive=not self._in_call)
        if self.network.version != self._coaster.version:
            self._coaster.network_changed()
        self._flush(index)

    def _perform(self, index: int, effect: Effect) -> None:
        handler = self._on_effects[index]
        if handler is None:
            raise TypeError(f"{self._names[index]} asked for {effect!r}, which nothing performs")
        handler(index, effect)

    def _flush(self, index: int) -> None:
        core = self._cores[index]
        for action in core.actions():
            if isinstance(action, Send):
                flow = action.flow
                if flow.transport == "udp":
                    self._send_datagram(index, flow, action.data)
                else:
                    self._send_stream(index, flow, action.data)
            elif isinstance(action, CloseFlow):
                self._close(index, action.flow)
            else:
                self._perform(index, action)
        events = core.events()
        if events:
            handler = self._on_events[index]
            if handler is not None:
                handler(index, events)
        deadline = core.next_deadline()
        if deadline is not None and self._coast_kinds[index] and self.coast:
            deadline = self._coaster.start(index, deadline)
        if deadline is not None:
            if deadline < self.now:
                deadline = self.now
            if deadline != self._scheduled[index]:
                self._scheduled[index] = deadline
                # self._push, inlined: this runs after every input of every core.
                agenda = self._agenda
                entries = agenda.entries.get(deadline)
                entry = self._timer_entries[index]
                if entries is None:
                    agenda.entries[deadline] = [entry]
                    heapq.heappush(agenda.times, deadline)
                else:
                    entries.append(entry)

    def _hold(self, flow: Flow) -> int:
        """Keep ``flow`` for a pending agenda entry; the entry holds the returned number."""
        handle = next(self._handles)
        self._held_flows[handle] = flow
        return handle

    def _deliver(self, index: int, data: bytes, flow: Flow) -> None:
        if index in self._coasting:
            self._coaster.uncoast(index)
        elif index in self._coasting_pools:
            self._coaster.catch_up(index)
        self._cores[index].receive(data, flow, self.now)
        self._flush(index)

    def _fail(self, index: int, flow: Flow) -> None:
        if index in self._coasting:
            self._coaster.uncoast(index)
        elif index in self._coasting_pools:
            self._coaster.catch_up(index)
        self._cores[index].flow_failed(flow, self.now)
        self._flush(index)

    def _tap(
        self,
        transport: TransportName,
        src: Address,
        dst: Address,
        data: bytes,
        when: float | None = None,
    ) -> None:
        assert self.tap is not None
        dns = self._dns_listeners
        protocol: WireProtocol = "dns" if dst in dns or src in dns else "sip"
        at = self.now if when is None else when
        self.tap.packet(Packet(at, transport, src, dst, data, protocol))

    def _send_datagram(self, index: int, flow: Flow, data: bytes) -> None:
        if self.tap is not None:
            self._tap("udp", flow.local, flow.remote, data)
        delays = self.network.transit(flow.local[0], flow.remote[0], "udp")
        if delays is None:
            return  # silent: the packet vanishes
        for delay in delays:
            self._push(self.now + delay, (DATAGRAM, index, self._hold(flow), data))

    def _arrive_datagram(self, index: int, flow: Flow, data: bytes) -> None:
        dst = flow.remote
        target = self._listeners.find(dst[0], "udp", dst[1])
        if target is None or not self.network.running(dst[0]):
            # ICMP port unreachable travels back to the sender (RFC 1122 §3.2.2.1).
            if self.network.reachable(dst[0], flow.local[0], "udp"):
                self._push(self.now + self.network.default_latency, (FAIL, index, self._hold(flow)))
            return
        self._deliver(target, data, Flow("udp", dst, flow.local))

    def _send_stream(self, index: int, flow: Flow, data: bytes) -> None:
        conn = self._last_conn[index]
        if conn is None or self._last_flow[index] is not flow:
            conn = self._conns.find(index, flow)
            if conn is None:
                conn = self._connect(index, flow)
                if conn is None:
                    return
            self._last_flow[index] = flow
            self._last_conn[index] = conn
        if conn.state != "open":
            if conn.state == "dead":
                self._push(
                    self.now + 2 * self.network.default_latency, (FAIL, index, self._hold(flow))
                )
            return
        from_a = conn.a == index
        if from_a:
            peer, peer_flow = conn.b, conn.b_flow
        else:
            peer, peer_flow = conn.a, conn.a_flow
        if self.tap is not None:
            # The server side's flow names both real ports (a client's may say port 0).
            server = conn.b_flow
            if from_a:
                self._tap(flow.transport, server.remote, server.local, data)
            else:
                self._tap(flow.transport, server.local, server.remote, data)
        network = self.network
        if conn.paths_version == network.version:
            delays = conn.a_to_b if from_a else conn.b_to_a
        else:
            delays = self._paths(conn, from_a, flow.local[0], peer_flow.local[0])
        if delays is None:
            if network.rejects(peer_flow.local[0], flow.transport, flow.local[0]):
                # A silent host with tcp = "reset": the segment is answered with a reset.
                self._close(index, flow)
                self._push(self.now + 2 * network.default_latency, (FAIL, index, self._hold(flow)))
            return  # a silent host: bytes vanish, the connection itself stays up
        # TCP retransmits what a lossy link drops: streams lose no data, only time.
        if not delays:
            delay = 3 * network.default_latency
        elif len(delays) == 1:
            delay = delays[0]
        else:
            delay = max(delays)
        when = self.now + delay
        if peer == conn.b:
            if conn.last_to_b > when:
                when = conn.last_to_b  # in order: not before what was sent earlier on it
            conn.last_to_b = when
        else:
            if conn.last_to_a > when:
                when = conn.last_to_a
            conn.last_to_a = when
        if data == PING and peer in self._pong_servers:
            if conn.paths_version == network.version:
                back = conn.b_to_a if from_a else conn.a_to_b
            else:
                back = network.transit(peer_flow.local[0], flow.local[0], flow.transport)
            if back:
                if self.tap is not None:  # the pong, sent by the peer's transport on arrival
                    server = conn.b_flow
                    self._tap(flow.transport, server.local, server.remote, PONG_BYTES, when)
                handle = next(self._handles)
                self._held_flows[handle] = flow
                when += back[0]
                # self._push, inlined: a keep-alive is most of what a simulation does.
                agenda = self._agenda
                entries = agenda.entries.get(when)
                if entries is None:
                    agenda.entries[when] = [(PONG, index, handle)]
                    heapq.heappush(agenda.times, when)
                else:
                    entries.append((PONG, index, handle))
            return
        handle = next(self._handles)
        self._held_conns[handle] = conn
        self._push(when, (STREAM, handle, from_a, data))

    def _paths(self, conn: _Conn, from_a: bool, src: str, dst: str) -> list[float] | None:
        """network.transit(src, dst) for a connection; kept both ways when that draws nothing."""
        network = self.network
        transport = conn.a_flow.transport
        if network.links:  # a Link may draw from the network's generator: ask every time
            return network.transit(src, dst, transport)
        forward = self._shared_delays(network.transit(src, dst, transport))
        backward = self._shared_delays(network.transit(dst, src, transport))
        conn.a_to_b, conn.b_to_a = (forward, backward) if from_a else (backward, forward)
        conn.paths_version = network.version
        return forward

    def _shared_delays(self, delays: list[float] | None) -> list[float] | None:
        """One list for equal answers of transit() (memory: every connection kept two lists
        of one float, the network's latency; nothing changes the lists it keeps)."""
        if delays is None:
            return None
        key = tuple(delays)
        shared = self._delay_lists.get(key)
        if shared is None:
            shared = self._delay_lists[key] = delays
        return shared

    def _connect(self, index: int, flow: Flow) -> _Conn | None:
        src, (dst, port) = flow.local[0], flow.remote
        network = self.network
        if not network.reachable(src, dst, flow.transport):
            if network.rejects(dst, flow.transport, src):
                conn = _Conn(index, flow, -1, flow, "dead")  # RST (silent, tcp = "reset")
                self._conns[(index, flow)] = conn
                return conn
            return self._lost_connection(index, flow)
        target = self._listeners.find(dst, flow.transport, port)
        if target is None or not network.running(dst):
            conn = _Conn(index, flow, -1, flow, "dead")  # RST
            self._conns[(index, flow)] = conn
            return conn
        local_port = flow.local[1]
        if not local_port:
            local_port = self._ephemeral.get(src, 49152)  # memory: an int, not a count
            self._ephemeral[src] = local_port + 1
        local: Address = (src, local_port)
        # flow.remote is (dst, port): shared, not a new tuple (memory: one per connection)
        server_flow = Flow(flow.transport, flow.remote, local)
        conn = _Conn(index, flow, target, server_flow, "open")
        self._conns[(index, flow)] = conn
        self._conns[(target, server_flow)] = conn  # may replace an equal flow's connection
        self._forget_last(target)
        return conn

    def _lost_connection(self, index: int, flow: Flow) -> _Conn:
        """A connection of ``index`` whose SYN vanished: the sender times out."""
        conn = _Conn(index, flow, -1, flow, "lost")
        self._conns[(index, flow)] = conn
        return conn

    def _close(self, index: int, flow: Flow) -> None:
        conn = self._conns.find(index, flow)
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
        for (index, flow), conn in self._conns.items():
            if conn.state == "open" and address in (conn.a_flow.local[0], conn.b_flow.local[0]):
                conn.state = "dead"
                peer_index = conn.a if conn.b_flow.local[0] == address else conn.b
                peer_flow = conn.a_flow if peer_index == conn.a else conn.b_flow
                if (index, flow) == (peer_index, peer_flow) and self.network.reachable(
                    address, peer_flow.local[0]
                ):
                    self._push(
                        self.now + self.network.default_latency,
                        (FAIL, peer_index, self._hold(peer_flow)),
                    )
        self.settle()  # connections changed: every coasting core catches up

    # -- coasting (emulator/sim/coasting.py) --------------------------------------------------

    @property
    def pings_coasted(self) -> int:
        """Keep-alive round trips skipped by coasting (each would be two events)."""
        return self._coaster.pings_coasted

    @property
    def heartbeats_coasted(self) -> int:
        """Heartbeat rounds skipped by coasting (each would be three events or more)."""
        return self._coaster.heartbeats_coasted

    @property
    def probes_coasted(self) -> int:
        """Failback probes to a cut-off primary skipped by coasting (two events each)."""
        return self._coaster.probes_coasted

    def settle(self) -> None:
        """Bring every coasting core up to :attr:`now`; they may coast again afterwards, under
        the network as it is then (also: :attr:`pings_coasted` and :attr:`heartbeats_coasted`
        then count everything skipped)."""
        self._coaster.settle()
