"""Run a scenario in virtual time, check its expectations, and report."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from clients.events import ClientStateChanged
from emulator.operations import ADMIN_ACTIONS
from emulator.scenario import facts
from emulator.scenario.model import Expectation, Scenario, Step, record_of
from emulator.sim.deployment import SimulatedDeployment
from emulator.sim.invariants import Violation
from emulator.sim.trace import MESSAGE, MessageTrace
from emulator.sim.world import TraceEntry
from emulator.wire import Tap, Taps
from emulator.wire.ladder import Note
from emulator.wire.names import Participants, simulated_participants

__all__ = [
    "DETAIL_KINDS",
    "ExpectationResult",
    "RunResult",
    "check",
    "report_header",
    "report_results",
    "run_scenario",
    "settle",
]

DETAIL_KINDS = frozenset({"sip", "dns", "detail", "binding"})
"""Trace kinds shown only with ``--verbose`` (recorded when the run asked for detail).
Entries of kind ``message`` (whole messages) are shown whenever the run recorded them."""


@dataclass(frozen=True, slots=True)
class ExpectationResult:
    expectation: Expectation
    passed: bool
    detail: str
    decided: bool = True
    """False for an interrupted run's expectation whose outcome its end would have decided
    (:func:`settle`); ``passed`` is then False."""

    @property
    def mark(self) -> str:
        return "PASS" if self.passed else "FAIL" if self.decided else "UNDECIDED"


@dataclass(frozen=True)
class RunResult:
    scenario: Scenario
    seed: int
    trace: Sequence[TraceEntry]
    timeline: Mapping[str, Sequence[ClientStateChanged]]
    results: tuple[ExpectationResult, ...]
    events_processed: int
    violations: tuple[Violation, ...] = ()
    """What the invariant monitor saw, when it watched the run."""
    participants: Participants | None = None
    """Who is behind each address of the run (emulator/wire/names.py), for its drawings."""
    interrupted: str | None = None
    """The signal that stopped the run before its end (``SIGINT``, ``SIGTERM``), if one did."""
    stopped_at: float | None = None
    """When an interrupted run stopped (scenario time)."""
    wall_origin: float | None = None
    """A realtime run's wall-clock time (``time.time()``) at scenario time 0: its live taps'
    packets are stamped on that clock (scenario time = (time - wall_origin) * time_scale)."""

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def notes(self) -> list[Note]:
        """What a drawing of the run's packets shows between the arrows: steps, faults,
        state changes, failovers (the trace less its detail, messages and start line)."""
        hidden = DETAIL_KINDS | {MESSAGE, "start"}
        return [Note(e.now, e.source, e.text) for e in self.trace if e.kind not in hidden]

    def report(self, *, timeline: bool = True, verbose: bool = False, extra: str = "") -> str:
        """The readable report: header, timeline (unless ``timeline=False``), ``extra`` (a
        ladder), results.

        The timeline holds steps, faults, client state changes, pool failover events and DNS
        changes; ``verbose`` adds every SIP exchange, DNS query and client detail (when the run
        recorded them); whole messages are in it when the run recorded them.
        """
        lines = report_header(self.scenario, self.seed)
        if timeline:
            lines.extend(
                entry.line() for entry in self.trace if verbose or entry.kind not in DETAIL_KINDS
            )
            lines.append("")
        if extra:
            lines.append(extra.rstrip("\n"))
            lines.append("")
        lines.extend(report_results(self.results, self.interrupted, self.stopped_at))
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "scenario": self.scenario.source,
                "seed": self.seed,
                "trace": [e.to_json() for e in self.trace],
                "violations": [
                    {
                        "invariant": v.invariant,
                        "t": round(v.now, 6),
                        "subject": v.subject,
                        "detail": v.detail,
                    }
                    for v in self.violations
                ],
                "timeline": {
                    client: [
                        {
                            "t": round(e.now, 6),
                            "state": e.state,
                            "registrar": e.registrar,
                            "mode": e.mode,
                            "primary": e.primary,
                            "backup": e.backup,
                            "cause": e.cause,
                            "contacts": e.contacts,
                        }
                        for e in events
                    ]
                    for client, events in self.timeline.items()
                },
                "expectations": [
                    {
                        "expectation": r.expectation.describe(),
                        "passed": r.passed,
                        "detail": r.detail,
                    }
                    for r in self.results
                ],
            },
            indent=1,
            sort_keys=True,
        )

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")


def report_header(scenario: Scenario, seed: int) -> list[str]:
    """The lines a report starts with (the timeline follows them)."""
    lines = [f"scenario {scenario.source} (seed {seed})"]
    if scenario.description:
        lines.append(f"  {scenario.description}")
    lines.append("")
    return lines


def report_results(
    results: Sequence[ExpectationResult],
    interrupted: str | None = None,
    stopped_at: float | None = None,
) -> list[str]:
    """The lines a report ends with: each expectation's verdict and the counts."""
    lines = ["expectations:"]
    for result in results:
        where = f" (line {result.expectation.line})" if result.expectation.line else ""
        lines.append(f"  {result.mark}  {result.expectation.describe()}{where}: {result.detail}")
    passed = sum(r.passed for r in results)
    undecided = sum(not r.decided for r in results)
    counts = f"{passed} passed, {len(results) - passed - undecided} failed"
    if undecided:
        counts += f", {undecided} undecided"
    lines.append(counts)
    if interrupted is not None:
        at = f" at {stopped_at:.3f}" if stopped_at is not None else ""
        lines.append(f"interrupted by {interrupted}{at}: these are the verdicts so far")
    return lines


