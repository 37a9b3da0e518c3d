"""Authentication in the simulator (issue 16): the shipped scenario where ClientUser2
re-authenticates at its backup registrar, and what a run without a password looks like."""

from __future__ import annotations

from pathlib import Path

from emulator.scenario.model import load_scenario, parse_scenario
from emulator.scenario.runner import run_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "r1-auth-digest-reauth-at-backup.toml"


def auth_lines(text: str) -> list[tuple[float, str, str]]:
    scenario = load_scenario(SCENARIO) if not text else parse_scenario(text, str(SCENARIO))
    result = run_scenario(scenario, verbose=True)
    failed = [r.detail for r in result.results if not r.passed]
    assert not failed, result.report()
    return [
        (e.now, e.source, e.text.split("authentication: ", 1)[1])
        for e in result.trace
        if "authentication: " in e.text
    ]


def test_reauthentication_at_the_backup_registrar_and_back_home() -> None:
    lines = auth_lines("")
    # Sign-in: FE1 (the SRV target) challenges, then redirects; FE2 never issued the nonce.
    assert lines[0] == (lines[0][0], "fe1.contoso.test", "no credentials")
    assert lines[0][0] < 1
    assert (lines[1][1], lines[1][2]) == ("fe2.contoso.test", "nonce not issued here (stale=true)")
    # Failover (FE2 silent from 300): FE1 gets FE2's nonce and answers stale=true; the
    # client answers at once with FE1's nonce, and registers (the expectations pass).
    after = [(src, why) for at, src, why in lines if 300 < at < 600]
    assert after == [("fe1.contoso.test", "nonce not issued here (stale=true)")]
    # Failback: home at FE2 with FE1's nonce, the last challenge it answered: stale=true again.
    home = [(src, why) for at, src, why in lines if at >= 600]
    assert home == [("fe2.contoso.test", "nonce not issued here (stale=true)")]


def test_same_seed_same_trace_with_authentication() -> None:
    scenario = load_scenario(SCENARIO)
    assert (
        run_scenario(scenario, verbose=True).to_json()
        == run_scenario(scenario, verbose=True).to_json()
    )
