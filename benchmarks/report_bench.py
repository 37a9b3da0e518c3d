#!/usr/bin/env python3
"""Size and build time of the HTML report (docs/report.md) for a run of many clients.

The run is benchmarks/sim_bench.py's deployment (fe1 and fe2 back each other up, a Director
behind the SRV record, 5,000 users homed on each Front End), every client signing in at t=0
with an empty endpoint cache (so each discovers the Director through DNS and is redirected
home), for ``--duration`` seconds of virtual time, fe1 silent from ``--outage`` on when given.
Printed: the packets and their bytes, the reference beside the report (the same messages'
bytes gzip-compressed, as a compressed capture would hold them), the report's size, the
processor time to build it, and with ``--browser`` the wall time headless Chromium takes to
open it and draw (Debian's chromium through Playwright, as tests/report does)::

    .venv/bin/python benchmarks/report_bench.py
    .venv/bin/python benchmarks/report_bench.py --duration 300 --outage 120 --browser
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
try:
    import emulator  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))

import sim_bench  # noqa: E402

from emulator.report import record_of_simulation, write_report  # noqa: E402
from emulator.scenario.model import Scenario  # noqa: E402
from emulator.scenario.runner import finish  # noqa: E402
from emulator.wire import PacketLog  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=60.0, help="virtual seconds (60)")
    parser.add_argument("--outage", type=float, help="fe1 silent from this time on")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="keep the report here")
    parser.add_argument("--browser", action="store_true", help="also time Chromium opening it")
    args = parser.parse_args()

    deployment = sim_bench.build(args.clients, args.seed, 0.0)
    if args.outage is not None:
        deployment.world.call_at(
            args.outage, partial(deployment.disable_nic, sim_bench.FAULTY_POOL)
        )
    log = PacketLog()
    deployment.world.tap = log
    started = time.process_time()
    deployment.run_until(args.duration)
    simulated = time.process_time() - started
    scenario = Scenario(
        f"<report_bench {args.clients} clients>",
        deployment.topology,
        args.seed,
        args.duration,
        tuple(deployment.specs.values()),
        (),
        (),
    )
    record = record_of_simulation(finish(scenario, deployment), deployment, log)
    raw = b"".join(p.data for p in log.packets)
    reference = len(gzip.compress(raw, compresslevel=6))
    folder = Path(tempfile.mkdtemp(prefix="report_bench-"))
    path = args.out or folder / "report.html"
    started = time.process_time()
    size = write_report(path, record)
    built = time.process_time() - started
    print(f"report_bench: {args.clients:,} clients, {args.duration:g} s virtual, seed {args.seed}")
    print(f"  simulation       {simulated:8.1f} s processor time")
    print(f"  packets          {len(log.packets):>10,}  ({len(raw):,} bytes of messages)")
    print(
        f"  reference        {reference:>10,} bytes: those messages gzip -6 (a compressed capture)"
    )
    print(f"  report           {size:>10,} bytes ({size / reference:.2f}x the reference)")
    print(f"  report built in  {built:8.1f} s processor time")
    if args.browser:
        print(f"  opened and drawn {_browser_seconds(path):8.1f} s wall time in headless Chromium")
    if args.out is None:
        shutil.rmtree(folder)
    else:
        print(f"  kept at {path}")
    return 0


def _browser_seconds(path: Path) -> float:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        started = time.perf_counter()
        page.goto(path.resolve().as_uri())
        page.wait_for_selector("body[data-ready]", timeout=300_000)
        elapsed = time.perf_counter() - started
        state = page.get_attribute("body", "data-ready")
        browser.close()
    if state != "1":
        raise SystemExit("the report did not draw (body data-ready is not 1)")
    return elapsed


if __name__ == "__main__":
    sys.exit(main())
