"""A deployment (pools + fake DNS + client agents) inside a simulated :class:`World`.

Every fault and action a scenario can name is a method here, so scenario files, Hypothesis
strategies and tests all drive the same code.  Targets are named as in the topology: a pool by
its FQDN, the DNS server as ``dns``, a client by its name.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from clients.agent import Agent
from clients.cache import CacheEntry, CacheUnreadable, MemoryCacheStore, SaveCache, read_entry
from clients.events import ClientActionDone, ClientNote, ClientStateChanged
from clients.profile import Profile, customized, get_profile
from emulator.effects import Effects, PoolState, TellReconfigured, plan
from emulator.net import CloseFlow, Effect, Flow, Send
from emulator.operations import Operations, Outcome
from emulator.registrar import events as pool_events
from emulator.registrar.pool import Pool, PoolEndpoints
from emulator.sim.history import Timelines
from emulator.sim.invariants import InvariantMonitor
from emulator.sim.lazyrandom import LazyRandom
from emulator.sim.network import TcpSilence
from emulator.sim.world import World
from emulator.topology import Topology
from fakedns.authority import Authority
from fakedns.records import DnsRecord

__all__ = [
    "ClientSpec",
    "SimulatedDeployment",
    "SimulationError",
    "agent_trace",
    "dns_trace",
    "pool_trace",
]

SIP_PORT = 5060
DNS_CLIENT_PORT = 53000


class SimulationError(Exception):
    """A scenario asked for something the deployment does not have (a sentence)."""


@dataclass(frozen=True, slots=True)
class ClientSpec:
    name: str
    user: str
    profile: str = "lync2010"
    cache: str | None = None
    """Pre-seeded endpoint cache: the FQDN of a pool, or None for an empty cache."""
    options: tuple[tuple[str, Any], ...] = ()
    """Profile fields overridden for this client (``clients.profile.customized``)."""

    def client_profile(self) -> Profile:
        """The client's profile with its options applied (ValueError if they are bad)."""
        return customized(get_profile(self.profile), dict(self.options))


