"""Run a scenario against the live deployment on loopback, in wall-clock time (``--realtime``).

The same scenario file, the same expectation checks and the same report as the simulator, but
the pools, the fake DNS and the client agents run on real sockets (ephemeral ports, the
topology's loopback addresses), driven by asyncio.  ``time_scale`` makes every core's clock run
that many times faster than the wall clock (the cores only see ``now``, so this is a faithful
fast-forward); scenario times are in the scenario's clock either way.

Faults are packet-level (emulator/live/netns.py: nftables rules and netem in a private network
namespace, ``sipemu run --realtime --netns``) or in-process (the pool drivers); the run's first
trace entries say which (``faults`` kind, also in its JSON). Partitions and link properties
(latency, loss, jitter) between hosts exist only at packet level: in-process they are refused
up front with a sentence. At packet level ``disable-nic`` of a pool or a client drops its
packets in the kernel (TCP sees real retransmission timeouts). Invariant expectations are
checked over the live pools' events as they come (emulator/scenario/watch.py), and facts
(emulator/scenario/facts.py) over the run's packets and pool events. ``dns-down`` is emulated
by a whole-server "timeout" fault (the server stays silent), and ``disable-nic`` of a client
silences that client's driver. Administrative and DR actions (``emulator.operations``) act on
the live deployment's :class:`~emulator.operations.Operations` and its pool cores, and their
step outcomes (``expect = "ok"``/``"refused"``) are checked as in the simulator.

With ``control`` (``sipemu run --realtime --control``, on by default there) the run serves the
control API of ``sipemu up`` (docs/live.md) for its deployment and its agents: the run is its
:class:`~emulator.control.steps.ClientAgents`, so ``POST /steps`` also signs a client in or
out, restarts it or clears its cache (a line ``control step`` in the trace), ``/status`` lists
the clients and ``sipemu_clients`` counts them by state, fed from their
``ClientStateChanged`` events.

Output as it happens: every trace line and client state change goes to the run's
:class:`~emulator.scenario.output.RunOutput` the moment it is recorded (text lines flushed,
JSON Lines each in one write).  SIGINT and SIGTERM stop the run cleanly: the steps not yet
due are dropped, the agents and the deployment are stopped (so the temporary CA directory is
removed), and the result says which signal stopped it, when, and the verdicts so far
(:func:`emulator.scenario.runner.settle`).  An error in a step ends the run at once, with
the same clean-up, and is raised.
"""

from __future__ import annotations

import asyncio
import io
import random
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

from clients.cache import CacheEntry, MemoryCacheStore
from clients.driver import AgentHost, ClientConfig, client_ssl_context, raise_file_limit
from clients.events import AgentEvent, ClientActionDone, ClientStateChanged
from emulator.live.deployment import Deployment
from emulator.net import TransportName
from emulator.operations import ADMIN_ACTIONS
from emulator.scenario import facts
from emulator.scenario.model import Expectation, Scenario, ScenarioError, Step, record_of
from emulator.scenario.output import RunOutput
from emulator.scenario.runner import (
    ExpectationResult,
    RunResult,
    chat_timeline,
    check,
    check_invariant,
    check_step,
    settle,
)
from emulator.scenario.watch import LiveInvariants
from emulator.sim.deployment import agent_trace, pool_trace
from emulator.sim.invariants import Violation
from emulator.sim.trace import MessageTrace
from emulator.sim.world import TraceEntry
from emulator.wire import Taps
from emulator.wire.names import participants

if TYPE_CHECKING:
    from emulator.control.launch import ControlOptions
    from emulator.control.server import ControlServer
    from emulator.wire.live import WireRecorder

__all__ = ["CLIENT_ACTIONS", "DEPLOYMENT_ACTIONS", "REALTIME_ACTIONS", "run_realtime"]

CLIENT_ACTIONS = ("sign-in", "sign-out", "restart", "clear-cache")
"""Actions on a client agent that a realtime run carries out (the control API's client steps)."""

DEPLOYMENT_ACTIONS = (
    "disable-nic",
    "enable-nic",
    "stop-pool",
    "start-pool",
    "dns-add",
    "dns-remove",
    "dns-fail",
    "dns-restore",
    "dns-down",
    "dns-up",
)
"""Actions on a live deployment's pools and fake DNS (besides the admin actions)."""

