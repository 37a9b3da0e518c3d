"""The scenario file (TOML) -> a validated, frozen :class:`Scenario`.

Errors name the file, the line (found by searching the source for the table and key, since
tomllib reports positions only for syntax errors), the key and what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emulator.config import (
    MAX_SECONDS,
    ConfigError,
    TomlContext,
    check_values,
    closest,
    did_you_mean,
    dns_name_problem,
    number_text,
    parse_toml,
    read_text,
)
from emulator.operations import ADMIN_ACTIONS, OPTIONAL_KEYS, Operations
from emulator.scenario.aggregate import NEW_KEYS
from emulator.scenario.facts import Fact, check_facts, invariant_window, is_fact, parse_fact
from emulator.scenario.forms import Share, Spread
from emulator.scenario.groups import Group, expand, sign_in_steps
from emulator.sim.deployment import ClientSpec
from emulator.topology import Topology, TopologyError, default_topology, load_topology
from fakedns.records import AddressRecord, DnsRecord, SrvRecord

__all__ = [
    "ACTIONS",
    "Expectation",
    "Scenario",
    "ScenarioError",
    "Step",
    "load_scenario",
    "parse_scenario",
    "scenario_from_dict",
]


class ScenarioError(ConfigError):
    """A bad scenario file: the message is a sentence naming file, line, key and expectation."""


MAX_SEEDS = 10_000
"""The most seeds ``seeds = N`` may ask for (CHOICE: more is a fuzzing campaign, ``sipemu
fuzz``)."""

MAX_CLIENTS = 100_000
"""The most ``[[client]]`` tables a scenario may hold (the simulator gives each a host address
of its own in 127.2.0.0/15)."""


ACTIONS: dict[str, str] = {
    "sign-in": "client",
    "sign-out": "client",
    "restart": "client",
    "clear-cache": "client",
    "disable-nic": "target",
    "enable-nic": "target",
    "stop-pool": "target",
    "start-pool": "target",
    "partition": "a,b",
    "heal": "",
    "link": "a,b",
    "dns-add": "record",
    "dns-remove": "name",
    "dns-fail": "kind",
    "dns-restore": "",
    "dns-down": "",
    "dns-up": "",
    "add-contact": "client",
    **{name: "admin" for name in ADMIN_ACTIONS},
}
"""Action name -> what it acts on (documented in docs/scenarios.md)."""

_CLIENT_STEP_KEYS = frozenset({"client", "target"})  # target: an older name of client
STEP_COMMON_KEYS = frozenset({"at", "action", "note", "id"})
"""Keys every step may have, whatever its action."""
ACTION_KEYS: dict[str, frozenset[str]] = {
    "sign-in": _CLIENT_STEP_KEYS,
    "sign-out": _CLIENT_STEP_KEYS,
    "restart": _CLIENT_STEP_KEYS | {"keep_cache"},
    "clear-cache": _CLIENT_STEP_KEYS,
    # one transport only; a silent host's TCP (docs/scenarios.md)
    "disable-nic": frozenset({"target", "transport", "tcp"}),
    "enable-nic": frozenset({"target", "transport"}),
    "stop-pool": frozenset({"target"}),
    "start-pool": frozenset({"target"}),
    "partition": frozenset({"a", "b", "oneway"}),
    "heal": frozenset({"a", "b"}),
    "link": frozenset({"a", "b", "oneway", "latency", "loss", "jitter", "duplicate"}),
    "dns-add": frozenset(
        {"type", "name", "priority", "weight", "port", "target", "record_target", "address", "ttl"}
    ),
    "dns-remove": frozenset({"name", "type"}),
    "dns-fail": frozenset({"kind", "name"}),
    "dns-restore": frozenset({"name"}),
    "dns-down": frozenset(),
    "dns-up": frozenset(),
    "add-contact": _CLIENT_STEP_KEYS | {"contact", "expect", "reason"},
    **{
        name: frozenset({*keys, *OPTIONAL_KEYS.get(name, ()), "expect", "reason"})
        for name, keys in ADMIN_ACTIONS.items()
    },
}
"""Action -> the keys its step may have besides :data:`STEP_COMMON_KEYS` (docs/scenarios.md).
A key another action takes is refused on this one (``client`` on a ``disable-nic`` step): add
an action's new key here, in the one table."""
_STEP_KEYS = STEP_COMMON_KEYS.union(*ACTION_KEYS.values())
_TOPOLOGY_KEYS = frozenset({"pool", "user", "dns", "domain", "resiliency", "registrar"})
"""Top-level keys of a topology file that no scenario has: a topology given as a scenario."""
_EXPECT_KEYS = {
    "client",
    "at",
    "by",
    "always",
    "never",
    "state",
    "registrar",
    "mode",
    "note",
    "invariant",
    "contacts",
    "chat",
}
_CLIENT_KEYS = {"name", "user", "cache", "profile", "options"}
_TOP_KEYS = {
    "topology",
    "seed",
    "seeds",
    "duration",
    "description",
    "client",
    "clients",
    "step",
    "expect",
}
TRANSPORTS = ("udp", "tcp", "tls")
STATES = ("signed-out", "discovering", "registering", "registered")
MODES = ("full", "limited")
OUTCOMES = ("ok", "refused")
CHAT_STATES = ("available", "unavailable")
OUTCOME_ACTIONS = frozenset({"add-contact", *ADMIN_ACTIONS})
"""Actions whose step may say ``expect = "ok"`` or ``"refused"``."""


