#!/usr/bin/env python3
"""Cost of ``sipemu run --json`` as JSON Lines (issue 21) beside the one JSON document it
replaced, on the same finished run.

A virtual-time run of the default topology: ``--clients N`` clients (default 40) sign in at
t=0, fe2 goes silent from 600 to 1800, the run lasts an hour, with every detail recorded
(what ``--json`` records).  The script prints the run's trace size and the best of five
times of writing it both ways: ``RunResult.to_json()`` written at once (the old format, the
reference) and ``RunOutput.write_run`` (one ``write`` system call per record, the new one).

    .venv/bin/python benchmarks/json_lines_bench.py
    .venv/bin/python benchmarks/json_lines_bench.py --clients 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from emulator.scenario.model import parse_scenario
from emulator.scenario.output import RunOutput
from emulator.scenario.runner import run_scenario


def _best(work: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=40)
    args = parser.parse_args()
    n = args.clients
    text = 'topology = "default"\nduration = 3600\n'
    text += "".join(
        f'[[client]]\nname = "C{i}"\nuser = "sip:clientuser{1 + i % 2}@contoso.test"\n'
        for i in range(n)
    )
    text += "".join(f'[[step]]\nat = 0\naction = "sign-in"\nclient = "C{i}"\n' for i in range(n))
    for at, action in ((600, "disable-nic"), (1800, "enable-nic")):
        text += f'[[step]]\nat = {at}\naction = "{action}"\ntarget = "fe2.contoso.test"\n'
    started = time.perf_counter()
    result = run_scenario(parse_scenario(text, "<json-lines bench>"), verbose=True)
    ran = time.perf_counter() - started
    print(f"{n} clients: {len(result.trace)} trace entries, run in {ran * 1000:.0f} ms")
    with tempfile.TemporaryDirectory() as name:
        document, lines = Path(name) / "run.json", Path(name) / "run.jsonl"
        old = _best(lambda: document.write_text(result.to_json() + "\n", encoding="utf-8"))
        new = _best(lambda: RunOutput(json=lines).write_run(result, 0))
        print(
            f"one JSON document (before, reference): {old * 1000:7.1f} ms, "
            f"{document.stat().st_size} bytes"
        )
        print(
            f"JSON Lines (one write per record):      {new * 1000:7.1f} ms, "
            f"{lines.stat().st_size} bytes"
        )


if __name__ == "__main__":
    main()
