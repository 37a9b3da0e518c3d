"""Loading a ``[[clients]]`` group of N clients, beside the same N clients written as
``[[client]]`` tables with a sign-in step each (the reference, measured in the same run).

    .venv/bin/python benchmarks/group_scale.py [N ...]     (default: 5000 20000)
"""

from __future__ import annotations

import sys
import time

from emulator.scenario.model import parse_scenario

HEAD = """seed = 1
duration = 120
[topology]
domain = "contoso.test"
pool = [{ fqdn = "fe1.contoso.test", address = "127.0.0.11" }]
user = [{ template = "user{n:05d}", count = 20000, start = 0, pool = "fe1.contoso.test" }]
dns = { srv = [{ name = "_sipinternaltls._tcp.contoso.test", target = "fe1.contoso.test" }] }
"""


def grouped(n: int) -> str:
    return HEAD + (
        f'[[clients]]\ncount = {n}\nstart = 0\nname = "c{{n}}"\n'
        'user = "user{n:05d}@contoso.test"\nsign_in = [0, 60]\n'
    )


def tables(n: int) -> str:
    parts = [HEAD]
    parts += [f'[[client]]\nname = "c{i}"\nuser = "user{i:05d}@contoso.test"\n' for i in range(n)]
    parts += [f'[[step]]\nat = {i % 60}\naction = "sign-in"\nclient = "c{i}"\n' for i in range(n)]
    return "\n".join(parts)


def best(text: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        parse_scenario(text)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [5000, 20000]
    print(f"{'clients':>8} {'[[clients]] s':>14} {'[[client]] tables s':>20}")
    for n in sizes:
        print(f"{n:>8} {best(grouped(n)):>14.3f} {best(tables(n)):>20.3f}")


if __name__ == "__main__":
    main()
