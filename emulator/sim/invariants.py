"""Failover invariants, checked online over a simulated run (docs/invariants.md).

The monitor watches the pools' binding, heartbeat, failover and failback events and the
network's ground truth (which hosts can reach which, and which are running), and records a
:class:`Violation` whenever a safety invariant breaks.  It judges the registrar cores against
the network, not against their own bookkeeping: "fe2 failed over fe1's users" is checked
against how long fe1 was really cut off from fe2.

Safety invariants (their names are what a scenario's ``[[expect]] invariant = ...`` uses):

``served-by-primary-or-backup``
    A user is bound only at its home pool (full) or at its home pool's backup, and there only
    in resiliency mode; never at a Director.
``failover-waits-detection-interval``
    A backup fails over a primary only when the primary has been cut off from it (either way,
    or stopped) for the whole failover detection interval less one heartbeat period (the last
    answered heartbeat may have been sent up to one period before the cut); it accepts the
    primary's users only while failed over.  A flap shorter than that causes no failover.
``failback-waits-detection-interval``
    A backup starts failback only when the primary has been connected to it for the whole
    failback detection interval.
``single-registrar``
    A client that moves to another registrar does not stay bound at the one it left while that
    one can still hear it: the old binding is gone (unregistered, removed by failback) within
    ``grace`` seconds.  (A binding left on a pool that was cut off from the client at some
    moment since the client last registered there is not the client's doing: the client lost
    that registrar and could not unregister.)

Liveness (every signed-in client is registered within a bound once faults stop and a path
exists) is a per-client expectation the fuzzer writes (:func:`liveness_bound`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from clients.profile import Profile
from emulator.pairing import FailoverPhase, Pairings
from emulator.registrar import events as ev
from emulator.sim.network import Network
from emulator.sip.uri import SipUri
from emulator.topology import ResiliencySettings, Topology

__all__ = [
    "INVARIANTS",
    "InvariantMonitor",
    "Violation",
    "liveness_bound",
]

INVARIANTS = (
    "served-by-primary-or-backup",
    "failover-waits-detection-interval",
    "failback-waits-detection-interval",
    "single-registrar",
)

SLACK = 0.05
"""Seconds of tolerance for link latency around the interval checks."""


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str
    now: float
    subject: str
    detail: str

    def line(self) -> str:
        return f"{self.now:11.3f}  {self.invariant}: {self.subject}: {self.detail}"


@dataclass(slots=True)
class _Pair:
    """What the network says about a (backup, primary) pair, and the backup's claims."""

    connected: bool
    since: float
    failed_over: bool = False
    stretches: list[tuple[float, float, bool]] = field(default_factory=list)
    """Closed stretches (start, end, connected)."""

    def covered(self, start: float, end: float, connected: bool) -> bool:
        """Whether [start, end] lies within one stretch of the given connectivity."""
        if self.connected == connected and self.since <= start + SLACK:
            return True
        return any(
            c == connected and s <= start + SLACK and e >= end - SLACK for s, e, c in self.stretches
        )


@dataclass(slots=True)
class _Bound:
    pool: str
    expires_at: float
    cut_off: bool = False
    """The pool could not hear the client at some moment since the client's last REGISTER
    there: a client leaving it then is not leaving a registrar it could unregister from."""