def settle(
    result: ExpectationResult, stopped_at: float, outcomes: Mapping[int, tuple[bool, str]]
) -> ExpectationResult:
    """``result`` as a run stopped at ``stopped_at`` (before its end) can tell it: kept when
    what happened up to then decides it (a state at a time already passed, a broken
    ``always``), undecided when the rest of the run would have."""
    e = result.expectation
    if e.step is not None:
        decided = e.step.index in outcomes
    elif e.kind in ("within", "first"):
        decided = result.passed  # a first moment found in its window is final
    elif (e.after or "").startswith("expect:"):
        decided = False  # timed from a moment the rest of the run might have moved
    elif e.invariant is not None:
        # a violation seen is final; none seen yet is not, unless its window is over
        decided = not result.passed or e.end <= stopped_at
    elif e.fact is not None and e.fact.what in facts.OCCURRENCES and e.kind == "by":
        decided = result.passed or e.end <= stopped_at  # it happened: final
    elif e.kind == "at":
        decided = e.start <= stopped_at
    elif e.kind == "by":
        decided = e.end <= stopped_at
    else:  # always / never: broken already, or their window is over
        decided = not result.passed or e.end <= stopped_at
    if decided:
        return result
    return ExpectationResult(e, False, f"the run stopped at {stopped_at:.3f}", decided=False)


def apply_step(deployment: SimulatedDeployment, step: Step) -> None:
    """Carry out one scenario action on a simulated deployment."""
    get = step.get
    action = step.action
    simple: dict[str, Callable[[str], None]] = {
        "sign-in": deployment.sign_in,
        "sign-out": deployment.sign_out,
        "clear-cache": deployment.clear_cache,
        "stop-pool": deployment.stop_pool,
        "start-pool": deployment.start_pool,
    }
    if action in simple:
        simple[action](get("client") or get("target"))
    elif action == "disable-nic":
        deployment.disable_nic(get("target"), transport=get("transport"), tcp=get("tcp"))
    elif action == "enable-nic":
        deployment.enable_nic(get("target"), transport=get("transport"))
    elif action == "restart":
        deployment.restart(get("client"), keep_cache=bool(get("keep_cache", True)))
    elif action == "partition":
        deployment.partition(get("a"), get("b"), oneway=bool(get("oneway", False)))
    elif action == "heal":
        deployment.heal(get("a"), get("b"))
    elif action == "link":
        deployment.set_link(
            get("a"),
            get("b"),
            latency=get("latency"),
            loss=get("loss"),
            jitter=get("jitter"),
            duplicate=get("duplicate"),
            both=not get("oneway", False),
        )
    elif action == "dns-add":
        deployment.dns_add(record_of(step))
    elif action == "dns-remove":
        deployment.dns_remove(get("name"), get("type"))
    elif action == "dns-fail":
        deployment.dns_fail(get("kind"), get("name"))
    elif action == "dns-restore":
        deployment.dns_restore(get("name"))
    elif action == "dns-down":
        deployment.disable_nic("dns")
    elif action == "dns-up":
        deployment.enable_nic("dns")
    elif action == "add-contact":
        deployment.add_contact(get("client"), str(get("contact")), step=step.index)
    elif action in ADMIN_ACTIONS:
        outcome = deployment.admin(action, **dict(step.params))
        deployment.step_outcomes[step.index] = (outcome.ok, outcome.detail)
    else:  # the model validated the action names
        raise AssertionError(action)


