"""The simulator's compact history (emulator/sim/history.py) and the world's compact network
tables (emulator/sim/world.py): what is read back is what was recorded, exactly, and the
shared tables are shared where they should be and nowhere else."""

from __future__ import annotations

import dataclasses
import random
from typing import Any, cast

import pytest

from clients.events import (
    BindingLost,
    ClientStateChanged,
    ContactsChanged,
    ContactsReason,
    Failure,
    FailureKind,
    Loss,
    LossKind,
    Registered,
    RegistrarLost,
    RoundReason,
    ServicesChanged,
    SignedOut,
    SignInStarted,
    SignOutReason,
)
from emulator.build import compiled
from emulator.net import Flow
from emulator.sim.deployment import ClientSpec, SimulatedDeployment
from emulator.sim.history import Timelines, Trace
from emulator.sim.trace import MESSAGE, TraceEntry
from emulator.sim.world import World, _Conn, _Conns, _Listeners
from emulator.topology import parse_topology
from emulator.wire import Packet
from tests.scenario.test_coasting import ROOT


def same(a: object, b: object) -> None:
    """``a`` reads exactly as ``b``: equal, same class, same repr."""
    assert type(a) is type(b)
    assert a == b
    assert repr(a) == repr(b)


# -- the trace --------------------------------------------------------------------------------


def entries() -> list[TraceEntry]:
    packet = Packet(2.5, "udp", ("10.0.0.1", 5060), ("10.0.0.2", 5061), b"x", "dns")
    return [
        TraceEntry(0.0, "scenario", "start", "seed 1"),
        TraceEntry(-0.0, "c1", "state", "registering"),  # prints as -0.000
        TraceEntry(1.25, "c2", "state", "registering"),  # the same text, another source
        TraceEntry(2, "c1", "step", "an int time"),  # type(now) is int: kept whole
        TraceEntry(2.5, "c1", MESSAGE, "REGISTER", "REGISTER sip:x SIP/2.0\n", packet),
        TraceEntry(2.5, "c1", MESSAGE, "", "", packet),  # a packet alone
        TraceEntry(1e300, "", "", ""),
    ]


def test_a_trace_reads_back_what_was_appended() -> None:
    trace = Trace()
    recorded = entries()
    for entry in recorded:
        trace.append(entry)
    assert len(trace) == len(recorded)
    for got, want in zip(trace, recorded, strict=True):
        same(got, want)
        assert got.line() == want.line()
        assert got.to_json() == want.to_json()
    same(trace[-1], recorded[-1])
    same(trace[3], recorded[3])
    assert trace[1:5] == recorded[1:5]
    assert trace[::-2] == recorded[::-2]
    assert trace == recorded and trace == tuple(recorded)
    assert trace != recorded[:-1]
    with pytest.raises(IndexError):
        trace[len(recorded)]
    with pytest.raises(IndexError):
        trace[-len(recorded) - 1]


def test_note_is_append_without_the_entry() -> None:
    noted, appended = Trace(), Trace()
    for entry in entries()[:4]:
        noted.note(entry.now, entry.source, entry.kind, entry.text)
        appended.append(entry)
    assert noted == appended
    same(noted[1], TraceEntry(-0.0, "c1", "state", "registering"))


def test_a_trace_keeps_each_string_once_and_its_own() -> None:
    one, other = World(1), World(1)
    for n in range(100):
        one.now = float(n)
        one.note(f"c{n % 10}", "state", "registered at fe1")
    other.note("c0", "state", "something else")
    assert len(one.trace) == 100
    assert sorted(one.trace._strings) == sorted(
        [f"c{n}" for n in range(10)] + ["state", "registered at fe1"]
    )
    assert "something else" not in one.trace._strings  # no table shared between worlds
    assert [e.text for e in other.trace] == ["something else"]


# -- the timelines ----------------------------------------------------------------------------