class InvariantMonitor:
    """Feed it pool events (:meth:`pool_event`), and call :meth:`network_changed` after every
    fault; read :attr:`violations`.

    ``home_of`` gives a user's home pool *now* (default: the topology's static homes); a
    deployment passes its directory's lookup, so a user force-moved to another pool (R4) is
    judged against its new home.  ``pairings`` (the deployment's
    :class:`~emulator.pairing.Pairings`) gives the backup pairings and timers *now* and the
    administrator's pool failovers: a pool's users served by its backup during
    ``Invoke-CsPoolFailOver`` (resiliency mode, then full function once it completes) and by
    their home in resiliency mode while a failback completes are not violations, nor is a
    failover by a backup that ``set-backup`` paired during the run.  Pool addresses come from
    the topology.
    """

    def __init__(
        self,
        topology: Topology,
        network: Network,
        *,
        clock: Callable[[], float],
        grace: float = 10.0,
        home_of: Callable[[str], str | None] | None = None,
        pairings: Pairings | None = None,
    ) -> None:
        self.topology = topology
        self.home_of: Callable[[str], str | None] = (
            home_of if home_of is not None else topology.users.get
        )
        self.pairings = pairings
        self.network = network
        self.clock = clock
        self.grace = grace
        self.violations: list[Violation] = []
        self._address = {p.fqdn: p.address for p in topology.pools}
        self._pairs: dict[tuple[str, str], _Pair] = {}
        # Every ordered pair of Front End pools: ``set-backup`` may pair any two during a run,
        # and a failover is judged on the connectivity history since time 0.
        front_ends = [p.fqdn for p in topology.pools if not p.is_director]
        for backup in front_ends:
            for primary in front_ends:
                if backup != primary and (pairings is not None or self._backup(primary) == backup):
                    self._pairs[(backup, primary)] = _Pair(self._connected(backup, primary), 0.0)
        self._bindings: dict[str, dict[str, _Bound]] = {}  # client address -> pool -> binding
        self._last_pool: dict[str, str] = {}
        self._pending: list[tuple[float, str, str]] = []  # (deadline, client address, pool)

    # -- ground truth ------------------------------------------------------------------------

    def _up(self, address: str) -> bool:
        return self.network.running(address)

    def _connected(self, a: str, b: str) -> bool:
        """Pools ``a`` and ``b`` can exchange heartbeats: both running, reachable both ways."""
        x, y = self._address[a], self._address[b]
        net = self.network
        return net.running(x) and net.running(y) and net.reachable(x, y) and net.reachable(y, x)

    def _hears(self, client: str, pool: str) -> bool:
        """The pool can hear the client and answer it (running, reachable both ways)."""
        address = self._address[pool]
        net = self.network
        return (
            net.running(address)
            and net.reachable(client, address)
            and net.reachable(address, client)
        )

    def network_changed(self) -> None:
        """Call after every fault or heal: connectivity only changes then."""
        now = self.clock()
        for (backup, primary), pair in self._pairs.items():
            connected = self._connected(backup, primary)
            if connected != pair.connected:
                pair.stretches.append((pair.since, now, pair.connected))
                pair.connected = connected
                pair.since = now
        for client, held in self._bindings.items():
            for pool, bound in held.items():
                if not bound.cut_off and not self._hears(client, pool):
                    bound.cut_off = True
        self._check_pending(now)

    # -- events ------------------------------------------------------------------------------

    def pool_event(self, pool: str, event: object) -> None:
        now = self.clock()
        self._check_pending(now)
        if isinstance(event, ev.FailedOver):
            self._failed_over(pool, event.peer, now)
        elif isinstance(event, ev.FailbackStarted):
            self._failback(pool, event.peer, now)
        elif isinstance(event, ev.BindingAdded):
            self._served(pool, event.aor, event.resiliency, now)
            self._bound(pool, event.contact, event.expires_at, now)
        elif isinstance(event, ev.BindingRefreshed | ev.BindingReplaced):
            self._bound(pool, event.contact, event.expires_at, now)
        elif isinstance(event, ev.BindingRemoved | ev.BindingExpired):
            client = _client_of(event.contact)
            self._bindings.get(client, {}).pop(pool, None)

    def _violate(self, invariant: str, now: float, subject: str, detail: str) -> None:
        self.violations.append(Violation(invariant, now, subject, detail))

    def _backup(self, pool: str) -> str | None:
        if self.pairings is not None:
            return self.pairings.backup_of(pool)
        return self.topology.pool(pool).backup

    def _resiliency(self) -> ResiliencySettings:
        if self.pairings is not None:
            return self.pairings.resiliency
        return self.topology.resiliency

    def _admin_phase(self, home: str, now: float) -> tuple[str, FailoverPhase] | None:
        """(backup, phase) of an administrator's failover of ``home`` (None: none)."""
        if self.pairings is None:
            return None
        found = self.pairings.failover(home)
        return None if found is None else (found.backup, found.phase(now))

    def _failed_over(self, backup: str, primary: str, now: float) -> None:
        pair = self._pairs.get((backup, primary))
        if pair is None or self._backup(primary) != backup:
            self._violate(
                "served-by-primary-or-backup",
                now,
                backup,
                f"failed over {primary}, which it does not back up",
            )
            return
        resiliency = self._resiliency()
        needed = resiliency.failover_detection_interval - resiliency.heartbeat_interval
        if not pair.covered(now - needed, now, connected=False):
            cut = "still connected" if pair.connected else f"cut off since {pair.since:.3f}"
            self._violate(
                "failover-waits-detection-interval",
                now,
                backup,
                f"failed over {primary} ({cut}; needs {needed:g} s cut off)",
            )
        pair.failed_over = True

    def _failback(self, backup: str, primary: str, now: float) -> None:
        pair = self._pairs.get((backup, primary))
        if pair is None:
            return
        needed = self._resiliency().failback_detection_interval
        if not pair.covered(now - needed, now, connected=True):
            state = "cut off" if not pair.connected else f"connected since {pair.since:.3f}"
            self._violate(
                "failback-waits-detection-interval",
                now,
                backup,
                f"failed back to {primary} ({state}; needs {needed:g} s connected)",
            )
        pair.failed_over = False

    def _served(self, pool: str, aor: str, resiliency: bool, now: float) -> None:
        home = self.home_of(aor)
        spec = self.topology.pool(pool)
        if spec.is_director:
            self._violate("served-by-primary-or-backup", now, aor, f"bound at director {pool}")
            return
        if home is None:
            self._violate("served-by-primary-or-backup", now, aor, f"unknown user bound at {pool}")
            return
        admin = self._admin_phase(home, now)
        if admin is not None:
            admin_backup, phase = admin
            if pool == admin_backup and phase in ("failing-over", "failed-over"):
                return  # Invoke-CsPoolFailOver: the backup serves the pool's users
            if pool == home and phase == "failing-back":
                return  # Invoke-CsPoolFailBack: home again, resiliency mode until it completes
        if not resiliency:
            if pool != home:
                self._violate(
                    "served-by-primary-or-backup",
                    now,
                    aor,
                    f"bound at {pool} in full mode; its home is {home}",
                )
            return
        backup = self._backup(home)
        if pool != backup:
            self._violate(
                "served-by-primary-or-backup",
                now,
                aor,
                f"bound at {pool} in resiliency mode; its home {home} is backed up by "
                f"{backup or 'no pool'}",
            )
            return
        pair = self._pairs.get((pool, home))
        if pair is None or not pair.failed_over:
            self._violate(
                "failover-waits-detection-interval",
                now,
                aor,
                f"accepted by backup {pool} before it failed over {home}",
            )

    def _bound(self, pool: str, contact: str, expires_at: float, now: float) -> None:
        client = _client_of(contact)
        held = self._bindings.setdefault(client, {})
        held[pool] = _Bound(pool, expires_at)
        previous = self._last_pool.get(client)
        self._last_pool[client] = pool
        if previous is None or previous == pool:
            return
        old = held.get(previous)
        if (
            old is not None
            and not old.cut_off
            and old.expires_at > now
            and self._hears(client, previous)
        ):
            self._pending.append((now + self.grace, client, previous))

    def _check_pending(self, now: float) -> None:
        if not self._pending:
            return
        keep = []
        for deadline, client, pool in self._pending:
            if deadline > now:
                keep.append((deadline, client, pool))
                continue
            old = self._bindings.get(client, {}).get(pool)
            if old is not None and old.expires_at > deadline:
                self._violate(
                    "single-registrar",
                    deadline,
                    client,
                    f"still bound at {pool} {self.grace:g} s after moving to "
                    f"{self._last_pool.get(client)}, although {pool} could hear it",
                )
        self._pending = keep

    def finish(self, now: float) -> list[Violation]:
        """Close the run at ``now``: checks still pending are judged."""
        self._check_pending(
            now if not self._pending else max(now, *(d for d, _, _ in self._pending))
        )
        return list(self.violations)