def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    verbose: bool = False,
    invariants: bool = False,
    until: float | None = None,
    coast: bool = True,
    messages: bool = False,
    tap: Tap | None = None,
) -> RunResult:
    """Run ``scenario`` in virtual time and check its expectations.

    The invariant monitor watches the run when an expectation names an invariant, or when
    ``invariants`` asks for it (the result's ``violations`` then lists what it saw).
    ``messages`` and ``tap``: see :func:`prepare`.  A ``seed`` other than the scenario's
    also redraws its groups' sign-in times (emulator/scenario/groups.py).
    """
    if seed is not None:
        from emulator.scenario.groups import reseeded

        scenario = reseeded(scenario, seed)
    deployment = prepare(
        scenario,
        seed=seed,
        verbose=verbose,
        invariants=invariants,
        coast=coast,
        messages=messages,
        tap=tap,
    )
    deployment.run_until(scenario.duration if until is None else until)
    return finish(scenario, deployment)


def prepare(
    scenario: Scenario,
    *,
    seed: int | None = None,
    verbose: bool = False,
    invariants: bool = False,
    coast: bool = True,
    messages: bool = False,
    tap: Tap | None = None,
) -> SimulatedDeployment:
    """A simulated deployment with the scenario's steps scheduled, not yet run.

    ``coast=False`` simulates every keep-alive and heartbeat packet (World.coast).
    ``messages``: the trace gets one ``message`` entry per packet, with the whole message
    (emulator/sim/trace.py).  ``tap`` is told of every packet (emulator/wire); the caller,
    which owns it, closes it when the run ends (the run ends wherever the caller stops
    calling ``run_until``).  A run that
    records its packets either way simulates every one of them (no coasting: a skipped
    keep-alive would be missing from the wire)."""
    seed = scenario.seed if seed is None else seed
    recorder = _fact_recorder(scenario)
    wire = messages or tap is not None or (recorder is not None and recorder.wants_packets)
    deployment = SimulatedDeployment(
        scenario.topology,
        scenario.clients,
        seed=seed,
        verbose=verbose,
        coast=coast and not wire,
    )
    if invariants or any(e.invariant for e in scenario.expectations):
        deployment.watch_invariants()
    world = deployment.world
    if wire:
        taps = Taps([] if tap is None else [tap])
        if recorder is not None and recorder.wants_packets:
            taps.add(recorder)
        if messages:
            taps.add(MessageTrace(world.trace.append, simulated_participants(deployment)))
        world.tap = taps.taps[0] if len(taps.taps) == 1 else taps
    world.note(
        "scenario",
        "start",
        f"seed {seed}, {len(scenario.clients)} client(s), topology {scenario.topology.source}",
    )
    for step in scenario.steps:

        def act(step: Step = step) -> None:
            world.note("scenario", "step", step.describe())
            apply_step(deployment, step)

        world.call_at(step.at, act)
    if recorder is not None:
        _watch_facts(scenario, deployment, recorder)
    return deployment


def _fact_recorder(scenario: Scenario) -> facts.FactRecorder | None:
    if not any(e.fact is not None for e in scenario.expectations):
        return None
    from emulator.sim.deployment import client_address

    addresses = {c.name: client_address(n) for n, c in enumerate(scenario.clients)}
    return facts.FactRecorder(scenario, addresses)


def _watch_facts(
    scenario: Scenario, deployment: SimulatedDeployment, recorder: facts.FactRecorder
) -> None:
    """Feed ``recorder`` the pools' events and stops, and read caches when facts ask."""
    world = deployment.world
    deployment.facts = recorder
    deployment.pool_listeners.append(
        lambda pool, event: recorder.pool_event(world.now, pool, event)
    )
    deployment.stop_listeners.append(lambda pool: recorder.pool_stopped(world.now, pool))
    for e in scenario.expectations:
        if e.fact is not None and e.fact.what == "cached":

            def read(e: Expectation = e) -> None:
                spec = deployment.specs[e.client]
                recorder.sample(e, facts.cached_value(deployment.caches[e.client].load(spec.user)))

            world.call_at(e.start, read)


def finish(scenario: Scenario, deployment: SimulatedDeployment) -> RunResult:
    """Check the expectations of a run that has reached its end."""
    world = deployment.world
    violations: tuple[Violation, ...] = ()
    if deployment.monitor is not None:
        violations = tuple(deployment.monitor.finish(world.now))
        for violation in violations:
            world.trace.append(
                TraceEntry(violation.now, "invariant", "violation", violation.line().strip())
            )
    chat = chat_timeline(deployment.ops.chat_history)

    def one(e: Expectation) -> ExpectationResult:
        return (
            facts.judge(e, deployment.facts, deployment.timeline.get(e.client, []))
            if e.fact is not None
            else check_invariant(e, violations)
            if e.invariant
            else check_step(e, deployment.step_outcomes)
            if e.step is not None
            else check(e, chat)
            if e.chat
            else check(e, deployment.timeline.get(e.client, []))
        )

    from emulator.scenario.aggregate import judge  # groups, relative times, reasons

    results = judge(scenario, deployment.timeline, one)
    return RunResult(
        scenario,
        world.seed,
        world.trace,  # not copied: a copy would make every entry at once (memory)
        deployment.timeline,
        results,
        world.events_processed,
        violations,
        simulated_participants(deployment),
    )