def changes(client: str) -> list[ClientStateChanged]:
    timeout = Failure(FailureKind.TIMEOUT)
    refused = Failure(FailureKind.STATUS, 403, "Forbidden")
    common: dict[str, Any] = {
        "client": client,
        "registrar": "fe1.contoso.test",
        "mode": "full",
        "primary": "fe1.contoso.test",
        "backup": "fe2.contoso.test",
        "contacts": 3,
    }
    return [
        SignInStarted(
            0.0, client, "discovering", None, None, None, None, None, RoundReason.SIGN_IN
        ),
        Registered(1.5, state="registered", host="fe1.contoso.test", source="srv", **common),
        ContactsChanged(2.0, state="registered", reason=ContactsReason.FETCHED, **common),
        ServicesChanged(3.0, state="registered", available=True, **common),
        # An int where a bool is declared: equal to True, printed differently.  A compiled
        # class cannot even read such a field (its getter checks the type: "bool object
        # expected"), so only the interpreted build has these events to keep apart.
        *(
            []
            if compiled()
            else [ServicesChanged(3.5, state="registered", available=1, **common)]  # type: ignore[arg-type]
        ),
        RegistrarLost(
            4.0,
            state="signed-out",
            loss=Loss(LossKind.REFRESH_FAILED, timeout),
            **{**common, "mode": None},
        ),
        SignedOut(5.0, state="signed-out", reason=SignOutReason.NO_REGISTRAR, retry_in=30.0,
                  **common),
        SignedOut(6.0, state="signed-out", reason=SignOutReason.NO_REGISTRAR, retry_in=30,
                  **common),
        SignedOut(7.0, state="signed-out", reason=SignOutReason.NO_REGISTRAR, retry_in=-0.0,
                  **common),
        SignedOut(8.0, state="signed-out", reason=SignOutReason.REFUSED, failure=refused,
                  host="fe1.contoso.test", **common),
        Registered(9, state="registered", host="fe1.contoso.test", source="srv", **common),
        Registered(10.0, **{**common, "client": "someone else"}, state="registered",
                   host="fe2.contoso.test", source="cache"),
    ]  # fmt: skip


def test_a_timeline_reads_back_what_was_recorded_exactly() -> None:
    timelines = Timelines()
    recorded = {name: changes(name) for name in ("c1", "c2")}
    for name in recorded:
        timelines.add(name)
    for n in range(len(recorded["c1"])):  # interleaved, as clients act
        for name, events in recorded.items():
            timelines.record(name, events[n])
    assert list(timelines) == ["c1", "c2"] and len(timelines) == 2 and "c2" in timelines
    for name, events in recorded.items():
        timeline = timelines[name]
        assert len(timeline) == len(events)
        for got, want in zip(timeline, events, strict=True):
            same(got, want)
            assert got.line() == want.line()
            assert dataclasses.asdict(got) == dataclasses.asdict(want)
            assert [type(v) for v in dataclasses.astuple(got)] == [
                type(v) for v in dataclasses.astuple(want)
            ]
        assert timeline == events and timeline[-3:] == events[-3:]
        same(timeline[-1], events[-1])
    assert timelines.get("nobody", []) == []
    assert dict(timelines.items()) == recorded


def test_equal_changes_of_many_clients_share_one_shape_per_timelines() -> None:
    timelines, other = Timelines(), Timelines()
    for n in range(500):
        name = f"c{n}"
        timelines.add(name)
        for event in changes(name)[:4]:
            timelines.record(name, event)
    # Four shapes (a ServicesChanged with available=1 is not one with True): not 2,000.
    assert len(timelines._shapes.rows) == 4
    assert len(other._shapes.rows) == 0  # no table shared between deployments
    same(timelines["c321"][1], changes("c321")[1])


def test_a_change_with_no_fields_of_its_own_is_a_shape_too() -> None:
    timelines = Timelines()
    for n in range(100):
        timelines.add(f"c{n}")
        lost = BindingLost(float(n), f"c{n}", "registering", None, None, None, None, None)
        timelines.record(f"c{n}", lost)
    assert len(timelines._shapes.rows) == 1
    same(timelines["c42"][0], BindingLost(42.0, "c42", "registering", None, None, None, None, None))


