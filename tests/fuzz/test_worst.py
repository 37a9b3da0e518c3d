"""sipemu worst: targeted search for the worst outage, its replay files, and DR actions drawn
with predicted outcomes (emulator/fuzz/worst.py, emulator/fuzz/case.py dr_plan)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from emulator.cli import main
from emulator.fuzz.analysis import classify
from emulator.fuzz.case import ClientDraw, DrDraw, FaultDraw, FuzzCase, PoolDraw, SrvDraw, run_case
from emulator.fuzz.strategies import cases
from emulator.fuzz.worst import (
    Schedule,
    Worst,
    WorstError,
    horizon,
    measure,
    parse_budget,
    run_schedule,
    schedule_steps,
    search_worst,
    simplify,
    write_replays,
)
from emulator.scenario.model import load_scenario
from emulator.scenario.runner import run_scenario
from emulator.sim.deployment import ClientSpec, SimulatedDeployment
from emulator.topology import default_topology, load_topology, parse_topology

EXAMPLES = Path(__file__).resolve().parents[2] / "topologies"

# One Front End pool, no backup, one SRV record: nothing can serve its user while fe1 is out.
LONE_POOL = """
domain = "contoso.test"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
[[user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"
[[dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
priority = 0
weight = 0
port = 5061
target = "fe1.contoso.test"
"""


def lone_pool():  # type: ignore[no-untyped-def]
    return parse_topology(LONE_POOL, "<lone pool>")


def test_a_pool_outage_without_backup_signs_its_user_out_for_its_whole_length() -> None:
    topology = lone_pool()
    # Analytically: fe1 out in [600, 900) with no backup and one SRV record: alice is signed
    # out from when her client notices (keep-alive, pong timeout: under a minute) until fe1
    # answers again, at 900 at the earliest.
    schedule = Schedule((False,), (FaultDraw("outage", 600.0, 300.0, a=0),))
    result = run_schedule(topology, schedule, "lync2010")
    end = horizon(topology, "lync2010")
    (outage,) = measure(result, end, {"C1": "sip:alice@contoso.test"})
    assert 600.0 <= outage.start <= 660.0
    assert outage.end >= 900.0 and not outage.stranded


def test_worst_finds_at_least_the_known_worst_outage_of_a_lone_pool() -> None:
    topology = lone_pool()
    report = search_worst(topology, source="<lone pool>", examples=15, seed=3)
    end = horizon(topology, "lync2010")
    worst = report.per_user["sip:alice@contoso.test"]
    # The known worst: fe1 silent for good from 600 s strands alice from then to the end.
    assert worst.outage.stranded
    assert worst.outage.duration >= end - 660.0
    single = report.worst_single
    assert single is not None and single.outage.duration >= end - 660.0
    assert report.signed_out_fraction >= (end - 660.0) / end
    assert report.examples == 15


def test_the_search_finds_worse_than_the_single_failures_it_starts_with() -> None:
    # On R1's lab the single failures alone leave clientuser2 (homed on fe2, backed up by
    # fe1) with a short outage; the search must find a schedule worse for it than any single
    # failure of the starting set.
    topology = default_topology()
    start = search_worst(topology, examples=7, seed=1)  # the 7 starting schedules only
    assert start.examples == 7
    assert search_worst(topology, examples=2, seed=1).examples == 2
    searched = search_worst(topology, examples=60, seed=1)
    user = "sip:clientuser2@contoso.test"
    before = start.per_user[user].outage.duration if user in start.per_user else 0.0
    assert searched.per_user[user].outage.duration > before


def test_worst_finds_the_director_single_point_of_failure_that_check_reports() -> None:
    # topologies/director-spof.toml: dir1 alone behind the SRV records; `sipemu check` shows
    # every client signing in again while dir1 is down signed out (tests/fuzz/test_check.py).
    topology = load_topology(EXAMPLES / "director-spof.toml")
    report = search_worst(topology, source="director-spof", examples=10, seed=0)
    single = report.worst_single
    assert single is not None and single.outage.stranded
    (fault,) = single.schedule.faults
    assert topology.pools[fault.a].fqdn == "dir1.contoso.test"
    assert single.schedule.restarts  # the clients signed in again during the failure
    assert set(report.stranded) == {"sip:alice@contoso.test", "sip:bob@contoso.test"}


def test_simplify_removes_what_the_worst_outage_does_not_need() -> None:
    topology = lone_pool()
    users = {"C1": "sip:alice@contoso.test"}
    noisy = Schedule(
        (False,),
        (FaultDraw("dns-fail", 100.0, 50.0), FaultDraw("outage", 600.0, None, a=0)),
        (DrDraw("export-contacts", 302.5),),
    )
    end = horizon(topology, "lync2010")
    (outage,) = measure(run_schedule(topology, noisy, "lync2010"), end, users)
    simpler, runs = simplify(topology, Worst(outage, noisy), "lync2010")
    assert simpler.schedule.faults == (FaultDraw("outage", 600.0, None, a=0),)
    assert simpler.schedule.dr == ()
    assert simpler.outage == outage and runs <= 60


def test_each_worst_outage_replays_to_the_same_duration(tmp_path: Path) -> None:
    topology = default_topology()
    report = search_worst(topology, examples=12, seed=2)
    for user, worst in list(report.per_user.items()):  # as the command does
        report.per_user[user], _ = simplify(topology, worst, "lync2010", runs=10)
    write_replays(report, tmp_path, "default")
    assert report.per_user
    for user, worst in report.per_user.items():
        scenario = load_scenario(report.files[user])
        result = run_scenario(scenario)
        assert result.passed, result.report()
        outages = [
            o
            for o in measure(result, report.horizon, {worst.outage.client: user})
            if o.start == worst.outage.start
        ]
        assert [o.duration for o in outages] == [worst.outage.duration]


def test_budget_is_examples_or_a_duration_and_says_so_when_neither() -> None:
    assert parse_budget("50") == (50, None)
    assert parse_budget("90s") == (None, 90.0)
    assert parse_budget("10m") == (None, 600.0)
    for bad in ("0", "ten", "-5s", "5x", ""):
        with pytest.raises(WorstError, match="a number of examples"):
            parse_budget(bad)


def test_a_time_budget_ends_the_search() -> None:
    ticks = iter(range(1000))
    report = search_worst(
        default_topology(), examples=None, seconds=3.0, clock=lambda: float(next(ticks))
    )
    assert 1 <= report.examples <= 4


def test_ctrl_c_stops_the_search_with_what_was_found() -> None:
    calls = 0

    def clock() -> float:
        nonlocal calls
        calls += 1
        if calls == 4:  # the deadline, then two schedules; Ctrl-C before the third
            raise KeyboardInterrupt
        return 0.0

    report = search_worst(default_topology(), examples=None, seconds=60.0, clock=clock)
    assert report.interrupted and report.examples == 2
    assert report.per_user  # the first single failure (fe1 silent) signed clientuser1 out


def test_cli_writes_the_report_replays_and_json_and_exits_1_when_stranded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topo = tmp_path / "lone.toml"
    topo.write_text(LONE_POOL)
    out = tmp_path / "out"
    status = main(
        ["worst", str(topo), "--budget", "6", "--out", str(out), "--json", str(tmp_path / "w.json")]
    )
    assert status == 1  # alice is stranded by fe1's permanent outage
    text = capsys.readouterr().out
    assert "worst single-failure outage" in text and "stranded" in text
    data = json.loads((tmp_path / "w.json").read_text())
    assert data["users"]["sip:alice@contoso.test"]["stranded"] is True
    replay = Path(data["users"]["sip:alice@contoso.test"]["replay"])
    assert run_scenario(load_scenario(replay)).passed  # inline topology: no other file needed


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (["--budget", "lots"], "--budget 'lots': a number of examples"),
        (["--profile", "baresp"], "did you mean 'baresip'?"),
        (["/nonexistent/topology.toml"], "/nonexistent/topology.toml"),
        (["nosuch"], "nor a shipped example of that name"),
    ],
)
def test_bad_input_is_a_sentence_and_exit_status_2(
    argv: list[str], sentence: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worst", *argv]) == 2
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err


# -- DR actions in the fuzzer ----------------------------------------------------------------

TWO_PAIRED = (PoolDraw(backup=1), PoolDraw(backup=0))


def _dr_steps(case: FuzzCase) -> list[dict[str, object]]:
    return [s for s in case.steps() if "expect" in s or s["action"].startswith("backend")]


def test_dr_preconditions_are_predicted_from_the_schedule() -> None:
    case = FuzzCase(
        TWO_PAIRED,
        (SrvDraw(0), SrvDraw(1, priority=10)),
        (ClientDraw(0),),
        faults=(FaultDraw("outage", 600.0, 300.0, a=0),),
        dr=(
            DrDraw("import-contacts", 62.5),  # nothing exported yet
            DrDraw("export-contacts", 102.5),
            DrDraw("pool-failback", 122.5, a=1),  # never failed over
            DrDraw("pool-failover", 132.5, a=1, duration=61.0),
            DrDraw("pool-failback", 162.5, a=1, duration=61.0),  # failover not complete
            DrDraw("pool-failback", 202.5, a=1, duration=61.0),
            DrDraw("force-move", 702.5, a=1, b=0),  # the CMS pool fe1 is out
            DrDraw("move-cms", 712.5, a=1),
            DrDraw("force-move", 722.5, a=1, b=0),
            DrDraw("import-contacts", 732.5),
        ),
    )
    expected = [(s["action"], s["expect"]) for s in _dr_steps(case)]
    assert expected == [
        ("import-contacts", "refused"),
        ("export-contacts", "ok"),
        ("pool-failback", "refused"),
        ("pool-failover", "ok"),
        ("pool-failback", "refused"),
        ("pool-failback", "ok"),
        ("force-move", "refused"),
        ("move-cms", "ok"),
        ("force-move", "ok"),
        ("import-contacts", "ok"),
    ]
    outcome = run_case(case)
    assert [f for f in outcome.failures if f[0].startswith("admin-outcome")] == []
    assert outcome.result.violations == ()


def test_the_pool_hosting_the_cms_cannot_be_failed_over() -> None:
    case = FuzzCase(
        TWO_PAIRED,
        (SrvDraw(0),),
        (ClientDraw(0),),
        dr=(DrDraw("pool-failover", 62.5, a=0, duration=61.0),),
    )
    (step,) = _dr_steps(case)
    assert step["expect"] == "refused" and "CMS" in str(step["note"])
    assert run_case(case).result.passed is not None
    assert not [f for f in run_case(case).failures if f[0].startswith("admin-outcome")]


@settings(
    derandomize=True,
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(cases(max_pools=3, max_clients=2, max_dr=4))
def test_drawn_dr_schedules_are_valid_and_their_outcomes_hold(case: FuzzCase) -> None:
    # Valid: every DR step names a pool of the topology and carries its predicted outcome,
    # and the run agrees with every prediction; no safety invariant breaks across them.
    pools = {case.pool_name(i) for i in range(len(case.pools))}
    for step in _dr_steps(case):
        for key in ("target", "from", "to"):
            if key in step:
                assert step[key] in pools
        if not str(step["action"]).startswith("backend-"):
            assert step["expect"] in ("ok", "refused")
    outcome = run_case(case)
    assert [f for f in outcome.failures if f[0].startswith("admin-outcome")] == []
    assert outcome.result.violations == ()


# Regressions: liveness failures the DR fuzzing first labelled emulator bugs.


def test_a_user_force_moved_to_a_pool_without_an_a_record_is_judged_at_its_new_home() -> None:
    # fe1's users moved to fe2, whose name does not resolve: fe1 answers 301 naming fe2.
    # Judged against the static home (fe1, reachable and known) this was an emulator bug.
    case = FuzzCase(
        (PoolDraw(), PoolDraw(a_record=False)),
        (SrvDraw(0),),
        (ClientDraw(0),),
        dr=(DrDraw("force-move", 62.5, a=0, b=0),),
    )
    outcome = run_case(case)
    assert outcome.homes["C1"] == ("fe2.contoso.test", None, False)
    assert [(f.kind, f.key) for f in classify(outcome)] == [
        ("by-design", "registrar-name-unresolvable")
    ]


def test_no_liveness_is_owed_by_a_home_whose_back_end_is_down_to_a_client_without_support() -> None:
    # baresip does not send Supported: ms-userservices-state-notification: with fe1's back end
    # down for good, fe1 answers its refresh 480 (4165, docs/backends.md) and it signs out.
    case = FuzzCase(
        (PoolDraw(),),
        (SrvDraw(0, service="_sip._udp"),),
        (ClientDraw(0, profile="baresip"),),
        dr=(DrDraw("backend-down", 62.5),),
    )
    outcome = run_case(case)
    assert outcome.liveness == {} and classify(outcome) == []
    lync = replace(case, clients=(ClientDraw(0),), srv=(SrvDraw(0),))
    assert "C1" in run_case(lync).liveness  # Lync supports it: limited, but signed in


def test_during_a_pool_failover_the_backup_is_what_serves_in_the_analysis() -> None:
    # Found by the DR fuzzing (shrunk): fe2 failed over to fe1 (no A record), then fe1's
    # users force-moved onto fe2; linphone follows the Director's 301 to fe2, whose 301 names
    # only fe1, which it cannot resolve, and it keeps retrying.  Judged as if fe2 served its
    # users (it was up and known) this was an emulator bug.
    case = FuzzCase(
        (
            PoolDraw(a_record=False, users=2),
            PoolDraw(director=True, users=0),
            PoolDraw(director=True, users=0),
            PoolDraw(backup=0, users=2),
        ),
        (SrvDraw(1, priority=10, weight=10, service="_sip._udp"),),
        (ClientDraw(9, "stale", profile="linphone"),),
        failover=60.0,
        failback=60.0,
        seed=65536,
        dr=(
            DrDraw("pool-failover", 652.5, a=1, b=1, duration=61.0),
            DrDraw("force-move", 922.5, a=0, b=2),
        ),
    )
    outcome = run_case(case)
    assert outcome.homes["C1"] == ("fe2.contoso.test", "fe1.contoso.test", True)
    assert [f.kind for f in classify(outcome)] == ["by-design"]


def test_a_lossy_link_is_drawn_as_link_steps_and_undone() -> None:
    topology = lone_pool()
    schedule = Schedule((False,), (FaultDraw("lossy", 600.0, 300.0, a=0, b=-1, loss=0.9),))
    steps = [s for s in schedule_steps(topology, schedule) if s["action"] == "link"]
    assert [(s["at"], s["b"], s["loss"]) for s in steps] == [(600.0, "C1", 0.9), (900.0, "C1", 0.0)]
    # Keep-alives lost between fe1 and alice: she drops fe1 and registers again, over and
    # over while the link loses packets, and never once it is restored.
    outages = measure(
        run_schedule(topology, schedule, "lync2010"),
        horizon(topology, "lync2010"),
        {"C1": "sip:alice@contoso.test"},
    )
    assert outages and all(600.0 <= o.start and o.end <= 960.0 for o in outages)


class DisasterRecoveryMachine(RuleBasedStateMachine):
    """R1's lab driven step by step through faults and DR actions (pool failover and
    failback, force-move, CMS move, contact export and import, a back-end server down and
    up, in any order: the deployment refuses what its preconditions forbid); the safety
    invariants must hold after every step."""

    POOLS = ("fe1.contoso.test", "fe2.contoso.test")
    CLIENTS = ("one", "two")

    def __init__(self) -> None:
        super().__init__()
        self.sim: SimulatedDeployment | None = None
        self.refused: list[str] = []

    @initialize(seed=st.integers(0, 100))
    def build(self, seed: int) -> None:
        topology = load_topology(EXAMPLES / "r1-lab.toml")
        clients = [
            ClientSpec("one", "sip:clientuser1@contoso.test"),
            ClientSpec("two", "sip:clientuser2@contoso.test"),
        ]
        self.sim = SimulatedDeployment(topology, clients, seed=seed)
        self.monitor = self.sim.watch_invariants()
        for name in self.CLIENTS:
            self.sim.sign_in(name)

    def _sim(self) -> SimulatedDeployment:
        assert self.sim is not None
        return self.sim

    def _admin(self, action: str, **params: object) -> None:
        outcome = self._sim().admin(action, **params)
        note(f"{self._sim().world.now:.1f} {outcome.line()}")
        if not outcome.ok:
            assert outcome.refused  # a refusal says why, as a sentence
            self.refused.append(outcome.line())

    @rule(pool=st.sampled_from(POOLS))
    def silence(self, pool: str) -> None:
        self._sim().disable_nic(pool)

    @rule(pool=st.sampled_from(POOLS))
    def restore(self, pool: str) -> None:
        self._sim().enable_nic(pool)

    @rule(pool=st.sampled_from(POOLS), takes=st.sampled_from((61.0, 901.0)))
    def pool_failover(self, pool: str, takes: float) -> None:
        self._admin("pool-failover", target=pool, takes=takes)

    @rule(pool=st.sampled_from(POOLS), takes=st.sampled_from((61.0, 901.0)))
    def pool_failback(self, pool: str, takes: float) -> None:
        self._admin("pool-failback", target=pool, takes=takes)

    @rule(source=st.sampled_from(POOLS), dest=st.sampled_from(POOLS))
    def force_move(self, source: str, dest: str) -> None:
        if source != dest:
            self._admin("force-move", **{"from": source, "to": dest})

    @rule(pool=st.sampled_from(POOLS))
    def move_cms(self, pool: str) -> None:
        self._admin("move-cms", target=pool)

    @rule()
    def export_contacts(self) -> None:
        self._admin("export-contacts")

    @rule()
    def import_contacts(self) -> None:
        self._admin("import-contacts")

    @rule(pool=st.sampled_from(POOLS), up=st.booleans())
    def backend(self, pool: str, up: bool) -> None:
        self._admin("backend-up" if up else "backend-down", target=pool, server="principal")

    @precondition(lambda self: self.sim is not None)
    @rule(seconds=st.sampled_from((2.5, 31.0, 62.0, 120.0, 600.0, 1000.0)))
    def wait(self, seconds: float) -> None:
        sim = self._sim()
        sim.run_until(sim.world.now + seconds)

    @invariant()
    def safety_holds(self) -> None:
        if self.sim is not None:
            assert self.monitor.violations == [], [v.line() for v in self.monitor.violations]


DisasterRecoveryMachine.TestCase.settings = settings(
    derandomize=True,
    max_examples=20,
    stateful_step_count=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
TestDisasterRecoveryMachine = DisasterRecoveryMachine.TestCase