REALTIME_ACTIONS = frozenset({*CLIENT_ACTIONS, *DEPLOYMENT_ACTIONS, "add-contact", *ADMIN_ACTIONS})
"""Scenario actions a live deployment can carry out whatever its fault mode."""

PACKET_ACTIONS = frozenset({"partition", "heal", "link"})
"""Scenario actions a live deployment carries out only with packet-level faults."""


def run_realtime(
    scenario: Scenario,
    *,
    seed: int | None = None,
    verbose: bool = False,
    time_scale: float = 1.0,
    control: ControlOptions | None = None,
    out: TextIO | None = None,
    recorder: WireRecorder | None = None,
    keylog: str | None = None,
    output: RunOutput | None = None,
    messages: bool = False,
    faults: str = "auto",
) -> RunResult:
    """Run ``scenario`` on loopback sockets; blocks for ``duration / time_scale`` seconds, or
    until SIGINT or SIGTERM (the result is then ``interrupted``; the handlers are installed
    only when this runs in the main thread).

    ``recorder``: told of every SIP and DNS message (emulator/wire/live.py; the caller closes
    it); ``keylog``: the SSLKEYLOGFILE of every TLS session (pools and agents).  ``messages``
    (with a ``recorder``): each message is also a ``message`` entry of the trace, on the
    scenario's clock, written as it happens (as ``sipemu run --messages`` in virtual time).

    ``control``: serve the control API for the run (its address is written to ``out``).
    DeploymentError (a sentence) when it cannot be served there.  ``output``: told of the run's
    start, of each trace entry and of each client state change as they happen (the caller
    finishes it with the result).

    ``faults``: the deployment's fault mode (``auto``, ``packet``, ``in-process``:
    :class:`~emulator.live.deployment.Deployment`).  A scenario with partitions or links needs
    packet-level faults: with ``auto`` they are asked for when the process runs in a private
    network namespace (``--netns``), and refused up front otherwise."""
    actions = {s.action for s in scenario.steps}
    unsupported = sorted(actions - REALTIME_ACTIONS - PACKET_ACTIONS)
    if unsupported:
        raise ScenarioError(
            f"{scenario.source}: {', '.join(unsupported)} cannot run on real sockets "
            "(simulator only); run it without --realtime"
        )
    packet_only = sorted(actions & PACKET_ACTIONS)
    if any(
        s.action in ("disable-nic", "enable-nic")
        and (s.get("transport") is not None or s.get("tcp") == "reset")
        for s in scenario.steps
    ):
        packet_only.append("a per-transport or TCP-reset disable-nic")
    if packet_only:
        from emulator.live.netns import in_private_namespace

        if faults == "in-process" or (faults == "auto" and not in_private_namespace()):
            raise ScenarioError(
                f"{scenario.source}: {', '.join(packet_only)} cannot run on real sockets "
                "without packet-level faults, which a realtime run has only in a private "
                "network namespace; run it with --realtime --netns (root, or where user "
                "namespaces are allowed), or without --realtime"
            )
        faults = "packet"
    for step in scenario.steps:
        if step.action == "link" and step.get("duplicate"):
            raise ScenarioError(
                f"{scenario.source}: step {step.index + 1}: a link's duplicate is simulator "
                "only (netem's duplication is not wired up); remove it or run without "
                "--realtime"
            )
    if not time_scale > 0:
        raise ScenarioError(f"time scale must be > 0, not {time_scale:g}")
    run = _RealtimeRun(
        scenario, scenario.seed if seed is None else seed, verbose, time_scale, output
    )
    run.faults = faults
    run.recorder, run.keylog = recorder, keylog
    if any(e.fact is not None for e in scenario.expectations):
        run.facts = facts.FactRecorder(scenario, client_addresses(scenario), time_of=run.on_clock)
        if run.facts.wants_packets:  # the facts read the run's packets
            if recorder is None:
                from emulator.wire.live import WireRecorder

                run.recorder = WireRecorder(run.facts)
            else:
                recorder.tap = Taps([recorder.tap, run.facts])
    if messages and recorder is not None:
        recorder.tap = Taps(
            [recorder.tap, MessageTrace(run._record, run.participants, run.on_clock)]
        )
    return asyncio.run(run.run(control, out))