def test_every_change_of_a_run_reads_back_exactly() -> None:
    """An hour with an outage of fe2: every ClientStateChanged the deployment recorded reads
    back from its timelines as the very event, and every trace entry as the entry."""
    recorded: dict[str, list[ClientStateChanged]] = {}
    noted: list[TraceEntry] = []
    real_record, real_note = Timelines.record, Trace.note

    def record(self: Timelines, client: str, event: ClientStateChanged) -> None:
        recorded.setdefault(client, []).append(event)
        real_record(self, client, event)

    def note(self: Trace, now: float, source: str, kind: str, text: str) -> None:
        noted.append(TraceEntry(now, source, kind, text))
        real_note(self, now, source, kind, text)

    topology = parse_topology((ROOT / "topologies" / "r1-lab.toml").read_text())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Timelines, "record", record)
        patch.setattr(Trace, "note", note)
        sim = SimulatedDeployment(
            topology,
            [
                ClientSpec("ClientUser1", "sip:clientuser1@contoso.test"),
                ClientSpec("ClientUser2", "sip:clientuser2@contoso.test"),
            ],
            seed=5,
            verbose=True,
        )
        sim.sign_in("ClientUser1")
        sim.sign_in("ClientUser2")
        sim.world.call_at(1000.3, lambda: sim.disable_nic("fe2.contoso.test"))
        sim.world.call_at(1400.7, lambda: sim.enable_nic("fe2.contoso.test"))
        sim.run_until(3600)
    assert sum(len(events) for events in recorded.values()) > 10
    assert any(e.mode == "limited" for events in recorded.values() for e in events)
    for name, events in recorded.items():
        for got, want in zip(sim.timeline[name], events, strict=True):
            same(got, want)
    assert len(noted) == len(sim.world.trace) > 50
    for entry, noted_entry in zip(sim.world.trace, noted, strict=True):
        same(entry, noted_entry)


# -- the world's listening ports and paths ----------------------------------------------------


def test_listeners_answer_as_a_dict_of_triples_would() -> None:
    rng = random.Random(20)
    listeners, reference = _Listeners(), dict[tuple[str, str, int], int]()
    addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    ports = [("udp", 5060), ("udp", 5061), ("tls", 5061), ("tcp", 5060)]
    for _ in range(400):
        address, (transport, port) = rng.choice(addresses), rng.choice(ports)
        index = rng.randrange(4)
        if rng.random() < 0.8:
            listeners.add(address, transport, port, index)
            reference[(address, transport, port)] = index
        else:
            listeners.remove(index)
            reference = {k: v for k, v in reference.items() if v != index}
        for a in [*addresses, "10.0.0.9"]:
            for t, p in ports:
                assert listeners.get((a, t, p)) == reference.get((a, t, p)), (a, t, p)
                assert ((a, t, p) in listeners) == ((a, t, p) in reference)
                if (a, t, p) in reference:
                    assert listeners[(a, t, p)] == reference[(a, t, p)]
                else:
                    with pytest.raises(KeyError):
                        listeners[(a, t, p)]
        assert len(listeners) == len(reference)


def test_addresses_with_the_same_ports_share_one_set_of_them() -> None:
    listeners = _Listeners()
    for n in range(50):
        listeners.add(f"10.1.0.{n}", "udp", 5060, n)
        listeners.add(f"10.1.0.{n}", "udp", 5062, n)
    sets = {id(entry[1]) for entry in listeners._by_address.values() if isinstance(entry, tuple)}
    assert len(sets) == 1 and len(listeners._port_sets) == 2  # {5060} once, then {5060, 5062}
    assert listeners.get(("10.1.0.7", "udp", 5062)) == 7
    assert listeners.get(("10.1.0.7", "tls", 5062)) is None


def test_connections_answer_as_a_dict_of_core_and_flow_would() -> None:
    """Also when two cores use equal flows, and for connections keyed under a flow that is
    neither of their ends (nothing in the world does either; the table must still answer)."""
    rng = random.Random(7)
    flows = [Flow("tls", (f"10.0.0.{n}", 0), ("10.9.0.1", 5061)) for n in range(3)]
    conns, reference = _Conns(), dict[tuple[int, Flow], _Conn]()
    for step in range(600):
        index, flow = rng.randrange(3), rng.choice(flows)
        other = rng.choice(flows)
        choice = rng.random()
        if choice < 0.5:
            made = rng.choice(
                [
                    _Conn(index, flow, -1, flow, "dead"),  # a's end is the flow
                    _Conn(
                        9, other, index, Flow(flow.transport, flow.local, flow.remote), "open"
                    ),  # b's, equal
                    _Conn(9, other, 8, other, "lost"),  # neither end (when other != flow)
                ]
            )
            conns[(index, flow)] = made
            reference[(index, flow)] = made
        elif choice < 0.8:
            assert conns.pop((index, flow)) is reference.pop((index, flow), None)
        elif (index, flow) in reference:
            del conns[(index, flow)]
            del reference[(index, flow)]
        else:
            with pytest.raises(KeyError):
                del conns[(index, flow)]
        for i in range(4):
            for f in flows:
                assert conns.get((i, f)) is reference.get((i, f)), (step, i, f)
                assert ((i, f) in conns) == ((i, f) in reference)
                if (i, f) in reference:
                    assert conns[(i, f)] is reference[(i, f)]
                else:
                    with pytest.raises(KeyError):
                        conns[(i, f)]
        assert len(conns) == len(reference)
        got = sorted((id(c), i, id(f)) for (i, f), c in conns.items())
        assert got == sorted((id(c), i, id(f)) for (i, f), c in reference.items())


