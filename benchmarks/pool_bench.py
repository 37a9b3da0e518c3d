#!/usr/bin/env python3
"""The registrar pool core on its own: processor time per REGISTER refresh, bytes per binding.

One ``Pool`` (fe1 of benchmarks/sim_bench.py's topology, trace off) receives a REGISTER from
each of ``--users`` users, each from its own address over TCP, with ``+sip.instance`` and
``epid`` as a Lync client sends them; then ``--rounds`` rounds of refreshes (new Via branch,
CSeq + 1).  It prints the best round's processor time per refresh (``Pool.receive`` with the
actions and events taken, as a driver does), and, in a second pass under tracemalloc, the
bytes the pool holds per binding after one refresh each, beside a reference measured the same
way: a dict of AOR -> (contact, Call-ID, CSeq, expiry), the least a registrar must keep.

No sockets: this is the core's cost, without a driver (benchmarks/sip_bench.py measures the
live pool under SIPp).  Used for the registrar's memory work (docs/benchmarks.md, "The
registrar pool core and the directory of users").

    taskset -c 1 .venv/bin/python benchmarks/pool_bench.py
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
try:
    import emulator  # noqa: F401  (installed: editable, or a compiled build)
except ImportError:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_bench import topology  # noqa: E402

from emulator.net import Flow  # noqa: E402
from emulator.registrar.endpoints import PoolEndpoints  # noqa: E402
from emulator.registrar.pool import Pool  # noqa: E402

POOL = "fe1.contoso.test"


def request(i: int, cseq: int) -> tuple[bytes, Flow]:
    """User i's REGISTER (CSeq ``cseq``) and the flow it arrives on."""
    user = f"fe1user{i:05d}"
    ip = f"10.{i // 250}.{i % 250}.1"
    data = (
        f"REGISTER sip:contoso.test SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {ip}:5070;branch=z9hG4bK{i}x{cseq}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@contoso.test>;tag=ab{i};epid=01234{i}\r\n"
        f"To: <sip:{user}@contoso.test>\r\n"
        f"Call-ID: call{i}@{ip}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f'Contact: <sip:{ip}:5070;transport=tcp>;+sip.instance="<urn:uuid:'
        f'00000000-0000-0000-0000-{i:012d}>"\r\n'
        "Supported: ms-cluster-failover, ms-userservices-state-notification\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    return data, Flow("tcp", ("127.0.0.11", 5060), (ip, 5070))


def new_pool(users: int) -> Pool:
    topo = topology(2 * users)
    endpoints = {
        s.fqdn: PoolEndpoints(s.fqdn, s.address, {t: s.port(t) or 0 for t in s.transports})
        for s in topo.pools
    }
    pool = Pool(topo.pool(POOL), topo, endpoints, random.Random(1), now=0.0, trace=False)
    pool.start(0.0)
    return pool


def feed(pool: Pool, batch: list[tuple[bytes, Flow]], now: float, step: float) -> float:
    for data, flow in batch:
        now += step
        pool.receive(data, flow, now)
        pool.actions()
        pool.events()
    return now


def speed(users: int, rounds: int) -> float:
    """Best round's processor seconds per refresh."""
    pool = new_pool(users)
    now = feed(pool, [request(i + 1, 1) for i in range(users)], 0.0, 0.0)
    best = float("inf")
    for cseq in range(2, rounds + 2):
        batch = [request(i + 1, cseq) for i in range(users)]
        started = time.process_time()
        now = feed(pool, batch, now, 0.001)
        best = min(best, (time.process_time() - started) / users)
    return best


def held_per_binding(users: int) -> tuple[float, float]:
    """(the pool's bytes per binding, the reference's), after one refresh each."""
    gc.collect()
    tracemalloc.start()
    pool = new_pool(users)
    base = tracemalloc.get_traced_memory()[0]
    now = feed(pool, [request(i + 1, 1) for i in range(users)], 0.0, 0.0)
    feed(pool, [request(i + 1, 2) for i in range(users)], now, 0.01)
    gc.collect()
    pool_bytes = tracemalloc.get_traced_memory()[0] - base
    bindings = len(pool.bindings())
    del pool
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    reference: dict[str, tuple[str, str, int, float]] = {}
    for i in range(users):
        ip = f"10.{i // 250}.{i % 250}.1"
        reference[f"sip:fe1user{i + 1:05d}@contoso.test"] = (
            f"<sip:{ip}:5070;transport=tcp>",
            f"call{i + 1}@{ip}",
            2,
            3600.0 + i,
        )
    reference_bytes = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return pool_bytes / max(1, bindings), reference_bytes / users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=5_000, help="users (default 5,000)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of refreshes (default 6)")
    args = parser.parse_args()
    if not 1 <= args.users <= 50_000:
        parser.error("--users must be between 1 and 50,000")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    per_refresh = speed(args.users, args.rounds)
    pool_bytes, reference_bytes = held_per_binding(args.users)
    print(f"pool_bench: {args.users:,} users, one pool, TCP, trace off")
    print(f"Pool.receive per refresh   {per_refresh * 1e6:8.1f} us  (best of {args.rounds} rounds)")
    print(f"held per binding           {pool_bytes:8,.0f} B  (tracemalloc)")
    print(f"reference per binding      {reference_bytes:8,.0f} B  (dict of AOR -> 4-tuple)")


if __name__ == "__main__":
    main()
