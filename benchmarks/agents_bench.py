#!/usr/bin/env python3
"""Cost of many client agents on real sockets: memory per agent and CPU at steady state.

A live deployment (``sipemu up`` on uvloop, one Front End pool with N users, pinned to core 1)
serves N ``lync2010`` agents (``clients.driver.Fleet``) with a 300 s keep-alive, run by one
worker process pinned to core 0 (more if ``--per-worker`` is below N: a registered agent holds
one descriptor, its TLS or TCP connection, as its UDP socket is closed until it needs DNS
again; one signing in holds both, and the file-descriptor limit is per process).  The pool
listens on one transport (``--transport``, TLS by default; a TCP pool is found through
``_sipinternal._tcp``, the second SRV name of the lync2010 discovery order).  Each worker
(on uvloop, or ``--loop asyncio``) signs its agents in (``--ramp`` per second), waits until
every one is registered, then measures over ``--window`` seconds of steady state (by default
330 s: one keep-alive period and a margin, so every agent pings and is answered in it):

* memory per agent: the worker's resident set after sign-in minus before the fleet existed,
  divided by its agents;
* CPU: the workers' user+system time over the window divided by the window (a share of one
  core); the deployment's the same, from when every worker has signed in until the first
  worker's window ends; and the deployment's resident set then.

Targets (issue 3): at most 10 KB per agent, at most half a core for 10,000 agents::

    .venv/bin/python benchmarks/agents_bench.py                   # 10,000 TLS agents, ~7 min
    .venv/bin/python benchmarks/agents_bench.py --transport tcp
    .venv/bin/python benchmarks/agents_bench.py --agents 1000 --window 30 --loop asyncio
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

MEMORY_TARGET = 10 * 1024
CPU_TARGET = 0.5
KEEPALIVE = 300.0

TOPOLOGY = """\
domain = "contoso.test"
description = "agents_bench: one pool, {users} users, {transport}"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
ports = {{ {transport} = 0 }}
[[user]]
template = "user{{n:05d}}"
count = {users}
start = 0
pool = "fe1.contoso.test"
[dns]
port = 0
[[dns.srv]]
name = "{srv}.contoso.test"
target = "fe1.contoso.test"
"""
SRV = {"tls": "_sipinternaltls._tcp", "tcp": "_sipinternal._tcp"}
"""The lync2010 discovery order queries _sipinternaltls first and _sipinternal (TCP) second: a
TCP-only pool is found by the second query (one NXDOMAIN more per sign-in)."""


def rss_bytes(pid: int | str = "self") -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(found.group(1)) * 1024 if found else 0


def cpu_seconds(pid: int | None = None) -> float:
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# -- worker ----------------------------------------------------------------------------------


async def worker(args: argparse.Namespace) -> dict[str, float]:
    from clients.driver import ClientConfig, Fleet, client_ssl_context
    from clients.profile import LYNC2010, customized

    profile = customized(LYNC2010, {"keepalive_interval": KEEPALIVE})
    configs = [
        ClientConfig(
            f"c{n}",
            f"sip:user{n:05d}@contoso.test",
            profile,
            f"127.3.{n // 250}.{n % 250 + 1}",
            "contoso.test",
        )
        for n in range(args.first, args.first + args.count)
    ]
    before = rss_bytes()
    fleet = Fleet(
        configs,
        dns_server=("127.0.0.10", args.dns_port),
        seed=1,
        client_ssl=client_ssl_context(args.ca),
    )
    await fleet.start()
    started = time.perf_counter()
    sign_in_cpu0 = cpu_seconds()
    names = list(fleet.hosts)
    for i in range(0, len(names), args.ramp):
        fleet.sign_in(names[i : i + args.ramp])
        await asyncio.sleep(1.0)  # the sign-in rate (a pacing, not a wait for a state)
    ok = await fleet.wait_for_state("registered", timeout=600)
    signed_in = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    print("steady", flush=True)  # the orchestrator's cue to sample the deployment's CPU
    cpu0 = cpu_seconds()
    sign_in_cpu = cpu0 - sign_in_cpu0  # DNS, connect, handshake, REGISTER (x2), SUBSCRIBEs
    await asyncio.sleep(args.window)  # the measurement window itself
    cpu1 = cpu_seconds()
    registered = sum(1 for s in fleet.states().values() if s and s.state == "registered")
    await fleet.stop(unregister=False)
    return {
        "agents": len(configs),
        "registered": registered,
        "all_registered": float(ok),
        "sign_in_s": signed_in,
        "rss_delta": after - before,
        "cpu_s": cpu1 - cpu0,
        "sign_in_cpu_s": sign_in_cpu,
    }


# -- orchestration ---------------------------------------------------------------------------


def start_deployment(
    agents: int, workdir: Path, transport: str = "tls"
) -> tuple[subprocess.Popen[str], int, str]:
    topology = workdir / "topology.toml"
    topology.write_text(TOPOLOGY.format(users=agents, transport=transport, srv=SRV[transport]))
    command = [
        "taskset",
        "-c",
        "1",
        sys.executable,
        "-m",
        "emulator.cli",
        "up",
        "--quiet",
        "--ca-dir",
        str(workdir),
        str(topology),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the endpoint table, before any exit
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    assert proc.stdout is not None
    dns_port = None
    ca = None
    deadline = time.monotonic() + 60
    while (dns_port is None or ca is None) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("dns") and "UDP" in line:
            dns_port = int(line.rsplit(":", 1)[1])
        if line.startswith("CA certificate:"):
            ca = line.split(":", 1)[1].strip()
    if dns_port is None or ca is None:
        proc.kill()
        raise SystemExit("sipemu up did not print its DNS port and CA file")
    return proc, dns_port, ca


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=330.0, help="steady-state seconds")
    parser.add_argument("--ramp", type=int, default=500, help="sign-ins per second per worker")
    parser.add_argument(
        "--per-worker", type=int, default=10_000, help="agents per worker process (10,000)"
    )
    parser.add_argument(
        "--transport", choices=sorted(SRV), default="tls", help="the pool's one transport"
    )
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="the workers' event loop (the deployment runs on uvloop, as `sipemu up` does)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--dns-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ca", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.loop == "uvloop":
            import uvloop

            result = uvloop.run(worker(args))
        else:
            result = asyncio.run(worker(args))
        print(json.dumps(result))
        return 0
    if args.agents < 1 or args.window <= 0 or args.ramp < 1 or args.per_worker < 1:
        parser.error("--agents, --window, --ramp and --per-worker must be positive")
    with tempfile.TemporaryDirectory(prefix="agents-bench-") as tmp:
        server, dns_port, ca = start_deployment(args.agents, Path(tmp), args.transport)
        workers: list[subprocess.Popen[str]] = []
        try:
            server_rss0 = rss_bytes(server.pid)
            for first in range(0, args.agents, args.per_worker):
                count = min(args.per_worker, args.agents - first)
                workers.append(
                    subprocess.Popen(
                        [
                            "taskset",
                            "-c",
                            "0",
                            sys.executable,
                            __file__,
                            "--worker",
                            "--first",
                            str(first),
                            "--count",
                            str(count),
                            "--dns-port",
                            str(dns_port),
                            "--ca",
                            ca,
                            "--loop",
                            args.loop,
                            "--window",
                            str(args.window),
                            "--ramp",
                            str(args.ramp),
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            # The deployment's CPU over the steady state: from when every worker has signed
            # its agents in (each prints "steady") until the first worker's window ends.
            for proc in workers:
                assert proc.stdout is not None
                while (line := proc.stdout.readline()) and line.strip() != "steady":
                    pass
            server_cpu0, server_t0 = cpu_seconds(server.pid), time.monotonic()
            server_rss = rss_bytes(server.pid)
            outputs = [workers[0].communicate(timeout=args.window + 1200)[0]]
            server_share = (cpu_seconds(server.pid) - server_cpu0) / (time.monotonic() - server_t0)
            outputs += [proc.communicate(timeout=args.window + 1200)[0] for proc in workers[1:]]
            results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
            server.terminate()
            server.wait(timeout=30)
    agents = sum(r["agents"] for r in results)
    registered = sum(r["registered"] for r in results)
    per_agent = sum(r["rss_delta"] for r in results) / agents
    share = sum(r["cpu_s"] for r in results) / args.window
    print(
        f"agents            {agents:,} in {len(results)} worker process(es) on {args.loop}, "
        f"keep-alive {KEEPALIVE:g} s, {args.transport.upper()}"
    )
    took = max(r["sign_in_s"] for r in results)
    print(f"registered        {registered:,}  (sign-in took {took:.1f} s)")
    per_sign_in = sum(r["sign_in_cpu_s"] for r in results) / agents
    print(
        f"agents' CPU       {per_sign_in * 1000:.2f} ms per sign-in (a refresh costs at most "
        f"that; one per agent per registration expiry)"
    )
    verdict = "met" if per_agent <= MEMORY_TARGET else "NOT met"
    print(f"memory per agent  {per_agent / 1024:,.1f} KB  (target <= 10 KB: {verdict})")
    verdict = "met" if share <= CPU_TARGET else "NOT met"
    print(f"agents' CPU       {share:.3f} core over {args.window:g} s  (target <= 0.5: {verdict})")
    print(f"deployment's CPU  {server_share:.3f} core at steady state")
    print(
        f"deployment's RSS  {server_rss / 2**20:,.0f} MB with every agent registered "
        f"({(server_rss - server_rss0) / agents / 1024:,.1f} KB per agent more than idle)"
    )
    met = per_agent <= MEMORY_TARGET and share <= CPU_TARGET and registered == agents
    return 0 if met else 1  # like the other benchmarks: status 1 when a target is missed


if __name__ == "__main__":
    sys.exit(main())
