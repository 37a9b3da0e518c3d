"""A 503's Retry-After in the simulator (issue 15): with ``registrar.before_failover =
"service-unavailable"`` a backup answers the primary's users 503 + Retry-After until its
failover interval is over, and a client that honours it (RFC 3261 §21.5.4, every shipped
profile) sends that backup nothing more for that long; one that does not comes back after
its own backoff."""

from __future__ import annotations

from pathlib import Path

from emulator.scenario.model import parse_scenario
from emulator.scenario.runner import RunResult, run_scenario

ROOT = Path(__file__).resolve().parents[2]
RETRY_AFTER = 120

SCENARIO = """
topology = "topology.toml"
seed = {seed}
duration = 900

[[client]]
name = "ClientUser2"
user = "sip:clientuser2@contoso.test"
{options}

[[step]]
at = 0
action = "sign-in"
client = "ClientUser2"

[[step]]
at = 300
action = "disable-nic"
target = "fe2.contoso.test"
"""


def run(tmp_path: Path, *, honours: bool, seed: int) -> RunResult:
    topology = (ROOT / "topologies" / "r1-lab.toml").read_text()
    # A failover interval long enough for the client to find FE2 lost and ask FE1 first.
    topology = topology.replace(
        "failover_detection_interval = 30", "failover_detection_interval = 90"
    )
    topology += (
        f'\n[registrar]\nbefore_failover = "service-unavailable"\nretry_after = {RETRY_AFTER}\n'
    )
    (tmp_path / "topology.toml").write_text(topology)
    options = "" if honours else "options = { honours_retry_after = false }"
    text = SCENARIO.format(seed=seed, options=options)
    scenario = parse_scenario(text, "retry-after.toml", base=tmp_path)
    return run_scenario(scenario, verbose=True)


def refusals(result: RunResult) -> list[float]:
    """When FE1 answered the client 503 (the client's notes)."""
    return [
        e.now
        for e in result.trace
        if e.source == "ClientUser2" and "fe1.contoso.test failed: 503" in e.text
    ]


def registered_at_fe1(result: RunResult) -> float:
    [first] = [
        s.now
        for s in result.timeline["ClientUser2"]
        if s.state == "registered" and s.registrar == "fe1.contoso.test"
    ][:1]
    return first


def test_a_client_honouring_retry_after_waits_it_out_before_asking_the_backup_again(
    tmp_path: Path,
) -> None:
    for seed in (1, 2, 3):
        result = run(tmp_path, honours=True, seed=seed)
        [refused] = refusals(result)  # one 503, then nothing to FE1 until it has passed
        assert registered_at_fe1(result) >= refused + RETRY_AFTER


def test_a_client_ignoring_retry_after_asks_again_after_its_backoff(tmp_path: Path) -> None:
    # The same runs with the RFC's SHOULD ignored: FE1 is asked again within the 120 s
    # (the backoff is 30-60 s), so the setting visibly changes what the client does.
    for seed in (1, 2, 3):
        result = run(tmp_path, honours=False, seed=seed)
        times = refusals(result)
        assert times
        registered = registered_at_fe1(result)
        assert len(times) > 1 or registered < times[0] + RETRY_AFTER
