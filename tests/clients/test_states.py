"""The client agent's state table (clients/states.py), its typed events (clients/events.py),
its cycles (clients/keepalive.py, clients/failback.py) and the cache as driver actions."""

from __future__ import annotations

import pytest

from clients import registration
from clients.cache import CacheEntry, CacheUnreadable, MemoryCacheStore, SaveCache, read_entry
from clients.events import (
    BindingLost,
    ClientStateChanged,
    ContactsChanged,
    DiscoveryStarted,
    FailedOver,
    Failure,
    FailureKind,
    Loss,
    LossKind,
    Redirected,
    RegisterSent,
    RegistrarLost,
    SignedOut,
    SignOutReason,
)
from clients.keepalive import KeepAliveCycle
from clients.plan import Target
from clients.states import TRANSITIONS, Refresh, Round, StateMachine
from emulator.coasting import Answered
from emulator.net import Flow
from emulator.sip.errors import LocalProtocolError
from tests.clients.agent_harness import USER, Harness

FE1, FE1_IP = "fe1.contoso.test", "192.0.2.11"
FLOW = Flow("tls", ("10.0.0.100", 0), (FE1_IP, 5061))
TARGET = Target(FE1, 5061, "tls", FE1_IP, "srv")


def snapshot(cls: type[ClientStateChanged], state: str, *detail: object) -> ClientStateChanged:
    return cls(1.0, "c", state, None, None, None, None, None, *detail)  # type: ignore[arg-type]


def test_an_event_the_table_forbids_raises_and_leaves_the_state_unchanged() -> None:
    machine = StateMachine()
    with pytest.raises(LocalProtocolError, match="BindingLost is not allowed in signed-out"):
        machine.apply(BindingLost)
    assert machine.state == "signed-out"
    with pytest.raises(LocalProtocolError, match="ContactsChanged is not allowed in signed-out"):
        machine.apply(ContactsChanged)
    assert machine.state == "signed-out"


def test_the_table_gives_the_state_an_event_leaves() -> None:
    machine = StateMachine()
    assert machine.apply(DiscoveryStarted) == "discovering"
    assert machine.apply(RegisterSent) == "registering"
    assert machine.apply(FailedOver) == "registered"
    assert machine.apply(Redirected) == "registered"  # a report: the state stays
    assert machine.apply(RegistrarLost) == "signed-out"
    assert machine.state == "signed-out"


def test_every_state_change_event_has_a_rule() -> None:
    def leaves(cls: type) -> list[type]:
        out = []
        for sub in cls.__subclasses__():
            out.append(sub)
            out.extend(leaves(sub))
        return out

    # A set: a slotted dataclass replaces its class, and the first one may linger until
    # collected.
    events = {e.__name__ for e in leaves(ClientStateChanged) if e.__module__ == "clients.events"}
    assert events == {e.__name__ for e in TRANSITIONS}
    assert len(TRANSITIONS) == 14


def test_typed_causes_render_the_timeline_text() -> None:
    timeout = Failure(FailureKind.TIMEOUT)
    lost = snapshot(RegistrarLost, "signed-out", Loss(LossKind.REFRESH_FAILED, timeout))
    assert lost.cause == "registrar lost (refresh failed: no answer (Timer F))"
    assert snapshot(FailedOver, "registered", FE1, "backup").cause == f"200 from {FE1} (backup)"
    retry = snapshot(SignedOut, "signed-out", SignOutReason.NO_REGISTRAR, 41.25)
    assert retry.cause == "no registrar reachable; retry in 41.2 s"
    assert str(Failure(FailureKind.MIN_EXPIRES, 423, "")) == "423 with Min-Expires ?"


def test_an_illegal_transition_in_the_agent_raises_before_any_change() -> None:
    h = Harness()
    with pytest.raises(LocalProtocolError):
        h.agent._change(0.0, BindingLost)
    assert h.agent.state == "signed-out"
    assert h.agent.events() == []


def test_the_agent_writes_its_cache_only_through_an_action() -> None:
    h = Harness()
    registration.save_cache(h.agent, 1.0, TARGET, True)
    assert h.agent.actions() == [SaveCache(CacheEntry(USER, FE1, 5061, "tls", 1.0, FE1_IP))]
    assert h.cache.entries() == []  # nothing written until a driver performs it


def test_the_entry_handed_in_at_sign_in_is_the_first_target() -> None:
    h = Harness()
    h.cache.save(CacheEntry(USER, FE1, 5061, "tls", 0.0, FE1_IP))
    h.sign_in()
    register = h.pop_request()
    assert register.remote == (FE1_IP, 5061)


def test_read_entry_reports_an_unreadable_store_instead_of_raising() -> None:
    class Broken:  # a store of its own, not derived from a compiled class (the compiled
        # build refuses that): only the CacheStore protocol's methods
        def load(self, user: str) -> CacheEntry | None:
            raise ValueError("bad file")

        def save(self, entry: CacheEntry) -> None: ...

        def clear(self, user: str) -> None: ...

        def entries(self) -> list[CacheEntry]:
            return []

    assert read_entry(Broken(), USER) == CacheUnreadable("bad file")
    assert read_entry(MemoryCacheStore(), USER) is None


