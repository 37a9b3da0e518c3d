"""``sipemu worst``: a targeted search for the worst outage a topology allows its users.

Hypothesis draws fault schedules on one given topology from the whole catalogue the fuzzer
knows (pool outages and stops, partitions, DNS failures, SRV records removed, the DNS server
down; lossy links besides; a back-end server down, mirror failover, force-move, contact
export and import, CMS move, pool failover and failback; clients signing in again) and the
endpoint cache of each user's client, runs each in the simulator, and steers the search with
``hypothesis.target()`` towards schedules that keep users signed out longer (user-seconds
signed out) and strand more of them (users still signed out at the end).

For each user it keeps the worst outage seen: the longest stretch the user's client was not
registered, and the schedule that caused it, written as a scenario that replays it (with an
expectation that the client is not registered throughout that stretch).  For the topology it
reports a service level: the worst outage any single failure caused, and the fraction of
user-hours signed out under the worst schedule found.

Every run lasts the same :func:`horizon`, so that durations and fractions compare.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, example, given, settings, target
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from clients.profile import PROFILES, get_profile
from emulator.config import ConfigError, did_you_mean, read_text
from emulator.examples import ExampleNotFound, resolve
from emulator.fuzz.case import DR_KINDS, DrDraw, FaultDraw, dr_plan, fault_steps
from emulator.fuzz.strategies import FAULTS, TAKES
from emulator.scenario.model import scenario_from_dict
from emulator.scenario.runner import RunResult, run_scenario
from emulator.scenario.writer import dumps, write_atomically
from emulator.sim.invariants import liveness_bound
from emulator.topology import Topology, TopologyError, default_topology, parse_topology
from fakedns.records import SrvRecord

__all__ = [
    "Restart",
    "Schedule",
    "Worst",
    "WorstReport",
    "horizon",
    "measure",
    "parse_budget",
    "register_worst",
    "replay_data",
    "schedule_steps",
    "schedules",
    "search_worst",
    "simplify",
]

WINDOW = 1800.0
"""Faults start within the first 30 minutes (drawn in tens of seconds from 60 s)."""
LONGEST = 900.0
"""The longest fault that is undone: 15 minutes (others are never undone)."""
MAX_USERS = 12
"""The users of a topology that get a client (the first, in topology order; CHOICE: a bigger
topology's search is slower per example without finding other shapes of outage)."""
EXIT_OK, EXIT_FOUND, EXIT_INTERRUPTED = 0, 1, 130
"""Exit statuses (README.md, "Exit statuses"; 2, bad input, comes from emulator.cli)."""


class WorstError(ConfigError):
    """Bad input to ``sipemu worst`` (a sentence)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """What one example draws: each client's endpoint cache, faults and DR actions."""

    caches: tuple[bool, ...]
    """Per client: does its endpoint cache name its home pool (else empty)?"""
    faults: tuple[FaultDraw, ...] = ()
    dr: tuple[DrDraw, ...] = ()
    restarts: tuple[Restart, ...] = ()
    """Clients that sign in again (a user restarting Lync), as ``sipemu check``'s rows."""

    @property
    def size(self) -> int:
        """How many failures it holds (a fault or a DR action each; a client signing in again
        is not a failure)."""
        return len(self.faults) + len(self.dr)


@dataclass(frozen=True, slots=True)
class Restart:
    """A client signing in again (a ``restart`` step)."""

    client: int
    """An index, modulo the clients."""
    at: float
    """On a 7.5 s mark past ten seconds: never at the instant of a fault or a DR action."""
    keep_cache: bool = False


@dataclass(frozen=True, slots=True)
class Outage:
    user: str
    client: str
    start: float
    end: float
    stranded: bool
    """Still signed out when the run ended (``end`` is then the horizon)."""

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Worst:
    """The worst outage found for one user, and the schedule that caused it."""

    outage: Outage
    schedule: Schedule


@dataclass
class WorstReport:
    topology: Topology
    source: str
    """The topology file (or ``<embedded default topology>``)."""
    users: list[str]
    profile: str
    horizon: float
    examples: int = 0
    per_user: dict[str, Worst] = field(default_factory=dict)
    worst_single: Worst | None = None
    """The longest outage any schedule of a single failure caused."""
    worst_total: tuple[float, Schedule] | None = None
    """(user-seconds signed out, schedule): the worst schedule found overall."""
    files: dict[str, Path] = field(default_factory=dict)
    interrupted: bool = False
    """Ctrl-C stopped the search: the report holds what was found until then."""

    @property
    def signed_out_fraction(self) -> float:
        """Fraction of user-hours signed out under the worst schedule found."""
        if self.worst_total is None or not self.users:
            return 0.0
        return self.worst_total[0] / (len(self.users) * self.horizon)

    @property
    def stranded(self) -> list[str]:
        return [u for u, w in self.per_user.items() if w.outage.stranded]


# -- the schedule as steps -------------------------------------------------------------------


def _clients(topology: Topology) -> list[tuple[str, str]]:
    """(client name, user) for the users that get a client."""
    users = sorted(topology.users, key=lambda aor: (_pool_index(topology, aor), aor))
    return [(f"C{i + 1}", aor) for i, aor in enumerate(users[:MAX_USERS])]


def _pool_index(topology: Topology, aor: str) -> int:
    home = topology.users[aor]
    return next(i for i, p in enumerate(topology.pools) if p.fqdn == home)


def _srv_name(topology: Topology) -> str:
    return f"_sipinternaltls._tcp.{topology.domain}"


def schedule_steps(topology: Topology, schedule: Schedule) -> list[dict[str, Any]]:
    """The scenario steps of ``schedule`` on ``topology``: every client signs in at 0, then
    the faults (emulator.fuzz.case.fault_steps) and the DR actions with their predicted
    outcomes (emulator.fuzz.case.dr_plan)."""
    clients = [name for name, _ in _clients(topology)]
    pools = [p.fqdn for p in topology.pools]
    srv_name = _srv_name(topology)
    readd = [
        {"priority": r.priority, "weight": r.weight, "port": r.port, "record_target": r.target}
        for r in topology.dns.records
        if isinstance(r, SrvRecord) and r.name == srv_name
    ]
    steps: list[dict[str, Any]] = [{"at": 0, "action": "sign-in", "client": c} for c in clients]
    for fault in schedule.faults:
        steps.extend(fault_steps(fault, pools, clients, srv_name, readd))
    if schedule.dr:
        steps.extend(dr_plan(topology, steps, schedule.dr))
    for restart in schedule.restarts:
        client = clients[restart.client % len(clients)]
        steps.append(
            {
                "at": restart.at,
                "action": "restart",
                "client": client,
                "keep_cache": restart.keep_cache,
            }
        )
    return sorted(steps, key=lambda s: float(s["at"]))  # stable: the runner's order


def horizon(topology: Topology, profile: str) -> float:
    """How long every run lasts: the fault window, the longest fault undone, and the liveness
    bound of the profile on this topology (docs/invariants.md), so a client that can recover
    has recovered before the end."""
    targets = sum(1 for r in topology.dns.records if isinstance(r, SrvRecord)) + 2
    settings_ = get_profile(profile)
    bound = liveness_bound(topology, settings_, targets=targets, dns_steps=len(settings_.discovery))
    return WINDOW + LONGEST + bound


def scenario_data(
    topology: Topology | dict[str, Any] | str,
    base: Topology,
    schedule: Schedule,
    profile: str,
    *,
    expect: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The scenario of one schedule (``topology`` as the scenario's ``topology`` value)."""
    clients = []
    for (name, user), cached in zip(_clients(base), schedule.caches, strict=False):
        table: dict[str, Any] = {"name": name, "user": user}
        if profile != "lync2010":
            table["profile"] = profile
        if cached:
            table["cache"] = base.users[user]
        clients.append(table)
    data: dict[str, Any] = {
        "description": "worst outage found by sipemu worst",
        "seed": 0,
        "duration": horizon(base, profile),
        "topology": topology,
        "client": clients,
        "step": schedule_steps(base, schedule),
    }
    if expect:
        data["expect"] = expect
    return data


def run_schedule(topology: Topology, schedule: Schedule, profile: str) -> RunResult:
    data = scenario_data(topology, topology, schedule, profile)
    return run_scenario(scenario_from_dict(data, "<sipemu worst>", checked=False))


WARMUP = 60.0
"""No fault comes before 60 s: the sign-in at 0 is not an outage (a client still not
registered at 60 s is, from then)."""


def measure(result: RunResult, end: float, users: dict[str, str]) -> list[Outage]:
    """Every stretch each client was not registered (signed out, discovering, registering)
    in [:data:`WARMUP`, end], from the run's timeline; ``users``: client name -> user."""
    out = []
    for client, user in users.items():
        since: float | None = 0.0  # not registered before its first registration
        for event in result.timeline.get(client, []):
            if event.now > end:
                break
            registered = event.state == "registered"
            if registered and since is not None:
                if event.now > WARMUP:
                    out.append(Outage(user, client, max(since, WARMUP), event.now, False))
                since = None
            elif not registered and since is None:
                since = event.now
        if since is not None:
            out.append(Outage(user, client, max(since, WARMUP), end, True))
    return out


# -- the search ------------------------------------------------------------------------------


def schedules(topology: Topology, max_faults: int = 3) -> st.SearchStrategy[Schedule]:
    """Schedules on ``topology``: faults from the fuzzer's catalogue (pool indices modulo its
    pools, clients as negative indices) and DR actions (emulator.fuzz.strategies)."""
    pools = len(topology.pools)
    clients = len(_clients(topology))
    fault = st.builds(
        lambda kind, at, tens, a, b, oneway, dns_kind, loss: FaultDraw(
            kind=kind,
            at=at * 10.0,
            duration=None if tens is None else tens * 10.0,
            a=a,
            b=b,
            oneway=oneway,
            dns_kind=dns_kind,
            loss=loss,
        ),
        st.sampled_from((*FAULTS, "lossy")),
        st.integers(6, int(WINDOW // 10)),
        st.none() | st.integers(1, int(LONGEST // 10)),
        st.integers(0, max(pools - 1, 0)),
        st.integers(-clients, max(pools - 1, 0)),
        st.booleans(),
        st.sampled_from(("servfail", "timeout", "nxdomain")),
        st.sampled_from((0.2, 0.5, 0.9)),
    )
    dr = st.builds(
        lambda kind, at, a, b, tens, takes, mirror: DrDraw(
            kind=kind,
            at=at * 10.0 + 2.5,
            a=a,
            b=b,
            duration=(None if tens is None else tens * 10.0) if kind == "backend-down" else takes,
            mirror=mirror,
        ),
        st.sampled_from(DR_KINDS),
        st.integers(6, int(WINDOW // 10)),
        st.integers(0, 5),
        st.integers(0, 5),
        st.none() | st.integers(1, int(LONGEST // 10)),
        st.sampled_from(TAKES),
        st.booleans(),
    )
    restart = st.builds(
        lambda client, at, keep: Restart(client, at * 10.0 + 7.5, keep),
        st.integers(0, max(clients - 1, 0)),
        st.integers(6, int((WINDOW + LONGEST) // 10)),
        st.booleans(),
    )
    return st.builds(
        Schedule,
        st.lists(st.booleans(), min_size=clients, max_size=clients).map(tuple),
        st.lists(fault, max_size=max_faults).map(tuple),
        st.lists(dr, max_size=max_faults).map(tuple),
        st.lists(restart, max_size=max_faults).map(tuple),
    )


def single_failures(topology: Topology) -> list[Schedule]:
    """The schedules the search starts with: each single failure for good at 600 s (each pool
    silent, each pool's back end down, the DNS server down), clients with empty caches; then
    each pool silent again with every client signing in again at 707.5 s with an empty cache
    (``sipemu check``'s "signs in again" rows: a Director alone behind SRV strands them)."""
    clients = len(_clients(topology))
    empty = (False,) * clients
    fronts = [i for i, p in enumerate(topology.pools) if not p.is_director]
    pools = range(len(topology.pools))
    out = [Schedule(empty, (FaultDraw("outage", 600.0, None, a=i),)) for i in pools]
    out += [Schedule(empty, dr=(DrDraw("backend-down", 602.5, a=k),)) for k in range(len(fronts))]
    out.append(Schedule(empty, (FaultDraw("dns-down", 600.0, None),)))
    again = tuple(Restart(c, 707.5) for c in range(clients))
    out += [
        Schedule(empty, (FaultDraw("outage", 600.0, None, a=i),), restarts=again) for i in pools
    ]
    return out


class _BudgetSpent(Exception):
    """Raised inside the property once the wall-time budget is spent (ends the search)."""


def search_worst(
    topology: Topology,
    *,
    source: str = "<embedded default topology>",
    examples: int | None = 200,
    seconds: float | None = None,
    seed: int = 0,
    profile: str = "lync2010",
    clock: Callable[[], float] = time.monotonic,
    on_example: Callable[[WorstReport], None] | None = None,
) -> WorstReport:
    """Search ``topology`` for the worst outages: ``examples`` examples, or until ``seconds``
    of wall time have passed (whichever comes first; the single failures of
    :func:`single_failures` are run first, and count)."""
    clients = _clients(topology)
    if not clients:
        raise WorstError(f"{source}: the topology has no [[user]]: nobody can be signed out")
    users = dict(clients)
    end = horizon(topology, profile)
    report = WorstReport(topology, source, [u for _, u in clients], profile, end)
    deadline = None if seconds is None else clock() + seconds

    def run(schedule: Schedule) -> None:
        if deadline is not None and clock() > deadline:
            raise _BudgetSpent
        result = run_schedule(topology, schedule, profile)
        outages = measure(result, end, users)
        total = sum(o.duration for o in outages)
        stranded = len({o.user for o in outages if o.stranded})
        target(total, label="user-seconds signed out")
        target(float(stranded), label="users stranded")
        report.examples += 1
        for outage in outages:
            known = report.per_user.get(outage.user)
            if known is None or _worse(outage, known.outage):
                report.per_user[outage.user] = Worst(outage, schedule)
            if schedule.size == 1 and (
                report.worst_single is None or _worse(outage, report.worst_single.outage)
            ):
                report.worst_single = Worst(outage, schedule)
        if report.worst_total is None or total > report.worst_total[0]:
            report.worst_total = (total, schedule)
        if on_example is not None:
            on_example(report)

    budget = examples if examples is not None else 1_000_000
    starts = single_failures(topology)[:budget]
    test = given(schedules(topology))(run)
    for start in reversed(starts):
        test = example(start)(test)
    searched = budget - len(starts)
    test = settings(
        max_examples=max(searched, 1),
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate, Phase.target) if searched else (Phase.explicit,),
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
    )(test)
    test = hypothesis_seed(seed)(test)
    try:
        test()
    except _BudgetSpent:
        pass
    except KeyboardInterrupt:  # Ctrl-C: what was found so far is still worth reporting
        report.interrupted = True
    return report


def simplify(
    topology: Topology, worst: Worst, profile: str, *, runs: int = 60
) -> tuple[Worst, int]:
    """``worst`` with the faults, DR actions and restarts it does not need removed, one at a
    time, while the user's longest outage stays as long (and stranded if it was); at most
    ``runs`` runs.  Returns the simpler worst (its outage measured again) and the runs made.

    The search does not shrink (nothing fails), and the schedule that scored highest often
    carries faults that do nothing: this makes the replay file say only what matters."""
    end = horizon(topology, profile)
    users = dict(_clients(topology))
    o = worst.outage
    best, made = worst, 0
    improved = True
    while improved and made < runs:
        improved = False
        sched = best.schedule
        tries = [
            replace(sched, faults=sched.faults[:i] + sched.faults[i + 1 :])
            for i in range(len(sched.faults))
        ]
        tries += [replace(sched, dr=sched.dr[:i] + sched.dr[i + 1 :]) for i in range(len(sched.dr))]
        tries += [
            replace(sched, restarts=sched.restarts[:i] + sched.restarts[i + 1 :])
            for i in range(len(sched.restarts))
        ]
        for candidate in tries:
            if made >= runs:
                break
            made += 1
            result = run_schedule(topology, candidate, profile)
            mine = [x for x in measure(result, end, users) if x.client == o.client]
            longest = max(mine, key=lambda x: (x.duration, x.stranded), default=None)
            if (
                longest is not None
                and longest.duration >= o.duration
                and longest.stranded >= o.stranded
            ):
                best = Worst(longest, candidate)
                improved = True
                break
    return best, made


def _worse(a: Outage, b: Outage) -> bool:
    """Longer; at equal length, stranded first, then the earlier start."""
    return (a.duration, a.stranded, -a.start) > (b.duration, b.stranded, -b.start)


# -- the replay files ------------------------------------------------------------------------


def replay_data(report: WorstReport, worst: Worst, topology_value: object) -> dict[str, Any]:
    """The scenario that replays ``worst``: its schedule, and an expectation that the client
    is not registered through the whole outage (a ``never`` in its bounds, less a second
    each side for the state changes at its edges)."""
    o = worst.outage
    start = math.floor(o.start) + 1.0
    stop = math.ceil(o.end) - 1.0 if not o.stranded else o.end
    expect = [
        {
            "client": o.client,
            "never": [start, stop],
            "state": "registered",
            "note": f"the worst outage sipemu worst found for {o.user}: {_length(o)}",
        }
    ]
    data = scenario_data(
        topology_value,  # type: ignore[arg-type]
        report.topology,
        worst.schedule,
        report.profile,
        expect=expect if stop > start else None,
    )
    data["description"] = f"sipemu worst: {o.user} signed out {_length(o)}"
    return data


def write_replays(report: WorstReport, out: Path, topology_value: object) -> None:
    """One scenario per user with an outage, ``worst-<user>.toml``, and ``worst-single.toml``."""
    out.mkdir(parents=True, exist_ok=True)
    items = list(report.per_user.items())
    if report.worst_single is not None:
        items.append(("single", report.worst_single))
    for user, worst in items:
        name = user.removeprefix("sip:").replace("@", "-at-") if user != "single" else user
        path = out / f"worst-{name}.toml"
        comment = (
            f"Found by sipemu worst on {report.source}: {worst.outage.user} "
            f"({worst.outage.client}) signed out {_length(worst.outage)}.\n"
            f"Replay: sipemu run {path}"
        )
        write_atomically(path, dumps(replay_data(report, worst, topology_value), comment=comment))
        report.files[user] = path


def _length(o: Outage) -> str:
    text = f"{o.duration:.0f} s from {o.start:.0f} s"
    return text + " until the end of the run (stranded)" if o.stranded else text


def _describe(schedule: Schedule, topology: Topology) -> str:
    steps = [s for s in schedule_steps(topology, schedule) if s["action"] != "sign-in"]
    if not steps:
        return "no fault"
    parts = []
    for s in steps:
        keys = " ".join(f"{k}={v}" for k, v in s.items() if k not in ("at", "action", "note"))
        parts.append(f"{s['at']:g} s {s['action']}{' ' + keys if keys else ''}")
    return "; ".join(parts)


# -- output ----------------------------------------------------------------------------------


def render_text(report: WorstReport) -> str:
    lines = [
        f"sipemu worst: {report.source}: {report.examples} schedules, {len(report.users)} "
        f"user(s) ({report.profile}), each run {report.horizon:.0f} s",
        "",
        f"{'USER':32} {'WORST OUTAGE':>12}  STRANDED  REPLAY",
    ]
    for user in report.users:
        worst = report.per_user.get(user)
        if worst is None:
            lines.append(f"{user:32} {'none':>12}  -         -")
            continue
        o = worst.outage
        path = report.files.get(user, "-")
        lines.append(f"{user:32} {o.duration:>10.0f} s  {'yes' if o.stranded else 'no':8}  {path}")
        lines.append(f"    {_describe(worst.schedule, report.topology)}")
    lines.append("")
    lines.append("service level:")
    single = report.worst_single
    if single is None:
        lines.append("  worst single-failure outage: none (no single failure signs anyone out)")
    else:
        lines.append(
            f"  worst single-failure outage: {_length(single.outage)} ({single.outage.user}; "
            f"{_describe(single.schedule, report.topology)})"
        )
    lines.append(
        f"  user-hours signed out under the worst schedule found: {report.signed_out_fraction:.1%}"
    )
    return "\n".join(lines)


def render_json(report: WorstReport) -> str:
    def outage(w: Worst | None) -> dict[str, Any] | None:
        if w is None:
            return None
        o = w.outage
        return {
            "user": o.user,
            "client": o.client,
            "start": o.start,
            "end": o.end,
            "duration": o.duration,
            "stranded": o.stranded,
            "steps": [
                s for s in schedule_steps(report.topology, w.schedule) if s["action"] != "sign-in"
            ],
        }

    data = {
        "topology": report.source,
        "profile": report.profile,
        "examples": report.examples,
        "horizon": report.horizon,
        "users": {
            u: {**(outage(report.per_user.get(u)) or {}), "replay": str(report.files.get(u, ""))}
            for u in report.users
        },
        "service_level": {
            "worst_single_failure": outage(report.worst_single),
            "signed_out_fraction": report.signed_out_fraction,
        },
    }
    return json.dumps(data, indent=2)


# -- the command -----------------------------------------------------------------------------


def parse_budget(text: str) -> tuple[int | None, float | None]:
    """``--budget``: a number of examples (``200``) or a duration (``90s``, ``10m``, ``1h``).
    Returns (examples, seconds); WorstError with a sentence otherwise."""
    value = text.strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        if value and value[-1] in units:
            seconds = float(value[:-1]) * units[value[-1]]
            if not math.isfinite(seconds) or seconds <= 0:
                raise ValueError
            return None, seconds
        examples = int(value)
        if examples < 1:
            raise ValueError
        return examples, None
    except ValueError:
        raise WorstError(
            f"--budget {text!r}: a number of examples (e.g. 200) or a duration "
            "with a unit (e.g. 90s, 10m, 1h), more than zero"
        ) from None


def register_worst(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worst",
        help="search for the worst outage each user of a topology can suffer",
        description=(
            "Targeted property-based search (Hypothesis target()) over fault schedules drawn "
            "from the whole catalogue (network, DNS, back end, DR and administrative "
            "actions), maximising the time users are signed out and the users stranded. "
            "Reports, per user, the worst outage found and writes it as a scenario that "
            "replays it; and a service level for the topology. Exit status 1 when some user "
            "is stranded (still signed out at the end of a run), 0 otherwise, 2 for bad input "
            "(docs/invariants.md)."
        ),
    )
    parser.add_argument(
        "topology", nargs="?", help="topology file or example name (default: the embedded one)"
    )
    parser.add_argument(
        "--budget",
        default="200",
        metavar="N|DURATION",
        help="examples (a number) or wall time (90s, 10m, 1h); default 200 examples",
    )
    parser.add_argument("--seed", type=int, default=0, help="search seed (0)")
    parser.add_argument(
        "--profile", default="lync2010", help="the users' client profile (lync2010)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    parser.add_argument(
        "--out", default="worst", metavar="DIR", help="directory for the replay scenarios (worst/)"
    )
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    examples, seconds = parse_budget(args.budget)
    if args.profile not in PROFILES:
        raise WorstError(
            f"--profile {args.profile!r} is not a client profile; "
            f"{did_you_mean(args.profile, list(PROFILES))}the profiles are "
            f"{', '.join(PROFILES)}"
        )
    topology_value: object
    if args.topology is None:
        topology, source, topology_value = (
            default_topology(),
            "<embedded default topology>",
            "default",
        )
    else:
        try:  # a file, or a shipped example by name (as every command)
            path = resolve("topology", args.topology)
        except ExampleNotFound as exc:
            raise WorstError(str(exc)) from None
        text = read_text(path, "topology", TopologyError)  # a sentence (exit 2) if bad
        topology = parse_topology(text, str(path))
        source = str(path)
        topology_value = tomllib.loads(text)  # inline: the replay needs no other file
    print(f"sipemu worst: searching {source} ({args.budget})", file=sys.stderr)
    report = search_worst(
        topology,
        source=source,
        examples=examples,
        seconds=seconds,
        seed=args.seed,
        profile=args.profile,
    )
    if not report.interrupted:
        for user, worst in list(report.per_user.items()):
            report.per_user[user], _ = simplify(topology, worst, args.profile)
        if report.worst_single is not None:
            report.worst_single, _ = simplify(topology, report.worst_single, args.profile)
    write_replays(report, Path(args.out), topology_value)
    sys.stdout.write(render_text(report) + "\n")
    if args.json:
        write_atomically(Path(args.json), render_json(report) + "\n")
    if report.interrupted:
        print(f"sipemu worst: interrupted after {report.examples} schedules", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FOUND if report.stranded else EXIT_OK
