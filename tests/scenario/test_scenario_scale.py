"""Scenario clients scale linearly: twice the clients, twice the work, for loading a file and
for running it.  Work is counted (Python calls and C calls seen by ``sys.setprofile``), never
timed; benchmarks/scenario_scale.py times 1,000 to 20,000 clients."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType

import pytest

from emulator.build import compiled
from emulator.scenario.model import parse_scenario
from emulator.scenario.runner import run_scenario

pytestmark = pytest.mark.skipif(
    compiled(), reason="compiled modules make no profile events to count"
)

TOPOLOGY = """seed = 1
duration = 60
[topology]
domain = "contoso.test"
[[topology.pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
backup = "fe2.contoso.test"
[[topology.pool]]
fqdn = "fe2.contoso.test"
address = "127.0.0.12"
backup = "fe1.contoso.test"
[[topology.user]]
template = "user{n:05d}"
count = 1000
start = 0
pool = "fe1.contoso.test"
[[topology.dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "fe1.contoso.test"
"""


def scenario_text(clients: int) -> str:
    """``clients`` clients, each with a sign-in step and an expectation of its own."""
    parts = [TOPOLOGY]
    for i in range(clients):
        parts.append(f'[[client]]\nname = "c{i}"\nuser = "user{i:05d}@contoso.test"\n')
    for i in range(clients):
        parts.append(f'[[step]]\nat = {i % 10}\naction = "sign-in"\nclient = "c{i}"\n')
    for i in range(clients):
        parts.append(f'[[expect]]\nclient = "c{i}"\nby = 30\nstate = "registered"\n')
    return "\n".join(parts)


def calls(work: Callable[[], object]) -> int:
    """How many Python and C function calls ``work`` makes."""
    count = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        work()
    finally:
        sys.setprofile(None)
    return count


def test_loading_twice_the_clients_is_twice_the_work() -> None:
    empty, small, large = scenario_text(0), scenario_text(100), scenario_text(200)
    base = calls(lambda: parse_scenario(empty))  # the topology alone
    grow_small = calls(lambda: parse_scenario(small)) - base
    grow_large = calls(lambda: parse_scenario(large)) - base
    # Linear: 2.0; before the header index, every step's and expectation's line was found
    # by a scan of the whole file (2.9 at these sizes, and worse as they grow).
    assert grow_large / grow_small < 2.2, (grow_small, grow_large)


def test_running_twice_the_clients_is_twice_the_work() -> None:
    small = parse_scenario(scenario_text(40))
    large = parse_scenario(scenario_text(80))
    empty = parse_scenario(scenario_text(0))
    run_scenario(small)  # first use: imports and caches, not counted
    base = calls(lambda: run_scenario(empty))
    results = []
    grow_small = calls(lambda: results.append(run_scenario(small))) - base
    grow_large = calls(lambda: results.append(run_scenario(large))) - base
    assert all(r.passed for r in results), results[-1].report(timeline=False)
    assert grow_large / grow_small < 2.2, (grow_small, grow_large)
