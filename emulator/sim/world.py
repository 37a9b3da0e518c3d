"""The simulated world: a virtual clock driving sans-IO cores over a simulated network.

The same cores as the live deployment (``Pool``, the fake DNS ``Authority``, client ``Agent``)
run here unchanged; this module only moves their bytes and calls their timers, like the asyncio
drivers do.  It is synchronous (Hypothesis rules cannot be async) and deterministic: one seed
derives every generator (per pool, per client, per network), events at equal times run in the
order they were scheduled, and the trace of a seed is byte-for-byte the same on every run.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from emulator.net import Address, CloseFlow, Flow, Send
from emulator.sim.network import Network
from emulator.sip.framing import PING, PONG

__all__ = ["Core", "TraceEntry", "World"]


class Core(Protocol):
    """The driving contract (emulator/net.py) as the simulator uses it."""

    def receive(self, data: bytes, flow: Flow, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def next_deadline(self) -> float | None: ...
    def flow_failed(self, flow: Flow, now: float) -> None: ...
    def actions(self) -> list[Send | CloseFlow]: ...
    def events(self) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
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


_TIMER, _CALL = 0, 1


class World:
    """A virtual-time world of cores on a simulated network."""

    def __init__(self, seed: int, *, default_latency: float = 0.001) -> None:
        self.seed = seed
        self.now = 0.0
        self.network = Network(random.Random(f"{seed}:network"), default_latency)
        self.trace: list[TraceEntry] = []
        self.events_processed = 0
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self._cores: list[Core] = []
        self._names: list[str] = []
        self._on_events: list[Callable[[int, list[Any]], None] | None] = []
        self._scheduled: list[float | None] = []
        self._listeners: dict[tuple[str, str, int], int] = {}
        self._conns: dict[tuple[int, Flow], _Conn] = {}
        self._ephemeral: dict[str, itertools.count[int]] = {}
        self._pong_servers: set[int] = set()

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
        for address, transport, port in listen:
            self.network.add_host(address)
            self._listeners[(address, transport, port)] = index
        if answers_pings:  # the transport answers CRLF pings, as the live driver does
            self._pong_servers.add(index)
        self._flush(index)
        return index

    def replace_core(self, index: int, core: Core) -> None:
        """Swap in a fresh core (a restarted process) keeping the listening ports."""
        self._cores[index] = core
        self._scheduled[index] = None
        self._flush(index)

    def core(self, index: int) -> Core:
        return self._cores[index]

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
        heapq.heappush(self._heap, (when, next(self._seq), _CALL, fn))

    def run_until(self, until: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= until:
            when, _, kind, payload = heapq.heappop(heap)
            if when > self.now:
                self.now = when
            self.events_processed += 1
            if kind == _TIMER:
                index = payload
                if self._scheduled[index] != when:
                    continue  # stale: the core re-armed since
                self._scheduled[index] = None
                self._cores[index].handle_timer(self.now)
                self._flush(index)
            else:
                payload()
        if until > self.now:
            self.now = until

    def note(self, source: str, kind: str, text: str) -> None:
        self.trace.append(TraceEntry(self.now, source, kind, text))

    # -- driving ----------------------------------------------------------------------------

    def poke(self, index: int) -> None:
        """Collect what a core wants to do after a command was given to it."""
        self._flush(index)

    def _flush(self, index: int) -> None:
        core = self._cores[index]
        for action in core.actions():
            if isinstance(action, Send):
                self._send(index, action.flow, action.data)
            else:
                self._close(index, action.flow)
        events = core.events()
        if events:
            handler = self._on_events[index]
            if handler is not None:
                handler(index, events)
        deadline = core.next_deadline()
        if deadline is not None:
            if deadline < self.now:
                deadline = self.now
            if deadline != self._scheduled[index]:
                self._scheduled[index] = deadline
                heapq.heappush(self._heap, (deadline, next(self._seq), _TIMER, index))

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (self.now + delay, next(self._seq), _CALL, fn))

    def _deliver(self, index: int, data: bytes, flow: Flow) -> None:
        self._cores[index].receive(data, flow, self.now)
        self._flush(index)

    def _fail(self, index: int, flow: Flow) -> None:
        self._cores[index].flow_failed(flow, self.now)
        self._flush(index)

    def _send(self, index: int, flow: Flow, data: bytes) -> None:
        if flow.transport == "udp":
            self._send_datagram(index, flow, data)
        else:
            self._send_stream(index, flow, data)

    def _send_datagram(self, index: int, flow: Flow, data: bytes) -> None:
        network = self.network
        src, dst = flow.local[0], flow.remote[0]
        if not network.reachable(src, dst):
            return  # silent: the packet vanishes
        for delay in network.delays(src, dst):
            self._later(delay, lambda: self._arrive_datagram(index, flow, data))

    def _arrive_datagram(self, index: int, flow: Flow, data: bytes) -> None:
        dst = flow.remote
        target = self._listeners.get((dst[0], "udp", dst[1]))
        if target is None or not self.network.running(dst[0]):
            # ICMP port unreachable travels back to the sender (RFC 1122 §3.2.2.1).
            if self.network.reachable(dst[0], flow.local[0]):
                self._later(self.network.default_latency, lambda: self._fail(index, flow))
            return
        self._deliver(target, data, Flow("udp", dst, flow.local))

    def _send_stream(self, index: int, flow: Flow, data: bytes) -> None:
        conn = self._conns.get((index, flow))
        if conn is None:
            conn = self._connect(index, flow)
            if conn is None:
                return
        if conn.state != "open":
            if conn.state == "dead":
                self._later(2 * self.network.default_latency, lambda: self._fail(index, flow))
            return
        if conn.a == index:
            peer, peer_flow = conn.b, conn.b_flow
        else:
            peer, peer_flow = conn.a, conn.a_flow
        src, dst = flow.local[0], peer_flow.local[0]
        if not self.network.reachable(src, dst):
            return  # a silent host: bytes vanish, the connection itself stays up
        delays = self.network.delays(src, dst)
        # TCP retransmits what a lossy link drops: streams lose no data, only time.
        delay = max(delays) if delays else 3 * self.network.default_latency
        when = max(self.now + delay, conn.last_delivery.get(peer, 0.0))  # in order
        conn.last_delivery[peer] = when
        if data == PING and peer in self._pong_servers:
            back = self.network.delays(dst, src) if self.network.reachable(dst, src) else []
            if back:
                heapq.heappush(
                    self._heap,
                    (
                        when + back[0],
                        next(self._seq),
                        _CALL,
                        lambda: self._deliver(index, PONG, flow),
                    ),
                )
            return
        heapq.heappush(
            self._heap,
            (
                when,
                next(self._seq),
                _CALL,
                lambda: self._arrive_stream(conn, peer, peer_flow, data),
            ),
        )

    def _arrive_stream(self, conn: _Conn, peer: int, peer_flow: Flow, data: bytes) -> None:
        if conn.state == "open":
            self._deliver(peer, data, peer_flow)

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
        self._conns[(target, server_flow)] = conn
        return conn

    def _close(self, index: int, flow: Flow) -> None:
        conn = self._conns.pop((index, flow), None)
        if conn is None:
            return
        conn.state = "dead"
        other = (conn.b, conn.b_flow) if conn.a == index else (conn.a, conn.a_flow)
        self._conns.pop(other, None)

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
                    self._later(
                        self.network.default_latency, partial(self._fail, peer_index, peer_flow)
                    )
