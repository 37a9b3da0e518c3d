"""Client groups: ``[[clients]] count = N`` stands for N clients made from a template.

A group gives its clients' names and users as templates with ``{n}`` (``"g{n}"``,
``"user{n:05d}@contoso.test"``), a mix of profiles and of cache states (weights, apportioned
exactly by largest remainder), and a sign-in spread: each client signs in at a time drawn
uniformly from a window (docs/scenarios.md, "Client groups").

The mix is fixed by the scenario's ``seed``; the sign-in times are drawn from the run's seed
(:func:`reseeded`), so a scenario run over several seeds also varies when its clients arrive.
Expansion is linear in the clients: 20,000 load in well under a second.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from emulator.config import TomlContext, number_text
from emulator.sim.deployment import ClientSpec

if TYPE_CHECKING:
    from emulator.scenario.model import Scenario, Step
    from emulator.topology import Topology

__all__ = ["GROUP_KEYS", "Group", "Grouped", "expand", "reseeded", "sign_in_times"]

GROUP_KEYS = frozenset(
    {
        "count",
        "start",
        "group",
        "name",
        "user",
        "profile",
        "profiles",
        "cache",
        "caches",
        "options",
        "sign_in",
    }
)
NO_CACHE = "none"
"""The cache state of an empty endpoint cache in ``caches``."""

_TEMPLATE = re.compile(r"^[^{}]*\{n(?::0?[1-9]?\d?d)?\}[^{}]*$")
"""One ``{n}`` field, optionally zero-padded (``{n:05d}``): nothing else is formatted (an
arbitrary format string could reach attributes: ``{n.__class__}``)."""
_FIELD = re.compile(r"\{n(?::[^}]*)?\}")


@dataclass(frozen=True, slots=True)
class Group:
    """One ``[[clients]]`` table, expanded."""

    name: str
    """How expectations name it (``group = "..."``)."""
    members: tuple[str, ...]
    """Its clients' names, in ``n`` order."""
    sign_in: tuple[float, float] | None
    """The window the sign-in times are drawn from; None: the group does not sign in."""
    index: int
    """Its position among the ``[[clients]]`` tables (for messages)."""
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Grouped:
    """What the ``[[clients]]`` tables of a scenario stand for."""

    clients: tuple[ClientSpec, ...] = ()
    groups: tuple[Group, ...] = ()


def expand(
    ctx: TomlContext,
    tables: list[dict[str, Any]],
    topology: Topology,
    seed: int,
    taken: Mapping[str, int],
    max_clients: int,
) -> Grouped:
    """Validate and expand the ``[[clients]]`` tables.  ``taken``: the names of the
    ``[[client]]`` tables (a group's names must not collide with them, or with each other)."""
    from clients.profile import PROFILES, customized

    pools = sorted(p.fqdn for p in topology.pools)
    specs: list[ClientSpec] = []
    groups: list[Group] = []
    names: dict[str, str] = {name: f"[[client]] {index}" for name, index in taken.items()}
    total = len(taken)
    for index, table in enumerate(tables):
        ctx.unknown(table, GROUP_KEYS, "clients", index)
        count = ctx.integer(table, "count", "clients", index, low=1, high=max_clients)
        total += count
        if total > max_clients:
            ctx.fail(
                "clients",
                index,
                "count",
                f"at most {max_clients} clients in all ([[client]] and [[clients]]), not {total}",
            )
        start = ctx.integer(table, "start", "clients", index, default=1, low=0, high=2**31)
        name_template = _template(ctx, table, "name", index)
        user_template = _template(ctx, table, "user", index)
        group = table.get("group", _FIELD.sub("", name_template).strip("-_.") or name_template)
        if not isinstance(group, str) or not group:
            ctx.fail("clients", index, "group", "a non-empty string (the group's name)")
        if any(g.name == group for g in groups):
            ctx.fail("clients", index, "group", f"a unique group name ({group!r} is used twice)")
        profiles = _mix(ctx, table, "profile", "profiles", index, "lync2010", count, PROFILES)
        caches = _mix(
            ctx, table, "cache", "caches", index, NO_CACHE, count, [NO_CACHE, *pools], lower=True
        )
        options = table.get("options", {})
        if not isinstance(options, dict):
            ctx.fail("clients", index, "options", "a table of profile fields")
        for profile in set(profiles):
            try:
                customized(PROFILES[profile], options)
            except (ValueError, TypeError) as exc:
                ctx.fail_text("clients", index, "options", str(exc))
        frozen_options = tuple(sorted(options.items()))
        mixer = random.Random(f"clients/{seed}/{index}")
        mixer.shuffle(caches)  # uncorrelated with the profiles (which stay in their order)
        members: list[str] = []
        for k in range(count):
            n = start + k
            name = name_template.format(n=n)
            user = user_template.format(n=n)
            if name in names:
                ctx.fail(
                    "clients",
                    index,
                    "name",
                    f"unique client names ({name!r}, for n = {n}, is also {names[name]})",
                )
            names[name] = f"in [[clients]] {index}"
            uri = user if user.startswith("sip:") else f"sip:{user}"
            if topology.home_pool(uri) is None:
                ctx.fail(
                    "clients",
                    index,
                    "user",
                    f"users of the topology ({user[:80]!r}, for n = {n}, is not in "
                    f"{topology.source}); lower count or start, or add users to the topology",
                )
            cache = caches[k]
            specs.append(
                ClientSpec(
                    name,
                    uri,
                    profiles[k],
                    None if cache == NO_CACHE else cache,
                    frozen_options,
                )
            )
            members.append(name)
        groups.append(
            Group(
                group,
                tuple(members),
                _window(ctx, table, index),
                index,
                ctx.line_of("clients", index, "count"),
            )
        )
    return Grouped(tuple(specs), tuple(groups))


