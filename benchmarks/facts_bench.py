#!/usr/bin/env python3
"""Cost of facts (docs/scenarios.md, "Facts") on a virtual-time run.

A run of the default topology: ``--clients N`` clients (default 200) sign in at t=0, fe2 goes
silent from 600 to 1800, the run lasts an hour.  The script prints the best of three times of:

* the run with no facts (the reference: idle keep-alives and heartbeats coast);
* the run with registrar and client-knowledge facts (pool events only: it still coasts);
* the same run with every packet recorded by a PacketLog tap and no facts (the reference for
  the next line: recording packets switches coasting off);
* the run with a message fact per client (packets recorded and read by the facts).

    .venv/bin/python benchmarks/facts_bench.py
    .venv/bin/python benchmarks/facts_bench.py --clients 1000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from emulator.scenario.model import parse_scenario
from emulator.scenario.runner import RunResult, run_scenario
from emulator.wire import PacketLog


def _best(work: Callable[[], RunResult], repeat: int = 3) -> tuple[float, RunResult]:
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    assert result is not None
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    n = args.clients
    text = 'topology = "default"\nduration = 3600\nseed = 1\n'
    text += "".join(
        f'[[client]]\nname = "C{i}"\nuser = "sip:clientuser{1 + i % 2}@contoso.test"\n'
        for i in range(n)
    )
    text += "".join(f'[[step]]\nat = 0\naction = "sign-in"\nclient = "C{i}"\n' for i in range(n))
    for at, action in ((600, "disable-nic"), (1800, "enable-nic")):
        text += f'[[step]]\nat = {at}\naction = "{action}"\ntarget = "fe2.contoso.test"\n'
    registrar = (
        '[[expect]]\npool = "fe1.contoso.test"\npeer = "fe2.contoso.test"\n'
        'pool_event = "failed-over"\nby = 700\n'
        '[[expect]]\npool = "fe1.contoso.test"\npeer = "fe2.contoso.test"\nmonitor = "up"\n'
        "always = [2000, 3600]\n"
    )
    registrar += "".join(
        f'[[expect]]\nclient = "C{i}"\nprimary = "fe{1 + i % 2}.contoso.test"\nat = 3000\n'
        for i in range(n)
    )
    messages = "".join(
        f'[[expect]]\nmessage = "request"\nmethod = "REGISTER"\nsender = "C{i}"\n'
        f'receiver = "fe2.contoso.test"\nnever = [700, 1700]\n'
        for i in range(n)
    )
    plain = parse_scenario(text, "<plain>")
    with_registrar = parse_scenario(text + registrar, "<registrar facts>")
    with_messages = parse_scenario(text + messages, "<message facts>")
    rows = [
        ("no facts (reference)", lambda: run_scenario(plain)),
        (f"{n + 2} registrar/client facts", lambda: run_scenario(with_registrar)),
        ("every packet to a PacketLog (reference)", lambda: run_scenario(plain, tap=PacketLog())),
        (f"{n} message facts", lambda: run_scenario(with_messages)),
    ]
    print(f"{n} clients, one hour, fe2 silent 600-1800 (best of 3)")
    for name, work in rows:
        took, result = _best(work)
        verdict = "all hold" if result.passed else "SOME FAIL"
        print(
            f"  {name:42s} {took * 1000:8.0f} ms  ({len(result.results)} expectations, {verdict})"
        )


if __name__ == "__main__":
    main()
