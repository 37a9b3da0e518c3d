"""Loading a ``[[clients]]`` group of N clients, beside the same N clients written as
``[[client]]`` tables with a sign-in step each (the reference, measured in the same run).

    .venv/bin/python benchmarks/group_scale.py [N ...]     (default: 5000 20000)

With ``--run N``: simulate N grouped clients signing in, then time judging a group count
and a spread over them, beside the same count written as N per-client expectations (the
reference: the runner's own check of each).
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


GROUP_EXPECTS = """
[[expect]]
group = "c"
state = "registered"
at_least = 0.99
by = 100
[[expect]]
group = "c"
spread = { "fe1.contoso.test" = 100 }
tolerance = 0
always = [70, 110]
"""


def run(n: int) -> None:
    from emulator.scenario.aggregate import judge
    from emulator.scenario.runner import check, finish, prepare

    scenario = parse_scenario(grouped(n) + GROUP_EXPECTS)
    deployment = prepare(scenario)
    deployment.run_until(scenario.duration)
    timeline = deployment.timeline
    start = time.perf_counter()
    results = judge(scenario, timeline, lambda e: check(e, timeline.get(e.client, [])))
    grouped_s = time.perf_counter() - start
    assert all(r.passed for r in results), [r.detail for r in results]
    plain = parse_scenario(
        grouped(n)
        + "".join(
            f'[[expect]]\nclient = "c{i}"\nstate = "registered"\nby = 100\n' for i in range(n)
        )
    )
    start = time.perf_counter()
    for e in plain.expectations:
        check(e, timeline.get(e.client, []))
    reference = time.perf_counter() - start
    changes = sum(len(v) for v in timeline.values())
    print(
        f"{n} clients, {changes} state changes: judging a group count and a spread "
        f"{grouped_s:.3f} s; {n} per-client expectations {reference:.3f} s"
    )
    finish(scenario, deployment)


def main() -> None:
    if sys.argv[1:2] == ["--run"]:
        run(int(sys.argv[2]) if len(sys.argv) > 2 else 20000)
        return
    sizes = [int(a) for a in sys.argv[1:]] or [5000, 20000]
    print(f"{'clients':>8} {'[[clients]] s':>14} {'[[client]] tables s':>20}")
    for n in sizes:
        print(f"{n:>8} {best(grouped(n)):>14.3f} {best(tables(n)):>20.3f}")


if __name__ == "__main__":
    main()