class _DnsCore:
    """The fake DNS authority seen as a core (it only answers)."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        self.up = True
        self._out: list[Send | CloseFlow] = []

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        answer = self.authority.answer(data, "udp", now, client=flow.remote)
        if answer is not None:
            self._out.append(Send(flow, answer))

    def handle_timer(self, now: float) -> None:
        return None

    def next_deadline(self) -> float | None:
        return None

    def flow_failed(self, flow: Flow, now: float) -> None:
        return None

    def actions(self) -> list[Send | CloseFlow]:
        out, self._out = self._out, []
        return out

    def events(self) -> list[Any]:
        return list(self.authority.events())


class _StoppedPool:
    """What stands in a stopped pool's place: a process that does not run, so it has no timer,
    sends nothing and logs nothing (the live deployment detaches the core likewise).  The
    network refuses what is sent to the host while it is stopped (``Network.set_running``)."""

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        return None

    def handle_timer(self, now: float) -> None:
        return None

    def next_deadline(self) -> float | None:
        return None

    def flow_failed(self, flow: Flow, now: float) -> None:
        return None

    def actions(self) -> list[Send | CloseFlow]:
        return []

    def events(self) -> list[Any]:
        return []


class SimulatedDeployment:
    """A topology and its clients in virtual time."""

    def __init__(
        self,
        topology: Topology,
        clients: Sequence[ClientSpec] = (),
        *,
        seed: int = 0,
        verbose: bool = False,
        latency: float = 0.001,
        coast: bool = True,
    ) -> None:
        self.topology = topology
        self.verbose = verbose
        self.world = World(seed, default_latency=latency, coast=coast)
        # The state behind the pools (homes, contact lists, back ends, CMS, Persistent Chat):
        # shared by every pool core and surviving their restarts (emulator.operations).
        self.ops = Operations(topology, now=self.world.now, pool_up=self._pool_up)
        self.action_results: dict[str, list[ClientActionDone]] = {}
        """Per client, the outcomes of what it was asked to do (add-contact), in order."""
        self.step_outcomes: dict[int, tuple[bool, str]] = {}
        """Scenario step index -> (done, detail) for steps that have an outcome."""
        self._awaiting: dict[str, list[int]] = {}
        self.endpoints = {
            spec.fqdn: PoolEndpoints(
                spec.fqdn,
                spec.address,
                {t: spec.port(t) or _default_port(t) for t in spec.transports},
            )
            for spec in topology.pools
        }
        self._pool_index: dict[str, int] = {}
        for spec in topology.pools:
            pool = self._new_pool(spec.fqdn)
            index = self.world.add_core(
                spec.fqdn,
                pool,
                self._listen(spec.fqdn),
                on_events=self._pool_events,
                answers_pings=True,
                coasting=pool,  # its heartbeat cycle, which the world may coast
            )
            self._pool_index[spec.fqdn] = index
            pool.start(self.world.now)
            self.world.poke(index)
        bound = {
            (fqdn, t): port for fqdn, ep in self.endpoints.items() for t, port in ep.ports.items()
        }
        dns = topology.dns
        self.dns_address = (dns.address, dns.port or 53)
        self.authority = topology.dns_authority(bound, trace=verbose)
        self._dns = _DnsCore(self.authority)
        self._dns_index = self.world.add_core(
            "dns",
            self._dns,
            [(dns.address, "udp", self.dns_address[1])],
            on_events=self._dns_events,
            protocol="dns",
        )
        self.monitor: InvariantMonitor | None = None
        self.pool_listeners: list[Callable[[str, object], None]] = []
        """Told of every pool event (pool FQDN, event), as the invariant monitor is."""
        self.stop_listeners: list[Callable[[str], None]] = []
        """Told when a pool stops (its core, bindings and monitors are gone)."""
        self.facts: Any = None
        """The run's fact recorder (emulator/scenario/facts.py), when its scenario has facts."""
        self.timeline = Timelines()
        """Each client's state changes (emulator/sim/history.py: held compactly)."""
        self.agents: dict[str, Agent] = {}
        self.caches: dict[str, MemoryCacheStore] = {}
        self.specs: dict[str, ClientSpec] = {}
        self._agent_index: dict[str, int] = {}
        self._client_address: dict[str, str] = {}
        # The agents' sinks, bound once: ``self._agent_events`` makes a new bound method at
        # each reading, and the world keeps one per client (memory, issue 20: 128 bytes).
        self._on_agent_events = self._agent_events
        self._on_agent_effect = self._agent_effect
        for client in clients:
            self.add_client(client)

    # -- building ---------------------------------------------------------------------------

    def _new_pool(self, fqdn: str) -> Pool:
        spec = self.topology.pool(fqdn)
        ops = self.ops
        return Pool(
            spec,
            self.topology,
            self.endpoints,
            self.world.rng_for(fqdn),
            now=self.world.now,
            trace=self.verbose,
            directory=ops.directory,
            backend=ops.backends.get(fqdn),
            contacts=ops.contacts,
        )

    def _listen(self, fqdn: str) -> list[tuple[str, str, int]]:
        ep = self.endpoints[fqdn]
        return [(ep.address, t, port) for t, port in ep.ports.items()]

    def add_client(self, spec: ClientSpec) -> Agent:
        if spec.name in self.specs:
            raise SimulationError(f"two clients are named {spec.name!r}")
        try:
            spec.client_profile()
        except ValueError as exc:
            raise SimulationError(f"client {spec.name}: {exc}") from None
        address = client_address(len(self.specs))
        self._client_address[spec.name] = address
        cache = MemoryCacheStore()
        self.caches[spec.name] = cache
        self.specs[spec.name] = spec
        if spec.cache:
            self.seed_cache(spec.name, spec.cache)
        agent, generator = self._new_agent(spec)
        index = self.world.add_core(
            spec.name,
            agent,
            [(address, "udp", SIP_PORT), (address, "udp", DNS_CLIENT_PORT)],
            on_events=self._on_agent_events,
            on_effect=self._on_agent_effect,
            coasting=agent,  # its keep-alive and failback-probe cycles
            generator=generator,  # dropped while it coasts (memory)
        )
        self._agent_index[spec.name] = index
        self.agents[spec.name] = agent
        self.timeline.add(spec.name)
        self.action_results[spec.name] = []
        return agent

    def _new_agent(self, spec: ClientSpec) -> tuple[Agent, LazyRandom]:
        """A client's agent and its generator (random.Random's numbers from the world's seed;
        it holds no Twister between draws: emulator/sim/lazyrandom.py)."""
        generator = self.world.parkable_rng_for(f"client:{spec.name}:{len(self.world.trace)}")
        agent = Agent(
            spec.name,
            spec.user,
            profile=spec.client_profile(),
            rng=cast(random.Random, generator),
            dns_server=self.dns_address,
            local_ip=self._client_address[spec.name],
            sip_port=SIP_PORT,
            dns_port=DNS_CLIENT_PORT,
            domain=self.topology.domain,
            notes=self.verbose,  # detail lines are recorded only when verbose (agent_trace)
            password=self.topology.client_password(spec.user),
        )
        return agent, generator

    def seed_cache(self, client: str, pool_fqdn: str) -> None:
        """Pre-seed a client's endpoint cache with a pool, as if it had signed in there."""
        if client not in self.specs:
            known = ", ".join(self.specs) or "none"
            raise SimulationError(f"no client named {client!r} (clients: {known})")
        ep = self._pool(pool_fqdn)
        transport = "tls" if "tls" in ep.ports else next(iter(ep.ports))
        user = self.specs[client].user
        self.caches[client].save(
            CacheEntry(user, pool_fqdn, ep.ports[transport], transport, self.world.now, ep.address)
        )

    # -- event sinks ------------------------------------------------------------------------

    def _pool_events(self, index: int, events: Sequence[Any]) -> None:
        name = self.world.name(index)
        monitor = self.monitor
        for event in events:
            if monitor is not None:
                monitor.pool_event(name, event)
            for listen in self.pool_listeners:
                listen(name, event)
            entry = pool_trace(event, self.verbose)
            if entry is not None:
                self.world.note(name, *entry)

    def watch_invariants(self, *, grace: float = 10.0) -> InvariantMonitor:
        """Check the failover invariants (docs/invariants.md) from now on."""
        self.monitor = InvariantMonitor(
            self.topology,
            self.world.network,
            clock=lambda: self.world.now,
            grace=grace,
            home_of=self.ops.directory.get,  # the current home: force-move changes it (R4)
            pairings=self.ops.pairings,  # set-backup, set-timers, pool failovers
        )
        return self.monitor

    def _fault(self, source: str, text: str) -> None:
        """A fault or heal happened: trace it, and tell the invariant monitor."""
        self.world.note(source, "fault", text)
        if self.monitor is not None:
            self.monitor.network_changed()

    def _agent_effect(self, index: int, effect: Effect) -> None:
        """A client's cache write (clients.cache.SaveCache), into its store."""
        if not isinstance(effect, SaveCache):
            raise TypeError(f"a client asked for {effect!r}")
        self.caches[self.world.name(index)].save(effect.entry)

    def _agent_events(self, index: int, events: Sequence[Any]) -> None:
        name = self.world.name(index)
        for event in events:
            if isinstance(event, ClientStateChanged):
                self.timeline.record(name, event)
            elif isinstance(event, ClientActionDone):
                self.action_results[name].append(event)
                waiting = self._awaiting.get(name)
                if waiting:
                    self.step_outcomes[waiting.pop(0)] = (event.ok, event.detail)
            entry = agent_trace(event, self.verbose)
            if entry is not None:
                # Memory: a line names no client (the entry's source does), so thousands of
                # clients write the same lines ("registering - REGISTER to dir1... (srv)"):
                # one string each, shared (sys.intern drops it when no entry holds it).
                self.world.note(name, entry[0], sys.intern(entry[1]))

    def _dns_events(self, index: int, events: Sequence[Any]) -> None:
        if self.verbose:
            for event in events:
                self.world.note("dns", *dns_trace(event))

    # -- faults and actions -----------------------------------------------------------------

    def _pool(self, fqdn: str) -> PoolEndpoints:
        ep = self.endpoints.get(fqdn.lower().rstrip("."))
        if ep is None:
            known = ", ".join(sorted(self.endpoints))
            raise SimulationError(f"no pool named {fqdn!r} (pools: {known})")
        return ep

    def _client(self, name: str) -> Agent:
        agent = self.agents.get(name)
        if agent is None:
            known = ", ".join(self.agents) or "none"
            raise SimulationError(f"no client named {name!r} (clients: {known})")
        self.world.wake(self._agent_index[name])  # skipped keep-alives caught up first
        return agent

    def _host(self, target: str) -> str:
        if target == "dns":
            return self.dns_address[0]
        if target in self._client_address:
            return self._client_address[target]
        return self._pool(target).address

    def client_address(self, name: str) -> str:
        """The simulated host address of a client."""
        address = self._client_address.get(name)
        if address is None:
            self._client(name)  # raises: no such client
        return self._client_address[name]

    def pool(self, fqdn: str) -> Pool:
        """The running core of a pool.  SimulationError while it is stopped (it has none)."""
        ep = self._pool(fqdn)
        core = self.world.core(self._pool_index[ep.fqdn])
        if not isinstance(core, Pool):
            raise SimulationError(f"pool {ep.fqdn} is stopped")
        return core

    def disable_nic(
        self, target: str, *, transport: str | None = None, tcp: TcpSilence | None = None
    ) -> None:
        """Make the host silent: all of it, or one transport alone (``transport``: ``udp``,
        ``tcp`` or ``tls``); ``tcp``: what a TCP/TLS connection attempt to it gets while it is
        silent, ``"timeout"`` (nothing: the default) or ``"reset"`` (docs/scenarios.md)."""
        if transport is not None and transport not in ("udp", "tcp", "tls"):
            raise SimulationError(f"transport: udp, tcp or tls, not {transport!r}")
        if tcp is not None and tcp not in ("timeout", "reset"):
            raise SimulationError(f'tcp: "timeout" or "reset", not {tcp!r}')
        if tcp == "reset" and transport is None and self.world.coast:
            # Coasting takes a silent host's connection attempts to vanish (a SYN unanswered);
            # with resets they do not: the rest of the run simulates every packet (CHOICE:
            # speed only, the behaviour is the same; docs/simulation.md).
            self.world.coast = False
            self.world.settle()
        self.world.network.set_nic(self._host(target), False, transport=transport, tcp=tcp)
        what = f"{transport.upper()} " if transport else "network interface "
        how = ", TCP connection attempts reset" if tcp == "reset" else ""
        self._fault(target, f"{what}disabled (silent{how})")

    def enable_nic(self, target: str, *, transport: str | None = None) -> None:
        """Bring the host back: all of it (every transport), or one transport."""
        if transport is not None and transport not in ("udp", "tcp", "tls"):
            raise SimulationError(f"transport: udp, tcp or tls, not {transport!r}")
        self.world.network.set_nic(self._host(target), True, transport=transport)
        what = f"{transport.upper()} " if transport else "network interface "
        self._fault(target, f"{what}enabled")

    def stop_pool(self, fqdn: str) -> None:
        """Stop the pool's process: peers are refused, and the pool's core is gone (no timer,
        no sends, no events) until :meth:`start_pool` starts a fresh one."""
        ep = self._pool(fqdn)
        self.world.network.set_running(ep.address, False)
        self.world.reset_connections(ep.address)  # what coasted until now is caught up first
        self.world.replace_core(self._pool_index[ep.fqdn], _StoppedPool())
        for listen in self.stop_listeners:
            listen(ep.fqdn)
        self._fault(fqdn, "pool stopped (connections refused)")

    def start_pool(self, fqdn: str) -> None:
        ep = self._pool(fqdn)
        if self.world.network.running(ep.address):
            return
        self.world.network.set_running(ep.address, True)
        index = self._pool_index[ep.fqdn]
        pool = self._new_pool(ep.fqdn)  # a restarted process has lost its in-memory bindings
        self.world.replace_core(index, pool, coasting=pool)
        pool.start(self.world.now)
        self.world.poke(index)
        self._fault(fqdn, "pool started")

    def partition(self, a: str, b: str, *, oneway: bool = False) -> None:
        self.world.network.partition(self._host(a), self._host(b), oneway=oneway)
        arrow = "->" if oneway else "<->"
        self._fault(a, f"partition {a} {arrow} {b}")

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        self.world.network.heal(self._host(a) if a else None, self._host(b) if b else None)
        self._fault(a or "network", f"healed {a or 'all'}{' <-> ' + b if b else ''}")

    def set_link(
        self,
        a: str,
        b: str,
        *,
        latency: float | None = None,
        loss: float | None = None,
        jitter: float | None = None,
        duplicate: float | None = None,
        both: bool = True,
    ) -> None:
        pairs = [(a, b), (b, a)] if both else [(a, b)]
        for src, dst in pairs:
            link = self.world.network.link(self._host(src), self._host(dst))
            if latency is not None:
                link.latency = latency
            if loss is not None:
                link.loss = loss
            if jitter is not None:
                link.jitter = jitter
            if duplicate is not None:
                link.duplicate = duplicate
        self.world.network.changed()
        self.world.note(
            a,
            "fault",
            f"link {a} {'<->' if both else '->'} {b}: latency={latency} "
            f"loss={loss} jitter={jitter} duplicate={duplicate}",
        )

    def dns_add(self, record: DnsRecord) -> None:
        self.authority.add(record)
        self.world.note("dns", "dns-change", f"added {record}")

    def dns_remove(self, name: str, rtype: str | None = None) -> int:
        count = self.authority.remove(name, rtype)
        self.world.note("dns", "dns-change", f"removed {count} record(s) {rtype or ''} {name}")
        return count

    def dns_fail(self, kind: str, name: str | None = None) -> None:
        self.authority.set_fault(kind, name)  # type: ignore[arg-type]
        self.world.note("dns", "dns-change", f"fault {kind} for {name or 'every name'}")

    def dns_restore(self, name: str | None = None) -> None:
        if name is None:
            self.authority.clear_faults()
        else:
            self.authority.clear_fault(name)
        self.world.note("dns", "dns-change", f"faults cleared for {name or 'every name'}")

    def sign_in(self, client: str) -> None:
        agent = self._client(client)
        agent.sign_in(self.world.now, cached=self._cached(client))
        self.world.poke(self._agent_index[client])

    def sign_out(self, client: str) -> None:
        agent = self._client(client)
        agent.sign_out(self.world.now)
        self.world.poke(self._agent_index[client])

    def restart(self, client: str, *, keep_cache: bool = True) -> None:
        """The client process restarts: memory is lost (primary/backup), the cache may stay."""
        agent = self._client(client)
        if agent.wanted:
            agent.sign_out(self.world.now, unregister=False)
            self.world.poke(self._agent_index[client])
        if not keep_cache:
            self.caches[client].clear(self.specs[client].user)
        fresh, generator = self._new_agent(self.specs[client])
        self.agents[client] = fresh
        self.world.replace_core(
            self._agent_index[client], fresh, coasting=fresh, generator=generator
        )
        kept = "cache kept" if keep_cache else "cache dropped"
        self.world.note(client, "action", f"restarted ({kept})")
        fresh.sign_in(self.world.now, cached=self._cached(client))
        self.world.poke(self._agent_index[client])

    def _cached(self, client: str) -> CacheEntry | CacheUnreadable | None:
        return read_entry(self.caches[client], self.specs[client].user)

    def clear_cache(self, client: str) -> None:
        self._client(client).cache_cleared()
        self.caches[client].clear(self.specs[client].user)
        self.world.note(client, "action", "endpoint cache cleared")

    # -- administration and disaster recovery (emulator.operations) -------------------------

    def _pool_up(self, fqdn: str) -> bool:
        """Whether a pool runs and its host is reachable (what the administrator needs)."""
        return fqdn in self.endpoints and self._pool_state(fqdn) == "running"

    def _pool_state(self, fqdn: str) -> PoolState:
        network = self.world.network
        address = self.endpoints[fqdn].address
        if not network.running(address):
            return "stopped"
        host = network.hosts.get(address)
        return "running" if host is not None and host.nic_enabled else "silent"

    def pool_states(self) -> dict[str, PoolState]:
        """Every pool's state (emulator.effects.PoolState), in topology order."""
        return {fqdn: self._pool_state(fqdn) for fqdn in self.endpoints}

    def admin(self, action: str, **params: object) -> Outcome:
        """Carry out an administrative or DR action (``emulator.operations.ADMIN_ACTIONS``);
        the outcome says whether it was refused and why.  SimulationError for unknown names."""
        from emulator.operations import OperationError

        now = self.world.now
        changes = len(self.ops.chat_history)
        try:
            outcome = self.ops.perform(action, params, now)
        except OperationError as exc:
            raise SimulationError(str(exc)) from None
        self.world.note("admin", "admin", outcome.line())
        if len(self.ops.chat_history) > changes:
            state = "available" if self.ops.chat_available() else "unavailable"
            self.world.note("pchat", "chat", f"Persistent Chat service {state}")
        self.apply_outcome(outcome)
        return outcome

    def plan(self, outcome: Outcome) -> Effects:
        """What ``outcome`` does to the pool cores, for the pools' states now
        (:func:`emulator.effects.plan`, as the live deployment)."""
        return plan(outcome, self.pool_states())

    def apply_outcome(self, outcome: Outcome) -> None:
        """Tell the pool cores what an administrative action changed (:meth:`plan`, then
        :meth:`apply`)."""
        self.apply(self.plan(outcome))

    def apply(self, effects: Effects) -> None:
        """Carry out ``effects`` (emulator.effects): restart pools, then tell cores, in order."""
        for fqdn in effects.restart:
            self.stop_pool(fqdn)
            self.start_pool(fqdn)
        for tell in effects.tell:
            if isinstance(tell, TellReconfigured):
                # New pairings or timers change what the pool's heartbeat cycle does: it
                # stops coasting first (it may coast again at the poke below).
                self.world.end_coast(self._pool_index[tell.pool])
            tell.to(self.pool(tell.pool), self.world.now)  # pool(): brought up to date first
            self.world.poke(self._pool_index[tell.pool])

    def add_contact(self, client: str, contact: str, *, step: int | None = None) -> None:
        """The user of ``client`` adds ``contact`` to its contact list (the outcome is in
        :attr:`action_results`, and in :attr:`step_outcomes` under ``step``, once the
        registrar answered)."""
        agent = self._client(client)
        if step is not None:
            self._awaiting.setdefault(client, []).append(step)
        agent.add_contact(self.world.now, contact)
        self.world.poke(self._agent_index[client])

    def run_until(self, until: float) -> None:
        self.world.run_until(until)


