"""Coasting (World.coast) skips idle keep-alives and heartbeats without changing behaviour.

Every comparison runs the same case twice, once simulating every packet (``coast=False``)
and once coasting, and requires the same trace, entry for entry and in the same order, the
same verdicts, and every client's and pool's generator in the same state at the end (a
skipped keep-alive, probe or heartbeat round draws what the real one would have drawn).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from emulator.cli import main
from emulator.fuzz.case import ClientDraw, FaultDraw, FuzzCase, PoolDraw, SrvDraw, run_case
from emulator.fuzz.strategies import cases
from emulator.scenario.model import load_scenario
from emulator.scenario.runner import finish, prepare
from emulator.sim.deployment import ClientSpec, SimulatedDeployment
from emulator.sim.trace import TraceEntry
from emulator.topology import default_topology, parse_topology

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.toml"))


def canonical(trace: tuple[TraceEntry, ...] | list[TraceEntry]) -> list[str]:
    """Trace lines, in order."""
    return [entry.line() for entry in trace]


def draws(sim: SimulatedDeployment) -> dict[str, tuple[object, int]]:
    """Per client, its generator's state and CSeq counter; per pool, its generator's state: a
    skipped probe or heartbeat round must draw and count as the real one would, or later
    identifiers (and backoff delays) differ.  Call it after ``world.settle()``.

    Pools that another pool heartbeats are left out: a skipped heartbeat is never received,
    so the To tag of its answer is not drawn (docs/simulation.md, Coasting: what differs).
    """
    out = {name: (agent.rng.getstate(), agent.requests.cseq) for name, agent in sim.agents.items()}
    running = [fqdn for fqdn, state in sim.pool_states().items() if state != "stopped"]
    for fqdn in running:  # a stopped pool has no core (and no generator) until it starts
        if sim.topology.pool(fqdn).backup is None:  # else its backup heartbeats it (or did)
            out[fqdn] = (sim.pool(fqdn).rng.getstate(), 0)
    return out


def within_instants(lines: list[str]) -> list[str]:
    """Trace lines sorted within each instant (the time column), instants in order: the
    strongest equivalence that holds for every run (docs/simulation.md, Coasting: two pools
    whose monitors fall due at the same instant may log in either order)."""
    return sorted(lines, key=lambda line: (float(line.split()[0]), line))


def run(
    path: Path, seed: int | None, coast: bool
) -> tuple[list[str], list[bool], int, int, dict[str, tuple[object, int]]]:
    scenario = load_scenario(path)
    deployment = prepare(scenario, seed=seed, invariants=True, coast=coast)
    deployment.run_until(scenario.duration)
    result = finish(scenario, deployment)
    world = deployment.world
    world.settle()
    skipped = world.pings_coasted + world.heartbeats_coasted + world.probes_coasted
    verdicts = [r.passed for r in result.results]
    return canonical(result.trace), verdicts, world.events_processed, skipped, draws(deployment)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
@pytest.mark.parametrize("seed", [None, 11])
def test_shipped_scenarios_are_the_same_with_and_without_coasting(
    path: Path, seed: int | None
) -> None:
    trace, verdicts, events, _skipped, drawn = run(path, seed, coast=True)
    full_trace, full_verdicts, full_events, full_skipped, full_drawn = run(path, seed, coast=False)
    assert full_skipped == 0
    assert trace == full_trace
    assert verdicts == full_verdicts
    assert drawn == full_drawn
    assert events <= full_events


def test_coasting_skips_most_of_an_idle_hour() -> None:
    """Two registered clients and mutual heartbeats for an hour: a few dozen events, not
    thousands, and the clients' state is the same at the end."""

    def hour(coast: bool) -> SimulatedDeployment:
        sim = SimulatedDeployment(
            default_topology(),
            [
                ClientSpec("ClientUser1", "sip:clientuser1@contoso.test"),
                ClientSpec("ClientUser2", "sip:clientuser2@contoso.test"),
            ],
            seed=5,
            coast=coast,
        )
        sim.sign_in("ClientUser1")
        sim.sign_in("ClientUser2")
        sim.run_until(3600)
        sim.world.settle()
        return sim

    fast, full = hour(True), hour(False)
    assert fast.world.pings_coasted > 300  # 2 clients x 3600 s / 20 s, less the sign-in
    assert fast.world.heartbeats_coasted > 1000  # 2 pools x 3600 s / 5 s
    assert fast.world.events_processed * 20 < full.world.events_processed
    for name in ("ClientUser1", "ClientUser2"):
        a, b = fast.agents[name], full.agents[name]
        assert (a.state, a.registrar, a.mode) == (b.state, b.registrar, b.mode)
    # Asking for a pool brings it up to date: its monitors heard the peer just now.
    for fqdn in ("fe1.contoso.test", "fe2.contoso.test"):
        (fast_peer,) = fast.pool(fqdn).status().peers.values()
        assert fast_peer == "up"


