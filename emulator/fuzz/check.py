"""``sipemu check [TOPOLOGY]``: a resilience report for a topology.

For each single failure (each pool or Director going silent, and the loss of DNS) it
simulates, per home pool, one of its users with each client profile in each situation that
profile can be in, and reports who ends up signed out, in limited mode, or fine, with advice
for the bad outcomes (the same labelling the fuzzer uses: :func:`emulator.fuzz.analysis.explain`).

The situations (``client`` and ``cache`` columns):

``running``, cache ``empty``
    signed in at 0 through DNS, and still running when the failure comes;
``running``, cache ``home``
    signed in at 0 from an endpoint cache naming its home pool (so it never saw a 301);
``signs in again``, cache ``empty``
    signed in at 0 through DNS, then restarted at :data:`RESTART_AT`, during the failure, with
    its endpoint cache cleared: it must discover a registrar while the failure lasts (a
    Director that is the only SRV target is a single point of failure for it);
``signs in again``, cache ``warm``
    the same, restarted keeping the cache its first sign-in wrote.

The ``home`` and ``warm`` variants exist only for profiles with an endpoint cache
(``Profile.uses_endpoint_cache``); for the others they would repeat the ``empty`` rows.

Timeline: every client signs in at 0; the failure happens at :data:`FAIL_AT` and is never
undone; the ``signs in again`` clients restart at :data:`RESTART_AT`.  The outcome is read once
the liveness bound (docs/invariants.md) has passed after :data:`RESTART_AT`.  A client not
signed in at :data:`FAIL_AT` (before any failure: the topology does not work for it at all) is
reported once, under failure ``none``, as ``never signed in``, and not under each failure.
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

__all__ = [
    "CheckRow",
    "Variant",
    "check_topology",
    "render_json",
    "render_table",
    "stranded",
    "variants",
]

FAIL_AT = 300.0
RESTART_AT = 400.0
NO_FAILURE = "none"
RUNNING = "running"
AGAIN = "signs in again"


@dataclass(frozen=True, slots=True)
class Variant:
    """What a simulated client does around the failure."""

    client: str
    """``running`` or ``signs in again``."""
    cache: str
    """``empty``, ``home`` (running only) or ``warm`` (signs in again only)."""


def variants(profile: str) -> list[Variant]:
    """The situations worth a row for ``profile``: the cache states it actually uses."""
    cached = get_profile(profile).uses_endpoint_cache
    out = [Variant(RUNNING, "empty")]
    if cached:
        out.append(Variant(RUNNING, "home"))
    out.append(Variant(AGAIN, "empty"))
    if cached:
        out.append(Variant(AGAIN, "warm"))
    return out


@dataclass(frozen=True, slots=True)
class CheckRow:
    failure: str
    """A pool's or Director's FQDN, ``dns``, or ``none`` (for ``never signed in`` rows)."""
    user: str
    home: str
    profile: str
    client: str
    """``running`` or ``signs in again`` (restarted during the failure)."""
    cache: str
    outcome: str
    """``fine`` (registered, full), ``limited``, ``signed out``, or ``never signed in`` (not
    registered even before the failure: the topology does not work for this client at all)."""
    registrar: str | None
    finding: Finding | None


def stranded(rows: list[CheckRow]) -> list[CheckRow]:
    """The rows whose user ends up not signed in (what makes ``sipemu check`` exit 1)."""
    return [r for r in rows if r.outcome in ("signed out", "never signed in")]


def check_topology(
    topology: Topology, *, profiles: tuple[str, ...] = tuple(PROFILES), seed: int = 0
) -> list[CheckRow]:
    """Every (failure, home pool's user, profile, situation) outcome worth a row."""
    users: dict[str, str] = {}
    for aor, home in topology.users.items():
        users.setdefault(home, aor)  # one user per home pool stands for all of them
    failures = [p.fqdn for p in topology.pools] + ["dns"]
    never: dict[str, CheckRow] = {}
    rows: list[CheckRow] = []
    for failure in failures:
        for row in _simulate(topology, failure, users, profiles, seed):
            if row.outcome == "never signed in":
                never.setdefault(f"{row.user} {row.profile} {row.cache}", row)  # once
            else:
                rows.append(row)
    return list(never.values()) + rows


def _name(aor: str, profile: str, variant: Variant) -> str:
    user = aor.split(":", 1)[1].split("@", 1)[0]
    again = "again" if variant.client == AGAIN else "running"
    return f"{user}-{profile}-{again}-{variant.cache}"


def _simulate(
    topology: Topology,
    failure: str,
    users: dict[str, str],
    profiles: tuple[str, ...],
    seed: int,
) -> list[CheckRow]:
    specs: list[tuple[ClientSpec, str, Variant]] = []
    for home, aor in sorted(users.items()):
        for profile in profiles:
            for variant in variants(profile):
                cache = home if variant.cache == "home" else None
                specs.append(
                    (ClientSpec(_name(aor, profile, variant), aor, profile, cache), home, variant)
                )
    sim = SimulatedDeployment(topology, [s for s, _, _ in specs], seed=seed)
    for spec, _, _ in specs:
        sim.sign_in(spec.name)
    world = sim.world
    target = "dns" if failure == "dns" else failure
    world.call_at(FAIL_AT, lambda: sim.disable_nic(target))
    for spec, _, variant in specs:
        if variant.client == AGAIN:
            world.call_at(
                RESTART_AT, partial(sim.restart, spec.name, keep_cache=variant.cache == "warm")
            )
    bound = max(
        liveness_bound(
            topology,
            get_profile(p),
            targets=len(topology.dns.records) + 2,
            dns_steps=len(get_profile(p).discovery),
        )
        for p in profiles
    )
    sim.run_until(FAIL_AT)
    before = {spec.name: sim.agents[spec.name].state == "registered" for spec, _, _ in specs}
    sim.run_until(RESTART_AT)
    knowledge = {spec.name: what_it_knows(sim, spec.name) for spec, _, _ in specs}
    sim.run_until(RESTART_AT + bound)
    unresolvable = _unresolvable(topology)
    rows = []
    for spec, home, variant in specs:
        agent = sim.agents[spec.name]
        backup = topology.pool(home).backup
        if not before[spec.name]:
            # Before the failure, a client that signs in again is the running one with the
            # same first sign-in: report it as that one (once, under failure "none").
            variant = Variant(RUNNING, "home" if variant.cache == "home" else "empty")
            outcome = "never signed in"
            finding: Finding | None = explain(
                client=spec.user,
                home=home,
                backup=backup,
                profile=spec.profile,
                cache_state=variant.cache,
                known=knowledge[spec.name],
                down=set(),
                unresolvable=unresolvable,
                detail="not registered even before any failure",
                dns_down=False,
                stuck_retrying=agent.stuck_retrying,
            )
            failure_name = NO_FAILURE
        elif agent.state == "registered":
            outcome = "limited" if agent.mode == "limited" else "fine"
            finding = None
            failure_name = failure
        else:
            outcome = "signed out"
            when = "after signing in again" if variant.client == AGAIN else "after the failure"
            finding = explain(
                client=spec.user,
                home=home,
                backup=backup,
                profile=spec.profile,
                cache_state=variant.cache,
                known=knowledge[spec.name],
                down=set() if failure == "dns" else {failure},
                unresolvable=unresolvable,
                detail=f"still signed out {bound:g} s {when}",
                dns_down=failure == "dns",
                stuck_retrying=agent.stuck_retrying,
                signing_in=variant.client == AGAIN,
            )
            failure_name = failure
        registrar = (
            agent.registrar.host if agent.registrar and agent.state == "registered" else None
        )
        rows.append(
            CheckRow(
                failure_name,
                spec.user,
                home,
                spec.profile,
                variant.client,
                variant.cache,
                outcome,
                registrar,
                finding,
            )
        )
    return rows


def _unresolvable(topology: Topology) -> set[str]:
    names = {r.name for r in topology.dns_records({}) if r.rtype in ("A", "AAAA")}
    targets = {r.target for r in topology.dns.records if r.rtype == "SRV"}  # type: ignore[union-attr]
    return {t for t in targets if t not in names}


def render_table(topology: Topology, rows: list[CheckRow]) -> str:
    """A readable report: one line per case, then the advice, numbered."""
    advice: dict[str, int] = {}
    table = [("FAILURE", "USER", "PROFILE", "CLIENT", "CACHE", "OUTCOME", "REGISTRAR", "ADVICE")]
    for row in rows:
        note = "-"
        if row.finding is not None:
            number = advice.setdefault(row.finding.advice, len(advice) + 1)
            note = f"[{number}]"
        table.append(
            (
                row.failure,
                row.user,
                row.profile,
                row.client,
                row.cache,
                row.outcome,
                row.registrar or "-",
                note,
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = [
        f"resilience of {topology.source} ({topology.summary()})",
        f"each failure starts at {FAIL_AT:g} s and lasts; clients that sign in again restart at "
        f"{RESTART_AT:g} s; outcomes read after the liveness bound",
        "",
    ]
    for r in table:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    bad = sum(1 for r in rows if r.outcome == "signed out")
    never = sum(1 for r in rows if r.outcome == "never signed in")
    limited = sum(1 for r in rows if r.outcome == "limited")
    lines.append("")
    lines.append(
        f"{bad} of {len(rows)} cases end signed out, {limited} in limited mode, "
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