_STOPPING = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class _RealtimeRun:
    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        verbose: bool,
        time_scale: float,
        output: RunOutput | None = None,
    ) -> None:
        self.scenario = scenario
        self.output = output
        self.interrupted: str | None = None
        self.stopped_at: float | None = None
        self._stop = asyncio.Event()
        """Set by SIGINT/SIGTERM or a step's error: the run ends now."""
        self._complete = False
        """The run reached the end of the scenario."""
        self.seed = seed
        self.verbose = verbose
        self.scale = time_scale
        self.trace: list[TraceEntry] = []
        self.timeline: dict[str, list[ClientStateChanged]] = {c.name: [] for c in scenario.clients}
        self.hosts: dict[str, AgentHost] = {}
        self.caches: dict[str, MemoryCacheStore] = {}
        self.origin = 0.0  # the cores' clock (scaled loop time) at scenario time 0
        self.wall_origin: float | None = None  # time.time() at scenario time 0 (live packets)
        self.participants = participants(scenario.topology, client_addresses(scenario))
        self.deployment: Deployment | None = None
        self.step_outcomes: dict[int, tuple[bool, str]] = {}
        """Scenario step index -> (done, detail) for steps that have an outcome."""
        self._awaiting: dict[str, list[int]] = {}
        """Per client, the add-contact steps whose ClientActionDone has not come yet (FIFO)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []
        self.states: dict[str, str] = {c.name: "signed-out" for c in scenario.clients}
        """Each agent's state now (the control API's ``/status`` and ``sipemu_clients``)."""
        self.control: ControlServer | None = None
        self.recorder: WireRecorder | None = None
        self.keylog: str | None = None
        self.facts: facts.FactRecorder | None = None
        self.invariants: LiveInvariants | None = None
        """The invariant monitor, when an expectation names an invariant (from time 0)."""
        self.faults = "auto"
        """The deployment's fault mode, as asked (``auto``, ``packet``, ``in-process``)."""
        self.addresses = client_addresses(scenario)

    # -- time --------------------------------------------------------------------------------

    def clock(self) -> float:
        return asyncio.get_running_loop().time() * self.scale

    def on_clock(self, wall: float) -> float:
        """A live packet's wall-clock time (``time.time()``) on the scenario's clock."""
        origin = self.wall_origin if self.wall_origin is not None else wall
        return scenario_time(wall, origin, self.scale)

    def note(self, source: str, kind: str, text: str, at: float | None = None) -> None:
        now = (self.clock() if at is None else at) - self.origin
        self._record(TraceEntry(max(0.0, now), source, kind, text))

    def _record(self, entry: TraceEntry) -> None:
        self.trace.append(entry)
        if self.output is not None:
            try:
                self.output.entry(entry)
            except Exception as exc:  # a reader gone (BrokenPipeError), a disk full: stop
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        """End the run now with ``exc`` (raised once everything is stopped)."""
        self._errors.append(exc)
        self._stop.set()

    # -- stopping ----------------------------------------------------------------------------

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        installed = []
        for signum in _STOPPING:
            try:
                loop.add_signal_handler(signum, self._interrupt, signum)
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
                continue
            installed.append(signum)
        return installed

    def _interrupt(self, signum: signal.Signals) -> None:
        if self._complete:
            return  # the run reached its end: a signal while it cleans up changes nothing
        if self.interrupted is None:
            self.interrupted = _STOPPING[signum]
            self.stopped_at = max(0.0, self.clock() - self.origin) if self.origin else 0.0
        self._stop.set()

    # -- run ---------------------------------------------------------------------------------

    async def run(
        self, control: ControlOptions | None = None, out: TextIO | None = None
    ) -> RunResult:
        scenario = self.scenario
        topology = scenario.topology
        loop = asyncio.get_running_loop()
        handled = self._install_signals(loop)
        steps: list[asyncio.TimerHandle] = []
        if self.output is not None:
            self.output.start(scenario, self.seed, mode="realtime", time_scale=self.scale)
        deployment = Deployment(
            topology.with_ephemeral_ports(),
            seed=self.seed,
            quiet=not self.verbose,
            time_scale=self.scale,
            on_event=self._pool_event,
            log=self._log if self.verbose else None,
            recorder=self.recorder,
            keylog=self.keylog,
            faults=self.faults,
        )
        self.deployment = deployment
        if control is not None:  # subscribed before the pools start: every exchange counted
            self.control = control.server(deployment, agents=self)
            for name, state in self.states.items():
                self.control.metrics.observe_client(name, state)
        raise_file_limit(len(scenario.clients) + 256)
        try:
            if self._stop.is_set():
                raise _Stopped
            await deployment.start()
            ssl_context = client_ssl_context(deployment.ca_path)
            if self.keylog is not None:
                ssl_context.keylog_filename = self.keylog
            for n, spec in enumerate(scenario.clients):
                cache = MemoryCacheStore()
                self.caches[spec.name] = cache
                host = AgentHost(
                    ClientConfig(
                        spec.name,
                        spec.user,
                        spec.client_profile(),
                        _client_address(n),
                        topology.domain,
                        topology.client_password(spec.user),
                    ),
                    dns_server=deployment.dns_address,
                    cache=cache,
                    rng=random.Random(f"{self.seed}:client:{spec.name}"),
                    client_ssl=ssl_context,
                    on_event=self._agent_event,
                    time_scale=self.scale,
                    recorder=self.recorder,
                )
                await host.start()
                self.hosts[spec.name] = host
                if spec.cache:
                    self._seed_cache(spec.name, spec.user, spec.cache)
                if self._stop.is_set():
                    raise _Stopped
            if self.control is not None:
                from emulator.control.launch import start_control

                await start_control(self.control, out if out is not None else io.StringIO())
                if out is not None:
                    out.flush()
            start = loop.time()
            self.origin = start * self.scale
            self.wall_origin = time.time()
            self.note(
                "scenario",
                "start",
                f"seed {self.seed}, {len(scenario.clients)} "
                f"client(s), topology {topology.source}, realtime x{self.scale:g}",
            )
            self.note("scenario", "faults", _fault_line(deployment))
            for step in scenario.steps:
                steps.append(loop.call_at(start + step.at / self.scale, self._act, step))
            if any(e.invariant for e in scenario.expectations):
                self.invariants = LiveInvariants(
                    topology,
                    client_addresses(scenario),
                    clock=self._scenario_now,
                    home_of=deployment.ops.directory.get,  # force-move changes homes (R4)
                    pairings=deployment.ops.pairings,  # set-backup, pool failovers
                )
            for e in scenario.expectations:
                if e.fact is not None and e.fact.what == "cached":
                    steps.append(loop.call_at(start + e.start / self.scale, self._read_cache, e))
            try:  # bounded: the scenario's length, or a signal, or a step's error
                await asyncio.wait_for(self._stop.wait(), scenario.duration / self.scale)
            except TimeoutError:
                self._complete = True
            if self._errors:
                raise self._errors[0]
        except _Stopped:
            pass  # a signal came while starting up: stop now, with no timeline
        finally:
            for handle in steps:
                handle.cancel()
            if self.control is not None:
                await self.control.stop()
            for task in list(self._tasks):
                await task
            for host in self.hosts.values():
                await host.stop(unregister=False)
            await deployment.stop()
            for signum in handled:
                loop.remove_signal_handler(signum)
        timeline = {name: events for name, events in self.timeline.items()}
        # The chat service's history is in the cores' clock: shift it like agent events.
        chat = chat_timeline(
            [(max(0.0, t - self.origin), up) for t, up in deployment.ops.chat_history]
        )
        violations: tuple[Violation, ...] = ()
        if self.invariants is not None:
            violations = self.invariants.finish(self._scenario_now())
            self._violations()
        fact_recorder = self.facts

        def one(e: Expectation) -> ExpectationResult:
            return (
                facts.judge(e, fact_recorder, timeline.get(e.client, []))
                if e.fact is not None and fact_recorder is not None
                else check_invariant(e, violations)
                if e.invariant
                else check_step(e, self.step_outcomes)
                if e.step is not None
                else check(e, chat)
                if e.chat
                else check(e, timeline.get(e.client, []))
            )

        from emulator.scenario.aggregate import judge  # groups, relative times, reasons

        results = judge(scenario, timeline, one)
        if self.interrupted is not None:
            stopped_at = self.stopped_at or 0.0
            results = tuple(settle(r, stopped_at, self.step_outcomes) for r in results)
        return RunResult(
            scenario,
            self.seed,
            tuple(self.trace),
            timeline,
            results,
            0,
            violations,
            participants=self.participants,
            interrupted=self.interrupted,
            stopped_at=self.stopped_at,
            wall_origin=self.wall_origin,
        )

    # -- events ------------------------------------------------------------------------------

    def _pool_event(self, fqdn: str, event: object) -> None:
        entry = pool_trace(event, self.verbose)
        if entry is not None:
            self.note(fqdn, *entry)
        if self.facts is not None:
            self.facts.pool_event(self._scenario_now(), fqdn, event)
        if self.invariants is not None:
            self.invariants.pool_event(fqdn, event)
            self._violations()

    def _scenario_now(self) -> float:
        return max(0.0, self.clock() - self.origin)

    def _violations(self) -> None:
        """Each violation the live monitor recorded, into the trace and the output now."""
        assert self.invariants is not None
        for violation in self.invariants.new_violations():
            self._record(
                TraceEntry(violation.now, "invariant", "violation", violation.line().strip())
            )
            if self.output is not None:
                try:
                    self.output.violation(violation)
                except Exception as exc:
                    self._fail(exc)

    def _read_cache(self, e: Any) -> None:
        """A ``cached`` fact: the client's endpoint cache entry now."""
        assert self.facts is not None
        spec = next(c for c in self.scenario.clients if c.name == e.client)
        self.facts.sample(e, facts.cached_value(self.caches[e.client].load(spec.user)))

    def _pools_running(self, fqdn: str, running: bool) -> None:
        """A pool stopped or started (a step, or an administrative restart)."""
        if not running and self.facts is not None:
            self.facts.pool_stopped(self._scenario_now(), fqdn)
        if self.invariants is not None:
            self.invariants.running(fqdn, running)
            self._violations()

    def _log(self, line: str) -> None:
        # With --verbose the deployment logs DNS queries; pool events come via _pool_event.
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] == "dns":
            self.note("dns", "dns", parts[2])

    def _agent_event(self, event: AgentEvent) -> None:
        shifted = replace(event, now=max(0.0, event.now - self.origin))
        if isinstance(shifted, ClientStateChanged):
            self.timeline[shifted.client].append(shifted)
            self.states[shifted.client] = shifted.state
            if self.output is not None:
                try:
                    self.output.state(shifted)
                except Exception as exc:
                    self._fail(exc)
            if self.control is not None:
                self.control.metrics.observe_client(shifted.client, shifted.state)
        elif isinstance(shifted, ClientActionDone):
            waiting = self._awaiting.get(shifted.client)
            if waiting:
                self.step_outcomes[waiting.pop(0)] = (shifted.ok, shifted.detail)
        entry = agent_trace(shifted, self.verbose)
        if entry is not None:
            self._record(TraceEntry(shifted.now, shifted.client, *entry))

    # -- the control API's view (emulator.control.steps.ClientAgents) -------------------------

    def client_tables(self) -> Sequence[Mapping[str, Any]]:
        return [{"name": c.name, "user": c.user} for c in self.scenario.clients]

    def client_states(self) -> Mapping[str, str]:
        return dict(self.states)

    def client_step(self, step: Step) -> str:
        """A client step sent to the control API (validated): carried out now, as a scenario
        step at this time would be."""
        self.note("control", "step", step.describe())
        client = str(step.get("client") or step.get("target"))
        self._apply(step)  # the API starts once every agent runs: self.hosts has them all
        if step.action == "restart":
            kept = "cache kept" if bool(step.get("keep_cache", True)) else "cache dropped"
            return f"{client}: restarted ({kept})"
        return {
            "sign-in": f"{client}: signing in",
            "sign-out": f"{client}: signing out",
            "clear-cache": f"{client}: endpoint cache cleared",
        }[step.action]

    # -- actions -----------------------------------------------------------------------------

    def _act(self, step: Step) -> None:
        self.note("scenario", "step", step.describe())
        if self.invariants is not None:
            self.invariants.step_time = step.at
        try:
            self._apply(step)
        except Exception as exc:  # a bug or a refused action: end the run with it, now
            self._fail(exc)
        finally:
            if self.invariants is not None:
                self.invariants.step_time = None

    def _later(self, make: Callable[[], object]) -> None:
        async def run() -> None:
            try:
                await make()  # type: ignore[misc]
            except Exception as exc:
                self._fail(exc)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _apply(self, step: Step) -> None:
        deployment = self.deployment
        assert deployment is not None
        get = step.get
        action = step.action
        client = get("client") or get("target")
        if action == "sign-in":
            self.hosts[client].sign_in()
        elif action == "sign-out":
            self.hosts[client].sign_out()
        elif action == "restart":
            keep = bool(get("keep_cache", True))
            self.hosts[client].restart(keep_cache=keep)
            self.note(client, "action", f"restarted ({'cache kept' if keep else 'cache dropped'})")
        elif action == "clear-cache":
            self.hosts[client].clear_cache()
            self.note(client, "action", "endpoint cache cleared")
        elif action in ("disable-nic", "enable-nic"):
            self._nic(str(get("target")), action == "enable-nic", get("transport"), get("tcp"))
        elif action == "stop-pool":
            self._later(lambda: deployment.stop_pool(get("target")))
            self.note(get("target"), "fault", "pool stopped (connections refused)")
            self._pools_running(str(get("target")), False)
        elif action == "start-pool":
            self._later(lambda: deployment.start_pool(get("target")))
            self.note(get("target"), "fault", "pool started")
            self._pools_running(str(get("target")), True)
        elif action == "dns-add":
            record = self.scenario.topology.bind_record(record_of(step), deployment.bound_ports())
            deployment.dns.add(record)
            self.note("dns", "dns-change", f"added {record}")
        elif action == "dns-remove":
            count = deployment.dns.remove(get("name"), get("type"))
            self.note(
                "dns", "dns-change", f"removed {count} record(s) {get('type') or ''} {get('name')}"
            )
        elif action == "dns-fail":
            deployment.dns.set_fault(get("kind"), get("name"))
            self.note("dns", "dns-change", f"fault {get('kind')} for {get('name') or 'every name'}")
        elif action == "dns-restore":
            deployment.dns.clear_fault(get("name"))
            self.note("dns", "dns-change", f"faults cleared for {get('name') or 'every name'}")
        elif action == "dns-down":
            deployment.dns.set_fault("timeout")
            self.note("dns", "fault", "DNS server silent")
            if self.invariants is not None:
                self.invariants.nic("dns", False)
        elif action == "dns-up":
            deployment.dns.clear_fault(None)
            self.note("dns", "fault", "DNS server answers again")
            if self.invariants is not None:
                self.invariants.nic("dns", True)
        elif action == "add-contact":
            # Registered before the call: a refusal (not signed in) comes at once.
            self._awaiting.setdefault(client, []).append(step.index)
            self.hosts[client].add_contact(str(get("contact")))
        elif action == "partition":
            oneway = bool(get("oneway", False))
            deployment.partition(self._host(get("a")), self._host(get("b")), oneway=oneway)
            if self.invariants is not None:
                self.invariants.partition(str(get("a")), str(get("b")), oneway=oneway)
            self.note(
                get("a"), "fault", f"partition {get('a')} {'->' if oneway else '<->'} {get('b')}"
            )
        elif action == "heal":
            a, b = get("a"), get("b")
            deployment.heal(self._host(a) if a else None, self._host(b) if b else None)
            if self.invariants is not None:
                self.invariants.heal(a or None, b or None)
            self.note(a or "network", "fault", f"healed {a or 'all'}{' <-> ' + b if b else ''}")
        elif action == "link":
            self._link(step)
        elif action in ADMIN_ACTIONS:
            self._admin(step)
        else:  # run_realtime refused the others up front
            raise AssertionError(action)

    def _admin(self, step: Step) -> None:
        """Carry out the action now (its outcome and trace line at the step's time); the pool
        cores are told (and restarted) by a task, as stop-pool and start-pool are."""
        deployment = self.deployment
        assert deployment is not None
        ops = deployment.ops
        changes = len(ops.chat_history)
        outcome = deployment.perform_admin(step.action, **dict(step.params))
        self.step_outcomes[step.index] = (outcome.ok, outcome.detail)
        self.note("admin", "admin", outcome.line())
        if len(ops.chat_history) > changes:
            state = "available" if ops.chat_available() else "unavailable"
            self.note("pchat", "chat", f"Persistent Chat service {state}")
        effects = deployment.plan(outcome)  # for the pools' states at the step's time
        for fqdn in effects.restart:
            self.note(fqdn, "fault", "pool stopped (connections refused)")
            self._pools_running(fqdn, False)
            self.note(fqdn, "fault", "pool started")
            self._pools_running(fqdn, True)
        if effects.restart or effects.tell:
            self._later(partial(deployment.apply, effects))

    def _host(self, name: str) -> str:
        """A scenario host name (a client, a pool FQDN, ``dns``) as the deployment takes it."""
        return self.addresses.get(name, name)

    def _link(self, step: Step) -> None:
        deployment = self.deployment
        assert deployment is not None
        get = step.get
        a, b, oneway = get("a"), get("b"), bool(get("oneway", False))
        latency, loss, jitter = (float(get(key) or 0.0) for key in ("latency", "loss", "jitter"))
        deployment.link(
            self._host(a),
            self._host(b),
            latency=latency,
            loss=loss,
            jitter=jitter,
            oneway=oneway,
        )
        self.note(
            a,
            "fault",
            f"link {a} {'->' if oneway else '<->'} {b}: latency={latency:g} loss={loss:g} "
            f"jitter={jitter:g} (netem)",
        )

    def _nic(
        self, target: str, enabled: bool, transport: object = None, tcp: object = None
    ) -> None:
        deployment = self.deployment
        assert deployment is not None
        packet = deployment.packet_faults
        if (transport is not None or tcp == "reset") and target not in self.hosts:
            self._pool_nic(target, enabled, transport, tcp)
            return
        if target in self.hosts and packet is not None:
            address = self.addresses[target]
            if enabled:
                packet.restore(address)
            else:
                packet.silence(address)
        elif target == "dns":
            if enabled:
                deployment.dns.clear_fault(None)
            else:
                deployment.dns.set_fault("timeout")
        elif target in self.hosts:
            driver = self.hosts[target].driver
            if enabled:
                driver.enable_nic()
            else:
                driver.disable_nic()
        elif enabled:
            self._later(lambda: deployment.enable_nic(target))
        else:
            self._later(lambda: deployment.disable_nic(target))
        state = "enabled" if enabled else "disabled (silent)"
        self.note(target, "fault", f"network interface {state}")
        if self.invariants is not None:
            self.invariants.nic(target, enabled)
            self._violations()

    def _pool_nic(self, target: str, enabled: bool, transport: object, tcp: object) -> None:
        """``disable-nic`` / ``enable-nic`` of one transport of a pool, or a silent host that
        resets TCP (``tcp = "reset"``): packet mode only (run_realtime checked it)."""
        deployment = self.deployment
        assert deployment is not None
        one: TransportName | None = None
        if transport == "udp" or transport == "tcp" or transport == "tls":
            one = transport
        if enabled:
            self._later(lambda: deployment.enable_nic(target, one))
        elif tcp == "reset" and one is None:  # UDP silent, TCP and TLS answered with a RST

            async def reset() -> None:
                await deployment.disable_nic(target, "udp")
                await deployment.refuse(target, "tcp")
                await deployment.refuse(target, "tls")

            self._later(reset)
        else:
            self._later(lambda: deployment.disable_nic(target, one))
        what = f" {transport}" if one else ""
        state = "enabled" if enabled else "disabled (silent)"
        if tcp == "reset" and not enabled:
            state = "disabled (silent, TCP reset)"
        self.note(target, "fault", f"network interface{what} {state}")
        if self.invariants is not None and one is None:
            self.invariants.nic(target, enabled)
            self._violations()

    def _seed_cache(self, name: str, user: str, pool: str) -> None:
        deployment = self.deployment
        assert deployment is not None
        bound = deployment.bound_ports()
        transport: TransportName = (
            "tls" if (pool, "tls") in bound else next(t for (fqdn, t) in bound if fqdn == pool)
        )
        address = self.scenario.topology.pool(pool).address
        self.caches[name].save(
            CacheEntry(user, pool, bound[(pool, transport)], transport, 0.0, address)
        )


def _fault_line(deployment: Deployment) -> str:
    if deployment.fault_mode == "packet":
        return "fault mode: packet (nftables rules and netem in a private network namespace)"
    return "fault mode: in-process (the pool drivers hold a silent pool's sockets)"


class _Stopped(Exception):
    """A signal came before the run's timeline began: skip to the clean-up."""


def scenario_time(wall: float, wall_origin: float, scale: float) -> float:
    """A wall-clock time (``time.time()``, what live taps stamp) on the scenario's clock of a
    realtime run that began at ``wall_origin`` with ``time_scale`` ``scale`` (0 before)."""
    return max(0.0, (wall - wall_origin) * scale)


def client_addresses(scenario: Scenario) -> dict[str, str]:
    """Each client of a realtime run of ``scenario`` and the address it runs on."""
    return {c.name: _client_address(n) for n, c in enumerate(scenario.clients)}


def _client_address(n: int) -> str:
    """The same client addresses as the simulator's (127.2.x.y)."""
    return f"127.2.{n // 250}.{n % 250 + 1}"
