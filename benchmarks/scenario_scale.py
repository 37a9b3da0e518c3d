#!/usr/bin/env python3
"""How scenario files scale with their clients: load and run N = 1,000, 4,000, 20,000.

Each size is a generated scenario file (an inline ``[topology]``: Front End pools fe1 and fe2,
each the other's backup, failover after 10 s and failback after 20 s of heartbeats, half the
users homed on each; one SRV record naming fe1).  Every client has a ``[[client]]`` table, a
``sign-in`` step (spread over the first 10 s) and two ``[[expect]]`` tables (registered by 30
s, and again by the end); fe1's network interface is disabled at 60 s and enabled at 120 s;
the run ends at 240 s of virtual time.  The script times, in one process:

- **toml**: ``tomllib.loads`` of the file's text (the reference: what reading the file costs
  before sipemu validates anything);
- **load**: ``load_scenario`` (read, parse, validate, build the topology and the clients);
- **run**: ``run_scenario`` (build the deployment, run it, check the expectations);

and prints each in seconds and in microseconds per client.  Linear scaling means the per-client
figures stay flat as N grows; the verdict fails (exit status 1) when the largest size costs
more than twice per client what the smallest does, or when an expectation fails.  Before issue
21, 1,000 clients took 3.3 s, 4,000 took 57 s, and 20,000 did not finish in 120 s.

    .venv/bin/python benchmarks/scenario_scale.py
    .venv/bin/python benchmarks/scenario_scale.py --sizes 1000,2000 --json

``--baseline DIR`` also runs the same sizes (``--baseline-sizes``, default 1,000) on another
checkout of sipemu, e.g. the commit before the fix (``git worktree add /tmp/old a5b30a2~1``),
in a child process with ``PYTHONPATH=DIR``, each size given ``--baseline-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
try:
    import emulator  # installed: editable, or a compiled build, setup.py
except ImportError:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
    import emulator

from emulator.build import describe  # noqa: E402
from emulator.scenario.model import load_scenario  # noqa: E402
from emulator.scenario.runner import run_scenario  # noqa: E402

SIZES = (1_000, 4_000, 20_000)
LINEAR_SLACK = 2.0
"""The largest size may cost at most this many times per client what the smallest costs."""
DURATION = 240

TOPOLOGY = """\
description = "benchmarks/scenario_scale.py: {n} clients"
seed = 1
duration = {duration}

[topology]
domain = "contoso.test"

[topology.resiliency]
failover_detection_interval = 10
failback_detection_interval = 20
heartbeat_interval = 2
heartbeat_timeout = 2