def test_a_fault_during_coasting_is_detected_as_without_it() -> None:
    """fe2 goes silent after 50 minutes of coasting: ClientUser2 signs out, fails over and
    comes back at the same instants as when every packet is simulated."""

    def run_case_(coast: bool) -> list[str]:
        sim = SimulatedDeployment(
            default_topology(),
            [ClientSpec("ClientUser2", "sip:clientuser2@contoso.test")],
            seed=9,
            coast=coast,
        )
        sim.sign_in("ClientUser2")
        sim.world.call_at(3000.3, lambda: sim.disable_nic("fe2.contoso.test"))
        sim.world.call_at(3400.7, lambda: sim.enable_nic("fe2.contoso.test"))
        sim.run_until(4000)
        return canonical(sim.world.trace)

    fast, full = run_case_(True), run_case_(False)
    assert fast == full
    assert any("FAILED OVER" in line for line in fast)
    assert any("ClientUser2" in line and "limited" in line for line in fast)


def test_skipped_heartbeat_rounds_draw_what_sent_ones_draw() -> None:
    """fe2 backs up fe1 (and nobody backs up fe2, so only fe2 heartbeats): its rounds are
    skipped for most of an hour, through an outage of fe1 and a failback whose NOTIFY fe2
    builds after coasting, yet its generator ends where the real rounds leave it, so every
    later Call-ID, tag and branch of fe2 is the same as when every packet is simulated."""
    text = (ROOT / "topologies" / "r1-lab.toml").read_text()
    one_way = text.replace(
        'address = "127.0.0.12"\nbackup = "fe1.contoso.test"\n', 'address = "127.0.0.12"\n'
    )
    assert one_way != text
    topology = parse_topology(one_way)

    def hour(coast: bool) -> SimulatedDeployment:
        sim = SimulatedDeployment(
            topology,
            [ClientSpec("ClientUser1", "sip:clientuser1@contoso.test")],
            seed=3,
            coast=coast,
        )
        sim.sign_in("ClientUser1")
        sim.world.call_at(1000.3, lambda: sim.disable_nic("fe1.contoso.test"))
        sim.world.call_at(1400.7, lambda: sim.enable_nic("fe1.contoso.test"))
        sim.run_until(3600)
        sim.world.settle()
        return sim

    fast, full = hour(True), hour(False)
    assert fast.world.heartbeats_coasted > 500
    assert full.world.heartbeats_coasted == 0
    assert canonical(fast.world.trace) == canonical(full.world.trace)
    assert any("FAILED BACK" in line for line in canonical(full.world.trace))
    fe2 = "fe2.contoso.test"
    assert fast.pool(fe2).rng.getstate() == full.pool(fe2).rng.getstate()
    assert draws(fast) == draws(full)
    assert fe2 in draws(fast)


EXAMPLE = FuzzCase(
    pools=(PoolDraw(backup=1, users=4), PoolDraw(backup=0, users=4), PoolDraw(backup=0)),
    srv=(SrvDraw(0, priority=0), SrvDraw(1, priority=10)),
    clients=tuple(ClientDraw(user=i) for i in range(6)),
    faults=(FaultDraw("outage", 1200.0, 1200.0, a=0),),
    failover=30.0,
    failback=40.0,
    seed=4,
)


def run_through(case: FuzzCase, coast: bool) -> SimulatedDeployment:
    """The case's scenario run to its end (without run_case's liveness decision)."""
    scenario = case.scenario()
    deployment = prepare(scenario, invariants=True, coast=coast)
    deployment.run_until(scenario.duration)
    deployment.world.settle()
    return deployment


def test_a_fuzz_case_with_an_outage_is_the_same_with_and_without_coasting() -> None:
    fast, full = run_case(EXAMPLE), run_case(EXAMPLE, coast=False)
    assert canonical(fast.result.trace) == canonical(full.result.trace)
    assert fast.failures == full.failures
    assert fast.result.violations == full.result.violations


def test_skipped_failback_probes_draw_and_count_as_sent_ones() -> None:
    """During the outage the clients of the silent pool probe it from their backup every
    ~92 s; coasting skips those probes, yet leaves every client's generator and CSeq where
    the real OPTIONS left them."""
    fast, full = run_through(EXAMPLE, True), run_through(EXAMPLE, False)
    assert fast.world.probes_coasted >= 4 * 10  # 4 clients x ~12 probes in 1200 s
    assert full.world.probes_coasted == 0
    assert canonical(fast.world.trace) == canonical(full.world.trace)
    assert draws(fast) == draws(full)


