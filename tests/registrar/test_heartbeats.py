"""The heartbeat cycle (emulator/registrar/heartbeats.py) skipped and caught up by hand: it
ends where the real rounds leave the pool (emulator/coasting.py's rules)."""

from __future__ import annotations

import random

from emulator.coasting import Answered
from emulator.registrar.outgoing import Outbox, Outgoing
from tests.registrar.harness import World, make_world

FE1, FE2 = "fe1.contoso.test", "fe2.contoso.test"


def silent_fe2(until: float) -> World:
    """fe1 backs up fe2, whose heartbeats vanish from the start."""
    world = make_world(seed=3)
    world.pools[FE1].heartbeater.trace = False  # traced heartbeats are never coasted
    world.silenced.add(FE2)
    world.run_until(until)
    return world


def test_rounds_skipped_to_a_silent_peer_leave_the_pool_as_real_ones() -> None:
    coasted, real = silent_fe2(12.0), silent_fe2(12.0)
    pool = coasted.pools[FE1]
    cycle = pool.heartbeater
    assert pool.cycles == (cycle,)
    assert pool.peer_state(FE2).value == "heartbeat-lost"
    (flow,) = cycle.coast_flows() or ()
    assert cycle.begin_coast({flow: None}, pool.deadline_besides_cycles())
    assert cycle.coasting and pool.next_deadline() == 30.0  # the failover; no rounds
    cycle.catch_up(21.0, inclusive=True)  # rounds 15 and 20: drawn, still coasting
    assert cycle.coasting
    assert cycle.end_coast(29.0, inclusive=True) == []  # round 25's heartbeat vanished
    assert cycle.rounds_coasted == 3
    real.run_until(29.0)
    other = real.pools[FE1]
    assert pool.rng.getstate() == other.rng.getstate()
    # The heartbeat of round 25, pending, is the very request the real round sent.
    mine, theirs = cycle._beats[FE2], other.heartbeater._beats[FE2]
    assert (mine.sent_at, mine.missed_at) == (theirs.sent_at, theirs.missed_at) == (25.0, 30.0)
    assert mine.transaction.data == theirs.transaction.data
    assert mine.transaction.next_deadline() == theirs.transaction.next_deadline()
    assert pool.next_deadline() == other.next_deadline()


def test_a_cycle_does_not_coast_when_an_answer_would_change_a_monitor() -> None:
    world = silent_fe2(12.0)  # fe2's monitor at fe1: heartbeat-lost
    pool = world.pools[FE1]
    (flow,) = pool.heartbeater.coast_flows() or ()
    assert not pool.heartbeater.begin_coast({flow: Answered(0.001, 0.001)}, None)
    assert not pool.heartbeater.coasting


def test_skipping_identifiers_leaves_the_generator_as_drawing_them_does() -> None:
    # The shortcut a coasting heartbeater takes, against the slow path it stands for.
    for count in (0, 1, 2, 7, 700, 1500):
        slow = Outgoing("fe2.example.com", random.Random(count), Outbox())
        fast = Outgoing("fe2.example.com", random.Random(count), Outbox())
        for _ in range(count):
            slow.identifiers()
        fast.skip_identifiers(count)
        assert fast.rng.getstate() == slow.rng.getstate()
        assert fast.identifiers() == slow.identifiers()
