"""Property-based fuzzing of failover logic: invariants, findings, replay, sipemu check."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from emulator.cli import main
from emulator.fuzz.analysis import classify, explain
from emulator.fuzz.campaign import (
    Found,
    _Progress,
    search,
    simplify,
    without_client,
    write_findings,
)
from emulator.fuzz.case import (
    ClientDraw,
    FaultDraw,
    FuzzCase,
    PoolDraw,
    SrvDraw,
    liveness_expectations,
    run_case,
)
from emulator.fuzz.strategies import cases
from emulator.scenario.model import ScenarioError, load_scenario, with_expectations
from emulator.scenario.runner import prepare, run_scenario
from emulator.sim.deployment import ClientSpec, SimulatedDeployment
from emulator.topology import default_topology, parse_topology

BOUNDED = settings(
    derandomize=True,
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# R1's lab as a fuzz case: fe1 and fe2 back each other up, one SRV record (fe1).
R1_STRANDED = FuzzCase(
    pools=(PoolDraw(backup=1), PoolDraw(backup=0)),
    srv=(SrvDraw(0),),
    clients=(ClientDraw(0, "home"),),
    faults=(FaultDraw("outage", 60.0, None, a=0),),
)


def test_r1_stranded_client_is_a_by_design_finding_with_the_srv_advice() -> None:
    outcome = run_case(R1_STRANDED)
    (finding,) = classify(outcome)
    assert finding.kind == "by-design"
    assert finding.key == "backup-never-learned"
    assert "publish a second _sipinternaltls._tcp SRV record" in finding.advice
    assert outcome.result.violations == ()


def test_a_second_srv_record_removes_the_finding() -> None:
    fixed = FuzzCase(
        R1_STRANDED.pools,
        (SrvDraw(0), SrvDraw(1, priority=10)),
        R1_STRANDED.clients,
        R1_STRANDED.faults,
    )
    assert classify(run_case(fixed)) == []


def test_the_fuzzer_finds_the_stranded_client_from_an_empty_start() -> None:
    # No database: the search starts from nothing and must find R1's stranded client by
    # itself; it is not written into the strategies.  Which 300 examples a seed gives depends
    # on more than the seed: Hypothesis (6.1xx) mixes the integer and string literals of every
    # module of the checkout into what it draws, so any change anywhere moves it.  About one
    # search of 300 in three finds this case (seeds 1-6, 2026-12-03), so the test tries up to
    # twelve seeds (fails by chance about once per 130 code changes) and stops at the first hit.
    seen: list[str] = []
    for seed in range(7, 19):
        result = search(examples=300, seed=seed, database=None, max_pools=3, max_clients=1)
        if "by-design-backup-never-learned" in result.findings:
            break
        seen = sorted(set(seen) | set(result.findings))
    else:
        raise AssertionError(f"not found in 12 searches of 300 examples; found {seen}")
    case = result.findings["by-design-backup-never-learned"].case
    assert len(case.clients) == 1 and len(case.pools) <= 3  # shrunk


# Found by a campaign (seed 7, max_pools=3, max_clients=2) and first classified as an emulator
# bug: baresip C2, homed on fe2 and registered there, rediscovers at its refresh after fe2's
# outage, lands on fe1 (an SRV target that answers 301) and retries fe1 for ever.
BARESIP_STUCK_ON_A_REDIRECTOR = FuzzCase(
    pools=(
        PoolDraw(a_record=True, users=2),
        PoolDraw(backup=0, a_record=True, users=3),
        PoolDraw(director=True, a_record=False, users=0),
    ),
    srv=(
        SrvDraw(0, priority=10, weight=0, service="_sips._tcp"),
        SrvDraw(0, priority=0, weight=10, service="_sipinternaltls._tcp"),
        SrvDraw(1, priority=10, weight=0, service="_sips._tcp"),
        SrvDraw(0, priority=20, weight=0, service="_sips._tcp"),
    ),
    clients=(
        ClientDraw(1, "empty", stale=3, profile="baresip"),
        ClientDraw(7, "empty", stale=4, profile="baresip"),
    ),
    faults=(
        FaultDraw("outage", 1270.0, 790.0, a=1, b=2, oneway=True, dns_kind="nxdomain"),
        FaultDraw("outage", 60.0, 450.0, a=0, b=2, oneway=True, dns_kind="nxdomain"),
    ),
    failover=30.0,
    failback=40.0,
    seed=360,
)


def test_a_client_retrying_the_server_whose_redirect_it_refused_is_by_design() -> None:
    outcome = run_case(BARESIP_STUCK_ON_A_REDIRECTOR)
    # It could reach its home fe2 (SRV names it too): only where it is stuck explains it.
    assert "srv:fe2.contoso.test" in outcome.knowledge["C2"]
    assert outcome.stuck_retrying == {"C2": "fe1.contoso.test"}
    (finding,) = classify(outcome)
    assert (finding.kind, finding.key) == ("by-design", "client-ignores-redirect")
    assert "keeps retrying the server that sent it" in finding.advice


def test_the_server_a_client_is_stuck_retrying_is_forgotten_once_registered() -> None:
    case = BARESIP_STUCK_ON_A_REDIRECTOR
    deployment = prepare(case.scenario(bound=case.bound()), invariants=True)
    deployment.run_until(100.0)  # C2 refused fe1's 301 at sign-in; fe2 is cut off
    assert deployment.agents["C2"].stuck_retrying == "fe1.contoso.test"
    deployment.run_until(200.0)  # it registered at fe2 (SRV) at 146 s
    assert deployment.agents["C2"].state == "registered"
    assert deployment.agents["C2"].stuck_retrying is None


def test_without_where_it_is_stuck_a_client_that_knew_its_home_is_a_bug() -> None:
    def why(stuck_retrying: str | None, profile: str = "baresip") -> tuple[str, str]:
        finding = explain(
            client="C2", home="fe2.contoso.test", backup=None, profile=profile,
            cache_state="empty", known=["srv:fe1.contoso.test", "srv:fe2.contoso.test"],
            down=set(), unresolvable=set(), detail="signed-out", dns_down=False,
            stuck_retrying=stuck_retrying,
        )  # fmt: skip
        return finding.kind, finding.key

    assert why(None) == ("emulator-bug", "liveness")
    assert why("fe1.contoso.test") == ("by-design", "client-ignores-redirect")
    # Stuck on its serving home itself is not explained by the redirect.
    assert why("fe2.contoso.test") == ("emulator-bug", "liveness")
    dead_redirect = ("by-design", "client-retries-dead-redirect-target")
    assert why("fe1.contoso.test", "linphone") == dead_redirect
    assert why("fe1.contoso.test", "lync2013") == ("emulator-bug", "liveness")  # moves on


def test_registrars_remembered_from_a_301_count_only_after_a_registration() -> None:
    # Found by a campaign (seed 37) as an "emulator bug": C1 (home fe2, which has no A record)
    # was redirected to fe2 and fe3 by the Director but never registered; its rounds start
    # from the cache or DNS until it has registered once (docs/clients.md), and DNS then
    # lost its only SRV record.  What it remembered from the 301 was no way back.
    case = FuzzCase(
        pools=(PoolDraw(backup=4, users=2), PoolDraw(director=True, users=0),
               PoolDraw(director=True, users=0), PoolDraw(director=True, users=0),
               PoolDraw(backup=5, a_record=False, users=3), PoolDraw(backup=4, users=2)),
        srv=(SrvDraw(1, priority=0, weight=0),),
        clients=(ClientDraw(4),),
        faults=(FaultDraw("dns-remove", 630.0, None),
                FaultDraw("outage", 1030.0, None, a=4)),
        failover=120.0,
        failback=240.0,
        seed=52,
    )  # fmt: skip
    outcome = run_case(case)
    agent_knew = outcome.knowledge["C1"]
    assert agent_knew == []  # no primary or backup it would try, no SRV record left
    (finding,) = classify(outcome)
    assert (finding.kind, finding.key) == ("by-design", "nothing-to-discover-lync2010")


def test_linphone_retrying_the_dead_first_contact_of_a_301_is_by_design() -> None:
    # Found by a campaign (seed 23) as an "emulator bug": C1 (linphone, home fe3) lost fe3, DNS
    # led it to fe1, whose 301 (before fe1 failed over) named fe3 first; linphone registers at
    # that first Contact for ever, although fe1 serves fe3's users 25 s later.  linphone
    # notices a silent registrar only at its refresh (90% of 3600 s, then Timer F and 2 s:
    # observed, issue 15), so the outage comes 20 s before that refresh, as the 301 needs
    # fe1 not to have failed over yet.
    case = FuzzCase(
        pools=(PoolDraw(backup=2), PoolDraw(), PoolDraw(backup=0, users=2),
               PoolDraw(director=True, users=0)),
        srv=(SrvDraw(0, priority=10, weight=50, service="_sip._udp"),),
        clients=(ClientDraw(2, "home", profile="linphone"),),
        faults=(FaultDraw("outage", 3220.0, None, a=2),),
        failover=60.0,
        failback=60.0,
        seed=639,
    )  # fmt: skip
    outcome = run_case(case)
    # Registered at its home with no backup learned: nothing it would try from memory.
    assert outcome.knowledge["C1"] == ["srv:fe1.contoso.test"]
    assert outcome.stuck_retrying == {"C1": "fe3.contoso.test"}
    (finding,) = classify(outcome)
    assert (finding.kind, finding.key) == ("by-design", "client-retries-dead-redirect-target")


def test_simplify_removes_what_a_finding_does_not_need() -> None:
    # Where one Hypothesis search stopped shrinking: the linphone client lost its DNS and its
    # home, beside a baresip client stuck on a redirect and three faults.
    case = FuzzCase(
        pools=(
            PoolDraw(backup=1, a_record=False),
            PoolDraw(users=1),
            PoolDraw(users=2),
        ),
        srv=(
            SrvDraw(1, priority=10, weight=10),
            SrvDraw(1, priority=10, weight=0, service="_sip._udp"),
            SrvDraw(2, priority=10, weight=50),
        ),
        clients=(
            ClientDraw(2, "empty", stale=1, profile="baresip"),
            ClientDraw(8, "empty", stale=0, profile="linphone"),
        ),
        faults=(
            FaultDraw("outage", 1750.0, None, a=0, b=0, oneway=True, dns_kind="nxdomain"),
            FaultDraw("dns-fail", 1570.0, None, a=0, b=-1),
            FaultDraw("outage", 1790.0, None, a=0, b=-1, oneway=True, dns_kind="nxdomain"),
        ),
        failover=120.0,
        failback=240.0,
        seed=1679,
    )
    (finding,) = [f for f in classify(run_case(case)) if f.key == "dns-down-no-cache"]
    simpler = simplify(Found(finding, case))
    assert simpler.finding.slug == finding.slug
    assert [c.profile for c in simpler.case.clients] == ["linphone"]
    assert len(simpler.case.faults) < len(case.faults)
    assert [f.slug for f in classify(run_case(simpler.case))] == [finding.slug]


def test_removing_a_client_keeps_partitions_naming_the_same_clients() -> None:
    # fuzz_bench --mode search --seed 1 crashed in simplify: a client was removed while a
    # partition still named it (ScenarioError: step[3].b: expected a pool FQDN ...).
    pools = (PoolDraw(backup=1), PoolDraw())
    case = FuzzCase(
        pools=pools,
        srv=(SrvDraw(0),),
        clients=(ClientDraw(0), ClientDraw(1), ClientDraw(0)),
        faults=(
            FaultDraw("partition", 10.0, 5.0, a=0, b=-2),  # fe1 from C2
            FaultDraw("partition", 20.0, 5.0, a=1, b=-3),  # fe2 from C3
            FaultDraw("partition", 30.0, 5.0, a=1, b=1),  # b == a: fe2 from C1
        ),
    )
    assert without_client(case, 1) is None  # the first partition names C2
    assert without_client(case, 0) is None  # the third names C1
    smaller = without_client(
        FuzzCase(pools=pools, srv=case.srv, clients=case.clients, faults=case.faults[1:]), 1
    )
    assert smaller is not None
    assert [f.b for f in smaller.faults] == [-2, 1]  # C3 is now C2; C1 stays C1
    steps = [s for s in smaller.scenario_data()["step"] if s["action"] == "partition"]
    assert [(s["a"], s["b"]) for s in steps] == [
        ("fe2.contoso.test", "C2"),
        ("fe2.contoso.test", "C1"),
    ]
    run_case(smaller)  # a valid scenario: no ScenarioError


def test_findings_are_written_as_scenarios_that_replay_to_the_same_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = search(examples=1, seed=0, database=None)
    result.findings.clear()
    (finding,) = classify(run_case(R1_STRANDED))
    result.findings[finding.slug] = Found(finding, R1_STRANDED)
    ((_, path, reproduced),) = write_findings(result, tmp_path)
    assert reproduced and path.name == "by-design-backup-never-learned.toml"
    text = path.read_text()
    assert text.startswith("# Found by sipemu fuzz: by-design (backup-never-learned).")
    assert "Advice: a client that signed in straight to its home pool" in text
    assert main(["run", str(path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  C1 state=registered by" in out
    assert "PASS  invariant single-registrar holds" in out
    replay = run_scenario(load_scenario(path))
    assert [r.expectation.client for r in replay.results if not r.passed] == ["C1"]


@BOUNDED
@given(cases(max_pools=4, max_clients=3))
def test_no_emulator_bug_in_random_cases(case: FuzzCase) -> None:
    findings = classify(run_case(case))
    bugs = [f for f in findings if f.kind == "emulator-bug"]
    assert not bugs, (case, bugs)


def test_a_broken_backup_that_fails_over_early_is_caught() -> None:
    # Sabotage: fe1 believes the failover interval is 5 s while the topology says 30 s.
    topology = default_topology()
    sim = SimulatedDeployment(topology, [], seed=1)
    monitor = sim.watch_invariants()
    pool = sim.pool("fe1.contoso.test")
    pool._monitors["fe2.contoso.test"].failover_interval = 5.0
    sim.run_until(50)
    sim.disable_nic("fe2.contoso.test")
    sim.run_until(100)
    names = {v.invariant for v in monitor.finish(100)}
    assert "failover-waits-detection-interval" in names


def test_a_flap_shorter_than_the_interval_causes_no_failover_and_no_violation() -> None:
    sim = SimulatedDeployment(default_topology(), [], seed=2)
    monitor = sim.watch_invariants()
    sim.run_until(50)
    sim.disable_nic("fe2.contoso.test")
    sim.run_until(70)  # 20 s < 30 s
    sim.enable_nic("fe2.contoso.test")
    sim.run_until(400)
    assert monitor.finish(400) == []
    assert sim.pool("fe1.contoso.test").status().peers["fe2.contoso.test"] == "up"


def test_check_report_shows_clientuser1_stranded_when_fe1_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "--json"]) == 1  # users end up signed out
    rows = json.loads(capsys.readouterr().out)
    stranded = [
        r
        for r in rows
        if r["failure"] == "fe1.contoso.test"
        and r["user"] == "sip:clientuser1@contoso.test"
        and r["profile"] == "lync2010"
    ]
    assert stranded and all(r["outcome"] == "signed out" for r in stranded)
    keys = {(r["client"], r["finding"]["key"]) for r in stranded}
    assert keys == {
        ("running", "backup-never-learned"),
        ("signs in again", "srv-single-point-of-failure"),
    }
    fine = [
        r
        for r in rows
        if r["failure"] == "fe1.contoso.test"
        and r["user"] == "sip:clientuser2@contoso.test"
        and r["profile"] == "lync2010"
        and r["client"] == "running"
    ]
    assert fine and all(r["outcome"] == "fine" for r in fine)
    assert main(["check", "--exit-zero"]) == 0
    table = capsys.readouterr().out
    assert "backup-never-learned" not in table and "never learned its backup" in table


class FailoverMachine(RuleBasedStateMachine):
    """The simulator driven step by step: faults, heals and time; invariants after each step."""

    POOLS = ("fe1.contoso.test", "fe2.contoso.test")
    CLIENTS = ("one", "two")

    def __init__(self) -> None:
        super().__init__()
        self.sim: SimulatedDeployment | None = None

    @initialize(seed=st.integers(0, 100))
    def build(self, seed: int) -> None:
        topology = parse_topology(
            (Path(__file__).resolve().parents[2] / "topologies" / "r1-lab.toml").read_text()
        )
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

    @rule(pool=st.sampled_from(POOLS))
    def silence(self, pool: str) -> None:
        self._sim().disable_nic(pool)

    @rule(pool=st.sampled_from(POOLS))
    def restore(self, pool: str) -> None:
        self._sim().enable_nic(pool)

    @rule(pool=st.sampled_from(POOLS))
    def stop(self, pool: str) -> None:
        self._sim().stop_pool(pool)

    @rule(pool=st.sampled_from(POOLS))
    def start(self, pool: str) -> None:
        self._sim().start_pool(pool)

    @rule(client=st.sampled_from(CLIENTS), pool=st.sampled_from(POOLS))
    def cut(self, client: str, pool: str) -> None:
        self._sim().partition(client, pool)

    @rule()
    def heal(self) -> None:
        self._sim().heal()

    @precondition(lambda self: self.sim is not None)
    @rule(seconds=st.sampled_from((1.0, 10.0, 29.0, 31.0, 45.0, 120.0, 600.0)))
    def wait(self, seconds: float) -> None:
        sim = self._sim()
        sim.run_until(sim.world.now + seconds)

    @invariant()
    def safety_holds(self) -> None:
        if self.sim is not None:
            assert self.monitor.violations == [], [v.line() for v in self.monitor.violations]


FailoverMachine.TestCase.settings = settings(
    derandomize=True,
    max_examples=15,
    stateful_step_count=20,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
TestFailoverMachine = FailoverMachine.TestCase


def test_leaving_a_registrar_that_was_cut_off_is_not_a_double_binding() -> None:
    # Found by the fuzzer (a false positive of the monitor, since fixed): the client lost fe1
    # to a partition, registered at fe2 after the partition healed; fe1 still held the old
    # binding, which the client could not have removed when it left.
    case = FuzzCase(
        pools=(PoolDraw(backup=1, users=2), PoolDraw(backup=0)),
        srv=(
            SrvDraw(1, priority=20),
            SrvDraw(0, priority=10),
            SrvDraw(None, priority=10, service="_sips._tcp"),
            SrvDraw(1, priority=10, service="_sips._tcp"),
        ),
        clients=(ClientDraw(7, "empty", 2, "lync2010"),),
        faults=(
            FaultDraw("partition", 1370.0, 800.0, a=0, b=0),
            FaultDraw("outage", 1490.0, 620.0, a=1),
        ),
        failover=120.0,
        failback=240.0,
        seed=53000,
    )
    assert classify(run_case(case)) == []


def test_a_client_that_lost_its_backup_tries_the_backup_again() -> None:
    # Found by the fuzzer (an emulator bug, since fixed): C1 learned fe1 (primary) and fe2
    # (backup) from a 301, failed over to fe2 when fe1 stopped, then lost fe2 too.  Its
    # retries tried only fe1 and DNS (whose one SRV record names nothing), so when fe2 came
    # back and failed over again it never returned to it.
    case = FuzzCase(
        pools=(PoolDraw(backup=1, users=2), PoolDraw(backup=0, users=2)),
        srv=(SrvDraw(None, priority=0, weight=0),),
        clients=(ClientDraw(1, "stale", stale=0, profile="lync2013"),),
        faults=(FaultDraw("stop", 680.0, None, a=0), FaultDraw("stop", 1310.0, 780.0, a=1)),
        failover=120.0,
        failback=240.0,
        seed=1707,
    )
    outcome = run_case(case)
    assert outcome.knowledge["C1"][:2] == ["primary:fe1.contoso.test", "backup:fe2.contoso.test"]
    assert classify(outcome) == []
    back = [
        e.now for e in outcome.result.trace
        if e.source == "C1" and e.text.startswith("registered at fe2") and e.now > 2090.0
    ]  # fmt: skip
    assert back and back[0] < outcome.liveness["C1"]


@settings(derandomize=True, max_examples=25, deadline=None, database=None)
@given(cases(max_pools=4, max_clients=4), st.data())
def test_adding_liveness_expectations_gives_the_scenario_written_out(
    case: FuzzCase, data: st.DataObject
) -> None:
    """run_case adds the liveness expectations to the scenario it ran without validating the
    rest again: the result is the scenario of the file a finding is written to."""
    names = [case.client_name(i) for i in range(len(case.clients))]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    liveness = {name: 1000.0 + i for i, name in enumerate(chosen)}
    bound = case.bound()
    assert with_expectations(
        case.scenario(bound=bound), liveness_expectations(liveness)
    ) == case.scenario(liveness, bound)


def test_added_expectations_are_validated() -> None:
    case = FuzzCase(pools=(PoolDraw(),), srv=(SrvDraw(0),), clients=(ClientDraw(0),))
    wanted = r"expect\[\d+\]\.client: expected the name of a \[\[client\]\]"
    with pytest.raises(ScenarioError, match=wanted):
        with_expectations(case.scenario(), [{"client": "nobody", "by": 5.0}])


def test_progress_writes_a_line_per_tenth_off_a_terminal_and_redraws_on_one() -> None:
    log = StringIO()
    bar = _Progress(log, 1000, started=0.0, clock=lambda: 10.0)
    for done in range(1, 1001):
        bar.update(done, 2)
    bar.finish()
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in log.getvalue()
    assert lines[0] == "[###" + "." * 27 + "] 100/1000 examples, 2 finding(s), 10.0/s"
    assert "1000/1000 examples" in lines[-1]

    class Terminal(StringIO):
        def isatty(self) -> bool:
            return True

    now = [0.0]
    screen = Terminal()
    bar = _Progress(screen, 1000, started=0.0, clock=lambda: now[0])
    for done in range(1, 1001):
        now[0] = done * 0.001  # 1 ms per example: a redraw every 100 examples, and the last
        bar.update(done, None)
    bar.finish()
    frames = screen.getvalue().split("\r")[1:]
    assert len(frames) == 11 and frames[-1].endswith("1000/1000 examples, 1000.0/s\n")


NAPTR_LAB = """
domain = "contoso.test"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
[[pool]]
fqdn = "fe2.contoso.test"
address = "127.0.0.12"
[[user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"
[[dns.srv]]
name = "_sips._tcp.contoso.test"
target = "fe1.contoso.test"
[[dns.srv]]
name = "_sip._tcp.lab.contoso.test"
target = "fe2.contoso.test"
[[dns.naptr]]
service = "SIP+D2T"
replacement = "_sip._tcp.lab.contoso.test"
"""


def test_discoverable_follows_naptr_for_baresip_only() -> None:
    from clients.profile import BARESIP, LINPHONE, LYNC2010
    from emulator.fuzz.case import discoverable

    sim = SimulatedDeployment(parse_topology(NAPTR_LAB), [], seed=1)
    # RFC 3263 §4.1: the NAPTR record's SRV name decides; the plain _sips._tcp is not asked.
    assert discoverable(sim, BARESIP) == ["srv:fe2.contoso.test"]
    assert discoverable(sim, LINPHONE) == []
    assert discoverable(sim, LYNC2010) == []


def test_simplify_removes_dr_actions_a_finding_does_not_need() -> None:
    # The case above with a back end down for a minute early on, far from the DNS loss.
    from emulator.fuzz.case import DrDraw

    case = FuzzCase(
        pools=(PoolDraw(backup=1, a_record=False), PoolDraw(users=1), PoolDraw(users=2)),
        srv=(SrvDraw(1, priority=10, weight=10),),
        clients=(ClientDraw(8, "empty", stale=0, profile="linphone"),),
        faults=(FaultDraw("dns-fail", 1570.0, None, a=0, b=-1),),
        dr=(DrDraw("backend-down", 200.0, a=2, duration=60.0),),
        failover=120.0,
        failback=240.0,
        seed=1679,
    )
    found = [f for f in classify(run_case(case)) if f.key == "dns-down-no-cache"]
    assert found, [f.slug for f in classify(run_case(case))]
    simpler = simplify(Found(found[0], case))
    assert simpler.case.dr == ()
    assert simpler.finding.slug == found[0].slug


def test_every_record_of_a_fuzz_case_crosses_processes_through_its_constructor() -> None:
    # The compiled build's frozen, slotted records cannot be unpickled the default way: each
    # record a FuzzCase holds must be registered with copyreg (emulator/fuzz/campaign.py), or
    # a finding holding it is lost on its way from a shard (a Dask worker) to the writer.
    import copyreg
    import dataclasses
    import pickle

    import emulator.fuzz.campaign  # noqa: F401  (registers them)
    from emulator.fuzz import case as case_module

    records = [
        value
        for value in vars(case_module).values()
        if isinstance(value, type)
        and dataclasses.is_dataclass(value)
        and value.__module__ == case_module.__name__
        and value.__dataclass_params__.frozen  # type: ignore[attr-defined]
    ]
    assert {r.__name__ for r in records} >= {"FuzzCase", "DrDraw", "FaultDraw"}
    missing = [r.__name__ for r in records if r not in copyreg.dispatch_table]
    assert missing == []
    from emulator.fuzz.case import DrDraw

    draw = DrDraw("mirror-failover", 120.0, a=1)
    assert pickle.loads(pickle.dumps(draw)) == draw