def test_a_coasting_keepalive_cycle_ends_where_the_real_pings_would_have() -> None:
    coasted = KeepAliveCycle(20.0, 10.0)
    coasted.flow = FLOW
    coasted.start(0.0, 20.0)
    assert coasted.coast_flows() == (FLOW,)
    assert coasted.begin_coast({FLOW: Answered(0.001, 0.002)}, None)
    assert coasted.deadline() is None
    real = KeepAliveCycle(20.0, 10.0)
    real.flow = FLOW
    real.start(0.0, 20.0)
    now = 0.0
    while True:  # every ping answered after out + back
        at = real.at
        assert at is not None
        if at + 0.001 + 0.002 > 100.0:
            break
        real.ping(at, FLOW)
        real.answered(at + 0.001 + 0.002)
        now = at
    assert now > 0
    flights = coasted.end_coast(100.0, inclusive=True)
    assert flights == []
    assert (coasted.at, coasted.pong_at) == (real.at, real.pong_at)
    assert coasted.rounds_coasted == 4
    assert not coasted.coasting


def test_a_ping_on_its_way_when_coasting_ends_is_handed_back() -> None:
    cycle = KeepAliveCycle(20.0, 10.0)
    cycle.flow = FLOW
    cycle.start(0.0, 20.0)
    assert cycle.begin_coast({FLOW: Answered(0.5, 0.5)}, None)
    [flight] = cycle.end_coast(20.5, inclusive=True)
    assert (flight.sent_at, flight.path) == (20.0, Answered(0.5, 0.5))
    assert (cycle.at, cycle.pong_at) == (None, 30.0)


def test_a_keepalive_cycle_does_not_coast_when_something_else_comes_first() -> None:
    cycle = KeepAliveCycle(20.0, 10.0)
    cycle.flow = FLOW
    cycle.start(0.0, 20.0)
    assert not cycle.begin_coast({FLOW: Answered(0.5, 0.5)}, 19.0)
    assert not cycle.begin_coast({FLOW: None}, None)  # vanishing pings must run
    assert cycle.deadline() == 20.0


def test_skipped_probes_draw_through_the_request_builder() -> None:
    """A skipped probe is the real OPTIONS built and dropped: the same draws and CSeq."""
    h = Harness(seed=3)
    agent = h.agent
    state = agent.rng.getstate()
    cseq = agent.requests.cseq
    agent.primary = TARGET
    agent.skip_probe()
    skipped = (agent.rng.getstate(), agent.requests.cseq)
    agent.rng.setstate(state)
    agent.requests.cseq = cseq
    agent.requests.options(TARGET, FLOW)
    assert (agent.rng.getstate(), agent.requests.cseq) == skipped
    assert skipped[1] == cseq + 1


def test_typed_notes_render_the_detail_lines() -> None:
    from clients.events import FailbackReason, FailbackStarted, RedirectReceived

    probes = FailbackStarted(5.0, "c", FE1, FailbackReason.PROBES_ANSWERED, seconds=300.0)
    assert (
        probes.line() == f"     5.000 c:   failing back to {FE1}: primary answered probes for 300 s"
    )
    redirect = RedirectReceived(1.0, "c", 301, "dir", ((FE1, 0.7), ("fe2", 0.3)))
    assert redirect.text == f"301 from dir: {FE1} q=0.7, fe2 q=0.3"


def test_the_registered_state_owns_its_refresh_deadline_and_a_lost_registrar_drops_it() -> None:
    h = Harness()
    h.cache.save(CacheEntry(USER, FE1, 5061, "tls", 0.0, FE1_IP))
    h.sign_in()
    h.ok(h.pop_request(), expires=600)
    refresh = h.agent._refresh
    assert isinstance(refresh, Refresh)
    # 600 s granted, the profile's margin (or half of it) taken off; the agent's deadline.
    assert 300.0 <= refresh.at - h.now < 600.0
    assert h.agent.deadline_besides_cycles() == refresh.at
    assert h.agent.registrar_flow is not None
    h.flow_failed(h.agent.registrar_flow)
    assert h.agent._refresh is None  # waiting out the loss instead (a LossTimer)
    assert h.agent._loss is not None
    assert h.agent.deadline_besides_cycles() == h.agent._loss.at


def test_a_round_is_one_object_made_new_with_the_session() -> None:
    h = Harness()
    h.sign_in()
    first = h.agent.round
    assert isinstance(first, Round)
    assert first.loud  # the user watches the sign-in round
    assert first.plan == []  # discovery taken out of the plan and started
    h.sign_out()
    assert h.agent.round is not first
    assert not h.agent.round.loud
    assert h.agent.round.plan == [] and h.agent.round.redirect_depth == 0
