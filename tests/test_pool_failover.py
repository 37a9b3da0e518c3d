"""The administrator's pool failover and failback, backup pairings and timers changed mid-run
(emulator/operations.py, emulator/pairing.py): preconditions, refusal reasons, phases in time.
Sans-IO: an Operations alone, its pools' states given."""

from __future__ import annotations

import pytest

from emulator.effects import (
    Effects,
    PoolState,
    TellBackendChanged,
    TellReconfigured,
    TellUsersMoved,
    plan,
)
from emulator.operations import POOL_FAILOVER_TAKES, Operations, Outcome
from emulator.pairing import PoolFailover
from emulator.topology import parse_topology

FE1 = "fe1.contoso.test"
FE2 = "fe2.contoso.test"
FE3 = "fe3.contoso.test"
DIR = "dir.contoso.test"

# fe1 and fe2 back each other up (the CMS on fe1, the first front end); fe3 has no backup.
LAB = """
domain = "contoso.test"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
backup = "fe2.contoso.test"
[[pool]]
fqdn = "fe2.contoso.test"
address = "127.0.0.12"
backup = "fe1.contoso.test"
[[pool]]
fqdn = "fe3.contoso.test"
address = "127.0.0.13"
[[pool]]
fqdn = "dir.contoso.test"
role = "director"
address = "127.0.0.14"
[[user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"
[[user]]
uri = "sip:bob@contoso.test"
pool = "fe2.contoso.test"
[[dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "dir.contoso.test"
"""


def ops(up: dict[str, bool] | None = None) -> Operations:
    states = {FE1: True, FE2: True, FE3: True, DIR: True, **(up or {})}
    return Operations(parse_topology(LAB), pool_up=lambda fqdn: states[fqdn])


def refusal(outcome: Outcome) -> str:
    assert not outcome.ok, outcome.line()
    assert outcome.refused is not None
    return outcome.refused


def test_a_failover_moves_the_service_not_the_home_and_completes_after_takes() -> None:
    o = ops({FE2: False})
    done = o.perform("pool-failover", {"target": FE2, "takes": 120}, 100.0)
    assert done.ok and done.reconfigured, done.line()
    assert done.moved == () and o.directory.get("sip:bob@contoso.test") == FE2  # not rehomed
    found = o.pairings.failover(FE2)
    assert found == PoolFailover(FE2, FE1, 100.0, 220.0)
    assert [found.phase(t) for t in (100.0, 219.9, 220.0)] == [
        "failing-over",
        "failing-over",
        "failed-over",
    ]
    assert o.pairings.deadline(FE1, 150.0) == 220.0 == o.pairings.deadline(FE2, 150.0)
    assert o.pairings.deadline(FE3, 150.0) is None and o.pairings.deadline(FE1, 220.0) is None
    assert o.pairings.failed_over_to(FE1, 150.0) == [FE2]


def test_the_default_duration_is_the_documented_recovery_time_target() -> None:
    o = ops({FE2: False})
    assert o.perform("pool-failover", {"target": FE2}, 0.0).ok
    # Microsoft's engineering target for the RTO of a pool failover: 15-20 minutes.
    assert 15 * 60 <= POOL_FAILOVER_TAKES <= 20 * 60
    assert o.pairings.phase(FE2, POOL_FAILOVER_TAKES - 1) == "failing-over"
    assert o.pairings.phase(FE2, POOL_FAILOVER_TAKES) == "failed-over"


def test_failover_is_refused_without_a_backup_pool() -> None:
    assert "has no backup pool" in refusal(ops().perform("pool-failover", {"target": FE3}, 0.0))


def test_failover_of_the_pool_hosting_the_cms_needs_the_cms_moved_first() -> None:
    o = ops({FE1: False})
    assert "Central Management Store is on fe1" in refusal(
        o.perform("pool-failover", {"target": FE1}, 0.0)
    )
    assert o.perform("move-cms", {"target": FE2}, 1.0).ok
    assert o.perform("pool-failover", {"target": FE1}, 2.0).ok


def test_failover_is_refused_while_the_cms_pool_is_down() -> None:
    o = ops({FE1: False})
    assert o.perform("move-cms", {"target": FE3}, 0.0).ok
    o.admin.pool_up = lambda fqdn: fqdn not in (FE1, FE3)  # now the CMS's pool fails too
    assert "no topology, policy or user change" in refusal(
        o.perform("pool-failover", {"target": FE1}, 1.0)
    )


def test_failover_is_refused_when_the_backup_pool_is_down() -> None:
    o = ops({FE1: False, FE2: False})
    assert o.perform("move-cms", {"target": FE3}, 0.0).ok
    assert "the backup pool fe1.contoso.test is down" in refusal(
        o.perform("pool-failover", {"target": FE2}, 1.0)
    )


def test_failover_twice_and_the_reverse_failover_are_refused_until_failback() -> None:
    up = {FE1: True, FE2: False, FE3: True, DIR: True}
    o = Operations(parse_topology(LAB), pool_up=lambda fqdn: up[fqdn])
    assert o.perform("pool-failover", {"target": FE2, "takes": 10}, 0.0).ok
    assert "failed over already (to fe1.contoso.test)" in refusal(
        o.perform("pool-failover", {"target": FE2}, 1.0)
    )
    # DOC: failing P2's users over to P1 while P1's are failed over to P2 fails, even with
    # P2 back (fail P2 back first).
    up[FE2] = True
    assert o.perform("move-cms", {"target": FE3}, 2.0).ok
    assert "fail them back first" in refusal(o.perform("pool-failover", {"target": FE1}, 3.0))


