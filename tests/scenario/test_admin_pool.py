"""Scenarios with pool failover and failback, pairings and timers changed mid-run, faults of one
transport and a silent host's TCP resets (issue 19, items 9 and 10): behaviour, the same with
and without coasting, file errors, and the examples of docs/scenarios.md and docs/backends.md."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from emulator.scenario.model import ScenarioError, parse_scenario
from emulator.scenario.runner import RunResult, run_scenario

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "scenarios"

HEAD = """
topology = "../topologies/r1-lab.toml"
seed = 7
duration = {duration}

[[client]]
name = "ClientUser2"
user = "sip:clientuser2@contoso.test"

[[step]]
at = 0
action = "sign-in"
client = "ClientUser2"
"""


def run(body: str, *, duration: int = 400, coast: bool = True) -> RunResult:
    text = HEAD.format(duration=duration) + body
    return run_scenario(parse_scenario(text, "<test>", base=BASE), coast=coast)


def lines(result: RunResult, source: str, start: str) -> list[float]:
    """When ``source`` logged a line beginning with ``start``."""
    return [e.now for e in result.trace if e.source == source and e.text.startswith(start)]


def signed_out_at(result: RunResult) -> float:
    return next(e.now for e in result.trace if e.text.startswith("signed-out"))


STEP = """
[[step]]
at = {at}
action = "{action}"
{keys}
"""


def step(at: float, action: str, **keys: object) -> str:
    text = "\n".join(
        f"{key} = {value!r}".replace("'", '"') for key, value in keys.items() if value is not None
    )
    return STEP.format(at=at, action=action, keys=text)


def test_shorter_timers_set_mid_run_fail_the_silent_pool_over_sooner() -> None:
    silent = step(100, "disable-nic", target="fe2.contoso.test")
    default = run(silent)
    faster = run(step(50, "set-timers", failover_interval=10, expect="ok") + silent)
    (before,) = lines(default, "fe1.contoso.test", "FAILED OVER")
    (after,) = lines(faster, "fe1.contoso.test", "FAILED OVER")
    assert 125 <= before < 131  # the lab's 30 s (heartbeats every 5 s)
    assert 105 <= after < 111  # 10 s after the last answer
    assert faster.passed, faster.report()


def test_a_pool_left_without_a_backup_strands_its_users() -> None:
    body = (
        step(50, "set-backup", target="fe2.contoso.test", backup="none", expect="ok")
        + step(100, "disable-nic", target="fe2.contoso.test")
        + step(200, "pool-failover", target="fe2.contoso.test", expect="refused")
    )
    result = run(body)
    assert result.passed, result.report()
    assert not lines(result, "fe1.contoso.test", "FAILED OVER")  # nobody heartbeats fe2
    states = [e.text for e in result.trace if e.source == "ClientUser2" and e.now > 100]
    assert states and all(text.startswith("signed-out") for text in states), states
    refused = [e.text for e in result.trace if e.source == "admin"]
    assert any("has no backup pool" in text for text in refused), refused


# Off the heartbeat rounds' instants: a step at the very instant of a pool's timer may act
# after it in one mode and before it in the other (World: a timer entry scheduled before the
# step and revived since), which is not what this test is about.
STEPS_MID_RUN = (
    step(31, "set-timers", failover_interval=12, heartbeat_interval=2, heartbeat_timeout=2)
    + step(61.5, "disable-nic", target="fe2.contoso.test")
    + step(91.5, "pool-failover", target="fe2.contoso.test", takes=40)
    + step(151.5, "enable-nic", target="fe2.contoso.test")
    + step(201.5, "set-backup", target="fe1.contoso.test", backup="none")
    + step(261.5, "pool-failback", target="fe2.contoso.test", takes=30)
    + step(321.5, "set-backup", target="fe1.contoso.test", backup="fe2.contoso.test")
)


def test_changes_mid_run_are_the_same_with_and_without_coasting() -> None:
    coasted = run(STEPS_MID_RUN, duration=600)
    every = run(STEPS_MID_RUN, duration=600, coast=False)
    assert [str(e) for e in coasted.trace] == [str(e) for e in every.trace]
    assert lines(coasted, "fe1.contoso.test", "pool failover of fe2.contoso.test complete")


def test_tls_down_with_udp_up_strands_the_users_the_backup_still_hears_the_primary() -> None:
    tls = run(
        step(100, "disable-nic", target="fe2.contoso.test", transport="tls")
        + step(300, "enable-nic", target="fe2.contoso.test", transport="tls")
    )
    whole = run(step(100, "disable-nic", target="fe2.contoso.test"))
    # UDP heartbeats still answered: fe1 never takes fe2's users, who stay signed out.
    assert not lines(tls, "fe1.contoso.test", "FAILED OVER")
    assert lines(whole, "fe1.contoso.test", "FAILED OVER")
    assert signed_out_at(tls) < 130
    again = [e for e in tls.trace if e.text.startswith("registered at fe") and e.now > 100]
    assert again and 300 < again[0].now < 400  # only once TLS is back...
    assert again[0].text.startswith("registered at fe2.contoso.test (full)")  # ...at home
    assert lines(tls, "fe2.contoso.test", "TLS disabled (silent)") == [100.0]


def test_a_silent_host_that_resets_connections_is_noticed_sooner() -> None:
    timeout = run(step(100, "disable-nic", target="fe2.contoso.test"))
    reset = run(step(100, "disable-nic", target="fe2.contoso.test", tcp="reset"))
    assert signed_out_at(reset) < signed_out_at(timeout)
    first = next(e.text for e in reset.trace if e.text.startswith("signed-out"))
    assert "connection to the registrar lost" in first, first
    again = run(step(100, "disable-nic", target="fe2.contoso.test", tcp="reset"), coast=False)
    assert [str(e) for e in reset.trace] == [str(e) for e in again.trace]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (step(5, "sign-out", client="ClientUser2", transport="tls"), "transport"),
        (step(5, "disable-nic", target="fe2.contoso.test", transport="sctp"), "udp, tcp or tls"),
        (step(5, "enable-nic", target="fe2.contoso.test", tcp="reset"), "(disable-nic takes it)"),
        (step(5, "disable-nic", target="fe2.contoso.test", tcp="drop"), '"timeout" or "reset"'),
        (step(5, "set-timers"), "one or more of failover_interval"),
        (step(5, "set-timers", heartbeat_interval=0), "more than 0"),
        (step(5, "pool-failover", target="nowhere.contoso.test"), "FQDN of a Front End pool"),
        (step(5, "set-backup", target="fe1.contoso.test", backup="fe1.contoso.test"), "another"),
    ],
)
def test_bad_steps_are_file_errors(body: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(message)):
        parse_scenario(HEAD.format(duration=100) + body, "<test>", base=BASE)


# -- the examples of the docs ------------------------------------------------------------------

_EXAMPLE = re.compile(r"<!-- example: ([\w-]+) -->\s*```toml\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for doc in ("scenarios.md", "backends.md"):
        found += [
            (f"{doc}:{name}", text)
            for name, text in _EXAMPLE.findall((ROOT / "docs" / doc).read_text())
        ]
    return found


def test_the_docs_have_the_examples() -> None:
    names = {name for name, _ in examples()}
    assert {
        "scenarios.md:transport-fault",
        "scenarios.md:tcp-reset",
        "scenarios.md:set-timers",
        "backends.md:pool-failover",
    } <= names


@pytest.mark.parametrize(("name", "text"), examples(), ids=[name for name, _ in examples()])
def test_each_example_in_the_docs_runs_and_holds(name: str, text: str) -> None:
    result = run_scenario(parse_scenario(text, name, base=BASE))
    assert result.passed, result.report()
    assert result.results, "an example without expectations shows nothing"


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("scenarios.md:transport-fault", 'transport = "tls"', ""),
        ("scenarios.md:tcp-reset", 'tcp = "reset"', 'tcp = "timeout"'),
        ("scenarios.md:set-timers", "failover_interval = 10", "failover_interval = 30"),
        (
            "backends.md:pool-failover",
            'action = "pool-failover"\ntarget = "fe2.contoso.test"\ntakes = 120',
            'action = "dns-restore"\n#',
        ),
    ],
)
def test_each_example_shows_what_its_key_does(name: str, old: str, new: str) -> None:
    """Without the key it demonstrates, the example's expectations do not hold."""
    (text,) = [text for found, text in examples() if found == name]
    assert old in text
    changed = text.replace(old, new).replace('expect = "ok"\n', "")
    result = run_scenario(parse_scenario(changed, name, base=BASE))
    assert not result.passed, result.report()


