"""A live deployment: every pool of a topology on real sockets, plus the fake DNS (asyncio).

Start-up order matters: the pool cores must know every pool's *bound* ports (ports may be 0 =
ephemeral in the topology), and the DNS records name them too.  So :meth:`Deployment.start`

1. refuses non-loopback addresses unless allowed (before binding anything),
2. makes the CA and the per-pool certificates,
3. binds every pool's UDP/TCP/TLS sockets (no core attached yet: early input is dropped),
4. builds the DNS :class:`~fakedns.authority.Authority` from ``topology.dns_records(bound)``
   and starts the DNS server,
5. builds one :class:`~emulator.registrar.pool.Pool` core per pool with the real endpoints,
   attaches it to its driver and starts it (heartbeats begin).

The state behind the pools (homes, contact lists, back ends, CMS, Persistent Chat) is one
:class:`~emulator.operations.Operations` (:attr:`Deployment.ops`), shared by every pool core and
surviving their restarts; :meth:`Deployment.admin` carries out administrative and DR actions on
it and tells the running cores what changed: it applies :func:`emulator.effects.plan`, as the
simulator does.  A stopped pool has no core (:meth:`Deployment.stop_pool` detaches it), so it
neither acts nor sends, and no outcome reaches it.

The CA certificate goes to ``ca_dir`` or, by default, to a temporary directory of the
deployment's own, ``sipemu-ca-PID-*`` in the system's temporary directory
(emulator/live/certs.py), removed by :meth:`Deployment.stop` (which ``sipemu up`` and
``sipemu run --realtime`` call on every way out, SIGINT and SIGTERM included).  A process
killed outright (SIGKILL) cannot remove it: the next deployment to start removes such
directories of processes that no longer run (:func:`remove_stale_ca_dirs`).

Faults (docs/live.md, "Packet-level faults"): ``faults="packet"`` makes them with the kernel
(:class:`~emulator.live.netns.PacketFaults`: nftables rules and netem in the deployment's own
network namespace); ``faults="in-process"`` with the pool drivers (a silent pool holds its
sockets); ``faults="auto"`` (the default) chooses packet when the deployment runs in a private
network namespace (:func:`~emulator.live.netns.in_private_namespace`) and nftables works there,
else in-process.  :attr:`Deployment.fault_mode` says which, and the start is logged.

Randomness: one run seed (printed by ``sipemu up``); pool ``fqdn`` gets
``random.Random(f"{seed}:{fqdn}:{generation}")`` where ``generation`` counts restarts, so a run
is reproducible and does not depend on the order pools are listed or restarted in.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from emulator.effects import Effects, PoolState, plan
from emulator.live.certs import TlsMaterial, remove_stale_ca_dirs
from emulator.live.driver import CoreDriver
from emulator.live.netns import FaultMode, NamespaceError, PacketFaults, in_private_namespace
from emulator.live.ratelimit import RateLimitedLog
from emulator.live.sockets import BindError, describe_os_error
from emulator.live.stream import StreamLimits
from emulator.net import Address, TransportName
from emulator.operations import OperationError, Operations, Outcome
from emulator.registrar import events as ev
from emulator.registrar.pool import Binding, Pool, PoolEndpoints, PoolStatus

if TYPE_CHECKING:
    from emulator.topology import PoolSpec, Topology
    from emulator.wire.live import WireRecorder
    from fakedns.authority import Authority
    from fakedns.server import DnsServer

__all__ = [
    "FAULT_MODES",
    "Deployment",
    "DeploymentError",
    "EndpointRow",
    "remove_stale_ca_dirs",
]

FAULT_MODES = ("auto", "packet", "in-process")
"""``Deployment(faults=...)``: see the module docstring."""

Log = Callable[[str], None]
Listener = Callable[[str, object], None]
"""``listener(source, event)``: a pool event (source: the pool's FQDN), a DNS event
(``"dns"``, a :class:`~fakedns.authority.DnsQueried`) or a logged notice (source: a pool's
FQDN, ``admin`` or ``pchat``; event: the notice's text, a ``str``)."""


class DeploymentError(Exception):
    """The deployment cannot do what was asked; ``str()`` is a sentence for the user."""


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """One listening endpoint, as printed by ``sipemu up``."""

    name: str
    role: str
    """``frontend`` | ``director`` | ``dns``."""
    transport: str
    address: str
    port: int


def _stamp() -> str:
    return datetime.now().strftime("%H:%M:%S.%f")[:-3]


class Deployment:
    """Every pool of ``topology`` and its fake DNS, served on real sockets.

    ``log`` receives one line per SIP exchange (unless ``quiet``; heartbeats between pools
    only when ``verbose``), per DNS query (unless ``quiet``), per malformed message and per
    notable pool event (heartbeat lost, failover, failback...).  ``ca_dir``: where the CA PEM
    goes (default: a fresh temporary directory, removed on stop).  ``seed``: the run seed
    (default: a random one, see :attr:`seed`).

    All methods must be called from the event loop's thread; see
    :class:`emulator.testing.RunningDeployment` for a thread-safe, synchronous wrapper.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        log: Log | None = None,
        ca_dir: str | Path | None = None,
        allow_non_loopback: bool = False,
        seed: int | None = None,
        quiet: bool = False,
        verbose: bool = False,
        time_scale: float = 1.0,
        debug: Log | None = None,
        on_event: Callable[[str, object], None] | None = None,
        stream_limits: StreamLimits | None = None,
        recorder: WireRecorder | None = None,
        keylog: str | Path | None = None,
        faults: str = "auto",
    ) -> None:
        if faults not in FAULT_MODES:
            raise DeploymentError(f"faults must be one of {', '.join(FAULT_MODES)}, not {faults!r}")
        self.topology = topology
        self.faults = faults
        """What was asked for (``auto``, ``packet``, ``in-process``); :attr:`fault_mode`
        is what the running deployment uses."""
        self._packet: PacketFaults | None = None
        self._fault_mode: FaultMode | None = None
        self._silent: set[str] = set()
        """Pools silenced by packet-level faults (whole host)."""
        self.stream_limits = stream_limits if stream_limits is not None else StreamLimits()
        """The pools' TCP/TLS timeouts (``sipemu up --idle-timeout``, ``--message-timeout``)."""
        # One line per bad input (a pool's BadMessage, a connection closed by a limit), at a
        # bounded rate: see emulator/live/ratelimit.py.  Made at start (it uses the loop).
        self._bad_input_log: RateLimitedLog | None = None
        self.recorder = recorder
        """Told of every SIP and DNS message on the wire (emulator/wire/live.py), or None."""
        self.keylog = keylog
        """SSLKEYLOGFILE of every TLS session of the pools (``--keylog``), or None."""
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
        self.quiet = quiet
        self.verbose = verbose
        self.time_scale = time_scale
        self._on_event = on_event
        self._listeners: list[Listener] = []
        self._log = log
        self._debug = debug
        self._ca_dir = ca_dir
        self._allow_non_loopback = allow_non_loopback
        self._tls: TlsMaterial | None = None
        self._drivers: dict[str, CoreDriver] = {}
        self._pools: dict[str, Pool] = {}
        self._generation: dict[str, int] = {}
        self._endpoints: dict[str, PoolEndpoints] = {}
        self._authority: Authority | None = None
        self._dns_server: DnsServer | None = None
        self._ops: Operations | None = None
        self._state = "new"  # new -> starting -> running -> stopped

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind everything and start the pools.  Raises :class:`DeploymentError` (a sentence)."""
        if self._state != "new":
            raise DeploymentError("a Deployment can be started only once")
        self._check_addresses()
        self._state = "starting"
        try:
            self._choose_faults()
            await self._start()
        except BaseException:
            await self.stop()
            raise
        self._state = "running"

    def _choose_faults(self) -> None:
        mode: FaultMode = "in-process"
        reason = "not in a private network namespace"
        private = in_private_namespace()
        if self.faults == "packet" and not private:
            raise DeploymentError(
                "packet-level faults apply to a whole network namespace, so sipemu makes them "
                "only in a private one: run with --netns (or under unshare -n / ip netns exec)"
            )
        if self.faults == "packet" or (self.faults == "auto" and private):
            try:
                self._packet = PacketFaults()
                self._packet.clear()  # a table left by an earlier run in this namespace
                mode = "packet"
            except NamespaceError as exc:
                if self.faults == "packet":
                    raise DeploymentError(
                        f"packet-level faults were asked for but cannot be had: {exc}"
                    ) from None
                self._packet = None
                reason = str(exc)
        self._fault_mode = mode
        if mode == "packet":
            line = "fault mode: packet (nftables and netem in this network namespace)"
        else:
            line = f"fault mode: in-process (the pool drivers; {reason})"
        self._notice("faults", line)

    @property
    def fault_mode(self) -> FaultMode:
        """``packet`` or ``in-process`` (what ``auto`` chose), once started."""
        if self._fault_mode is None:
            raise DeploymentError("the deployment is not started")
        return self._fault_mode

    @property
    def packet_faults(self) -> PacketFaults | None:
        """The kernel-level faults (packet mode), or None."""
        return self._packet

    async def _start(self) -> None:
        from fakedns.server import DnsServer

        topology = self.topology
        if self._log is not None:
            log = self._log
            loop = asyncio.get_running_loop()
            self._bad_input_log = RateLimitedLog(
                lambda line: log(f"{_stamp()} {line}"),
                label="bad-input lines",
                clock=loop.time,
                call_later=loop.call_later,
            )
        self._tls = TlsMaterial(self._ca_dir)
        for spec in topology.pools:
            driver = self._new_driver(spec)
            self._drivers[spec.fqdn] = driver
            try:
                await driver.open()
            except BindError as exc:
                raise DeploymentError(str(exc)) from None
        self._endpoints = {
            fqdn: PoolEndpoints(fqdn, driver.address, dict(driver.bound))
            for fqdn, driver in self._drivers.items()
        }
        bound: dict[tuple[str, TransportName], int] = {
            (fqdn, transport): port
            for fqdn, driver in self._drivers.items()
            for transport, port in driver.bound.items()
        }
        dns = topology.dns
        self._authority = topology.dns_authority(bound, trace=self._traced(self._log))
        dns_log = None if self.quiet or self._log is None else self._dns_line
        # Bad queries are told even when quiet (one line each, rate-limited by the server),
        # as a pool's bad messages are.
        self._dns_server = DnsServer(
            self._authority,
            dns.address,
            dns.port,
            log=dns_log,
            on_event=self._dns_event,
            bad_input_log=None if self._log is None else self._dns_line,
        )
        try:
            await self._dns_server.start()
        except OSError as exc:
            raise DeploymentError(
                f"cannot start the fake DNS on {dns.address}:{dns.port} (UDP and TCP): "
                f"{describe_os_error(exc)}"
            ) from None
        if self.recorder is not None:
            self._dns_server.recorder = self.recorder
            self.recorder.dns.add(self._dns_server.address)
        self._ops = Operations(topology, now=self._now(), pool_up=self._pool_up)
        for spec in topology.pools:
            self._start_core(spec)

    def _new_driver(self, spec: PoolSpec) -> CoreDriver:
        ports: dict[TransportName, int] = {}
        for transport in spec.transports:
            port = spec.port(transport)
            if port is not None:
                ports[transport] = port
        assert self._tls is not None
        server_ssl = self._tls.server_context(spec.fqdn, spec.address) if "tls" in ports else None
        client_ssl = self._tls.client_context()
        if self.keylog is not None:
            for context in (server_ssl, client_ssl):
                if context is not None:
                    context.keylog_filename = str(self.keylog)
        driver = CoreDriver(
            spec.fqdn,
            spec.address,
            ports,
            server_ssl=server_ssl,
            client_ssl=client_ssl,
            on_events=partial(self._pool_events, spec.fqdn),
            debug=self._debug,
            time_scale=self.time_scale,
            notice=self._bad_input_log,
            stream_limits=self.stream_limits,
        )
        driver.recorder = self.recorder
        return driver

    def _traced(self, *readers: object) -> bool:
        """Whether the cores make per-exchange events (Exchanged, DnsQueried).  They cost a
        summary string per request, so only when someone reads them: a listener (the control
        API's metrics and event stream count them whatever the log settings), or a log or
        ``on_event`` that is not ``quiet`` (``quiet`` only stops the printing:
        :func:`_event_line` leaves the exchanges out)."""
        if self._listeners:
            return True
        return not self.quiet and any(reader is not None for reader in readers)

    def _start_core(self, spec: PoolSpec) -> None:
        fqdn = spec.fqdn
        driver = self._drivers[fqdn]
        generation = self._generation.get(fqdn, 0)
        self._generation[fqdn] = generation + 1
        rng = random.Random(f"{self.seed}:{fqdn}:{generation}")
        now = driver.now()
        trace = self._traced(self._log, self._on_event)
        ops = self.ops
        pool = Pool(
            spec,
            self.topology,
            self._endpoints,
            rng,
            now=now,
            trace=trace,
            directory=ops.directory,
            backend=ops.backends.get(fqdn),
            contacts=ops.contacts,
        )
        self._pools[fqdn] = pool
        driver.attach(pool)
        pool.start(now)
        driver.poke()

    async def stop(self) -> None:
        """Close every socket (idempotent).  The CA's temporary directory is removed."""
        if self._state == "stopped":
            return
        self._state = "stopped"
        if self._dns_server is not None:
            server, self._dns_server = self._dns_server, None
            await server.stop()
        drivers = list(self._drivers.values())
        for driver in drivers:
            await driver.close()
        self._pools.clear()
        if self._packet is not None:
            packet, self._packet = self._packet, None
            try:
                packet.close()  # the namespace may outlive this deployment (a named one)
            except NamespaceError as exc:
                self._notice("faults", f"could not remove the packet-level faults: {exc}")
        if self._bad_input_log is not None:
            self._bad_input_log.flush()
        if self._tls is not None:
            self._tls.cleanup()

    async def __aenter__(self) -> Deployment:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._state == "running"

    def _check_addresses(self) -> None:
        if self._allow_non_loopback:
            return
        addresses = sorted(set(self.topology.non_loopback_addresses()))
        if addresses:
            listed = ", ".join(addresses)
            verb = (
                "is not a loopback address"
                if len(addresses) == 1
                else ("are not loopback addresses")
            )
            raise DeploymentError(
                f"{self.topology.source}: {listed} {verb}; sipemu binds only 127.0.0.0/8 and "
                "::1 unless told otherwise (--allow-non-loopback, or allow_non_loopback=True)"
            )

    # -- faults ------------------------------------------------------------------------------

    async def stop_pool(self, fqdn: str) -> None:
        """Stop the pool's process: sockets closed, so peers are refused; bindings are lost."""
        name = self._name(fqdn)
        driver = self._drivers[name]
        if not driver.is_open:
            return
        await driver.close()
        self._pools.pop(name, None)
        self._notice(name, "pool stopped (sockets closed: connections are refused)")

    async def start_pool(self, fqdn: str) -> None:
        """Start a stopped pool on the same ports with a FRESH core (a new process)."""
        name = self._name(fqdn)
        driver = self._drivers[name]
        if driver.is_open:
            return
        try:
            await driver.open()
        except BindError as exc:
            raise DeploymentError(str(exc)) from None
        self._start_core(self.topology.pool(name))
        self._notice(name, "pool started (fresh process: no bindings)")

    async def disable_nic(self, fqdn: str, transport: TransportName | None = None) -> None:
        """Make the pool's host silent (see docs/live.md for what that means per transport
        and fault mode).  ``transport``: only that one (packet mode only)."""
        self._set_nic(fqdn, transport, enabled=False)

    async def enable_nic(self, fqdn: str, transport: TransportName | None = None) -> None:
        """Undo :meth:`disable_nic` (``transport``: that one only, packet mode)."""
        self._set_nic(fqdn, transport, enabled=True)

    def _set_nic(self, fqdn: str, transport: TransportName | None, *, enabled: bool) -> None:
        name = self._name(fqdn)
        packet = self._packet
        if packet is None:
            if transport is not None:
                doing = "enabling" if enabled else "silencing"
                raise DeploymentError(
                    f"{doing} only {transport} of {name} needs packet-level faults "
                    "(a private network namespace: sipemu up --netns)"
                )
            if enabled:
                self._drivers[name].enable_nic()
            else:
                self._drivers[name].disable_nic()
        else:
            change = packet.restore if enabled else packet.silence
            port = None if transport is None else self._port(name, transport)
            change(self._address(name), transport, port)
            if transport is None and enabled:
                self._silent.discard(name)
            elif transport is None:
                self._silent.add(name)
        what = "" if transport is None else f" for {transport}"
        state = "enabled" if enabled else "disabled"
        self._notice(name, f"network interface {state}{what}{'' if enabled else ' (silent)'}")

    async def refuse(self, fqdn: str, transport: TransportName | None = None) -> None:
        """The pool's host refuses (ICMP port unreachable, TCP RST) while its process goes on
        running (packet mode only; in-process, :meth:`stop_pool` is the refusal)."""
        name = self._name(fqdn)
        port = None if transport is None else self._port(name, transport)
        self._require_packet(f"refusing {name}").refuse(self._address(name), transport, port)
        what = "" if transport is None else f" {transport}"
        self._notice(name, f"host refuses{what} (ICMP port unreachable / TCP RST)")

    def partition(self, a: str, b: str, *, oneway: bool = False) -> None:
        """Drop packets between hosts ``a`` and ``b`` (pool FQDNs, ``dns`` or IP addresses);
        one direction only if ``oneway``.  Packet mode only."""
        packet = self._require_packet("a partition")
        packet.partition(self._address(a), self._address(b), oneway=oneway)
        self._notice(a, f"partition {a} {'->' if oneway else '<->'} {b}")

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        """Undo partitions (all, those of ``a``, or those between ``a`` and ``b``)."""
        packet = self._require_packet("healing a partition")
        packet.heal(
            self._address(a) if a is not None else None,
            self._address(b) if b is not None else None,
        )
        self._notice(a or "network", f"healed {a or 'all'}{' <-> ' + b if b else ''}")

    def link(
        self,
        a: str,
        b: str,
        *,
        latency: float = 0.0,
        loss: float = 0.0,
        jitter: float = 0.0,
        oneway: bool = False,
    ) -> None:
        """Shape the link between ``a`` and ``b`` with netem (seconds; loss a fraction).
        Packet mode only; DeploymentError when the kernel has no netem."""
        packet = self._require_packet("a link fault")
        try:
            packet.link(
                self._address(a),
                self._address(b),
                latency=latency,
                loss=loss,
                jitter=jitter,
                oneway=oneway,
            )
        except NamespaceError as exc:
            raise DeploymentError(str(exc)) from None
        self._notice(
            a,
            f"link {a} {'->' if oneway else '<->'} {b}: latency={latency:g} loss={loss:g} "
            f"jitter={jitter:g}",
        )

    def _require_packet(self, what: str) -> PacketFaults:
        if self._packet is None:
            raise DeploymentError(
                f"{what} needs packet-level faults, and this deployment makes its faults "
                "in-process; run it in a private network namespace (sipemu up --netns, "
                "sipemu run --realtime --netns) where nftables works"
            )
        return self._packet

    def _address(self, host: str) -> str:
        """A pool FQDN, ``dns`` or an IP address -> an IP address."""
        if host == "dns":
            return self.topology.dns.address
        try:
            return self.topology.pool(self._name(host)).address
        except ValueError:
            import ipaddress

            try:
                return str(ipaddress.ip_address(host))
            except ValueError:
                known = ", ".join(spec.fqdn for spec in self.topology.pools)
                raise DeploymentError(
                    f"{host!r} is neither a pool ({known}), dns, nor an IP address"
                ) from None

    def _port(self, name: str, transport: TransportName) -> int:
        port = self._endpoints[name].port(transport) if name in self._endpoints else None
        if port is None:
            raise DeploymentError(f"pool {name} does not serve {transport}")
        return port

    # -- administration and disaster recovery (emulator.operations) -------------------------

    def _now(self) -> float:
        """The cores' clock (the loop's, scaled), as every pool driver gives it."""
        return asyncio.get_running_loop().time() * self.time_scale

    def _pool_up(self, fqdn: str) -> bool:
        """Whether a pool runs and its host is reachable (what the administrator needs)."""
        return fqdn in self._drivers and self._pool_state(fqdn) == "running"

    def _pool_state(self, fqdn: str) -> PoolState:
        driver = self._drivers[fqdn]
        if not driver.is_open:
            return "stopped"
        return "running" if driver.nic_enabled and fqdn not in self._silent else "silent"

    def pool_states(self) -> dict[str, PoolState]:
        """Every pool's state (emulator.effects.PoolState), in topology order."""
        return {spec.fqdn: self._pool_state(spec.fqdn) for spec in self.topology.pools}

    async def admin(self, action: str, **params: object) -> Outcome:
        """Carry out an administrative or DR action (``emulator.operations.ADMIN_ACTIONS``) and
        tell the running pool cores what it changed (a restarted pool is back when this
        returns).  The outcome says whether it was refused and why.  DeploymentError (a
        sentence) when the action names what the deployment does not have."""
        outcome = self.perform_admin(action, **params)
        await self.apply_outcome(outcome)
        return outcome

    def perform_admin(self, action: str, **params: object) -> Outcome:
        """The first half of :meth:`admin`: carry out the action on :attr:`ops` and log it,
        without telling the cores yet (:meth:`apply_outcome` does)."""
        ops = self.ops
        changes = len(ops.chat_history)
        try:
            outcome = ops.perform(action, params, self._now())
        except OperationError as exc:
            raise DeploymentError(str(exc)) from None
        self._notice("admin", outcome.line())
        if len(ops.chat_history) > changes:
            state = "available" if ops.chat_available() else "unavailable"
            self._notice("pchat", f"Persistent Chat service {state}")
        return outcome

    def plan(self, outcome: Outcome) -> Effects:
        """What ``outcome`` does to the pool cores, for the pools' states now
        (:func:`emulator.effects.plan`, as the simulator)."""
        return plan(outcome, self.pool_states())

    async def apply_outcome(self, outcome: Outcome) -> None:
        """Tell the pool cores what an administrative action changed (:meth:`plan`, then
        :meth:`apply`)."""
        await self.apply(self.plan(outcome))

    async def apply(self, effects: Effects) -> None:
        """Carry out ``effects`` (emulator.effects): restart pools, then tell cores, in order.
        A pool stopped since the plan was made (the realtime runner applies it in a task) is
        left alone: a stopped pool hears nothing."""
        for fqdn in effects.restart:
            if self.is_running(fqdn):
                await self.stop_pool(fqdn)
                await self.start_pool(fqdn)
        for tell in effects.tell:
            pool = self._pools.get(tell.pool)
            if pool is not None:
                tell.to(pool, self._now())
                self._drivers[tell.pool].poke()

    # -- queries -----------------------------------------------------------------------------

    @property
    def ops(self) -> Operations:
        """The state behind the pools and the actions on it (use from the loop's thread)."""
        if self._ops is None:
            raise DeploymentError("the deployment is not started")
        return self._ops

    def chat_available(self) -> bool | None:
        """Whether the Persistent Chat service works (None: the topology has none)."""
        return self.ops.chat_available()

    @property
    def dns(self) -> Authority:
        """The fake DNS authority: edit records and set faults on it (from the loop's thread)."""
        if self._authority is None:
            raise DeploymentError("the deployment is not started")
        return self._authority

    @property
    def dns_address(self) -> Address:
        if self._dns_server is None:
            raise DeploymentError("the deployment is not started")
        host, port = self._dns_server.address[:2]
        return (str(host), int(port))

    @property
    def ca_path(self) -> Path:
        """The CA certificate (PEM) that signed every pool's TLS certificate."""
        if self._tls is None:
            raise DeploymentError("the deployment is not started")
        return self._tls.ca_path

    @property
    def pool_names(self) -> list[str]:
        return [spec.fqdn for spec in self.topology.pools]

    def is_running(self, fqdn: str) -> bool:
        """False while the pool is stopped (:meth:`stop_pool`)."""
        return self._drivers[self._name(fqdn)].is_open

    def nic_enabled(self, fqdn: str) -> bool:
        name = self._name(fqdn)
        return self._drivers[name].nic_enabled and name not in self._silent

    def bindings(self, fqdn: str | None = None) -> list[Binding]:
        """Current bindings of one pool, or of every running pool (copies)."""
        names = [self._name(fqdn)] if fqdn is not None else list(self._pools)
        out: list[Binding] = []
        for name in names:
            pool = self._pools.get(name)
            if pool is not None:
                out.extend(copy.copy(b) for b in pool.bindings())
        return out

    def pool_status(self, fqdn: str) -> PoolStatus:
        """The pool's view of its monitored peers.  Raises DeploymentError if it is stopped."""
        name = self._name(fqdn)
        pool = self._pools.get(name)
        if pool is None:
            raise DeploymentError(f"pool {name} is stopped")
        return pool.status()

    def pool(self, fqdn: str) -> Pool | None:
        """The running core of a pool (None while stopped): for inspection from the loop."""
        return self._pools.get(self._name(fqdn))

    def bound_ports(self) -> dict[tuple[str, TransportName], int]:
        """(pool FQDN, transport) -> the port actually bound (ephemeral ports resolved)."""
        return {
            (fqdn, transport): port
            for fqdn, endpoints in self._endpoints.items()
            for transport, port in endpoints.ports.items()
        }

    def pool_address(self, fqdn: str, transport: TransportName = "udp") -> Address:
        name = self._name(fqdn)
        endpoints = self._endpoints.get(name)
        port = endpoints.port(transport) if endpoints is not None else None
        if endpoints is None or port is None:
            served = ", ".join(self._drivers[name].ports) or "nothing"
            raise ValueError(f"pool {name} does not serve {transport} (it serves {served})")
        return (endpoints.address, port)

    def endpoints(self) -> list[EndpointRow]:
        """Every listening endpoint: the pools' then the fake DNS's."""
        rows: list[EndpointRow] = []
        for spec in self.topology.pools:
            driver = self._drivers.get(spec.fqdn)
            ports = driver.bound if driver is not None else {}
            for transport, port in ports.items():
                rows.append(EndpointRow(spec.fqdn, spec.role, transport, spec.address, port))
        if self._dns_server is not None:
            host, port = self.dns_address
            rows.append(EndpointRow("dns", "dns", "udp", host, port))
            rows.append(EndpointRow("dns", "dns", "tcp", host, port))
        return rows

    def _name(self, fqdn: str) -> str:
        name = fqdn.strip().rstrip(".").lower()
        if name not in self._drivers:
            known = ", ".join(spec.fqdn for spec in self.topology.pools)
            raise ValueError(f"no pool named {fqdn!r} (pools: {known})")
        return name

    # -- logging -----------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(source, event)`` for everything the deployment logs (see
        :data:`Listener`), from the loop's thread; returns the call that unsubscribes.  Pool
        cores and the fake DNS started after this trace their exchanges, ``quiet`` or not (a
        listener is told every exchange and query; ``quiet`` only keeps them out of the log),
        so subscribe before :meth:`start` to see every request."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _notice(self, who: str, text: str) -> None:
        for listener in list(self._listeners):
            listener(who, text)
        if self._log is not None:
            self._log(f"{_stamp()} {who} {text}")

    def _dns_event(self, event: object) -> None:
        for listener in list(self._listeners):
            listener("dns", event)

    def _dns_line(self, text: str) -> None:
        if self._log is not None:
            self._log(f"{_stamp()} dns {text}")

    def _pool_events(self, fqdn: str, events: Sequence[object]) -> None:
        for listener in list(self._listeners):
            for event in events:
                listener(fqdn, event)
        if self._on_event is not None:
            for event in events:
                self._on_event(fqdn, event)
        log = self._log
        if log is None:
            return
        for event in events:
            line = _event_line(event, self.quiet, self.verbose)
            if line is None:
                continue
            if (
                isinstance(event, ev.BadMessage | ev.BindingReplaced | ev.AuthRefused)
                and self._bad_input_log is not None
            ):
                # Rate-limited: a flood of bad messages, of REGISTERs taking over bindings
                # from spoofed sources, or of requests refused by authentication, is not a
                # flood of log lines.
                self._bad_input_log(f"{fqdn} {line}")
            else:
                log(f"{_stamp()} {fqdn} {line}")


def _event_line(event: object, quiet: bool, verbose: bool) -> str | None:
    """One log line for a pool event, or None for events not worth a line."""
    if isinstance(event, ev.Exchanged) and (quiet or (event.heartbeat and not verbose)):
        return None
    if isinstance(
        event, ev.BindingAdded | ev.BindingRefreshed | ev.BindingRemoved | ev.BindingExpired
    ):
        return None  # before describe(): one of these per REGISTER, and not logged
    return ev.describe(event)[1]  # type: ignore[arg-type]
