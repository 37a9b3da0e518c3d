#!/usr/bin/env python3
"""Speed of the simulator: 10,000 clients, two pools and a Director, one hour with an outage.

The deployment is the R1 lab grown to size: Front End pools fe1 and fe2, each the other's
backup registrar (failover 30 s, failback 40 s as in R1), a Director dir1 that the one
``_sipinternaltls._tcp`` SRV record names, and 5,000 users homed on each Front End.  Every
client runs the default ``lync2010`` profile with an empty endpoint cache and signs in at t=0
(``--ramp S`` spreads the sign-ins over the first S seconds); fe1's network interface is
disabled at t=1200 and enabled at t=2400; the run ends at t=3600.  The script prints the wall
time (build and run), the events the world processed and the events per second, how many
clients are registered (where, in which mode) at a few checkpoints, and the verdict against
the target: at most 30 s of wall time on one core (stretch: 10 s).

It also prints the memory the simulation holds: the process's peak resident set size and the
bytes per client (peak RSS less the RSS before the deployment was built, over the clients;
issue 20's target is at most 4 KB per client, so that 1,000,000 clients fit in 5 GB), beside
a reference program measured the same way in the same run, in a child process: one
Mersenne Twister generator (``random.Random``) per client, seeded as the world seeds each
client's.  Why that reference: its size is fixed by the standard library (2.5 KB of state), so
it checks the RSS method (it should read about 2.5 KB per client) and it is what every
simulated client carried before the world handed out generators that drop their state while
unused (emulator/sim/lazyrandom.py).  ``--no-reference`` skips it.

Run it pinned to one core, as the target is stated::

    taskset -c 1 .venv/bin/python benchmarks/sim_bench.py
    taskset -c 1 .venv/bin/python benchmarks/sim_bench.py --clients 2000 --profile-run
    taskset -c 1 .venv/bin/python benchmarks/sim_bench.py --clients 100000
    taskset -c 1 .venv/bin/python benchmarks/sim_bench.py --clients 10000 --held --no-reference
    .venv/bin/python benchmarks/sim_bench.py --clients 300 --seed 1 --dump /tmp/states.txt

``--dump FILE`` writes every client's final (state, registrar, mode), its whole timeline and
the trace: a run's fingerprint, for checking that an optimisation left behaviour unchanged
(a seed reproduces a run byte for byte).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import time
import tracemalloc
import types
from collections import Counter
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
try:
    import emulator  # noqa: F401  (installed: editable, or a compiled build, setup.py)
except ImportError:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from emulator.build import describe  # noqa: E402
from emulator.sim.deployment import ClientSpec, SimulatedDeployment  # noqa: E402
from emulator.topology import Topology, parse_topology  # noqa: E402

TARGET_S = 30.0
TARGET_BYTES_PER_CLIENT = 4096
STRETCH_S = 10.0
DURATION = 3600.0
OUTAGE_AT = 1200.0
RECOVERY_AT = 2400.0
CHECKPOINTS = (60.0, OUTAGE_AT, OUTAGE_AT + 120.0, RECOVERY_AT, RECOVERY_AT + 120.0, DURATION)
"""Signed in; just before the outage; fe1's users failed over; before and after recovery."""
FAULTY_POOL = "fe1.contoso.test"
USERS_PER_POOL = 5_000

TOPOLOGY = """\
domain = "contoso.test"
description = "sim_bench: fe1 and fe2 back each other up; a Director behind the SRV record"

[resiliency]
failover_detection_interval = 30
failback_detection_interval = 40
heartbeat_interval = 5
heartbeat_timeout = 5

[[pool]]
fqdn = "fe1.contoso.test"
role = "frontend"
address = "127.0.0.11"
backup = "fe2.contoso.test"
ports = {{ udp = 5060, tcp = 5060, tls = 5061 }}

[[pool]]
fqdn = "fe2.contoso.test"
role = "frontend"
address = "127.0.0.12"
backup = "fe1.contoso.test"
ports = {{ udp = 5060, tcp = 5060, tls = 5061 }}

[[pool]]
fqdn = "dir1.contoso.test"
role = "director"
address = "127.0.0.13"
ports = {{ udp = 5060, tcp = 5060, tls = 5061 }}

[[user]]
template = "fe1user{{n:05d}}@contoso.test"
count = {users}
pool = "fe1.contoso.test"

[[user]]
template = "fe2user{{n:05d}}@contoso.test"
count = {users}
pool = "fe2.contoso.test"

[dns]
address = "127.0.0.10"
port = 53
zones = ["contoso.test"]

[[dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "dir1.contoso.test"
"""