@dataclass(frozen=True, slots=True)
class Step:
    at: float
    action: str
    params: tuple[tuple[str, Any], ...] = ()
    line: int | None = None
    index: int = 0
    """Position in the scenario's steps (sorted by time): how outcomes are matched."""

    def with_index(self, index: int) -> Step:
        """A copy at ``index`` (dataclasses.replace without its introspection, which was
        ~1.5% of a fuzz example)."""
        return Step(self.at, self.action, self.params, self.line, index)

    def get(self, key: str, default: Any = None) -> Any:
        for k, v in self.params:
            if k == key:
                return v
        return default

    def describe(self) -> str:
        hidden = ("note", "expect", "id", "reason", "group")
        shown = " ".join(f"{k}={v}" for k, v in self.params if k not in hidden)
        return f"{self.action} {shown}".strip()


@dataclass(frozen=True, slots=True)
class Expectation:
    client: str
    kind: str  # "at" | "by" | "always" | "never"
    start: float
    end: float
    state: str | None = None
    registrar: str | None = None
    mode: str | None = None
    line: int | None = None
    note: str = ""
    invariant: str | None = None
    """A safety invariant (docs/invariants.md) that must hold for the whole run; then
    ``client`` is empty and the time form is ``never`` over the run (of a violation)."""
    contacts: int | None = None
    chat: str | None = None
    """``available`` / ``unavailable``: the Persistent Chat service (``client`` is empty)."""
    outcome: str | None = None
    """``ok`` / ``refused``: a step's ``expect`` (kind ``step``; ``step`` is its index)."""
    step: Step | None = None
    fact: Fact | None = None
    """A message, registrar or client-knowledge expectation (emulator/scenario/facts.py)."""
    # The forms of emulator/scenario/aggregate.py (groups, relative times, reasons):
    group: str | None = None
    """A ``[[clients]]`` group instead of a client (``client`` is empty)."""
    share: Share | None = None
    spread: Spread | None = None
    id: str | None = None
    """The expectation's name, for another's ``after = "expect:ID"``."""
    after: str | None = None
    """``expect:ID``: the times are relative to that expectation's moment."""
    origin: float = 0.0
    """Where ``within`` and ``first_between`` start looking: the step's time with
    ``after = "step:..."`` (their ``start`` and ``end`` are then absolute too)."""
    reason: str | None = None
    """A step's ``reason`` (emulator/scenario/reasons.py) when ``outcome`` is refused."""

    def describe(self) -> str:
        if self.group is not None or self.after is not None or self.kind in ("within", "first"):
            from emulator.scenario.aggregate import describe

            return describe(self)
        if self.invariant is not None:
            window = "" if self.start == 0 and math.isinf(self.end) else f" in [{self.start:g}, "
            if window:
                window += "the end]" if math.isinf(self.end) else f"{self.end:g}]"
            return f"invariant {self.invariant} holds{window}"
        if self.step is not None:
            why = f" ({self.reason})" if self.reason else ""
            return f"step {self.step.describe()} at {self.step.at:g} is {self.outcome}{why}"
        what = ", ".join(
            f"{k}={v}"
            for k, v in (
                ("state", self.state),
                ("registrar", self.registrar),
                ("mode", self.mode),
                ("contacts", self.contacts),
                ("chat", self.chat),
            )
            if v is not None
        )
        if self.fact is not None:
            what = self.fact.describe()
        when = {
            "at": f"at {self.start:g}",
            "by": f"by {self.end:g}",
            "always": f"always in [{self.start:g}, {self.end:g}]",
            "never": f"never in [{self.start:g}, {self.end:g}]",
        }[self.kind]
        if self.fact is not None:
            return f"{what} {when}"
        return f"{self.client or 'deployment'} {what} {when}"