INVARIANT_NAMES = (
    "served-by-primary-or-backup",
    "failover-waits-detection-interval",
    "failback-waits-detection-interval",
    "single-registrar",
)


@pytest.mark.parametrize("name", ["backends.md:pool-failover", "scenarios.md:set-timers"])
def test_the_invariants_hold_across_administrators_changes(name: str) -> None:
    """The invariant monitor reads the pairings as they are now: the users of a pool failed
    over by the administrator served by its backup (resiliency, then full mode), and home in
    resiliency mode while the failback completes, are no violations; nor is a failover after
    new timers."""
    (text,) = [text for found, text in examples() if found == name]
    text += "".join(f'\n[[expect]]\ninvariant = "{i}"\n' for i in INVARIANT_NAMES)
    result = run_scenario(parse_scenario(text, name, base=BASE))
    assert result.passed, result.report()


def test_an_invariant_still_catches_a_backup_serving_without_a_failover() -> None:
    """The same example without the administrator's failover: had the backup served the pool's
    users anyway, that would be a violation (the monitor is not blind to admin runs)."""
    from emulator.pairing import Pairings
    from emulator.registrar import events as ev
    from emulator.sim.invariants import InvariantMonitor
    from emulator.sim.network import Network
    from emulator.topology import default_topology

    topology = default_topology()
    network = Network(random.Random(0))
    for pool in topology.pools:
        network.add_host(pool.address)
    pairings = Pairings(topology)
    now = [100.0]
    monitor = InvariantMonitor(topology, network, clock=lambda: now[0], pairings=pairings)
    user = "sip:clientuser2@contoso.test"  # homed on fe2, backed up by fe1
    monitor.pool_event(
        "fe1.contoso.test",
        ev.BindingAdded(now[0], "fe1.contoso.test", user, "<sip:c@127.2.0.1>", 3700.0, False),
    )
    assert [v.invariant for v in monitor.violations] == ["served-by-primary-or-backup"]
    pairings.fail_over("fe2.contoso.test", now[0], 60.0)
    now[0] = 200.0  # failed over: full function at the backup
    monitor.pool_event(
        "fe1.contoso.test",
        ev.BindingAdded(now[0], "fe1.contoso.test", user, "<sip:c@127.2.0.1>", 3700.0, False),
    )
    assert len(monitor.violations) == 1
