"""Expectations over groups, relative times, and refusal reasons (docs/scenarios.md).

Parsing (:func:`parse`, for an ``[[expect]]`` table that uses a new key: :func:`wants`) and
judging (:func:`judge`, which hands the other expectations to the runner's own check).

Every condition is judged the same way: it becomes a piecewise-constant truth over the run
(:func:`client_truth`, :func:`share_truth`, :func:`spread_truth`), a list of ``(t, holds,
info)`` from time 0, where ``info`` describes what was seen from ``t`` on; the time forms
(``at``, ``by``, ``always``, ``never``, ``within``, ``first_between``) read that list.  A group's
truth is one sweep over its members' state changes, sorted: O(E log E) for E changes.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from emulator.config import MAX_SECONDS, TomlContext, closest, did_you_mean, number_text
from emulator.scenario.forms import SPREAD_OF, Share, Spread

if TYPE_CHECKING:
    from clients.events import ClientStateChanged
    from emulator.scenario.groups import Group
    from emulator.scenario.model import Expectation, Scenario, Step
    from emulator.scenario.runner import ExpectationResult

__all__ = [
    "NEW_KEYS",
    "check_expectations",
    "describe",
    "judge",
    "parse",
    "step_times",
    "wants",
]

NEW_KEYS = frozenset(
    {
        "group",
        "at_least",
        "at_most",
        "count",
        "spread",
        "tolerance",
        "of",
        "within",
        "first_between",
        "after",
        "id",
    }
)
"""The ``[[expect]]`` keys this module handles (a table with any of them is parsed here)."""
_CONDITIONS = ("state", "registrar", "mode", "contacts")
_TIMES = ("at", "by", "always", "never", "within", "first_between")
_KEYS = frozenset({"client", "note", *_CONDITIONS, *_TIMES, *NEW_KEYS})

Truth = list[tuple[float, bool, Any]]
"""From each ``t`` on (the first at 0): whether the condition holds, and what was seen."""


def wants(table: Mapping[str, Any]) -> bool:
    """Whether an ``[[expect]]`` table uses a form of this module."""
    return any(key in table for key in NEW_KEYS)


# -- parsing ---------------------------------------------------------------------------------


def step_times(ctx: TomlContext, steps: Sequence[Step]) -> dict[str, float]:
    """``step:ID`` and ``step:N`` (N: the position in the file, from 0, as in messages) ->
    the step's time; a step's ``id`` is a unique non-empty string."""
    times: dict[str, float] = {}
    for index, step in enumerate(steps):
        times[f"step:{index}"] = step.at
        name = step.get("id")
        if name is None:
            continue
        if not isinstance(name, str) or not name or name.isdigit():
            ctx.fail("step", index, "id", f"a name that is not a number, not {name!r}")
        if f"step:{name}" in times and not name.isdigit():
            ctx.fail("step", index, "id", f"a unique step id ({name!r} is used twice)")
        times[f"step:{name}"] = step.at
    return times


def _ref_problem(value: object, steps: Mapping[str, float]) -> str | None:
    if not isinstance(value, str) or not value.startswith(("step:", "expect:")):
        return f'"step:ID", "step:N" or "expect:ID", not {value!r}'[:160]
    if value.startswith("step:") and value not in steps:
        known = sorted(k for k in steps if not k[5:].isdigit())
        hint = did_you_mean(value, known)
        count = sum(1 for k in steps if k[5:].isdigit())
        return (
            f"a step of this file ({hint}{value!r} is none: steps are step:0 to "
            f"step:{count - 1}{', or ' + ', '.join(known[:10]) if known else ''})"
        )
    return None


def parse(
    ctx: TomlContext,
    index: int,
    table: dict[str, Any],
    clients: set[str],
    groups: Mapping[str, Group],
    steps: Mapping[str, float],
) -> Expectation:
    """An ``[[expect]]`` table that uses a new form: over a group, relative to a step or to
    another expectation, within N s, or the first occurrence in a window."""
    from emulator.scenario.model import Expectation, _expect

    ctx.unknown(table, _KEYS, "expect", index)
    group = table.get("group")
    if group is not None:
        if "client" in table:
            ctx.fail("expect", index, "group", "either client or group, not both")
        if not isinstance(group, str) or group not in groups:
            hint = did_you_mean(group, groups)
            ctx.fail(
                "expect",
                index,
                "group",
                f"the group of a [[clients]] table ({hint}groups: "
                f"{', '.join(sorted(groups)) or 'none defined'}), not {str(group)[:80]!r}",
            )
    # The condition and the plain time forms, validated as any expectation's.
    spread = _spread(ctx, index, table, group)
    sub = {k: table[k] for k in (*_CONDITIONS, "at", "by", "always", "never") if k in table}
    sub["client"] = table.get("client") if group is None else next(iter(clients), "")
    if not any(k in sub for k in _CONDITIONS):
        if spread is None:
            ctx.fail("expect", index, "state", "at least one of state, registrar, mode, contacts")
        sub["state"] = "registered"  # for the validation only
    forms = [k for k in _TIMES if k in table]
    if len(forms) != 1:
        ctx.fail(
            "expect",
            index,
            forms[1] if len(forms) > 1 else "at",
            "exactly one of at, by, always = [start, end], never, within (with after), "
            f"first_between = [start, end]{', not ' + ' and '.join(forms) if forms else ''}",
        )
    kind = forms[0]
    if kind in ("within", "first_between"):
        sub["at"] = 0
    base = _expect(ctx, index, sub, clients)
    after = table.get("after")
    shift = 0.0
    if after is not None:
        problem = _ref_problem(after, steps)
        if problem is not None:
            ctx.fail("expect", index, "after", problem)
        if after.startswith("step:"):
            shift = steps[after]
    start, end = base.start, base.end
    if kind == "within":
        if after is None:
            ctx.fail("expect", index, "within", 'after = "step:ID" or "expect:ID" beside it')
        n = table["within"]
        if not isinstance(n, int | float) or isinstance(n, bool) or not 0 <= n <= MAX_SECONDS:
            ctx.fail(
                "expect",
                index,
                "within",
                f"a number of seconds from 0 to {number_text(MAX_SECONDS)}, not {n!r}"[:160],
            )
        start, end = 0.0, float(n)
    elif kind == "first_between":
        value = table["first_between"]
        if not (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            and 0 <= value[0] <= value[1] <= MAX_SECONDS
        ):
            ctx.fail(
                "expect",
                index,
                "first_between",
                f"[start, end] with 0 <= start <= end <= {number_text(MAX_SECONDS)}, not {value!r}"[
                    :200
                ],
            )
        start, end = float(value[0]), float(value[1])
    name = table.get("id")
    if name is not None and (not isinstance(name, str) or not name):
        ctx.fail("expect", index, "id", f"a non-empty string, not {name!r}")
    share = _share(ctx, index, table, group, groups, spread)
    conditions = {k: getattr(base, k) for k in _CONDITIONS}
    if spread is not None and not any(k in table for k in _CONDITIONS):
        conditions = dict.fromkeys(_CONDITIONS)
    line = ctx.line_of("expect", index, kind if kind in table else "group")
    return Expectation(
        "" if group is not None else base.client,
        "first" if kind == "first_between" else kind,
        start + shift,
        end + shift,
        conditions["state"],
        conditions["registrar"],
        conditions["mode"],
        line,
        str(table.get("note", "")),
        contacts=conditions["contacts"],
        group=group,
        share=share,
        spread=spread,
        id=name,
        after=after,
        origin=shift,
    )


def _fraction(ctx: TomlContext, index: int, table: dict[str, Any], key: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        ctx.fail(
            "expect",
            index,
            key,
            f"a fraction of the group from 0 to 1 (0.95 for 95%), not {value!r}"[:160],
        )
    return float(value)


def _share(
    ctx: TomlContext,
    index: int,
    table: dict[str, Any],
    group: str | None,
    groups: Mapping[str, Group],
    spread: Spread | None,
) -> Share | None:
    keys = [k for k in ("at_least", "at_most", "count") if k in table]
    if group is None:
        if keys:
            ctx.fail("expect", index, keys[0], 'group = "..." beside it (it counts a group)')
        return None
    if spread is not None:
        if keys:
            ctx.fail("expect", index, keys[0], "nothing beside spread (a separate [[expect]])")
        return None
    if not keys:
        ctx.fail(
            "expect",
            index,
            "at_least",
            "at_least = 0.95, at_most = 0.05, count = N or spread = { ... } for a group",
        )
    size = len(groups[group].members)
    count = None
    if "count" in table:
        count = ctx.integer(table, "count", "expect", index, low=0, high=size)
    return Share(
        _fraction(ctx, index, table, "at_least"), _fraction(ctx, index, table, "at_most"), count
    )


def _spread(
    ctx: TomlContext, index: int, table: dict[str, Any], group: str | None
) -> Spread | None:
    value = table.get("spread")
    if value is None:
        for key in ("tolerance", "of"):
            if key in table:
                ctx.fail("expect", index, key, "spread = { ... } beside it")
        return None
    if group is None:
        ctx.fail("expect", index, "spread", 'group = "..." beside it (a group spreads)')
    if not isinstance(value, dict) or not value:
        ctx.fail(
            "expect",
            index,
            "spread",
            'a table of targets and weights, e.g. { "fe1.contoso.test" = 60, '
            '"fe2.contoso.test" = 40 }',
        )
    weights: list[tuple[str, float]] = []
    for target, weight in value.items():
        if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
            ctx.fail("expect", index, f"spread.{target}", f"a weight >= 0, not {weight!r}")
        weights.append((target.lower().rstrip("."), float(weight)))
    total = sum(w for _, w in weights)
    if total <= 0:
        ctx.fail("expect", index, "spread", "weights that are not all 0")
    tolerance = table.get("tolerance", 5.0)
    if (
        not isinstance(tolerance, int | float)
        or isinstance(tolerance, bool)
        or not 0 <= tolerance <= 100
    ):
        ctx.fail(
            "expect", index, "tolerance", f"percentage points from 0 to 100, not {tolerance!r}"
        )
    of = table.get("of", "registrar")
    if of not in SPREAD_OF:
        ctx.fail("expect", index, "of", f"one of {', '.join(SPREAD_OF)}, not {of!r}"[:160])
    if of == "first-register":
        given = [k for k in _CONDITIONS if k in table]
        if given:
            ctx.fail(
                "expect",
                index,
                given[0],
                'nothing beside of = "first-register" (it counts every member\'s first REGISTER)',
            )
    return Spread(tuple((t, 100.0 * w / total) for t, w in weights), float(tolerance), str(of))


def check_expectations(
    ctx: TomlContext, duration: float, expects: Sequence[Expectation], pools: set[str]
) -> None:
    """Ids are unique, ``after = "expect:ID"`` names one (with no cycle), step-relative and
    first-occurrence windows end within the run, spread targets are pools."""
    ids: dict[str, int] = {}
    for i, e in enumerate(expects):
        if e.id is not None:
            if e.id in ids:
                ctx.fail("expect", i, "id", f"a unique id ({e.id!r} is also expect[{ids[e.id]}])")
            ids[e.id] = i
    for i, e in enumerate(expects):
        if e.after is not None and e.after.startswith("expect:"):
            target = e.after[len("expect:") :]
            if target not in ids:
                close = closest(target, ids)
                hint = f"did you mean 'expect:{close}'? " if close is not None else ""
                ctx.fail(
                    "expect",
                    i,
                    "after",
                    f"the id of another [[expect]] ({hint}ids: "
                    f"{', '.join(sorted(ids)) or 'none given'}), not {e.after!r}",
                )
        relative = e.after is not None and e.after.startswith("expect:")
        if e.kind in ("within", "first") and not relative and e.end > duration:
            ctx.fail(
                "expect",
                i,
                "within" if e.kind == "within" else "first_between",
                f"a window ending within the duration ({duration:g} s), not at {e.end:g}; "
                "raise duration or move the expectation",
            )
        if e.spread is not None and e.spread.of == "registrar":
            for target, _ in e.spread.shares:
                if target not in pools:
                    ctx.fail(
                        "expect",
                        i,
                        "spread",
                        f"pool FQDNs of the topology ({', '.join(sorted(pools))}) as keys, "
                        f"not {target[:80]!r}",
                    )
    for i, e in enumerate(expects):  # cycles: follow the chain (each has at most one ref)
        seen = {i}
        current = e
        while current.after is not None and current.after.startswith("expect:"):
            nxt = ids[current.after[len("expect:") :]]
            if nxt in seen:
                ctx.fail(
                    "expect", i, "after", "a chain of after = ... that does not come back to itself"
                )
            seen.add(nxt)
            current = expects[nxt]


# -- describing ------------------------------------------------------------------------------


def describe(e: Expectation) -> str:
    what = ", ".join(
        f"{k}={v}"
        for k, v in (
            ("state", e.state),
            ("registrar", e.registrar),
            ("mode", e.mode),
            ("contacts", e.contacts),
        )
        if v is not None
    )
    if e.group is not None:
        if e.spread is not None:
            who = f"group {e.group} {e.spread.describe()}"
            what = f"among {what}" if what else ""
        else:
            who = f"group {e.group}: {e.share.describe() if e.share else ''}"
    else:
        who = e.client
    relative = e.after is not None and e.after.startswith("expect:")
    after = f" after {e.after}" if e.after else ""
    if e.kind == "within":
        when = f"within {e.end - e.start:g} s{after}"
        if not relative:
            when += f" (in [{e.start:g}, {e.end:g}])"
    elif e.kind == "first":
        origin = f" s after {e.after}" if relative else f" (after {e.after})" if e.after else ""
        when = f"first in [{e.start:g}, {e.end:g}]{origin}"
    else:
        when = {
            "at": f"at {e.start:g}",
            "by": f"by {e.end:g}",
            "always": f"always in [{e.start:g}, {e.end:g}]",
            "never": f"never in [{e.start:g}, {e.end:g}]",
        }[e.kind]
        if relative:
            when += f" s{after}"
    return " ".join(p for p in (who, what, when) if p)


# -- judging ---------------------------------------------------------------------------------


def _extended(e: Expectation) -> bool:
    return (
        e.group is not None
        or e.after is not None
        or e.id is not None
        or e.kind in ("within", "first")
        or e.reason is not None
    )


def judge(
    scenario: Scenario,
    timelines: Mapping[str, Sequence[ClientStateChanged]],
    one: Callable[[Expectation], ExpectationResult],
) -> tuple[ExpectationResult, ...]:
    """Every expectation's result: ``one`` judges the runner's own forms, this module the
    rest, those named by ``after = "expect:ID"`` first."""
    expects = scenario.expectations
    ids = {e.id: i for i, e in enumerate(expects) if e.id is not None}
    results: dict[int, ExpectationResult] = {}
    moments: dict[int, float | None] = {}
    groups = {g.name: g for g in scenario.groups}

    def visit(i: int) -> None:
        if i in results:
            return
        e = expects[i]
        origin: float | None = 0.0
        if e.after is not None and e.after.startswith("expect:"):
            ref = ids[e.after[len("expect:") :]]
            visit(ref)
            origin = moments[ref]
        if not _extended(e):
            results[i] = one(e)
            moments[i] = _moment_of_plain(e, results[i])
            return
        if e.step is not None:  # a step's reason
            results[i] = _reason(e, one(e))
            moments[i] = e.start if results[i].passed else None
            return
        if origin is None:
            results[i] = _result(e, False, f"{e.after} has no moment: it did not hold")
            moments[i] = None
            return
        members = groups[e.group].members if e.group is not None else (e.client,)
        with _collector_paused():
            truth = (
                spread_truth(e, members, timelines)
                if e.spread is not None
                else share_truth(e, members, timelines)
                if e.group is not None
                else client_truth(e, timelines.get(e.client, []))
            )
        results[i], moments[i] = read(e, truth, origin, len(members))

    for i in range(len(expects)):
        visit(i)
    return tuple(results[i] for i in range(len(expects)))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A group's sweep allocates a tuple per state change and frees none of them: the cyclic
    collector's passes over the run's heap find nothing and were most of the time (judging a
    count and a spread over 20,000 clients and 100,000 changes: 5.2 s with them, 1.2 to
    1.7 s without, on a shared 2-core machine; benchmarks/group_scale.py --run)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _result(e: Expectation, passed: bool, detail: str) -> ExpectationResult:
    from emulator.scenario.runner import ExpectationResult

    return ExpectationResult(e, passed, detail)


def _moment_of_plain(e: Expectation, result: ExpectationResult) -> float | None:
    if not result.passed or e.kind == "never":
        return None
    return e.end if e.kind in ("at", "by") else e.start


def _reason(e: Expectation, result: ExpectationResult) -> ExpectationResult:
    """A refused step's reason must be the one the file names."""
    from emulator.scenario.reasons import REASONS, classify

    if not result.passed or e.reason is None:
        return result
    detail = result.detail.removeprefix("refused: ")
    found = classify(detail)
    if found == e.reason:
        return _result(e, True, f"{result.detail} (reason {found})")
    return _result(
        e,
        False,
        f"{result.detail}: the reason is {found or 'none of the named ones'}, not {e.reason} "
        f"({REASONS[e.reason][0]})",
    )


