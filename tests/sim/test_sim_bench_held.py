"""benchmarks/sim_bench.py ``--held``: what each part of a simulated deployment holds.

The figures of docs/benchmarks.md ("Why part 5 is blocked": what each part holds) come from
this walk, so it is checked here: every object counted once and in one part, none missed, and
the agents' and a pool's memory growing with the clients; and the areas of ``--profile-run``."""

from __future__ import annotations

import gc
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sim_bench", ROOT / "benchmarks" / "sim_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def _held(sim_bench: ModuleType, clients: int) -> dict[str, tuple[int, int]]:
    deployment = sim_bench.build(clients, 1, 0.0)
    deployment.run_until(120.0)  # signed in
    return {part: (size, count) for part, size, count in sim_bench.held_by_part(deployment)}


def test_agents_hold_in_proportion_to_the_clients_and_pools_hold_their_bindings(
    sim_bench: ModuleType,
) -> None:
    small, large = _held(sim_bench, 20), _held(sim_bench, 60)
    agents_small, agents_large = small["client agents"][0], large["client agents"][0]
    assert 2.5 * agents_small < agents_large < 3.5 * agents_small
    assert large["core fe1.contoso.test"][0] > small["core fe1.contoso.test"][0]
    # The trace of a run that is not verbose records state changes, one per sign-in at least.
    assert large["world.trace"][0] > small["world.trace"][0]


def test_every_object_is_counted_once_and_none_is_missed(sim_bench: ModuleType) -> None:
    deployment = sim_bench.build(10, 1, 0.0)
    deployment.run_until(60.0)
    ids: dict[str, set[int]] = {}
    parts = sim_bench.held_by_part(deployment, ids=ids)
    assert len({part for part, _, _ in parts}) == len(parts) == len(ids)
    assert all(len(ids[part]) == count for part, _, count in parts)
    # One walk of the deployment, without the parts' walls, reaches exactly the objects and
    # bytes that the deployment's parts counted, and each in one part only.  (Not the modules'
    # parts: what the modules reach may include live deployments that other tests of the
    # session left running in their threads, changing between two walks.)
    own = [part for part, _, _ in parts if not part.startswith("module ")]
    counted = [ids[part] for part in own]
    roots: list[object] = [deployment]
    seen: set[int] = set()
    size = 0
    while roots:
        obj = roots.pop()
        if id(obj) in seen or isinstance(obj, sim_bench._OPAQUE):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        roots.extend(gc.get_referents(obj))
    assert set().union(*counted) == seen
    assert sum(map(len, counted)) == len(seen)  # no object in two parts
    assert sum(part_size for part, part_size, _ in parts if part in own) == size


def test_areas_of_the_code_are_named_by_their_paths(sim_bench: ModuleType) -> None:
    area = sim_bench._area
    assert area(str(ROOT / "emulator" / "sip" / "message.py")).startswith("SIP codec")
    assert area(str(ROOT / "emulator" / "sip" / "transaction.py")).startswith("SIP transactions")
    assert area(str(ROOT / "clients" / "dnscache.py")).startswith("DNS")
    assert area(str(ROOT / "clients" / "agent.py")) == "client agent"
    assert area(str(ROOT / "emulator" / "sim" / "world.py")).startswith("simulator")
    assert area("~").startswith("built-in")
    assert area("/usr/lib/python3.11/heapq.py") == "standard library"
    # The compiled build's modules that stay Python are installed in site-packages.
    installed = "/venv/lib/python3.11/site-packages/emulator/sim/history.py"
    assert area(installed).startswith("simulator")
    assert area(str(ROOT / ".venv/lib/python3.11/site-packages/dnslib/dns.py")).startswith(
        "third-party"
    )