@dataclass(frozen=True)
class Checkpoint:
    at: float
    registered: int
    on_fe1: int
    on_fe2: int
    limited: int


@dataclass(frozen=True)
class Result:
    clients: int
    seed: int
    ramp: float
    build_s: float
    run_s: float
    wall_s: float
    cpu_s: float
    """Processor time of build and run: steadier than wall time on a shared machine."""
    events: int
    events_per_s: float
    checkpoints: tuple[Checkpoint, ...]
    rss_before_mb: float
    """Resident set size before the deployment was built (interpreter and imports)."""
    peak_rss_mb: float
    """Peak resident set size of the process (build and run)."""
    bytes_per_client: float
    """(peak RSS - RSS before the build) / clients."""
    reference_bytes_per_client: float | None
    """The reference program's, measured the same way (None: --no-reference)."""
    target_s: float
    stretch_s: float
    passed: bool
    stretch_passed: bool


def topology(clients: int) -> Topology:
    users = max(USERS_PER_POOL, (clients + 1) // 2)
    return parse_topology(TOPOLOGY.format(users=users), "<sim_bench>")


def client_specs(clients: int) -> list[ClientSpec]:
    """Client i is user i//2 + 1 of fe1 (even i) or of fe2 (odd i): both pools equally loaded
    (generated users are numbered from 1)."""
    return [
        ClientSpec(f"c{i:05d}", f"sip:fe{i % 2 + 1}user{i // 2 + 1:05d}@contoso.test")
        for i in range(clients)
    ]


def build(clients: int, seed: int, ramp: float, *, verbose: bool = False) -> SimulatedDeployment:
    deployment = SimulatedDeployment(
        topology(clients), client_specs(clients), seed=seed, verbose=verbose
    )
    world = deployment.world
    for i, name in enumerate(deployment.agents):
        world.call_at(ramp * i / clients if ramp else 0.0, partial(deployment.sign_in, name))
    world.call_at(OUTAGE_AT, partial(deployment.disable_nic, FAULTY_POOL))
    world.call_at(RECOVERY_AT, partial(deployment.enable_nic, FAULTY_POOL))
    return deployment


def rss_bytes() -> int:
    """The process's resident set size now (Linux: /proc/self/statm)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (Linux reports it in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reference_bytes(clients: int, seed: int) -> float:
    """Bytes per client of the reference program (the module docstring), run in a child
    process so that neither run's freed memory flatters the other."""
    out = subprocess.run(
        [sys.executable, __file__, "--reference-only", str(clients), "--seed", str(seed)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.split()[-1])


def _reference_only(clients: int, seed: int) -> None:
    """The reference program: one Mersenne Twister per client, held, seeded as the world
    seeds each client's (World.rng_for); prints (RSS with them held - RSS before) / clients.
    Not the peak: Linux carries a process's peak over to the program it executes, so a child's
    peak starts at its parent's (and the generators are held here, so RSS is the peak)."""
    import random

    before = rss_bytes()
    held = [random.Random(f"{seed}:client:c{i:05d}:0") for i in range(clients)]
    print((rss_bytes() - before) / clients)
    del held


def _print_traced(clients: int, top: int) -> None:
    """What tracemalloc saw: Python's heap, without the allocator's free lists and holes."""
    held, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    print(
        f"traced     {held / clients:,.0f} bytes per client held at the end, "
        f"{peak / clients:,.0f} at the peak (tracemalloc; build and run)"
    )
    for stat in snapshot.statistics("lineno")[:top]:
        frame = stat.traceback[0]
        where = Path(frame.filename)
        if where.is_relative_to(ROOT):
            where = where.relative_to(ROOT)
        size, count = stat.size / clients, stat.count / clients
        print(f"  {size:7,.0f} B {count:6.2f} blocks  {where}:{frame.lineno}")


_OPAQUE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.CodeType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
)
"""What the walk of ``--held`` never counts nor enters: classes, modules and code are the
program's, not the run's."""


def _fields(obj: object) -> dict[str, object]:
    """An object's attributes by name: its ``__dict__``, or, for an instance of a class compiled
    by mypyc (the compiled build), which has none, the attributes the class lists."""
    native: tuple[str, ...] | None = getattr(type(obj), "__mypyc_attrs__", None)
    if native is None:
        return dict(vars(obj))
    # Only the attributes held as objects: a float, int or bool held unboxed in the instance
    # (counted in its size) would be boxed anew by getattr.
    held = {id(referent) for referent in gc.get_referents(obj)}
    values = {name: getattr(obj, name) for name in native if hasattr(obj, name)}
    return {name: value for name, value in values.items() if id(value) in held}


def held_by_part(
    deployment: SimulatedDeployment, *, ids: dict[str, set[int]] | None = None
) -> list[tuple[str, int, int]]:
    """What each part of the deployment holds now: ``(part, bytes, objects)``, every object
    counted once, for the first part in this order that reaches it (``gc.get_referents``, sizes
    by ``sys.getsizeof``, which counts the collector's header): the topology and the state
    behind the pools (shared), the agents, each other core (pools, the Director, DNS), then
    each attribute of the world and of the deployment, and last the module-level tables of the
    program's own modules (caches shared by every client).  A core, the world and the deployment
    are walls: no part reaches into another through them.  Memory of its own (a set of the ids
    seen): use it up to a few tens of thousands of clients.  ``ids``, if given, receives each
    part's objects' ids (for tests)."""
    world = deployment.world
    world_fields, deployment_fields = _fields(world), _fields(deployment)
    cores: list[object] = world_fields["_cores"]  # type: ignore[assignment]
    names: list[str] = world_fields["_names"]  # type: ignore[assignment]
    walls = {id(deployment), id(world), *(id(core) for core in cores)}
    seen = set(walls)
    parts: list[tuple[str, int, int]] = []

    def walk(part: str, roots: list[object]) -> None:
        size = count = 0
        mine = ids.setdefault(part, set()) if ids is not None else None
        for root in roots:
            if id(root) in walls:  # a core: walked once, as a root
                walls.discard(id(root))
                seen.discard(id(root))
            stack = [root]
            while stack:
                obj = stack.pop()
                if id(obj) in seen or isinstance(obj, _OPAQUE):
                    continue
                seen.add(id(obj))
                if mine is not None:
                    mine.add(id(obj))
                size += sys.getsizeof(obj)
                count += 1
                stack.extend(gc.get_referents(obj))
        parts.append((part, size, count))

    walk("topology and operations (shared)", [deployment.topology, deployment.ops])
    walk("client agents", [*deployment.agents.values(), deployment.agents])
    agents = {id(agent) for agent in deployment.agents.values()}
    for name, core in zip(names, cores, strict=True):
        if id(core) not in agents:
            walk(f"core {name}", [core])
    for attr, value in world_fields.items():
        walk(f"world.{attr}", [value])
    for attr, value in deployment_fields.items():
        if attr not in ("world", "topology", "ops", "agents"):
            walk(f"deployment.{attr}", [value])
    # The world and the deployment themselves, and their attributes' dicts (walked above; a
    # compiled class's instances have none).
    shells = [world, deployment]
    shells += [vars(obj) for obj in shells if not hasattr(type(obj), "__mypyc_attrs__")]
    parts.append(("the world and the deployment", sum(map(sys.getsizeof, shells)), len(shells)))
    seen.update(map(id, shells))
    if ids is not None:
        ids["the world and the deployment"] = set(map(id, shells))
    for name, module in sorted(sys.modules.items()):
        if name.partition(".")[0] in ("emulator", "clients", "fakedns"):
            tables = [v for k, v in vars(module).items() if not k.startswith("__")]
            walk(f"module {name} (its tables and caches)", tables)
    return parts


def _print_held(parts: list[tuple[str, int, int]], clients: int, grown: int) -> None:
    """The parts above 1% of what was reached, the rest summed, and what RSS grew by beyond
    what was reached (the allocator's free lists and holes, the peak's garbage)."""
    total = sum(size for _, size, _ in parts)
    print(f"held at the end, by part (--held; {total / clients:,.0f} bytes per client reached):")
    rest = rest_objects = 0
    for part, size, count in sorted(parts, key=lambda p: -p[1]):
        if size < total / 100:
            rest, rest_objects = rest + size, rest_objects + count
            continue
        print(f"  {size / clients:7,.0f} B {count / clients:7.1f} objects  {part}")
    print(f"  {rest / clients:7,.0f} B {rest_objects / clients:7.1f} objects  the other parts")
    print(
        f"  {(grown - total) / clients:7,.0f} B                  peak RSS growth not reached "
        "(the allocator's free lists and holes, the peak's garbage)"
    )


_AREAS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("emulator/sim/",), "simulator: world, network, coasting, deployment"),
    (
        ("emulator/sip/message.py", "emulator/sip/headers.py", "emulator/sip/uri.py"),
        "SIP codec: messages, headers, URIs",
    ),
    (("emulator/sip/",), "SIP transactions, digest, framing"),
    (("emulator/registrar/",), "registrar pools and the Director"),
    (("clients/dns", "fakedns/"), "DNS: queries, answers, caches"),
    (("clients/",), "client agent"),
    (("emulator/",), "emulator: other (operations, back ends, effects)"),
)
"""Areas of the code by the start of a file's path, the first that matches."""