def client_truth(e: Expectation, timeline: Sequence[ClientStateChanged]) -> Truth:
    from emulator.scenario.runner import _matches

    truth: Truth = [(0.0, _matches(e, None), None)]
    for event in timeline:
        truth.append((event.now, _matches(e, event), event))
    return truth


def share_truth(
    e: Expectation, members: Sequence[str], timelines: Mapping[str, Sequence[ClientStateChanged]]
) -> Truth:
    """How many members match, over the run (``info``: that number)."""
    from emulator.scenario.runner import _matches

    assert e.share is not None
    size = len(members)
    start = _matches(e, None)
    current = [start] * size
    matching = size if start else 0
    changes: list[tuple[float, int, bool]] = []
    for k, name in enumerate(members):
        for event in timelines.get(name, ()):
            changes.append((event.now, k, _matches(e, event)))
    changes.sort(key=lambda c: c[0])
    truth: Truth = [(0.0, e.share.holds(matching, size), matching)]
    for n, (now, k, value) in enumerate(changes):
        if value != current[k]:
            current[k] = value
            matching += 1 if value else -1
        if n + 1 == len(changes) or changes[n + 1][0] != now:
            truth.append((now, e.share.holds(matching, size), matching))
    return truth


def spread_truth(
    e: Expectation, members: Sequence[str], timelines: Mapping[str, Sequence[ClientStateChanged]]
) -> Truth:
    """How the members spread over targets, over the run (``info``: target -> members)."""
    from emulator.scenario.runner import _matches

    spread = e.spread
    assert spread is not None
    wanted = dict(spread.shares)
    first = spread.of == "first-register"
    current: list[str | None] = [None] * len(members)
    counts: dict[str, int] = {}
    changes: list[tuple[float, int, str | None]] = []
    for k, name in enumerate(members):
        for event in timelines.get(name, ()):
            if first:
                host = getattr(event, "host", None)
                if host is not None:
                    changes.append((event.now, k, str(host)))
                    break
            else:
                counted = event.state == "registered" and _matches(e, event)
                changes.append((event.now, k, event.registrar if counted else None))
    changes.sort(key=lambda c: c[0])

    def holds() -> bool:
        total = sum(counts.values())
        if total == 0:
            return False
        targets = set(wanted) | set(counts)
        return all(
            abs(100.0 * counts.get(t, 0) / total - wanted.get(t, 0.0)) <= spread.tolerance + 1e-9
            for t in targets
        )

    truth: Truth = [(0.0, False, {})]
    for n, (now, k, target) in enumerate(changes):
        old = current[k]
        if old != target:
            if old is not None:
                counts[old] -= 1
                if not counts[old]:
                    del counts[old]
            if target is not None:
                counts[target] = counts.get(target, 0) + 1
            current[k] = target
        if n + 1 == len(changes) or changes[n + 1][0] != now:
            truth.append((now, holds(), dict(counts)))
    return truth


