"""Pool failover and failback, new pairings and timers on the live deployment: the same outcomes,
plans and pool lines as the simulator's for the same actions (emulator.effects), real sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.effects import PoolState, TellReconfigured, plan
from emulator.live.deployment import Deployment
from emulator.operations import Operations
from emulator.scenario.model import parse_scenario
from emulator.scenario.realtime import run_realtime
from emulator.sim.deployment import SimulatedDeployment
from emulator.topology import parse_topology
from tests.live.test_admin import FE1, FE2, MUTUAL, _told

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.live

ACTIONS: list[tuple[str, dict[str, object]]] = [
    ("set-timers", {"failover_interval": 60, "heartbeat_interval": 2}),
    ("set-backup", {"target": FE2, "backup": "none"}),
    ("pool-failover", {"target": FE2}),  # refused: no backup pool
    ("set-backup", {"target": FE2, "backup": FE1}),
    ("pool-failover", {"target": FE2, "takes": 0}),  # refused unless fe1 runs and is reachable
    ("pool-failback", {"target": FE2}),
]


@pytest.mark.parametrize("fe1", ["running", "silent", "stopped"])
async def test_both_drivers_fail_over_and_back_alike(fe1: PoolState) -> None:
    topology = parse_topology(MUTUAL, "<mutual>")
    sim = SimulatedDeployment(topology)
    events: list[tuple[str, object]] = []
    live = Deployment(topology, seed=1, on_event=lambda fqdn, e: events.append((fqdn, e)))
    async with live:
        if fe1 == "silent":
            sim.disable_nic(FE1)
            await live.disable_nic(FE1)
        elif fe1 == "stopped":
            sim.stop_pool(FE1)
            await live.stop_pool(FE1)
        states: dict[str, PoolState] = {FE1: fe1, FE2: "running"}
        assert sim.pool_states() == live.pool_states() == states
        ops = Operations(topology, pool_up=lambda fqdn: states[fqdn] == "running")
        outcomes = []
        for action, params in ACTIONS:
            expected = ops.perform(action, params, 0.0)
            traced = len(sim.world.trace)
            simulated = sim.admin(action, **params)
            del events[:]
            done = await live.admin(action, **params)
            assert (done.ok, done.detail) == (simulated.ok, simulated.detail), action
            assert (done.ok, done.detail) == (expected.ok, expected.detail), action
            effects = plan(expected, states)
            assert sim.plan(simulated) == live.plan(done) == effects, action
            in_sim = [
                (entry.source, entry.text)
                for entry in sim.world.trace[traced:]
                if entry.kind == "pool" and not entry.text.startswith("heartbeat ")
            ]
            in_live = [told for fqdn, e in events if (told := _told(fqdn, e)) is not None]
            assert in_sim == in_live, action
            outcomes.append(done.ok)
            if done.ok:  # told to every running pool, silent or not; a stopped one nothing
                told = {t.pool for t in effects.tell if isinstance(t, TellReconfigured)}
                assert told == {fqdn for fqdn, state in states.items() if state != "stopped"}
        # fe1 hosts the CMS: with fe1 down, no configuration change is made at all.
        up = fe1 == "running"
        assert outcomes == [up, up, False, up, up, up]
        for deployment_pool in (sim.pool(FE2), live.pool(FE2)):
            assert deployment_pool is not None
            interval = deployment_pool.resiliency.failover_detection_interval
            assert interval == (60.0 if up else topology.resiliency.failover_detection_interval)
        if up:
            lines = [text for source, text in in_sim if source == FE2]
            assert "pool failback from fe1.contoso.test started" in lines
            fe1_sim, fe1_live = sim.pool(FE1), live.pool(FE1)
            assert fe1_live is not None
            assert fe1_sim.status().peers == fe1_live.status().peers == {FE2: "up"}


# The CMS on fe2: fe1's failover is the administrator's to make, whatever state fe1 is in.
FE1_LOST = [
    ("set-timers", {"failback_interval": 30}),
    ("pool-failover", {"target": FE1, "takes": 0}),
    ("pool-failback", {"target": FE1, "takes": 5}),  # refused unless fe1 is back online
]


@pytest.mark.parametrize("fe1", ["running", "silent", "stopped"])
async def test_a_failed_pool_is_failed_over_alike_in_every_state(fe1: PoolState) -> None:
    topology = parse_topology(MUTUAL + '\n[cms]\npool = "fe2.contoso.test"\n', "<mutual>")
    sim = SimulatedDeployment(topology)
    events: list[tuple[str, object]] = []
    live = Deployment(topology, seed=1, on_event=lambda fqdn, e: events.append((fqdn, e)))
    async with live:
        if fe1 == "silent":
            sim.disable_nic(FE1)
            await live.disable_nic(FE1)
        elif fe1 == "stopped":
            sim.stop_pool(FE1)
            await live.stop_pool(FE1)
        outcomes = []
        for action, params in FE1_LOST:
            traced = len(sim.world.trace)
            simulated = sim.admin(action, **params)
            del events[:]
            done = await live.admin(action, **params)
            assert (done.ok, done.detail) == (simulated.ok, simulated.detail), action
            assert sim.plan(simulated) == live.plan(done), action
            in_sim = [
                (entry.source, entry.text)
                for entry in sim.world.trace[traced:]
                if entry.kind == "pool" and not entry.text.startswith("heartbeat ")
            ]
            in_live = [told for fqdn, e in events if (told := _told(fqdn, e)) is not None]
            assert in_sim == in_live, action
            outcomes.append((action, done.ok, in_sim))
        (_, timers, _), (_, over, said), (_, back, _) = outcomes
        assert timers and over and back == (fe1 == "running")
        assert (
            FE2,
            "pool failover of fe1.contoso.test complete: full function for its users",
        ) in said
        signed_out = (FE1, "pool failed over to fe2.contoso.test: signing its users out")
        assert (signed_out in said) == (fe1 != "stopped")  # a silent pool is told too


# The shipped scenario's story on real sockets with the fast lab's timers (failover detection
# 2 s): resiliency mode at fe1 until the failover completes, full function there, home in
# resiliency mode until the failback completes, then full function.
REALTIME = """
description = "pool failover and failback on real sockets, compressed"
topology = "../topologies/fast.toml"
seed = 7
duration = 24