@dataclass(frozen=True, slots=True)
class ChatState:
    """The Persistent Chat service's availability from ``now`` on (a timeline entry)."""

    now: float
    available: bool


Event = ClientStateChanged | ChatState


def chat_timeline(history: Sequence[tuple[float, bool]]) -> list[ChatState]:
    return [ChatState(t, available) for t, available in history]


def _matches(e: Expectation, event: Event | None) -> bool:
    if isinstance(event, ChatState):
        return e.chat == ("available" if event.available else "unavailable")
    state = event.state if event else "signed-out"
    registrar = event.registrar if event else None
    mode = event.mode if event else None
    contacts = event.contacts if event else None
    return (
        (e.state is None or state == e.state)
        and (e.registrar is None or registrar == e.registrar)
        and (e.mode is None or mode == e.mode)
        and (e.contacts is None or contacts == e.contacts)
    )


def _describe(event: Event | None) -> str:
    if event is None:
        return "signed-out (initial)"
    if isinstance(event, ChatState):
        return f"chat {'available' if event.available else 'unavailable'} since {event.now:.3f}"
    where = f" at {event.registrar}" if event.registrar else ""
    mode = ""
    if event.mode:
        count = f", {event.contacts} contact(s)" if event.contacts is not None else ""
        mode = f" ({event.mode}{count})"
    return f"{event.state}{where}{mode} since {event.now:.3f}"


def check_step(e: Expectation, outcomes: Mapping[int, tuple[bool, str]]) -> ExpectationResult:
    """A step's ``expect``: the action was done ("ok") or refused, as the file says."""
    assert e.step is not None
    found = outcomes.get(e.step.index)
    if found is None:
        return ExpectationResult(e, False, "no outcome: the action was never answered")
    done, detail = found
    passed = done == (e.outcome == "ok")
    return ExpectationResult(e, passed, f"{'done' if done else 'refused'}: {detail}")


def _state_at(timeline: Sequence[Event], t: float) -> Event | None:
    current = None
    for event in timeline:
        if event.now > t:
            break
        current = event
    return current


def check_invariant(e: Expectation, violations: Sequence[Violation]) -> ExpectationResult:
    """An invariant expectation holds when the run recorded no violation of it."""
    broken = [v for v in violations if v.invariant == e.invariant and e.start <= v.now <= e.end]
    if not broken:
        outside = sum(v.invariant == e.invariant for v in violations)
        others = f" ({outside} outside the window)" if outside else ""
        return ExpectationResult(e, True, f"no violation{others}")
    first = broken[0]
    more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
    return ExpectationResult(
        e, False, f"violated at {first.now:.3f}: {first.subject}: {first.detail}{more}"
    )


def check(e: Expectation, timeline: Sequence[Event]) -> ExpectationResult:
    """Evaluate one expectation over a client's piecewise-constant state timeline."""
    if e.kind == "at":
        current = _state_at(timeline, e.start)
        return ExpectationResult(e, _matches(e, current), f"was {_describe(current)}")
    if e.kind == "by":
        # "By T": the client is in that state at T; the report says since when (the start of
        # the run of matching states that reaches T).
        current = _state_at(timeline, e.end)
        if not _matches(e, current):
            return ExpectationResult(e, False, f"at {e.end:g} it was {_describe(current)}")
        since = current.now if current else 0.0
        for event in reversed([ev for ev in timeline if ev.now <= e.end]):
            if not _matches(e, event):
                break
            since = event.now
        return ExpectationResult(e, True, f"reached at {since:.3f}")
    first = _state_at(timeline, e.start)
    inside = [ev for ev in timeline if e.start < ev.now <= e.end]
    states = [first, *inside]
    if e.kind == "always":
        for state in states:
            if not _matches(e, state):
                return ExpectationResult(e, False, f"broken: {_describe(state)}")
        return ExpectationResult(e, True, f"held through {len(inside)} change(s)")
    for state in states:  # never
        if _matches(e, state):
            return ExpectationResult(e, False, f"happened: {_describe(state)}")
    end = "the end" if math.isinf(e.end) else f"{e.end:g}"
    return ExpectationResult(e, True, f"did not happen up to {end}")
