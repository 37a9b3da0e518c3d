"""The coasting coordinator's typed plumbing (emulator/sim/coasting.py): what it says becomes
of a flow's messages (:meth:`Coaster.path`), and how it carries what a skipped round still has
on its way (:meth:`Coaster.carry`), checked against what the world's network really does."""

from __future__ import annotations

from collections.abc import Sequence

from emulator.coasting import Answered, InFlight, Path
from emulator.net import Action, Flow, Send
from emulator.sim import coasting
from emulator.sim.world import World
from emulator.sip.framing import PING, PONG

CLIENT, POOL, OTHER = "10.0.0.1", "10.0.0.2", "10.0.0.3"


class Recorder:
    """A core that records what reaches it and sends what it is told to."""

    def __init__(self) -> None:
        self.received: list[tuple[float, bytes, Flow]] = []
        self.failed: list[tuple[float, Flow]] = []
        self._out: list[Action] = []

    def send(self, flow: Flow, data: bytes) -> None:
        self._out.append(Send(flow, data))

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        self.received.append((now, data, flow))

    def flow_failed(self, flow: Flow, now: float) -> None:
        self.failed.append((now, flow))

    def handle_timer(self, now: float) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None

    def actions(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def events(self) -> Sequence[object]:
        return []


class Answerer(Recorder):
    """Answers every datagram at once on the flow it came in on, as a pool does a heartbeat
    (:func:`world` has the coordinator take it for a pool)."""

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        super().receive(data, flow, now)
        self.send(flow, b"re:" + data)


def world() -> tuple[World, Recorder, int, Answerer, int]:
    w = World(1, default_latency=0.01, coast=False)
    client = Recorder()
    pool = Answerer()
    c = w.add_core("client", client, [(CLIENT, "udp", 5060)])
    p = w.add_core("pool", pool, [(POOL, "udp", 5060), (POOL, "tcp", 5060)], answers_pings=True)
    w._coaster.kinds[p] = coasting._POOL  # a stand-in for a Pool: it answers heartbeats
    w.network.add_host(OTHER)
    return w, client, c, pool, p


def test_an_open_connection_to_a_pinged_pool_is_answered_after_the_link_delays() -> None:
    w, client, c, _, _ = world()
    flow = Flow("tcp", (CLIENT, 40000), (POOL, 5060))
    client.send(flow, PING)
    w.poke(c)
    w.run_until(1.0)
    assert [data for _, data, _ in client.received] == [PONG]
    assert w._coaster.path(c, flow) == Answered(0.01, 0.01)
    w.network.link(CLIENT, POOL).jitter = 0.005
    w.network.changed()
    assert w._coaster.path(c, flow) is False  # jitter: not certain


def test_a_new_connection_vanishes_only_when_its_host_is_unreachable() -> None:
    w, _, c, _, _ = world()
    flow = Flow("tcp", (CLIENT, 40001), (POOL, 5060))
    assert w._coaster.path(c, flow) is False  # reachable: it may open
    w.network.partition(CLIENT, POOL)
    assert w._coaster.path(c, flow) is None


def test_datagram_paths() -> None:
    w, _, c, _, _ = world()
    to_pool = Flow("udp", (CLIENT, 5060), (POOL, 5060))
    assert w._coaster.path(c, to_pool) == Answered(0.01, 0.01)
    assert w._coaster.path(c, Flow("udp", (CLIENT, 5060), (OTHER, 5060))) is False  # refused
    w.network.partition(POOL, CLIENT, oneway=True)
    assert w._coaster.path(c, to_pool) is None  # the answer vanishes
    w.network.heal()
    w.network.partition(CLIENT, POOL, oneway=True)
    assert w._coaster.path(c, to_pool) is None  # the request vanishes


def carried(item: InFlight, now: float) -> tuple[World, Recorder, Answerer]:
    w, client, c, pool, _ = world()
    w.run_until(now)
    w._coaster.carry(c, item)
    w.run_until(now + 1.0)
    return w, client, pool


def test_a_ping_in_flight_gets_its_pong_when_it_would_have() -> None:
    w, client, c, _, _ = world()
    flow = Flow("tcp", (CLIENT, 40000), (POOL, 5060))
    client.send(flow, PING)
    w.poke(c)
    w.run_until(1.0)
    w._coaster.carry(c, InFlight(Send(flow, b""), 0.995, Answered(0.01, 0.01)))
    w.run_until(2.0)
    assert [(round(t, 6), data) for t, data, _ in client.received[1:]] == [(1.015, PONG)]


def test_a_heartbeat_still_travelling_arrives_when_it_would_have() -> None:
    flow = Flow("udp", (CLIENT, 5060), (POOL, 5060))
    path: Path = Answered(0.01, 0.02)
    _, client, pool = carried(InFlight(Send(flow, b"hb"), 4.995, path), 5.0)
    assert [(round(t, 6), data) for t, data, _ in pool.received] == [(5.005, b"hb")]
    # the pool answers on arrival; its answer travels the real network (0.01 s)
    assert [(round(t, 6), data) for t, data, _ in client.received] == [(5.015, b"re:hb")]


def test_a_heartbeat_that_arrived_already_is_answered_now_and_arrives_as_it_would() -> None:
    flow = Flow("udp", (CLIENT, 5060), (POOL, 5060))
    _, client, pool = carried(InFlight(Send(flow, b"hb"), 4.98, Answered(0.01, 0.02)), 5.0)
    assert [(round(t, 6), data) for t, data, _ in pool.received] == [(5.0, b"hb")]
    assert [(round(t, 6), data) for t, data, _ in client.received] == [(5.01, b"re:hb")]


def test_vanishing_messages_in_flight() -> None:
    datagram = Flow("udp", (CLIENT, 5060), (POOL, 5060))
    _, client, pool = carried(InFlight(Send(datagram, b"hb"), 4.99, None), 5.0)
    assert pool.received == [] and client.received == []
    w, client, c, pool, _ = world()
    probe = Flow("tcp", (CLIENT, 40002), (POOL, 5060))
    w._coaster.carry(c, InFlight(Send(probe, b"OPTIONS"), 0.0, None))
    client.send(probe, b"OPTIONS")  # on a connection whose SYN vanished: nothing arrives
    w.poke(c)
    w.run_until(10.0)
    assert pool.received == [] and client.failed == []