[[client]]
name = "ClientUser2"
user = "sip:clientuser2@contoso.test"
profile = "lync2013"
options = { keepalive_interval = 1, pong_timeout = 1, failover_detection_timeout = 1 }

[[step]]
at = 0
action = "sign-in"
client = "ClientUser2"

[[step]]
at = 3
action = "stop-pool"
target = "fe2.contoso.test"

[[step]]
at = 4
action = "pool-failover"
target = "fe2.contoso.test"
takes = 5
expect = "ok"

[[step]]
at = 14
action = "start-pool"
target = "fe2.contoso.test"

[[step]]
at = 16
action = "pool-failback"
target = "fe2.contoso.test"
takes = 3
expect = "ok"

[[expect]]
client = "ClientUser2"
by = 8.5
state = "registered"
registrar = "fe1.contoso.test"
mode = "limited"

[[expect]]
client = "ClientUser2"
always = [10, 16]
registrar = "fe1.contoso.test"
mode = "full"

[[expect]]
client = "ClientUser2"
always = [20, 24]
registrar = "fe2.contoso.test"
mode = "full"
"""


def test_a_pool_failover_and_failback_in_realtime() -> None:
    scenario = parse_scenario(REALTIME, "<pool-failover-live>", base=ROOT / "scenarios")
    result = run_realtime(scenario, time_scale=4)
    assert result.passed, result.report()
    admin = [e.text for e in result.trace if e.source == "fe2.contoso.test"]
    assert "pool failback from fe1.contoso.test complete" in admin