@settings(
    derandomize=True,
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(cases(max_pools=4, max_clients=3))
def test_drawn_fuzz_cases_are_the_same_with_and_without_coasting(case: FuzzCase) -> None:
    fast, full = run_case(case), run_case(case, coast=False)
    assert canonical(fast.result.trace) == canonical(full.result.trace)
    assert fast.failures == full.failures
    fast_sim, full_sim = run_through(case, True), run_through(case, False)
    assert draws(fast_sim) == draws(full_sim)


class Lockstep(RuleBasedStateMachine):
    """Two simulators of the R1 lab, one coasting and one not, driven by the same faults,
    client actions and waits: after every step their traces and clients are the same."""

    POOLS = ("fe1.contoso.test", "fe2.contoso.test")
    CLIENTS = ("one", "two")

    def __init__(self) -> None:
        super().__init__()
        self.sims: tuple[SimulatedDeployment, SimulatedDeployment] | None = None

    @initialize(seed=st.integers(0, 100))
    def build(self, seed: int) -> None:
        topology = parse_topology((ROOT / "topologies" / "r1-lab.toml").read_text())
        specs = [
            ClientSpec("one", "sip:clientuser1@contoso.test"),
            ClientSpec("two", "sip:clientuser2@contoso.test"),
        ]
        self.sims = (
            SimulatedDeployment(topology, specs, seed=seed, coast=True),
            SimulatedDeployment(topology, specs, seed=seed, coast=False),
        )
        for sim in self.sims:
            for name in self.CLIENTS:
                sim.sign_in(name)

    def _both(self) -> tuple[SimulatedDeployment, SimulatedDeployment]:
        assert self.sims is not None
        return self.sims

    @rule(pool=st.sampled_from(POOLS), silent=st.booleans())
    def fail(self, pool: str, silent: bool) -> None:
        for sim in self._both():
            sim.disable_nic(pool) if silent else sim.stop_pool(pool)

    @rule(pool=st.sampled_from(POOLS))
    def recover(self, pool: str) -> None:
        for sim in self._both():
            sim.enable_nic(pool)
            sim.start_pool(pool)

    @rule(client=st.sampled_from(CLIENTS), pool=st.sampled_from(POOLS))
    def cut(self, client: str, pool: str) -> None:
        for sim in self._both():
            sim.partition(client, pool)

    @rule()
    def heal(self) -> None:
        for sim in self._both():
            sim.heal()

    @rule(client=st.sampled_from(CLIENTS), action=st.sampled_from(("out", "in", "restart")))
    def client_action(self, client: str, action: str) -> None:
        for sim in self._both():
            if action == "out":
                sim.sign_out(client)
            elif action == "in" and not sim.agents[client].wanted:
                sim.sign_in(client)
            elif action == "restart":
                sim.restart(client)

    @rule(seconds=st.sampled_from((0.0005, 1.0, 4.999, 10.0, 31.0, 45.0, 120.0, 600.0)))
    def wait(self, seconds: float) -> None:
        for sim in self._both():
            sim.run_until(sim.world.now + seconds)

    @rule()
    def settle(self) -> None:
        """Bring the coasting one up to date: its clients drew and counted the same."""
        fast, full = self._both()
        fast.world.settle()
        assert draws(fast) == draws(full)

    @invariant()
    def same(self) -> None:
        if self.sims is None:
            return
        fast, full = self.sims
        fast_lines, full_lines = canonical(fast.world.trace), canonical(full.world.trace)
        assert within_instants(fast_lines) == within_instants(full_lines)
        for name in self.CLIENTS:
            a, b = fast.agents[name], full.agents[name]
            assert (a.state, a.registrar, a.mode) == (b.state, b.registrar, b.mode)


Lockstep.TestCase.settings = settings(
    derandomize=True,
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
TestLockstep = Lockstep.TestCase


def test_sipemu_run_no_coast_gives_the_same_report(capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "scenarios" / "r1-test2-clientuser2-fails-over-and-back.toml"
    assert main(["run", str(path)]) == 0
    coasting = capsys.readouterr().out
    assert main(["run", str(path), "--no-coast"]) == 0
    full = capsys.readouterr().out
    assert canonical_text(coasting) == canonical_text(full)
    assert "FAILED OVER" in full
    assert main(["run", str(path), "--realtime", "--no-coast"]) == 2
    assert "--no-coast applies to virtual-time runs only" in capsys.readouterr().err


def canonical_text(report: str) -> list[str]:
    """A printed report's lines, in order."""
    return report.splitlines()
