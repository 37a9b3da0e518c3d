"""The failover monitor (emulator/registrar/monitor.py) driven by hand from now = 0.0."""

from __future__ import annotations

import itertools

import pytest

from emulator.registrar.events import (
    FailbackStarted,
    FailedBack,
    FailedOver,
    PeerHeartbeatLost,
    PeerHeartbeatRestored,
)
from emulator.registrar.monitor import (
    _TABLE,
    Observed,
    PeerMonitor,
    PeerState,
    SendUsersHome,
    Trigger,
)
from emulator.sip.errors import LocalProtocolError

PEER, POOL = "fe2.contoso.test", "fe1.contoso.test"


def monitor() -> PeerMonitor:
    return PeerMonitor(PEER, failover_interval=30.0, failback_interval=40.0, now=0.0, pool=POOL)


def test_a_missed_heartbeat_is_reported_once_and_an_answer_restores() -> None:
    m = monitor()
    assert m.answered(5.0) == ()
    assert m.missed(15.0) == (PeerHeartbeatLost(15.0, POOL, PEER, 5.0),)
    assert m.missed(20.0) == ()  # still lost: nothing new
    assert m.answered(25.0) == (PeerHeartbeatRestored(25.0, POOL, PEER),)
    assert m.state is PeerState.UP
    assert m.next_deadline() == 55.0


def test_silence_for_the_failover_interval_fails_over_then_answers_fail_back() -> None:
    m = monitor()
    m.missed(10.0)
    assert m.handle_timer(29.9) == ()
    assert m.handle_timer(30.0) == (FailedOver(30.0, POOL, PEER),)
    assert m.serving_users
    assert m.next_deadline() is None  # failed over: waits for an answer
    assert m.answered(100.0) == (PeerHeartbeatRestored(100.0, POOL, PEER),)
    assert m.state is PeerState.RECOVERING and m.serving_users
    assert m.next_deadline() == 140.0
    assert m.handle_timer(140.0) == (
        FailbackStarted(140.0, POOL, PEER),
        SendUsersHome(140.0, PEER),
        FailedBack(140.0, POOL, PEER),
    )
    assert m.state is PeerState.UP and not m.serving_users


def test_a_miss_while_recovering_closes_the_failback_window_silently() -> None:
    m = monitor()
    m.handle_timer(30.0)
    m.answered(50.0)
    assert m.missed(60.0) == ()  # back to failed-over, no second FailedOver
    assert m.state is PeerState.FAILED_OVER and m.recovering_since is None
    m.answered(70.0)
    assert m.next_deadline() == 110.0  # the window starts again


@pytest.mark.parametrize(
    ("state", "observed"),
    [(s, o) for s, o in itertools.product(PeerState, Observed) if (s, o) not in _TABLE],
)
def test_every_input_missing_from_the_table_raises_and_changes_nothing(
    state: PeerState, observed: Observed
) -> None:
    m = monitor()
    m.state = state
    m.recovering_since = 7.0
    with pytest.raises(LocalProtocolError):
        m.observe(observed, 99.0)
    assert (m.state, m.last_answer_at, m.recovering_since) == (state, 0.0, 7.0)


def test_the_table_names_what_each_transition_triggers() -> None:
    assert _TABLE[PeerState.RECOVERING, Observed.FAILBACK_INTERVAL_ELAPSED] == (
        PeerState.UP,
        Trigger.FAIL_BACK,
    )
    assert _TABLE[PeerState.UP, Observed.FAILOVER_INTERVAL_ELAPSED][1] is Trigger.FAIL_OVER
    assert _TABLE[PeerState.RECOVERING, Observed.HEARTBEAT_MISSED] == (
        PeerState.FAILED_OVER,
        Trigger.ABANDON_RECOVERY,
    )
    # Only failback sends users home; only a real state change triggers anything.
    for (state, _), (after, trigger) in _TABLE.items():
        if trigger is not Trigger.NOTHING:
            assert after is not state
    assert {t for _, t in _TABLE.values()} == set(Trigger)