def client_address(n: int) -> str:
    """The host address of the ``n``-th client (from 0): 127.2.0.1 to 127.2.249.250, then on
    into 127.3.0.0/16 (a scenario may have 100,000 clients; emulator.scenario.model)."""
    block, rest = divmod(n, 62_500)
    return f"127.{2 + block}.{rest // 250}.{rest % 250 + 1}"


def _default_port(transport: str) -> int:
    return 5061 if transport == "tls" else 5060


def pool_trace(event: object, verbose: bool) -> tuple[str, str] | None:
    """A pool event as a trace line ``(kind, text)``, or None when not worth one.

    SIP exchanges and binding changes only when ``verbose``.  Shared by the simulator and the
    realtime runner, so both timelines read the same (and like the live log).
    """
    if not verbose and isinstance(event, _VERBOSE_ONLY):
        return None  # not described at all (speed: most pool events are these)
    kind, text = pool_events.describe(event)  # type: ignore[arg-type]
    if kind in ("sip", "binding") and not verbose:
        return None
    return kind, text


# Pool events that describe() files under "sip" or "binding" (tests/scenario/test_scenarios.py
# checks the list).
_VERBOSE_ONLY = (
    pool_events.Exchanged,
    pool_events.BindingAdded,
    pool_events.BindingRefreshed,
    pool_events.BindingRemoved,
    pool_events.BindingExpired,
)


def agent_trace(event: object, verbose: bool) -> tuple[str, str] | None:
    """A client agent event as a trace line ``(kind, text)``, or None."""
    if isinstance(event, ClientStateChanged):
        return "client", event.line().split(": ", 1)[1]
    if isinstance(event, ClientActionDone):
        return "client", event.line().split(": ", 1)[1]
    if isinstance(event, ClientNote) and verbose:
        return "detail", event.text
    return None


def dns_trace(event: Any) -> tuple[str, str]:
    """A DNS query event as a trace line."""
    return "dns", f"{event.qtype} {event.qname} -> {event.rcode} ({event.answers} answers)"