_OWN = ("emulator", "clients", "fakedns", "benchmarks")
"""The project's top-level directories (its packages and benchmarks)."""


def _area(filename: str) -> str:
    if filename == "~":
        return "built-in functions and methods (called by all of the above)"
    where = Path(filename)
    if "site-packages" in where.parts:  # installed: the compiled build's Python modules too
        rest = where.parts[len(where.parts) - where.parts[::-1].index("site-packages") :]
        if not rest or rest[0] not in _OWN:
            return "third-party libraries"
        relative = "/".join(rest)
    elif where.is_relative_to(ROOT):
        relative = where.relative_to(ROOT).as_posix()
    else:
        return "standard library"
    return next((area for prefixes, area in _AREAS if relative.startswith(prefixes)), relative)


def _print_areas(profiler: cProfile.Profile) -> None:
    """Internal time by area of the code (cProfile's ``tottime`` summed by file): the
    simulator's share against the protocol cores' and the SIP codec's."""
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    areas: Counter[str] = Counter()
    for (filename, _, _), (_, _, internal, _, _) in stats.items():
        areas[_area(filename)] += internal  # type: ignore[assignment]
    total = sum(areas.values())
    print("internal time by area (cProfile):")
    for area, seconds in areas.most_common():
        print(f"  {100 * seconds / total:5.1f}%  {area}")


