"""``sipemu check [TOPOLOGY]``: a resilience report for a topology.

For each single failure (each pool going silent, and the loss of DNS) it simulates, per home
pool, one of its users with each client profile and each endpoint-cache state, and reports who
ends up signed out, in limited mode, or fine, with advice for the bad outcomes (the same
analysis the fuzzer uses, emulator/fuzz/analysis.py).

Timeline of each simulation: every client signs in at 0 (an "empty" cache discovers through
DNS; a "home" cache signs in straight to the home pool, so it never sees a 301); the failure
happens at 300 s and is never undone; for the loss of DNS every client then restarts at 400 s
(keeping its cache only in the "home" variant), since running clients do not need DNS.  The
outcome is read once the liveness bound (docs/invariants.md) has passed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import partial

from clients.profile import PROFILES, get_profile
from emulator.fuzz.analysis import Finding, explain
from emulator.fuzz.case import what_it_knows
from emulator.sim.deployment import ClientSpec, SimulatedDeployment
from emulator.sim.invariants import liveness_bound
from emulator.topology import Topology

__all__ = ["CheckRow", "check_topology", "render_json", "render_table"]

FAIL_AT = 300.0
RESTART_AT = 400.0
CACHE_STATES = ("empty", "home")


@dataclass(frozen=True, slots=True)
class CheckRow:
    failure: str
    user: str
    home: str
    profile: str
    cache: str
    outcome: str
    """``fine`` (registered, full), ``limited``, ``signed out``, or ``never signed in`` (not
    registered even before the failure: the topology does not work for this client at all)."""
    registrar: str | None
    finding: Finding | None


def check_topology(
    topology: Topology, *, profiles: tuple[str, ...] = tuple(PROFILES), seed: int = 0
) -> list[CheckRow]:
    """Every (failure, home pool's user, profile, cache state) outcome."""
    users: dict[str, str] = {}
    for aor, home in topology.users.items():
        users.setdefault(home, aor)  # one user per home pool stands for all of them
    failures = [p.fqdn for p in topology.pools] + ["dns"]
    rows: list[CheckRow] = []
    for failure in failures:
        rows.extend(_simulate(topology, failure, users, profiles, seed))
    return rows


def _simulate(
    topology: Topology,
    failure: str,
    users: dict[str, str],
    profiles: tuple[str, ...],
    seed: int,
) -> list[CheckRow]:
    specs: list[tuple[ClientSpec, str, str]] = []
    for home, aor in sorted(users.items()):
        for profile in profiles:
            for cache in CACHE_STATES:
                name = f"{aor.split(':', 1)[1].split('@', 1)[0]}-{profile}-{cache}"
                specs.append(
                    (ClientSpec(name, aor, profile, home if cache == "home" else None), home, cache)
                )
    sim = SimulatedDeployment(topology, [s for s, _, _ in specs], seed=seed)
    for spec, _, _ in specs:
        sim.sign_in(spec.name)
    world = sim.world
    if failure == "dns":
        world.call_at(FAIL_AT, lambda: sim.disable_nic("dns"))
        for spec, _, cache in specs:
            world.call_at(RESTART_AT, partial(sim.restart, spec.name, keep_cache=cache == "home"))
    else:
        world.call_at(FAIL_AT, lambda: sim.disable_nic(failure))
    bound = max(
        liveness_bound(
            topology,
            get_profile(p),
            targets=len(topology.dns.records) + 2,
            dns_steps=len(get_profile(p).discovery),
        )
        for p in profiles
    )
    start = RESTART_AT if failure == "dns" else FAIL_AT
    sim.run_until(FAIL_AT)
    before = {spec.name: sim.agents[spec.name].state == "registered" for spec, _, _ in specs}
    sim.run_until(start)
    knowledge = {spec.name: what_it_knows(sim, spec.name) for spec, _, _ in specs}
    sim.run_until(start + bound)
    dead = {failure} if failure != "dns" else set()
    rows = []
    for spec, home, cache in specs:
        agent = sim.agents[spec.name]
        if agent.state == "registered":
            outcome = "limited" if agent.mode == "limited" else "fine"
            finding = None
        elif not before[spec.name] and failure != "dns":
            outcome = "never signed in"
            finding = explain(
                client=spec.user,
                home=home,
                backup=topology.pool(home).backup,
                profile=spec.profile,
                cache_state=cache,
                known=knowledge[spec.name],
                down=set(),
                unresolvable=_unresolvable(topology),
                detail="not registered even before the failure",
            )
        else:
            outcome = "signed out"
            finding = explain(
                client=spec.user,
                home=home,
                backup=topology.pool(home).backup,
                profile=spec.profile,
                cache_state=cache,
                known=knowledge[spec.name],
                down=dead,
                unresolvable=_unresolvable(topology),
                detail=f"signed out {bound:g} s after the failure",
                dns_down=failure == "dns",
            )
        registrar = (
            agent.registrar.host if agent.registrar and agent.state == "registered" else None
        )
        rows.append(
            CheckRow(failure, spec.user, home, spec.profile, cache, outcome, registrar, finding)
        )
    return rows


def _unresolvable(topology: Topology) -> set[str]:
    names = {r.name for r in topology.dns_records({}) if r.rtype in ("A", "AAAA")}
    targets = {r.target for r in topology.dns.records if r.rtype == "SRV"}  # type: ignore[union-attr]
    return {t for t in targets if t not in names}


def render_table(topology: Topology, rows: list[CheckRow]) -> str:
    """A readable report: one line per case, then the advice, numbered."""
    advice: dict[str, int] = {}
    table = [("FAILURE", "USER", "PROFILE", "CACHE", "OUTCOME", "REGISTRAR", "ADVICE")]
    for row in rows:
        note = "-"
        if row.finding is not None:
            number = advice.setdefault(row.finding.advice, len(advice) + 1)
            note = f"[{number}]"
        table.append(
            (row.failure, row.user, row.profile, row.cache, row.outcome, row.registrar or "-", note)
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = [
        f"resilience of {topology.source} ({topology.summary()})",
        f"each failure starts at {FAIL_AT:g} s and lasts; outcomes read after the liveness bound",
        "",
    ]
    for r in table:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    bad = sum(1 for r in rows if r.outcome == "signed out")
    never = sum(1 for r in rows if r.outcome == "never signed in")
    lines.append("")
    lines.append(
        f"{bad} of {len(rows)} cases end signed out, "
        f"{sum(1 for r in rows if r.outcome == 'limited')} in limited mode, "
        f"{never} never signed in"
    )
    if advice:
        lines.append("")
        lines.append("advice:")
        for text, number in advice.items():
            lines.append(f"  [{number}] {text}")
    return "\n".join(lines)


def render_json(rows: list[CheckRow]) -> str:
    out = []
    for row in rows:
        record = asdict(row)
        record["finding"] = asdict(row.finding) if row.finding else None
        out.append(record)
    return json.dumps(out, indent=1)