def _index_at(truth: Truth, t: float) -> int:
    """The entry in force at ``t`` (the last one at or before it)."""
    low, high = 0, len(truth)
    while high - low > 1:
        middle = (low + high) // 2
        if truth[middle][0] <= t:
            low = middle
        else:
            high = middle
    return low


def read(
    e: Expectation, truth: Truth, origin: float, size: int
) -> tuple[ExpectationResult, float | None]:
    """Judge ``e``'s time form over ``truth``; the result and the expectation's moment.
    ``origin``: the referenced expectation's moment (0 when the times are absolute)."""
    start, end = origin + e.start, origin + e.end
    origin += e.origin  # a step's time, for within and first_between after a step
    if e.kind in ("at", "by"):
        i = _index_at(truth, end)
        t, holds, info = truth[i]
        if not holds:
            return _result(e, False, f"at {end:g}: {_seen(e, info, size)}"), None
        if e.kind == "at":
            return _result(e, True, f"at {end:g}: {_seen(e, info, size)}"), end
        while i > 0 and truth[i - 1][1]:
            i -= 1
        since = truth[i][0]
        return _result(e, True, f"reached at {since:.3f}: {_seen(e, info, size)}"), since
    if e.kind in ("always", "never"):
        i = _index_at(truth, start)
        want = e.kind == "always"
        while i < len(truth) and truth[i][0] <= end:
            if truth[i][1] != want:
                t = max(truth[i][0], start)
                what = "broken" if want else "happened"
                return _result(e, False, f"{what} at {t:.3f}: {_seen(e, truth[i][2], size)}"), None
            i += 1
        shown = "the end" if math.isinf(end) else f"{end:g}"
        detail = "held throughout" if want else f"did not happen up to {shown}"
        return _result(e, True, detail), (start if want else None)
    # within / first: the first moment from the origin on at which the condition holds.
    i = _index_at(truth, origin)
    while i < len(truth) and not truth[i][1]:
        i += 1
    if i == len(truth):
        last = truth[-1][2]
        return _result(
            e, False, f"never held from {origin:.3f} on: last {_seen(e, last, size)}"
        ), None
    moment = max(truth[i][0], origin)
    seen = _seen(e, truth[i][2], size)
    if start <= moment <= end:
        return _result(e, True, f"first held at {moment:.3f}: {seen}"), moment
    when = "early" if moment < start else "late"
    return _result(e, False, f"first held at {moment:.3f} ({when}): {seen}"), None


def _seen(e: Expectation, info: Any, size: int) -> str:
    if e.spread is not None:
        counts: dict[str, int] = info or {}
        total = sum(counts.values())
        if not total:
            return "no member counted"
        shares = ", ".join(f"{t} {100.0 * n / total:.1f}%" for t, n in sorted(counts.items()))
        return f"{shares} of {total} counted"
    if e.group is not None:
        matching = int(info)
        return f"{matching} of {size} ({100.0 * matching / size:.1f}%) matched"
    from emulator.scenario.runner import _describe

    return f"was {_describe(info)}"