@dataclass(frozen=True)
class Scenario:
    source: str
    topology: Topology
    seed: int
    duration: float
    clients: tuple[ClientSpec, ...]
    steps: tuple[Step, ...]
    expectations: tuple[Expectation, ...]
    description: str = ""
    seed_given: bool = field(default=True)
    groups: tuple[Group, ...] = ()
    """The ``[[clients]]`` groups (their clients are in ``clients``)."""
    seeds: int = 1
    """How many seeds the scenario must hold over (``seed`` onwards; emulator/scenario/seeds.py)."""


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    text = read_text(path, "scenario", ScenarioError)  # bounded; regular files and pipes
    return parse_scenario(text, str(path), base=path.parent)


def parse_scenario(text: str, source: str = "<string>", *, base: Path | None = None) -> Scenario:
    # No nan, inf (but in client options), deep nesting (emulator/config.py).
    data = parse_toml(text, source, ScenarioError, _infinite)
    return scenario_from_dict(data, source, text=text, base=base, checked=True)


def scenario_from_dict(
    data: dict[str, Any],
    source: str,
    *,
    text: str = "",
    base: Path | None = None,
    checked: bool = False,
) -> Scenario:
    """Validate an already-parsed scenario (e.g. one the fuzzer built).  ``checked``: the
    whole document went through :func:`emulator.config.check_values` already."""
    ctx = TomlContext(source, text, error=ScenarioError)
    if not checked:
        check_values(data, ctx, _infinite)
    _not_a_topology(ctx, data)
    ctx.unknown(data, _TOP_KEYS, None, None)
    topology = _topology(ctx, data, base)
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        ctx.fail(None, None, "seed", "an integer")
    client_tables = _tables(ctx, data, "client")
    if len(client_tables) > MAX_CLIENTS:
        ctx.fail("client", MAX_CLIENTS, None, f"at most {MAX_CLIENTS} [[client]] tables")
    clients = tuple(_client(ctx, i, c) for i, c in enumerate(client_tables))
    names: dict[str, int] = {}
    for i, spec in enumerate(clients):
        if spec.name in names:
            ctx.fail("client", i, "name", f"a unique client name ({spec.name!r} is used twice)")
        names[spec.name] = i
    pool_names = {p.fqdn for p in topology.pools}
    for i, spec in enumerate(clients):
        if topology.home_pool(spec.user) is None:
            ctx.fail(
                "client",
                i,
                "user",
                f"a user of the topology ({spec.user!r} is not in {topology.source})",
            )
        if spec.cache is not None and spec.cache not in pool_names:
            ctx.fail("client", i, "cache", "the FQDN of a pool of the topology")
    grouped = expand(ctx, _tables(ctx, data, "clients"), topology, seed, names, MAX_CLIENTS)
    clients += grouped.clients
    names.update((spec.name, -1) for spec in grouped.clients)
    known = set(names)  # once: a set per step made loading quadratic in the clients
    steps = tuple(_step(ctx, i, s, known) for i, s in enumerate(_tables(ctx, data, "step")))
    _check_targets(ctx, steps, topology, known)
    _check_admin(ctx, steps, topology)
    from emulator.scenario import aggregate, reasons

    reasons.check_steps(ctx, steps)
    step_times = aggregate.step_times(ctx, steps)
    steps += tuple(sign_in_steps(grouped.groups, seed, Step))
    order = sorted(range(len(steps)), key=lambda i: steps[i].at)
    steps = tuple(steps[i].with_index(n) for n, i in enumerate(order))
    groups = {g.name: g for g in grouped.groups}
    expects = tuple(
        aggregate.parse(ctx, i, e, known, groups, step_times)
        if aggregate.wants(e)
        else _expect(ctx, i, e, known)
        for i, e in enumerate(_tables(ctx, data, "expect"))
    )
    for i, e in enumerate(expects):
        if e.registrar is not None and e.registrar not in pool_names:
            ctx.fail(
                "expect",
                i,
                "registrar",
                f"a pool FQDN of the topology ({', '.join(sorted(pool_names))}), not "
                f"{e.registrar[:80]!r}",
            )
    if any(e.chat for e in expects) and topology.persistent_chat is None:
        index = next(i for i, e in enumerate(expects) if e.chat)
        ctx.fail("expect", index, "chat", "a topology with a [persistent_chat] pool")
    check_facts(ctx, expects, topology, clients)
    expects += tuple(
        Expectation(
            "",
            "step",
            s.at,
            s.at,
            line=s.line,
            note=str(s.get("note", "")),
            outcome=s.get("expect"),
            step=s,
            reason=s.get("reason"),
        )
        for s in steps
        if s.get("expect") is not None
    )
    ends = [e.end for e in expects if not math.isinf(e.end)]
    horizon = max([s.at for s in steps] + ends + [0.0])
    duration = data.get("duration", horizon + 60.0)
    if (
        not isinstance(duration, int | float)
        or isinstance(duration, bool)
        or not 0 < duration <= MAX_SECONDS
    ):
        ctx.fail(
            None,
            None,
            "duration",
            f"a number of seconds > 0 and <= {number_text(MAX_SECONDS)} (366 days)",
        )
    for group in grouped.groups:
        if group.sign_in is not None and group.sign_in[1] > duration:
            ctx.fail(
                "clients",
                group.index,
                "sign_in",
                f"a window within the duration ({duration:g} s), not ending at "
                f"{group.sign_in[1]:g}; raise duration or move the window",
            )
    _check_within(ctx, duration, steps, expects)
    aggregate.check_expectations(ctx, duration, expects, pool_names)
    seeds = ctx.integer(data, "seeds", None, None, default=1, low=1, high=MAX_SEEDS)
    description = data.get("description", "")
    if not isinstance(description, str):
        ctx.fail(None, None, "description", "a string")
    return Scenario(
        source,
        topology,
        seed,
        float(duration),
        clients,
        steps,
        expects,
        description,
        "seed" in data,
        grouped.groups,
        seeds,
    )