def checkpoint(deployment: SimulatedDeployment) -> Checkpoint:
    states = Counter(
        (agent.registrar.host if agent.registrar else None, agent.mode)
        for agent in deployment.agents.values()
        if agent.state == "registered"
    )
    return Checkpoint(
        at=deployment.world.now,
        registered=sum(states.values()),
        on_fe1=sum(n for (host, _), n in states.items() if host == "fe1.contoso.test"),
        on_fe2=sum(n for (host, _), n in states.items() if host == "fe2.contoso.test"),
        limited=sum(n for (_, mode), n in states.items() if mode == "limited"),
    )


def run(deployment: SimulatedDeployment) -> list[Checkpoint]:
    """Run to the end, stopping at each checkpoint (stopping changes nothing in the run)."""
    return [_run_to(deployment, at) for at in CHECKPOINTS]


def _run_to(deployment: SimulatedDeployment, at: float) -> Checkpoint:
    deployment.run_until(at)
    return checkpoint(deployment)


def dump(deployment: SimulatedDeployment, path: Path) -> None:
    """A run's fingerprint: final states, every timeline, the trace, the event count."""
    lines = [f"events {deployment.world.events_processed}"]
    for name, agent in deployment.agents.items():
        registrar = agent.registrar.host if agent.registrar else None
        lines.append(f"{name} {agent.state} {registrar} {agent.mode}")
    for changes in deployment.timeline.values():
        lines.extend(change.line() for change in changes)
    lines.extend(entry.line() for entry in deployment.world.trace)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10_000, help="clients (default 10,000)")
    parser.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    parser.add_argument(
        "--ramp",
        type=float,
        default=0.0,
        metavar="S",
        help="spread the sign-ins evenly over the first S seconds (default: all at t=0)",
    )
    parser.add_argument(
        "--profile-run",
        action="store_true",
        help="cProfile the run (not the build): internal time by area of the code (SIP codec, "
        "simulator, agent, registrar ...), then the top 25 functions by tottime",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    parser.add_argument(
        "--dump",
        metavar="FILE",
        help="write final per-client states, timelines and the trace to FILE",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="record every SIP exchange, DNS query and client detail (slower; for --dump)",
    )
    parser.add_argument(
        "--no-coast",
        action="store_true",
        help="simulate every keep-alive and heartbeat packet (docs/simulation.md, Coasting)",
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the reference program (one random.Random per client, in a child process)",
    )
    parser.add_argument(
        "--tracemalloc",
        type=int,
        nargs="?",
        const=12,
        metavar="TOP",
        help="trace Python's allocations (several times slower): bytes per client held at the "
        "end and at the peak, and the TOP source lines holding the most at the end (12)",
    )
    parser.add_argument(
        "--held",
        action="store_true",
        help="after the run, walk what each part of the deployment holds (agents, each pool, "
        "the world's tables ...) and print bytes per client by part (the walk's own set of "
        "object ids takes about as much memory again: for up to a few tens of thousands)",
    )
    parser.add_argument("--reference-only", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference_only is not None:
        _reference_only(args.reference_only, args.seed)
        return 0
    if args.clients < 1:
        parser.error("--clients must be at least 1")
    if not 0.0 <= args.ramp <= OUTAGE_AT:
        parser.error(f"--ramp must be between 0 and {OUTAGE_AT:g} s")

    if args.tracemalloc is not None:
        tracemalloc.start()
    rss_before = rss_bytes()
    started = time.perf_counter()
    cpu_started = time.process_time()
    deployment = build(args.clients, args.seed, args.ramp, verbose=args.verbose)
    deployment.world.coast = not args.no_coast
    built = time.perf_counter()
    profiler = cProfile.Profile() if args.profile_run else None
    if profiler is not None:
        profiler.enable()
    checkpoints = run(deployment)
    if profiler is not None:
        profiler.disable()
    finished = time.perf_counter()
    cpu_s = time.process_time() - cpu_started

    build_s, run_s = built - started, finished - built
    peak = peak_rss_bytes()
    per_client = (peak - rss_before) / args.clients
    reference = None if args.no_reference else reference_bytes(args.clients, args.seed)
    wall_s = build_s + run_s
    events = deployment.world.events_processed
    deployment.world.settle()  # count what is being coasted at the end too (not timed)
    pings, rounds = deployment.world.pings_coasted, deployment.world.heartbeats_coasted
    result = Result(
        clients=args.clients,
        seed=args.seed,
        ramp=args.ramp,
        build_s=build_s,
        run_s=run_s,
        wall_s=wall_s,
        cpu_s=cpu_s,
        events=events,
        events_per_s=events / run_s if run_s else 0.0,
        checkpoints=tuple(checkpoints),
        rss_before_mb=rss_before / 2**20,
        peak_rss_mb=peak / 2**20,
        bytes_per_client=per_client,
        reference_bytes_per_client=reference,
        target_s=TARGET_S,
        stretch_s=STRETCH_S,
        passed=wall_s <= TARGET_S,
        stretch_passed=wall_s <= STRETCH_S,
    )
    print(
        f"sim_bench: {args.clients:,} clients, seed {args.seed}, "
        f"sign-in {'at t=0' if not args.ramp else f'over {args.ramp:g} s'}, "
        f"{FAULTY_POOL} silent {OUTAGE_AT:g}-{RECOVERY_AT:g} s, {DURATION:g} s simulated"
    )
    print(f"build: {describe()}")
    print()
    print(f"{'virtual t':>10} {'registered':>11} {'at fe1':>8} {'at fe2':>8} {'limited':>8}")
    for c in checkpoints:
        print(f"{c.at:>10g} {c.registered:>11,} {c.on_fe1:>8,} {c.on_fe2:>8,} {c.limited:>8,}")
    print()
    if profiler is not None:
        print("(the run was profiled: cProfile makes it several times slower)")
    print(f"build      {build_s:8.2f} s")
    print(f"run        {run_s:8.2f} s")
    print(f"wall time  {wall_s:8.2f} s  (processor time {cpu_s:.2f} s)")
    print(f"events     {events:>11,}  ({events / args.clients:,.0f} per client)")
    print(f"events/s   {result.events_per_s:>11,.0f}  (run only)")
    print(f"coasted    {pings:>11,} keep-alive round trips, {rounds:,} heartbeat rounds")
    print(
        f"memory     peak RSS {peak / 2**20:,.0f} MB ({rss_before / 2**20:,.0f} MB before the "
        f"build): {per_client:,.0f} bytes per client"
    )
    if reference is not None:
        print(
            f"reference  one random.Random per client, same method: {reference:,.0f} bytes "
            "per client"
        )
    memory = "PASS" if per_client <= TARGET_BYTES_PER_CLIENT else "FAIL"
    print(f"memory     <= {TARGET_BYTES_PER_CLIENT:,} bytes per client: {memory}")
    if args.tracemalloc is not None:
        _print_traced(args.clients, args.tracemalloc)
    if args.held:
        _print_held(held_by_part(deployment), args.clients, peak - rss_before)
    verdict = "PASS" if result.passed else "FAIL"
    stretch = "PASS" if result.stretch_passed else "FAIL"
    print(f"target     <= {TARGET_S:g} s: {verdict}; stretch <= {STRETCH_S:g} s: {stretch}")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print()
        _print_areas(profiler)
        print()
        print(out.getvalue().rstrip())
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    if args.dump:
        dump(deployment, Path(args.dump))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