def _template(ctx: TomlContext, table: dict[str, Any], key: str, index: int) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not _TEMPLATE.match(value):
        shown = f", not {value!r}"[:90] if value is not None else " (this key is required)"
        ctx.fail(
            "clients",
            index,
            key,
            f'a template with one {{n}} (e.g. "user{{n}}@contoso.test" or "{{n:05d}}"){shown}',
        )
    return value


def _mix(
    ctx: TomlContext,
    table: dict[str, Any],
    one: str,
    many: str,
    index: int,
    default: str,
    count: int,
    allowed: Iterable[str],
    *,
    lower: bool = False,
) -> list[str]:
    """``count`` labels: all ``table[one]``, or ``table[many]``'s weights apportioned exactly
    (largest remainder; ties to the label named first)."""
    allowed = list(allowed)
    if one in table and many in table:
        ctx.fail("clients", index, many, f"either {one} or {many}, not both")
    if many not in table:
        label = table.get(one, default)
        if isinstance(label, str) and lower:
            label = label.lower().rstrip(".")
        if label not in allowed:
            ctx.fail("clients", index, one, f"one of {', '.join(allowed)}, not {str(label)[:80]!r}")
        return [label] * count
    weights = table[many]
    if not isinstance(weights, dict) or not weights:
        ctx.fail(
            "clients",
            index,
            many,
            f"a table of weights, e.g. {{ {allowed[0]} = 3, {allowed[-1]} = 1 }}",
        )
    shares: list[tuple[str, float]] = []
    for label, weight in weights.items():
        key = label.lower().rstrip(".") if lower else label
        if key not in allowed:
            ctx.fail(
                "clients",
                index,
                f"{many}.{label}",
                f"one of {', '.join(allowed)} as a key, not {label[:80]!r}",
            )
        if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
            ctx.fail("clients", index, f"{many}.{label}", f"a weight >= 0, not {weight!r}")
        shares.append((key, float(weight)))
    total = sum(w for _, w in shares)
    if total <= 0:
        ctx.fail("clients", index, many, "weights that are not all 0")
    exact = [(label, count * w / total) for label, w in shares]
    counts = [int(x) for _, x in exact]
    order = sorted(range(len(exact)), key=lambda i: -(exact[i][1] - counts[i]))
    for i in order[: count - sum(counts)]:
        counts[i] += 1
    out: list[str] = []
    for (label, _), n in zip(exact, counts, strict=True):
        out.extend([label] * n)
    return out


def _window(ctx: TomlContext, table: dict[str, Any], index: int) -> tuple[float, float] | None:
    from emulator.config import MAX_SECONDS

    value = table.get("sign_in")
    if value is None:
        return None
    numbers = value if isinstance(value, list) else [value, value]
    if (
        len(numbers) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers)
        and 0 <= numbers[0] <= numbers[1] <= MAX_SECONDS
    ):
        return float(numbers[0]), float(numbers[1])
    ctx.fail(
        "clients",
        index,
        "sign_in",
        f"a time or a window [start, end] with 0 <= start <= end <= {number_text(MAX_SECONDS)}, "
        f"not {value!r}"[:200],
    )


def sign_in_times(group: Group, seed: int) -> list[float]:
    """When each member of ``group`` signs in, for the run seed ``seed`` (uniform over the
    window, to the millisecond, drawn from a generator of the group's own)."""
    assert group.sign_in is not None
    low, high = group.sign_in
    rng = random.Random(f"sign-in/{seed}/{group.index}")
    return [round(rng.uniform(low, high), 3) for _ in group.members]


def sign_in_steps(groups: Iterable[Group], seed: int, step: type[Step]) -> list[Step]:
    """The sign-in steps of the groups that sign in, in member order."""
    steps: list[Step] = []
    for group in groups:
        if group.sign_in is None:
            continue
        params_of = (("group", group.name),)
        for name, at in zip(group.members, sign_in_times(group, seed), strict=True):
            steps.append(step(at, "sign-in", (("client", name), *params_of), group.line))
    return steps


def reseeded(scenario: Scenario, seed: int) -> Scenario:
    """``scenario`` with its groups' sign-in times drawn for the run seed ``seed`` (the same
    scenario when it has no group that signs in, or ``seed`` is its own)."""
    if seed == scenario.seed or not any(g.sign_in for g in scenario.groups):
        return scenario
    from emulator.scenario.model import Step

    own = [s for s in scenario.steps if s.get("group") is None]
    # Stable: at equal times the file's steps stay before the groups' (as when loaded).
    merged = sorted([*own, *sign_in_steps(scenario.groups, seed, Step)], key=lambda s: s.at)
    moved: dict[int, Step] = {}
    indexed: list[Step] = []
    for n, step in enumerate(merged):
        new = step.with_index(n)
        if step.get("group") is None:
            moved[step.index] = new
        indexed.append(new)
    expectations = tuple(
        replace(e, step=moved[e.step.index]) if e.step is not None else e
        for e in scenario.expectations
    )
    return replace(scenario, steps=tuple(indexed), expectations=expectations)