def test_connections_come_in_the_order_a_dict_would_give_them() -> None:
    """With one core per flow (as in every deployment) items() keeps a dict's order, which
    the world's resets follow (the order of the failures they schedule)."""
    flows = [Flow("tcp", (f"10.0.1.{n}", 0), ("10.9.0.1", 5060)) for n in range(6)]
    conns, reference = _Conns(), dict[tuple[int, Flow], _Conn]()
    for n, flow in enumerate(flows):
        conns[(n, flow)] = reference[(n, flow)] = _Conn(n, flow, -1, flow, "dead")
    del conns[(2, flows[2])], reference[(2, flows[2])]
    conns[(0, flows[0])] = reference[(0, flows[0])] = _Conn(0, flows[0], -1, flows[0], "lost")
    conns[(2, flows[2])] = reference[(2, flows[2])] = _Conn(2, flows[2], -1, flows[2], "open")
    assert [(k, id(c)) for k, c in conns.items()] == [(k, id(c)) for k, c in reference.items()]
    assert all(isinstance(entry, _Conn) for entry in conns._by_flow.values())  # no key dicts


def test_connections_share_their_paths_and_keep_ports_apart() -> None:
    """Clients over TLS: every connection keeps the network's answers both ways, the same
    list objects for all (nothing links the hosts); each host's ephemeral ports count up."""
    topology = parse_topology((ROOT / "topologies" / "r1-lab.toml").read_text())
    sim = SimulatedDeployment(
        topology,
        [ClientSpec(f"C{n}", f"sip:clientuser{n % 2 + 1}@contoso.test") for n in range(6)],
        seed=3,
    )
    for name in sim.specs:
        sim.sign_in(name)
    sim.run_until(120)
    conns = {id(c): c for c in sim.world._conns.values() if c.state == "open"}.values()
    assert len(conns) >= 6
    kept = [path for c in conns for path in (c.a_to_b, c.b_to_a) if path is not None]
    assert len(kept) >= 12 and len({id(path) for path in kept}) == 1
    assert kept[0] == [sim.world.network.default_latency]
    server_ends = [c.b_flow.remote for c in conns]
    assert len(set(server_ends)) == len(server_ends)
    assert all(port >= 49152 for _, port in server_ends)


def test_a_client_timeline_is_a_live_view() -> None:
    """As the list it replaced: what the client records after it was taken shows in it."""
    timelines = Timelines()
    timelines.add("c1")
    view = timelines["c1"]
    assert len(view) == 0 and view == []
    first, second = changes("c1")[:2]
    timelines.record("c1", first)
    timelines.record("c1", second)
    assert len(view) == 2 and view == [first, second]
    with pytest.raises(KeyError):
        timelines["nobody"]


def test_a_change_that_its_fields_do_not_rebuild_is_kept_whole() -> None:
    """An event class whose constructor takes other arguments than its fields, or that makes
    a different event from them: the timeline keeps the very object, and reads it back.  (A
    plain dataclass, not a subclass of the events: those are compiled in the compiled
    build.)"""

    @dataclasses.dataclass
    class Odd:
        now: float
        client: str
        state: str = dataclasses.field(init=False, default="discovering")

    @dataclasses.dataclass
    class Counted:
        now: float
        client: str
        count: int

        def __post_init__(self) -> None:
            self.count += 1  # what it is made from is not what it holds

    timelines = Timelines()
    timelines.add("c1")
    odd, counted = Odd(1.0, "c1"), Counted(2.0, "c1", 5)
    timelines.record("c1", cast(ClientStateChanged, odd))
    timelines.record("c1", cast(ClientStateChanged, counted))
    assert timelines["c1"][0] is odd and timelines["c1"][1] is counted
    assert len(timelines._shapes.rows) == 2
