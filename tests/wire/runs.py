"""Small seeded runs whose packets the wire tests draw (deterministic: a seed gives the same
packets byte for byte)."""

from __future__ import annotations

from pathlib import Path

from emulator.scenario.model import Scenario, parse_scenario
from emulator.scenario.runner import RunResult, run_scenario
from emulator.wire import PacketLog

ROOT = Path(__file__).resolve().parents[2]

# The R1 lab: ClientUser2 signs in at fe1 (the SRV target), is redirected home to fe2; fe2's
# NIC goes silent at 1 s, so fe1's heartbeat OPTIONS to fe2 are retransmitted (UDP, RFC 3261
# §17.1.2.2) until the run ends at 8 s.
SIGN_IN = """
description = "ClientUser2 signs in; fe2 goes silent"
topology = "topologies/r1-lab.toml"
seed = 7
duration = 8

[[client]]
name = "ClientUser2"
user = "sip:clientuser2@contoso.test"

[[step]]
at = 0
action = "sign-in"
client = "ClientUser2"

[[step]]
at = 1
action = "disable-nic"
target = "fe2.contoso.test"
"""


def scenario(text: str = SIGN_IN) -> Scenario:
    return parse_scenario(text, source=str(ROOT / "sign-in.toml"))


def run(text: str = SIGN_IN, *, messages: bool = False) -> tuple[RunResult, PacketLog]:
    log = PacketLog()
    result = run_scenario(scenario(text), tap=log, messages=messages)
    return result, log
