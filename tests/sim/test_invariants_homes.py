"""The invariant monitor judges a binding against the user's home *now* (issue 19)."""

from __future__ import annotations

from pathlib import Path

from emulator.sim.deployment import ClientSpec, SimulatedDeployment
from emulator.topology import parse_topology

R4 = Path(__file__).resolve().parents[2] / "topologies" / "r4-dr-site-lync2010.toml"


def _r4_force_moved() -> SimulatedDeployment:
    """R4: fe1 lost, alice force-moved to dr1, then signed in again (a full-mode binding)."""
    sim = SimulatedDeployment(
        parse_topology(R4.read_text()), [ClientSpec("alice", "sip:alice@contoso.test")], seed=4
    )
    sim.watch_invariants()
    sim.sign_in("alice")
    sim.run_until(300)
    sim.disable_nic("fe1.contoso.test")
    sim.run_until(600)
    outcome = sim.admin("force-move", **{"from": "fe1.contoso.test", "to": "dr1.contoso.test"})
    assert outcome.refused is None
    sim.restart("alice", keep_cache=False)
    sim.run_until(900)
    return sim


def test_a_force_moved_user_bound_in_full_mode_at_its_new_home_is_no_violation() -> None:
    sim = _r4_force_moved()
    agent = sim.agents["alice"]
    assert agent.state == "registered" and agent.registrar is not None
    assert agent.registrar.host == "dr1.contoso.test" and agent.mode == "full"
    assert sim.monitor is not None
    violations = sim.monitor.finish(900)
    assert [v for v in violations if v.invariant == "served-by-primary-or-backup"] == []


def test_the_monitor_still_flags_a_full_mode_binding_away_from_the_current_home() -> None:
    # The same run judged against the static homes (the old behaviour) is a violation: the
    # check can fail, and home_of is what makes the difference.
    sim = _r4_force_moved()
    assert sim.monitor is not None
    sim.monitor.home_of = sim.topology.users.get
    sim.monitor.violations.clear()
    sim.monitor._served("dr1.contoso.test", "sip:alice@contoso.test", False, 900.0)
    assert [v.invariant for v in sim.monitor.violations] == ["served-by-primary-or-backup"]
