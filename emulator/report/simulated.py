"""A scenario run in virtual time with every packet recorded, ready for a report.

The same run as :func:`emulator.scenario.runner.run_scenario` (``prepare``, then the world
runs to the scenario's end, then ``finish``), with a tap on the simulated world
(``World.tap``, emulator/wire) that keeps every packet sent.  Packets that coasting skips
(idle keep-alives and heartbeats, docs/simulation.md) are never sent, so they are not in the
report either; ``coast=False`` (``sipemu run --no-coast``) puts every one on the ladder.
"""

from __future__ import annotations

from emulator.report.model import Participants, RunRecord
from emulator.scenario.model import Scenario
from emulator.scenario.runner import RunResult, finish, prepare
from emulator.sim.deployment import SimulatedDeployment
from emulator.wire import PacketLog, Taps

__all__ = ["record_of_simulation", "simulate"]


def simulate(
    scenario: Scenario,
    *,
    seed: int | None = None,
    verbose: bool = False,
    invariants: bool = False,
    coast: bool = True,
    messages: bool = False,
    taps: Taps | None = None,
) -> RunRecord:
    """Run ``scenario`` in virtual time with a :class:`PacketLog` on its world (and ``taps``,
    other sinks, told of the same packets and closed at the end); the record of the run.
    Like any run that records its packets it does not coast (:func:`prepare`); ``messages``
    as there."""
    log = PacketLog()
    sinks = taps if taps is not None else Taps()
    sinks.add(log)
    deployment = prepare(
        scenario,
        seed=seed,
        verbose=verbose,
        invariants=invariants,
        coast=coast,
        messages=messages,
        tap=sinks,
    )
    try:
        deployment.run_until(scenario.duration)
    finally:
        deployment.world.tap = None
        sinks.close()
    return record_of_simulation(finish(scenario, deployment), deployment, log)


def record_of_simulation(
    result: RunResult, deployment: SimulatedDeployment, log: PacketLog
) -> RunRecord:
    """The record of a simulated run: its result, its clients' and hosts' names, its packets."""
    clients = {name: deployment.client_address(name) for name in deployment.agents}
    return RunRecord(
        result,
        Participants.of(deployment.topology, clients),
        log.packets,
        virtual=True,
    )