def _not_a_topology(ctx: TomlContext, data: dict[str, Any]) -> None:
    """A topology file where a scenario was expected: say so, and how to use it."""
    found = sorted(k for k in data if k in _TOPOLOGY_KEYS)
    if found and not any(k in data for k in ("step", "expect", "client", "topology")):
        shown = ", ".join(f"[[{k}]]" if k in ("pool", "user") else k for k in found)
        raise ScenarioError(
            f"{ctx.source}: this is a topology file ({shown}), not a scenario: run it with "
            '`sipemu up FILE`, or name it in a scenario (topology = "FILE", relative to the '
            "scenario; docs/scenarios.md)"
        )


def with_expectations(scenario: Scenario, expect: list[dict[str, Any]]) -> Scenario:
    """``scenario`` with more ``[[expect]]`` tables after its own, validated as in a file:
    the same Scenario as parsing the data with the tables appended (the fuzzer adds its
    liveness expectations once the faults are over, without validating the rest again)."""
    ctx = TomlContext(scenario.source, "", error=ScenarioError)
    names = {c.name for c in scenario.clients}
    own = [e for e in scenario.expectations if e.kind != "step"]
    steps = [e for e in scenario.expectations if e.kind == "step"]
    added = tuple(_expect(ctx, len(own) + i, e, names) for i, e in enumerate(expect))
    _check_within(ctx, scenario.duration, (), added, first=len(own))
    if any(e.chat for e in added) and scenario.topology.persistent_chat is None:
        index = len(own) + next(i for i, e in enumerate(added) if e.chat)
        ctx.fail("expect", index, "chat", "a topology with a [persistent_chat] pool")
    check_facts(ctx, added, scenario.topology, scenario.clients, first=len(own))
    return replace(scenario, expectations=(*own, *added, *steps))