def _client_of(contact: str) -> str:
    """The client's address: the host of its Contact URI."""
    text = contact.strip()
    if "<" in text:
        text = text[text.index("<") + 1 : text.index(">")]
    try:
        return SipUri.parse(text).host
    except Exception:  # a Contact the pool accepted is parseable; be safe anyway
        return text


def liveness_bound(topology: Topology, profile: Profile, *, targets: int, dns_steps: int) -> float:
    """Seconds within which a signed-in client must be registered once faults stop and a pool
    that can serve it is reachable (docs/invariants.md, "Liveness").

    The client may be waiting out its longest backoff (``backoff.max_time``), then needs one
    sign-in round: every discovery name may time out (two 2 s tries each), every target may
    cost an A lookup (4 s) and a transaction timeout (Timer F), redirects add their Contacts;
    and the pool that will serve it may first have to fail over (failover interval plus a
    heartbeat period and timeout).  Loss of a registrar takes the keep-alive interval, the pong
    timeout and the failover detection timeout to notice; for a profile whose keep-alives
    detect nothing, a refresh period and a Timer F.  The client's DNS cache may hold a
    stale answer (positive or negative) for as long as the topology's TTLs and the profile's
    caps allow (clients/dnscache.py): that time is added once.
    """
    resiliency = topology.resiliency
    dns_tries = 2 * 2.0
    per_target = dns_tries + profile.transaction_timeout
    rounds = profile.cache_only_rounds + 1
    if profile.keepalive_detects_loss:
        noticing = (
            profile.keepalive_interval + profile.pong_timeout + profile.failover_detection_timeout
        )
    else:
        # Keep-alives that expect no answer (linphone): the loss shows at the next refresh,
        # at the latest a refresh period after the outage, plus its Timer F.
        noticing = (
            profile.refresh_at(0.0, profile.register_expires + profile.register_expires_jitter)
            + profile.transaction_timeout
            + profile.failover_detection_timeout
            + (profile.retry_after_timeout or 0.0)
        )
    failover = (
        resiliency.failover_detection_interval
        + resiliency.heartbeat_interval
        + resiliency.heartbeat_timeout
    )
    backoff = profile.backoff.max_time
    retry = profile.redirect_as_failure_retry or 0.0
    round_time = dns_steps * dns_tries + (targets + 3) * per_target + retry
    dns = topology.dns
    ttls = [dns.default_ttl, *(record.ttl for record in dns.records)]
    stale = min(profile.dns_cache_max_ttl, max(ttls)) + min(
        profile.dns_negative_cache_max_ttl, dns.default_ttl
    )
    bound = noticing + failover + rounds * (backoff + round_time) + stale
    return math.ceil(bound)