[[topology.pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
backup = "fe2.contoso.test"

[[topology.pool]]
fqdn = "fe2.contoso.test"
address = "127.0.0.12"
backup = "fe1.contoso.test"

[[topology.user]]
template = "user{{n:05d}}"
count = {half}
start = 0
pool = "fe1.contoso.test"

[[topology.user]]
template = "user{{n:05d}}"
count = {rest}
start = {half}
pool = "fe2.contoso.test"

[[topology.dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "fe1.contoso.test"
"""


def scenario_text(n: int) -> str:
    half = n // 2
    parts = [TOPOLOGY.format(n=n, half=max(half, 1), rest=max(n - half, 1), duration=DURATION)]
    for i in range(n):
        parts.append(f'[[client]]\nname = "c{i}"\nuser = "user{i:05d}@contoso.test"\n')
    for i in range(n):
        parts.append(f'[[step]]\nat = {i % 100 / 10:g}\naction = "sign-in"\nclient = "c{i}"\n')
    parts.append('[[step]]\nat = 60\naction = "disable-nic"\ntarget = "fe1.contoso.test"\n')
    parts.append('[[step]]\nat = 120\naction = "enable-nic"\ntarget = "fe1.contoso.test"\n')
    for i in range(n):
        parts.append(f'[[expect]]\nclient = "c{i}"\nby = 30\nstate = "registered"\n')
        parts.append(f'[[expect]]\nclient = "c{i}"\nby = {DURATION}\nstate = "registered"\n')
    return "\n".join(parts)


@dataclass
class Row:
    clients: int
    file_bytes: int
    toml_s: float
    load_s: float
    run_s: float
    events: int
    passed: int
    failed: int

    def per_client_us(self, seconds: float) -> float:
        return seconds / self.clients * 1e6


def measure(n: int, directory: Path) -> Row:
    text = scenario_text(n)
    path = directory / f"scale-{n}.toml"
    path.write_text(text, encoding="utf-8")
    gc.collect()
    start = time.perf_counter()
    tomllib.loads(text)
    toml_s = time.perf_counter() - start
    gc.collect()
    start = time.perf_counter()
    scenario = load_scenario(path)
    load_s = time.perf_counter() - start
    gc.collect()
    start = time.perf_counter()
    result = run_scenario(scenario)
    run_s = time.perf_counter() - start
    passed = sum(r.passed for r in result.results)
    return Row(
        n,
        len(text.encode()),
        toml_s,
        load_s,
        run_s,
        result.events_processed,
        passed,
        len(result.results) - passed,
    )


def _baseline(checkout: Path, n: int, timeout: float) -> Row | None:
    """One size measured by this script run on another checkout (None: it timed out)."""
    env = dict(os.environ, PYTHONPATH=str(checkout.resolve()))
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--sizes", str(n), "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    data = json.loads(done.stdout)
    assert data["emulator"] == str(checkout.resolve() / "emulator"), data["emulator"]
    return Row(**data["rows"][0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in SIZES),
        help="comma-separated client counts (1000,4000,20000)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--baseline", metavar="DIR", help="also time this sipemu checkout")
    parser.add_argument("--baseline-sizes", default="1000", help="its sizes (1000)")
    parser.add_argument(
        "--baseline-timeout", type=float, default=300.0, help="seconds per baseline size (300)"
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    if not sizes or sizes[0] < 1:
        parser.error("--sizes: client counts >= 1")
    with tempfile.TemporaryDirectory(prefix="sipemu-scale-") as tmp:
        rows = [measure(n, Path(tmp)) for n in sizes]
    baseline: list[tuple[int, Row | None]] = []
    if args.baseline:
        for n in sorted(int(s) for s in args.baseline_sizes.split(",") if s.strip()):
            baseline.append((n, _baseline(Path(args.baseline), n, args.baseline_timeout)))
    small, large = rows[0], rows[-1]
    ratio = (
        (large.load_s + large.run_s)
        / large.clients
        / ((small.load_s + small.run_s) / small.clients)
    )
    linear = ratio <= LINEAR_SLACK
    ok = linear and all(r.failed == 0 for r in rows)
    if args.json:
        print(
            json.dumps(
                {
                    "build": describe(),
                    "emulator": str(Path(emulator.__file__).parent),
                    "rows": [asdict(r) for r in rows],
                    "baseline": {str(n): asdict(r) if r else None for n, r in baseline},
                    "per_client_ratio": ratio,
                    "ok": ok,
                },
                indent=1,
            )
        )
        return 0 if ok else 1
    print(f"scenario scaling ({describe()}), {DURATION} s of virtual time per run")
    print(
        f"{'clients':>8} {'file MB':>8} {'toml s':>8} {'load s':>8} {'run s':>8} "
        f"{'toml us/cl':>10} {'load us/cl':>10} {'run us/cl':>10} {'events':>9} {'failed':>6}"
    )
    for r in rows:
        print(
            f"{r.clients:>8} {r.file_bytes / 1e6:>8.2f} {r.toml_s:>8.2f} {r.load_s:>8.2f} "
            f"{r.run_s:>8.2f} {r.per_client_us(r.toml_s):>10.0f} "
            f"{r.per_client_us(r.load_s):>10.0f} {r.per_client_us(r.run_s):>10.0f} "
            f"{r.events:>9} {r.failed:>6}"
        )
    for n, base in baseline:
        if base is None:
            print(
                f"baseline {args.baseline}, {n} clients: did not finish in "
                f"{args.baseline_timeout:g} s"
            )
        else:
            print(
                f"baseline {args.baseline}, {n} clients: load {base.load_s:.2f} s, run "
                f"{base.run_s:.2f} s ({base.per_client_us(base.load_s + base.run_s):.0f} us per "
                "client)"
            )
    print(
        f"load+run per client at {large.clients} / at {small.clients}: {ratio:.2f} "
        f"(linear: <= {LINEAR_SLACK:g}) -> {'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