def test_failback_preconditions_and_phases() -> None:
    up = {FE1: True, FE2: False, FE3: True, DIR: True}
    o = Operations(parse_topology(LAB), pool_up=lambda fqdn: up[fqdn])
    assert "is not failed over" in refusal(o.perform("pool-failback", {"target": FE2}, 0.0))
    assert o.perform("pool-failover", {"target": FE2, "takes": 100}, 0.0).ok
    assert "has not completed (it completes at 100 s)" in refusal(
        o.perform("pool-failback", {"target": FE2}, 50.0)
    )
    assert "is down: fail it back once it is back online" in refusal(
        o.perform("pool-failback", {"target": FE2}, 150.0)
    )
    up[FE2] = True
    done = o.perform("pool-failback", {"target": FE2, "takes": 60}, 200.0)
    assert done.ok and done.reconfigured
    assert o.pairings.phase(FE2, 259.0) == "failing-back"
    assert o.pairings.failed_over_to(FE1, 210.0) == []
    assert "failback of fe2.contoso.test is under way" in refusal(
        o.perform("pool-failover", {"target": FE2}, 210.0)
    )
    assert o.pairings.phase(FE2, 260.0) == "failed-back"
    assert "was failed back" in refusal(o.perform("pool-failback", {"target": FE2}, 300.0))
    assert o.perform("pool-failover", {"target": FE2}, 300.0).ok  # a second disaster
    assert [what for _, pool, what in o.pairings.history if pool == FE2] == [
        "failover",
        "failback",
        "failover",
    ]


def test_set_backup_changes_the_pairing_and_is_refused_while_failed_over() -> None:
    o = ops({FE2: False})
    assert o.perform("set-backup", {"target": FE3, "backup": FE2}, 0.0).ok
    assert o.pairings.backup_of(FE3) == FE2 and o.pairings.backed_up_by(FE2) == [FE1, FE3]
    assert o.perform("set-backup", {"target": FE2, "backup": "none"}, 1.0).ok
    assert "has no backup pool" in refusal(o.perform("pool-failover", {"target": FE2}, 2.0))
    assert o.perform("set-backup", {"target": FE2, "backup": FE1}, 3.0).ok
    assert o.perform("pool-failover", {"target": FE2}, 4.0).ok
    assert "fail it back first" in refusal(
        o.perform("set-backup", {"target": FE2, "backup": FE3}, 5.0)
    )


def test_set_timers_changes_the_shared_resiliency_settings() -> None:
    o = ops()
    before = o.pairings.resiliency
    done = o.perform("set-timers", {"failover_interval": 10, "heartbeat_interval": 1}, 5.0)
    assert done.ok and done.reconfigured and "failover_interval 10 s" in done.text
    after = o.pairings.resiliency
    assert after.failover_detection_interval == 10.0 and after.heartbeat_interval == 1.0
    assert after.failback_detection_interval == before.failback_detection_interval
    assert o.pairings.version == 1


@pytest.mark.parametrize(
    ("action", "params", "problem"),
    [
        ("pool-failover", {"target": DIR}, "target: the FQDN of a Front End pool"),
        ("pool-failover", {"target": FE2, "takes": -1}, "takes: a number of seconds, 0 or more"),
        ("pool-failback", {"target": FE2, "takes": "soon"}, "takes: a number of seconds"),
        ("set-backup", {"target": FE1, "backup": FE1}, "backup: the FQDN of another Front End"),
        ("set-backup", {"target": FE1, "backup": DIR}, "backup: the FQDN of another Front End"),
        ("set-timers", {}, "set-timers: one or more of failover_interval"),
        ("set-timers", {"heartbeat_timeout": 0}, "heartbeat_timeout: a number of seconds, more"),
    ],
)
def test_bad_steps_are_named_before_the_run(
    action: str, params: dict[str, object], problem: str
) -> None:
    found = Operations.validate(parse_topology(LAB), action, params)
    assert found is not None and found.startswith(problem), found


def test_a_reconfiguration_is_told_to_every_running_pool_silent_or_not() -> None:
    states: dict[str, PoolState] = {FE1: "running", FE2: "silent", FE3: "stopped", DIR: "running"}
    outcome = Outcome("pool-failover", text="done", reconfigured=True)
    assert plan(outcome, states) == Effects(
        (), (TellReconfigured(FE1), TellReconfigured(FE2), TellReconfigured(DIR))
    )


def test_a_reconfiguration_comes_after_back_ends_and_before_moved_users() -> None:
    states: dict[str, PoolState] = {FE1: "running", FE2: "running"}
    outcome = Outcome(
        "x", text="", backends_changed=(FE2,), moved=("sip:a@contoso.test",), reconfigured=True
    )
    tells = plan(outcome, states).tell
    assert tells == (
        TellBackendChanged(FE2),
        TellReconfigured(FE1),
        TellReconfigured(FE2),
        TellUsersMoved(FE1, ("sip:a@contoso.test",)),
        TellUsersMoved(FE2, ("sip:a@contoso.test",)),
    )
