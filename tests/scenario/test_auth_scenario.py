"""Authentication in the simulator (issue 16): the shipped scenarios where ClientUser2
re-authenticates at its backup registrar (Digest and NTLM), and their reproducibility."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.scenario.model import load_scenario, parse_scenario
from emulator.scenario.runner import run_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "r1-auth-digest-reauth-at-backup.toml"
NTLM = ROOT / "scenarios" / "r1-auth-ntlm-reauth-at-backup.toml"


def auth_lines(text: str, path: Path = SCENARIO) -> list[tuple[float, str, str]]:
    scenario = load_scenario(path) if not text else parse_scenario(text, str(path))
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


def test_ntlm_reauthentication_at_the_backup_registrar_and_back_home() -> None:
    lines = auth_lines("", NTLM)
    exchange = ["no credentials", "NTLM challenge (security association started)"]
    new_target = ["credentials for another realm or scheme", exchange[1]]
    by_phase = [
        [(src, why) for at, src, why in lines if lo <= at < hi]
        for lo, hi in ((0, 300), (300, 600), (600, 900))
    ]
    # Sign-in: an SA with FE1 (which then redirects), then one with FE2.
    assert by_phase[0] == [("fe1.contoso.test", r) for r in exchange] + [
        ("fe2.contoso.test", r) for r in new_target
    ]
    # Failover: the REGISTER signed for FE2 is challenged by FE1; a new SA with FE1.
    assert by_phase[1] == [("fe1.contoso.test", r) for r in new_target]
    # Failback: the same at FE2.
    assert by_phase[2] == [("fe2.contoso.test", r) for r in new_target]


def test_ntlm_run_signs_answers_and_the_failback_notify() -> None:
    result = run_scenario(load_scenario(NTLM), messages=True)
    messages = [e.message for e in result.trace if e.kind == "message" and e.message]
    signed_200s = [m for m in messages if m.startswith("SIP/2.0 200") and "rspauth=" in m]
    assert len(signed_200s) >= 3
    notifies = [m for m in messages if m.startswith("NOTIFY ") and "preferred-registrar" in m]
    assert notifies and all("Authentication-Info: NTLM" in m for m in notifies)


@pytest.mark.parametrize("path", [SCENARIO, NTLM], ids=["digest", "ntlm"])
def test_same_seed_same_trace_with_authentication(path: Path) -> None:
    scenario = load_scenario(path)
    first = run_scenario(scenario, verbose=True).to_json()
    assert first == run_scenario(scenario, verbose=True).to_json()
