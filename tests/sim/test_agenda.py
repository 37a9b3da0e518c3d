"""The agenda's order (emulator/sim/agenda.py): by time, then by order of scheduling, also for
entries scheduled while an instant runs and for steps scheduled in the past."""

from __future__ import annotations

import heapq
from collections.abc import Callable

from emulator.sim.agenda import CALL, Agenda
from emulator.sim.world import World


def drain(agenda: Agenda) -> list[tuple[float, object]]:
    out: list[tuple[float, object]] = []
    while agenda.times:
        when = heapq.heappop(agenda.times)
        out.extend((when, entry[1]) for entry in agenda.entries.pop(when))
    return out


def test_entries_run_by_time_then_in_the_order_they_were_scheduled() -> None:
    agenda = Agenda()
    for when, name in [(2.0, "c"), (1.0, "a"), (2.0, "d"), (1.0, "b"), (0.5, "first")]:
        agenda.push(when, (CALL, name))
    assert drain(agenda) == [(0.5, "first"), (1.0, "a"), (1.0, "b"), (2.0, "c"), (2.0, "d")]
    assert agenda.entries == {}


def test_the_world_runs_what_an_instant_schedules_at_that_instant_after_it() -> None:
    world = World(1)
    ran: list[tuple[float, str]] = []

    def step(name: str, *then: tuple[float, str]) -> Callable[[], None]:
        def run() -> None:
            ran.append((world.now, name))
            for when, other in then:
                world.call_at(when, step(other))

        return run

    world.call_at(1.0, step("a", (1.0, "a2"), (0.5, "past")))
    world.call_at(1.0, step("b"))
    world.call_at(2.0, step("c"))
    world.run_until(1.5)
    # "past" was scheduled before now: it runs first, at now; then the rest of 1.0 in order
    assert ran == [(1.0, "a"), (1.0, "past"), (1.0, "b"), (1.0, "a2")]
    assert world.now == 1.5
    world.run_until(3.0)
    assert ran[-1] == (2.0, "c")