def _check_within(
    ctx: TomlContext,
    duration: float,
    steps: tuple[Step, ...],
    expects: tuple[Expectation, ...],
    *,
    first: int = 0,
) -> None:
    """Steps and expectations inside the run: a step after the end never happens, and an
    expectation past it would be judged on a state the run never reached."""
    for step in steps:
        if step.at > duration:
            where = f"{ctx.source}:{step.line}" if step.line else ctx.source
            raise ScenarioError(
                f"{where}: step[{step.index}].at: expected a time within the duration "
                f"({duration:g} s), not {step.at:g}; raise duration or move the step"
            )
    for i, e in enumerate(expects):
        if e.kind in ("at", "by", "always", "never", "invariant") and not math.isinf(e.end):
            if e.end > duration:
                ctx.fail(
                    "expect",
                    first + i,
                    "until" if e.kind == "invariant" else e.kind,
                    f"a time within the duration ({duration:g} s), not {e.end:g}; raise "
                    "duration or move the expectation",
                )


def _tables(ctx: TomlContext, data: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        ctx.fail(None, None, name, f"an array of tables ([[{name}]])")
    return value


def _topology(ctx: TomlContext, data: dict[str, Any], base: Path | None) -> Topology:
    value = data.get("topology")
    if isinstance(value, Topology):  # built by the caller (the fuzzer reuses one per case)
        return value
    try:
        if value is None or value == "default":
            return default_topology()
        if isinstance(value, str):
            path = Path(value)
            if not path.is_absolute() and base is not None:
                path = base / path
            return load_topology(path)
        if isinstance(value, dict):
            from emulator.topology import topology_from_dict

            try:
                return topology_from_dict(
                    value, ctx.source, text="\n".join(ctx.lines), prefix="topology"
                )
            except TopologyError as exc:  # already names this file and the topology.* key
                raise ScenarioError(str(exc)) from None
    except TopologyError as exc:
        raise ScenarioError(f"{ctx.source}: topology: {exc}") from None
    ctx.fail(None, None, "topology", 'a path to a topology file, "default", or a [topology] table')
    raise AssertionError("unreachable")


def _string(
    ctx: TomlContext, table: dict[str, Any], key: str, name: str, index: int, required: bool = True
) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            ctx.fail(name, index, key, "a string (this key is required)")
        return None
    if not isinstance(value, str) or not value:
        ctx.fail(name, index, key, "a non-empty string")
    return value


def _number(
    ctx: TomlContext,
    table: dict[str, Any],
    key: str,
    name: str,
    index: int,
    high: float = MAX_SECONDS,
    what: str = "a number of seconds",
) -> float:
    """A number from 0 to ``high``: ``nan`` and ``inf`` are refused (``not 0 <= nan``)."""
    value = table.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= high:
        ctx.fail(name, index, key, f"{what} from 0 to {number_text(high)}")
    return float(value)


def _client(ctx: TomlContext, index: int, table: dict[str, Any]) -> ClientSpec:
    ctx.unknown(table, _CLIENT_KEYS, "client", index)
    name = _string(ctx, table, "name", "client", index)
    user = _string(ctx, table, "user", "client", index)
    cache = _string(ctx, table, "cache", "client", index, required=False)
    profile = _string(ctx, table, "profile", "client", index, required=False) or "lync2010"
    from clients.profile import PROFILES, customized

    if profile not in PROFILES:
        ctx.fail("client", index, "profile", f"one of {', '.join(PROFILES)}")
    options = table.get("options", {})
    if not isinstance(options, dict):
        ctx.fail(
            "client",
            index,
            "options",
            "a table of profile fields, e.g. { keepalive_interval = 60 }",
        )
    _check_options(ctx, index, options)
    try:
        customized(PROFILES[profile], options)
    except (ValueError, TypeError) as exc:
        ctx.fail_text("client", index, "options", str(exc))
    assert name is not None and user is not None
    return ClientSpec(
        name,
        user if user.startswith("sip:") else f"sip:{user}",
        profile,
        cache.lower().rstrip(".") if cache else None,
        tuple(sorted(options.items())),
    )


_INFINITE_OPTIONS = frozenset({"failback_probe_interval", "failback_detection_timeout"})
"""Client options whose ``inf`` switches a timer off (docs/clients.md): the only place a
scenario may write ``inf``."""


def _infinite(path: tuple[str | int, ...]) -> bool:
    return (
        len(path) == 4
        and path[0] == "client"
        and path[2] == "options"
        and (path[3] in _INFINITE_OPTIONS)
    )


def _check_options(ctx: TomlContext, index: int, options: dict[str, Any]) -> None:
    """Every number of a client's options is a time, a count or a ratio: from 0 to
    MAX_SECONDS, or ``inf`` for the timers it switches off (clients.profile.customized checks
    the types, the profile the rest)."""
    for key, value in options.items():
        values = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, number in values:
            if not isinstance(number, int | float) or isinstance(number, bool):
                continue
            if sub is None and key in _INFINITE_OPTIONS and number == math.inf:
                continue
            if not 0 <= number <= MAX_SECONDS:
                name = f"options.{key}" + (f".{sub}" if sub else "")
                off = " or inf (off)" if sub is None and key in _INFINITE_OPTIONS else ""
                ctx.fail(
                    "client", index, name, f"a number from 0 to {number_text(MAX_SECONDS)}{off}"
                )


def _step(ctx: TomlContext, index: int, table: dict[str, Any], clients: set[str]) -> Step:
    at = _number(ctx, table, "at", "step", index)
    action = table.get("action")
    if not isinstance(action, str) or action not in ACTIONS:  # a dict is unhashable
        ctx.fail_text("step", index, "action", _bad_choice("one of", action, list(ACTIONS)))
    _step_keys(ctx, index, table, action)
    needs = ACTIONS[action]
    if needs == "client":
        client = table.get("client", table.get("target"))
        if not isinstance(client, str) or client not in clients:
            known = sorted(clients)
            ctx.fail_text(
                "step",
                index,
                "client",
                _bad_choice("the name of a [[client]]", client, known, shown=_some(clients)),
            )
    elif needs == "target":
        _string(ctx, table, "target", "step", index)
    elif needs == "a,b":
        _string(ctx, table, "a", "step", index)
        _string(ctx, table, "b", "step", index)
    elif needs == "kind":
        kinds = ["servfail", "timeout", "nxdomain"]
        if table.get("kind") not in kinds:
            ctx.fail_text(
                "step",
                index,
                "kind",
                _bad_choice("one of", table.get("kind"), kinds),
            )
    elif needs == "name":
        _string(ctx, table, "name", "step", index)
    elif needs == "record":
        _record(ctx, index, table)
    if action == "add-contact":
        _string(ctx, table, "contact", "step", index)
    if "transport" in table and (
        action not in ("disable-nic", "enable-nic") or table["transport"] not in TRANSPORTS
    ):
        value = str(table["transport"])[:40]
        ctx.fail(
            "step",
            index,
            "transport",
            f"udp, tcp or tls, on a disable-nic or enable-nic step (not {value!r} on {action})",
        )
    if "tcp" in table and (action != "disable-nic" or table["tcp"] not in ("timeout", "reset")):
        value = str(table["tcp"])[:40]
        ctx.fail(
            "step", index, "tcp", f'"timeout" or "reset", on a disable-nic step (not {value!r})'
        )
    if "expect" in table:
        if action not in OUTCOME_ACTIONS:
            ctx.fail(
                "step",
                index,
                "expect",
                f"nothing here: only {', '.join(sorted(OUTCOME_ACTIONS))} steps have an outcome",
            )
        if table["expect"] not in OUTCOMES:
            ctx.fail("step", index, "expect", '"ok" or "refused"')
    for key in ("latency", "jitter"):
        if key in table:
            _number(ctx, table, key, "step", index, high=3600.0)
    for key in ("loss", "duplicate"):
        if key in table:
            _number(ctx, table, key, "step", index, high=1.0, what="a probability")
    params = tuple((k, v) for k, v in table.items() if k not in ("at", "action"))
    if needs == "client" and "client" not in table:
        params = (("client", table["target"]), *params)
    return Step(at, action, params, ctx.line_of("step", index, "action"))


def _step_keys(ctx: TomlContext, index: int, table: dict[str, Any], action: str) -> None:
    """Each key of a step must be one its action takes (:data:`ACTION_KEYS`)."""
    allowed = STEP_COMMON_KEYS | ACTION_KEYS[action]
    for key in table:
        if key in allowed or key == "expect":  # expect: its own sentence, in _step
            continue
        own = sorted(ACTION_KEYS[action])
        hint = did_you_mean(key, sorted(allowed))
        takes = f"{action} takes {', '.join(own)}" if own else f"{action} takes no key"
        if key in _STEP_KEYS:
            users = sorted(a for a, keys in ACTION_KEYS.items() if key in keys)
            others = ", ".join(users[:6]) + (" ..." if len(users) > 6 else "")
            verb = "takes" if len(users) == 1 else "take"
            problem = f"not a key of this {action} step ({others} {verb} it); "
        else:
            problem = "unknown key; "
        ctx.fail_text(
            "step",
            index,
            key,
            f"{problem}{hint}{takes}, and every step at, action, id, note",
        )


def _bad_choice(what: str, value: object, known: list[str], *, shown: str | None = None) -> str:
    """``expected WHAT; got VALUE (did you mean ...?)``: the bad value echoed, the closest
    known one suggested (difflib).  ``what`` "one of" lists ``known``; another ``what`` is
    followed by ``shown`` (or ``known``) in parentheses."""
    if what == "one of":
        expected = " or ".join(known) if len(known) <= 2 else "one of " + ", ".join(known)
    else:
        expected = f"{what} ({shown if shown is not None else ', '.join(known)})"
    if value is None:
        return f"expected {expected}; this key is required"
    close = closest(value, known) if isinstance(value, str) else None
    hint = f" (did you mean {close!r}?)" if close is not None else ""
    return f"expected {expected}; got {repr(value)[:80]}{hint}"


def _record(ctx: TomlContext, index: int, table: dict[str, Any]) -> DnsRecord:
    rtype = str(table.get("type", "")).upper()
    name = _string(ctx, table, "name", "step", index)
    assert name is not None
    problem = dns_name_problem(name.lower().rstrip("."), service=rtype == "SRV")
    if problem is not None:
        ctx.fail("step", index, "name", f"a DNS name, not {name[:80]!r} ({problem})")
    ttl = ctx.integer(table, "ttl", "step", index, default=300, low=0, high=2**31 - 1)
    try:
        if rtype == "SRV":
            key = "record_target" if "record_target" in table else "target"
            target = table.get(key)
            if not isinstance(target, str):
                ctx.fail("step", index, "target", "the SRV target host name")
            bare = target.lower().rstrip(".")
            problem = dns_name_problem(bare) if bare else None
            if problem is not None:
                ctx.fail("step", index, key, f"a DNS name, not {target[:80]!r} ({problem})")
            return SrvRecord(
                name,
                ctx.integer(table, "priority", "step", index, default=0, low=0, high=65535),
                ctx.integer(table, "weight", "step", index, default=0, low=0, high=65535),
                ctx.integer(table, "port", "step", index, default=5061, low=0, high=65535),
                str(target),
                ttl,
            )
        if rtype in ("A", "AAAA"):
            address = _string(ctx, table, "address", "step", index)
            assert address is not None
            return AddressRecord(name, address, ttl)
    except (TypeError, ValueError) as exc:
        ctx.fail("step", index, "type", f"a valid record ({exc})")
    ctx.fail("step", index, "type", '"SRV", "A" or "AAAA"')
    raise AssertionError("unreachable")


def _some(names: set[str], shown: int = 10) -> str:
    """A few of ``names`` for a message (a scenario may have 100,000 clients)."""
    if not names:
        return "none defined"
    first = sorted(names)[:shown]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(first) + more


def _check_targets(
    ctx: TomlContext, steps: tuple[Step, ...], topology: Topology, clients: set[str]
) -> None:
    """Hosts named by fault steps must exist: a pool FQDN, ``dns``, or a client's name."""
    pools = {p.fqdn for p in topology.pools}
    for index, step in enumerate(steps):
        keys = {"target": ACTIONS[step.action] == "target", "a": True, "b": True}
        for key, applies in keys.items():
            host = step.get(key)
            if not applies or host is None:
                continue
            if not isinstance(host, str):
                ctx.fail("step", index, key, "a pool FQDN, dns, or a client name")
            name = host.lower().rstrip(".")
            if step.action in ("stop-pool", "start-pool"):
                if name not in pools:
                    ctx.fail("step", index, key, f"a pool FQDN ({', '.join(sorted(pools))})")
            elif name not in pools and name != "dns" and host not in clients:
                ctx.fail(
                    "step",
                    index,
                    key,
                    f"a pool FQDN ({', '.join(sorted(pools))}), dns, or a client name",
                )


def _check_admin(ctx: TomlContext, steps: tuple[Step, ...], topology: Topology) -> None:
    """Administrative steps must name pools, servers and chat steps the topology has."""
    for index, step in enumerate(steps):
        if ACTIONS[step.action] != "admin":
            continue
        problem = Operations.validate(topology, step.action, dict(step.params))
        if problem is not None:
            key, _, expected = problem.partition(": ")
            ctx.fail("step", index, key, expected)


def record_of(step: Step) -> DnsRecord:
    """The DNS record a validated ``dns-add`` step describes."""
    table = dict(step.params)
    ctx = TomlContext("<step>", "", error=ScenarioError)
    return _record(ctx, 0, table)


def _expect(ctx: TomlContext, index: int, table: dict[str, Any], clients: set[str]) -> Expectation:
    if is_fact(table):
        return parse_fact(ctx, index, table, clients)
    window = {"from", "until"} if "invariant" in table else set()
    # With the keys of emulator/scenario/aggregate.py, for the did-you-mean (a table that
    # uses one of them is parsed there).
    ctx.unknown(table, _EXPECT_KEYS | NEW_KEYS | window, "expect", index)
    if "invariant" in table:
        from emulator.sim.invariants import INVARIANTS

        invariant = table["invariant"]
        if not isinstance(invariant, str) or invariant not in INVARIANTS:
            ctx.fail_text(
                "expect", index, "invariant", _bad_choice("one of", invariant, list(INVARIANTS))
            )
        others = sorted(set(table) - {"invariant", "note", "from", "until"})
        if others:
            ctx.fail(
                "expect",
                index,
                others[0],
                "nothing else beside invariant but from and until (it holds for the whole "
                "run, or from until)",
            )
        start, end = invariant_window(ctx, index, table)
        return Expectation(
            "",
            "invariant",
            start,
            end,
            line=ctx.line_of("expect", index, "invariant"),
            note=str(table.get("note", "")),
            invariant=invariant,
        )
    chat = table.get("chat")
    if chat is not None:
        if chat not in CHAT_STATES:
            ctx.fail_text("expect", index, "chat", _bad_choice("one of", chat, list(CHAT_STATES)))
        others = sorted(set(table) & {"client", "state", "registrar", "mode", "contacts"})
        if others:
            ctx.fail("expect", index, others[0], "nothing else beside chat (it is not a client's)")
    client = table.get("client", "" if chat is not None else None)
    if chat is None and (not isinstance(client, str) or client not in clients):
        ctx.fail(
            "expect",
            index,
            "client",
            f"the name of a [[client]] ({_some(clients)})",
        )
    kinds = [k for k in ("at", "by", "always", "never") if k in table]
    if len(kinds) != 1:
        ctx.fail("expect", index, "at", "exactly one of at, by, always = [start, end], never")
    kind = kinds[0]
    value = table[kind]
    if kind in ("at", "by"):
        moment = _number(ctx, table, kind, "expect", index)
        start, end = (moment, moment) if kind == "at" else (0.0, moment)
    else:
        if kind == "never" and value is True:
            start, end = 0.0, float("inf")
        elif (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            and 0 <= value[0] <= value[1] <= MAX_SECONDS
        ):
            start, end = float(value[0]), float(value[1])
        else:
            shape = f"[start, end] with 0 <= start <= end <= {number_text(MAX_SECONDS)}" + (
                " or true" if kind == "never" else ""
            )
            ctx.fail("expect", index, kind, shape)
    state = table.get("state")
    if state is not None and state not in STATES:
        ctx.fail_text("expect", index, "state", _bad_choice("one of", state, list(STATES)))
    mode = table.get("mode")
    if mode is not None and mode not in MODES:
        ctx.fail_text("expect", index, "mode", _bad_choice("one of", mode, list(MODES)))
    registrar = table.get("registrar")
    if registrar is not None and not isinstance(registrar, str):
        ctx.fail("expect", index, "registrar", "a pool FQDN")
    contacts = table.get("contacts")
    if contacts is not None and (
        not isinstance(contacts, int) or isinstance(contacts, bool) or not 0 <= contacts <= 2**31
    ):
        ctx.fail("expect", index, "contacts", "a number of contacts from 0 to 2147483648")
    if state is None and mode is None and registrar is None and contacts is None and chat is None:
        ctx.fail("expect", index, "state", "at least one of state, registrar, mode, contacts")
    note = table.get("note", "")
    return Expectation(
        str(client),
        kind,
        start,
        end,
        state,
        registrar.lower().rstrip(".") if registrar else None,
        mode,
        ctx.line_of("expect", index, kind),
        str(note),
        contacts=contacts,
        chat=chat,
    )
