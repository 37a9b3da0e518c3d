"""A Front End or Director registrar pool, sans-IO (the registrar core of sipemu).

REGISTER handling, in order (protocol-notes §5):

1. user unknown -> ``registrar.unknown_user`` (404);
2. a Director -> 301 naming the home pool (q=0.7) and its backup (q=0.3) [DD-BLOG, TN-CSVR];
3. the user's home pool -> 200 with ``presence-state`` (MS-SIPREGE §2.2.1.4, §4);
4. the home pool's backup -> while the home pool is failed over: 200 in resiliency mode
   (``is-connected-to-primary="no";user-services-state=unavailable``); before that the
   ``registrar.before_failover`` answer (emulator choice; default 301 home);
5. any other pool -> the same 301 as a Director.

Heartbeats (OPTIONS) go from each pool to the pools it backs up; :mod:`.monitor` turns their
outcomes into failover and failback, and on failback the failed-over clients are sent home
the ``registrar.failback`` way (emulator choice; default the MS-SIPREGE §4.1.3-style NOTIFY
``deregistered;event=preferred-registrar-change`` with ``P-Preferred-Registrar``).
"""

from __future__ import annotations

import heapq
import random
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from emulator.admin import ContactStore, Directory
from emulator.backend import BackEnd
from emulator.net import TRANSPORTS, Address, CloseFlow, Flow, Send, TransportName
from emulator.operations import contact_store
from emulator.registrar.bindings import Binding, BindingStore
from emulator.registrar.events import (
    AdminEvent,
    BadMessage,
    BindingAdded,
    BindingExpired,
    BindingRefreshed,
    BindingRemoved,
    ClientSentHome,
    Exchanged,
    FailbackStarted,
    FailedBack,
    FailedOver,
    PeerHeartbeatLost,
    PeerHeartbeatRestored,
    PoolEvent,
    UserServicesChanged,
)
from emulator.registrar.monitor import PeerMonitor, PeerState, Transition
from emulator.sip.errors import SipError
from emulator.sip.headers import (
    Diagnostics,
    KeepAlive,
    NameAddr,
    PresenceState,
    make_response,
    parse_contacts,
)
from emulator.sip.message import Headers, Request, Response, parse_message
from emulator.sip.transaction import ClientTransaction, ServerTransactionTable
from emulator.sip.uri import SipUri, normalize_aor
from emulator.topology import PoolSpec, Topology
from emulator.values import immutable

__all__ = ["Binding", "Pool", "PoolEndpoints", "PoolStatus"]

_CACHE_LIMIT = 200_000
"""Entries per parse cache below (bounded: the keys come from the network).  A cache that is
full stops learning; what it holds stays valid, because every cached value is a pure function
of its key."""

SERVER = "sipemu/0.1 (Lync registrar emulator)"
ALLOW = "REGISTER, OPTIONS, NOTIFY, SUBSCRIBE, SERVICE, BENOTIFY"
# Methods a Lync front end knows but this emulator does not serve: 405, others 501 (§21.4.6).
_KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "MESSAGE",
        "INFO",
        "PRACK",
        "UPDATE",
        "REFER",
        "PUBLISH",
        "SUBSCRIBE",
        "NOTIFY",
        "SERVICE",
        "BENOTIFY",
    }
)


@dataclass(frozen=True, slots=True)
class PoolEndpoints:
    """Where a pool actually listens (after the driver bound its sockets)."""

    fqdn: str
    address: str
    ports: Mapping[TransportName, int]

    def port(self, transport: TransportName) -> int | None:
        return self.ports.get(transport)


@dataclass(frozen=True, slots=True)
class PoolStatus:
    fqdn: str
    role: str
    bindings: int
    peers: Mapping[str, str] = field(default_factory=dict)
    """Monitored primary pool -> ``up`` | ``heartbeat-lost`` | ``failed-over`` | ``recovering``."""


@immutable
class _Contact:
    """One Contact of a REGISTER, reduced to what ``_accept`` uses (cached per header value)."""

    uri: str
    expires: int | None
    """Its ``expires`` parameter (RFC 3261 §10.2.1.1)."""
    instance: str | None
    """``+sip.instance``, unquoted (MS-SIPREGE §3.1.1.1)."""
    binding_contact: str
    """The contact as a binding stores and reports it: without ``expires`` and ``q``."""


@dataclass(slots=True)
class _Heartbeat:
    peer: str
    transaction: ClientTransaction
    flow: Flow
    missed_at: float
    sent_at: float


@dataclass(slots=True)
class _Coast:
    """Heartbeat rounds being skipped (Pool.heartbeat_coast): per peer, the delays out and
    back of an answered one or None for a silent one; per silent peer, when the latest
    heartbeat to it went out (pending at the start, or skipped since); the answers on their
    way at the last catch-up (peer, round sent at, arrival); the rounds skipped."""

    paths: dict[str, tuple[float, float] | None]
    pending: dict[str, float]
    answers: list[tuple[str, float, float]]
    rounds: int = 0


class Pool:
    """The registrar core of one pool.  See :mod:`emulator.net` for the driving contract."""

    def __init__(
        self,
        spec: PoolSpec,
        topology: Topology,
        endpoints: Mapping[str, PoolEndpoints],
        rng: random.Random,
        *,
        now: float,
        trace: bool = True,
        directory: Directory | None = None,
        backend: BackEnd | None = None,
        contacts: ContactStore | None = None,
    ) -> None:
        self.spec = spec
        self.fqdn = spec.fqdn
        self.topology = topology
        self.settings = topology.registrar
        self.resiliency = topology.resiliency
        self.endpoints = endpoints
        self.rng = rng
        self.trace = trace
        # Shared with the other pools of the deployment (the CMS replicates them): who is homed
        # where (force-move changes it) and the contact lists; this pool's back end survives
        # a restart of the pool, so the deployment owns it.
        self.directory = directory if directory is not None else Directory(topology.users)
        self.backend = (
            backend if backend is not None else BackEnd(spec.backend, topology.profile, now=now)
        )
        self.contacts = contacts if contacts is not None else contact_store(topology)
        self._services = self.backend.mode(now)
        self._me = endpoints[spec.fqdn]
        self._peer_addresses = frozenset(
            ep.address for name, ep in endpoints.items() if name != spec.fqdn
        )
        self._actions: list[Send | CloseFlow] = []
        self._events: list[PoolEvent] = []
        self._bindings = BindingStore()
        self._server_tx = ServerTransactionTable()
        self._client_tx: dict[str, tuple[ClientTransaction, Flow, str]] = {}
        # Deadlines of the client transactions, with lazy deletion: at failback a pool may have
        # thousands of NOTIFYs pending, and next_deadline() runs after every input (an O(n)
        # scan made failback O(n^2): benchmarks/sim_bench.py).
        self._tx_heap: list[tuple[float, str]] = []
        self._heartbeats: dict[str, _Heartbeat] = {}
        self._monitors: dict[str, PeerMonitor] = {}
        self._next_heartbeat_at: float | None = None
        self._coast: _Coast | None = None
        # Parse caches of the REGISTER path (speed: a client refreshes with the same To, Contact
        # and, but for the tag, From as before, so each is parsed once per client, not per
        # request; see benchmarks/sip_bench.py and docs/benchmarks.md).
        self._aor_cache: dict[str, str] = {}
        self._contact_cache: dict[str | tuple[str, ...], tuple[_Contact, ...]] = {}
        self._epid_cache: dict[str, str | None] = {}
        self._presence_cache: dict[tuple[str, bool, bool], str] = {}
        self._started = False
        self._now = now
        if not spec.is_director:
            for primary in topology.backed_up_by(spec.fqdn):
                self._monitors[primary.fqdn] = PeerMonitor(
                    primary.fqdn,
                    failover_interval=self.resiliency.failover_detection_interval,
                    failback_interval=self.resiliency.failback_detection_interval,
                    now=now,
                )
        self._keep_alive_line = "ms-keep-alive: " + str(
            KeepAlive(
                "UAS",
                (("tcp", False), ("hop-hop", True), ("end-end", False)),
                self.settings.keep_alive_timeout,
            )
        )

    # -- driving contract -------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin heartbeating the pools this pool backs up."""
        self._started = True
        self._now = now
        for monitor in self._monitors.values():
            monitor.last_answer_at = now
        if self._monitors:
            self._next_heartbeat_at = now

    def actions(self) -> list[Send | CloseFlow]:
        out, self._actions = self._actions, []
        return out

    def events(self) -> list[PoolEvent]:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        if self._coast is not None:
            return self._coast_other()  # heartbeats are being skipped (heartbeat_coast)
        best = self._deadline_besides_heartbeats()
        if self._next_heartbeat_at is None and not (self._monitors or self._heartbeats):
            return best
        candidates = [best, self._next_heartbeat_at]
        for beat in self._heartbeats.values():
            candidates.append(beat.missed_at)
        for monitor in self._monitors.values():
            candidates.append(monitor.next_deadline())
        present = [c for c in candidates if c is not None]
        return min(present) if present else None

    def _deadline_besides_heartbeats(self) -> float | None:
        # Called by the driver after every datagram: the common case (a pool that backs up no
        # other pool, so no heartbeats) builds no list.
        best = self._server_tx.next_deadline()
        bound = self._bindings.expiry_bound()
        if bound is not None and (best is None or bound < best):
            expiry = self._bindings.next_expiry()  # exact, and only when it can matter
            if expiry is not None and (best is None or expiry < best):
                best = expiry
        for at in (self.backend.next_deadline(), self.backend.mode_changes_at()):
            # The end of the grace period is a deadline only until it has passed (and
            # handle_timer has told the endpoints).
            if at is not None and at > self._now and (best is None or at < best):
                best = at
        if self._client_tx:
            at = self._tx_deadline()
            if at is not None and (best is None or at < best):
                best = at
        return best

    # -- heartbeat coasting (for a simulator) -------------------------------------------------
    #
    # A simulator whose network does not change knows what becomes of every heartbeat: each
    # peer either answers it after fixed delays ("answered", ``(out, back)``) or never hears
    # of it or is never heard back ("silent", None).  While no answer and no miss would move a
    # monitor to another state, the rounds change nothing but times, so the simulator may
    # skip them: heartbeat_coast() says whether that holds and begins; from then on the pool
    # applies what the skipped rounds did by itself whenever an input reaches it (_catch_up),
    # and coast_heartbeats() ends it when the network changes.  Live drivers never call them.
    # Skipped rounds draw no identifiers (later Call-IDs and tags differ from a run that sent
    # them; nothing else does).

    def heartbeat_flows(self) -> list[tuple[str, Flow]] | None:
        """The peers this pool heartbeats and the UDP flow to each, if it heartbeats over UDP
        and its exchanges are not traced (verbose runs show every heartbeat); else None."""
        if self.trace or self._next_heartbeat_at is None or not self._monitors:
            return None
        flows: list[tuple[str, Flow]] = []
        for peer in self._monitors:
            target = self.endpoints[peer]
            flow = self._flow_to(target.address, target)
            if flow is None or flow.transport != "udp":
                return None
            flows.append((peer, flow))
        return flows

    def heartbeat_coast(self, paths: Mapping[str, tuple[float, float] | None]) -> bool:
        """Begin coasting if the next heartbeat round is this pool's next deadline and the
        rounds would change no monitor's state: an answered peer's monitor is ``up`` or
        ``recovering`` (a heartbeat interval plus the round trip shorter than the failover
        interval, so that answers keep the failover deadline ahead); a silent peer's
        is ``heartbeat-lost`` or ``failed-over`` (and a heartbeat is missed before the next is
        due).  A heartbeat to a silent peer still pending is taken into the coast.
        Until the driver ends it (:meth:`coast_heartbeats`, when its network changes), the
        pool catches up by itself at every input and :meth:`next_deadline` leaves the
        heartbeats out."""
        at = self._next_heartbeat_at
        settings = self.resiliency
        if at is None or set(paths) != set(self._monitors):
            return False
        for peer, monitor in self._monitors.items():
            state = monitor.state
            delays = paths[peer]
            if delays is not None:
                if state not in (PeerState.UP, PeerState.RECOVERING):
                    return False
                # Answers must keep an up monitor's failover deadline ahead of every input.
                rtt = delays[0] + delays[1]
                if not settings.heartbeat_interval + rtt < monitor.failover_interval:
                    return False
                if peer in self._heartbeats:
                    return False  # its answer is on its way: coast once it is in
            else:
                if state not in (PeerState.HEARTBEAT_LOST, PeerState.FAILED_OVER):
                    return False
                if settings.heartbeat_timeout > settings.heartbeat_interval:
                    return False
                beat = self._heartbeats.get(peer)
                if beat is not None and beat.sent_at + settings.heartbeat_interval != at:
                    return False
        # Take the pending heartbeats (to silent peers) in, then nothing else may fall due
        # before the round; if something does, put them back.
        taken = [
            (peer, beat, self._client_tx.pop(beat.transaction.key, None))
            for peer, beat in self._heartbeats.items()
        ]
        self._heartbeats = {}
        other = self._coast_other()
        if other is not None and other <= at:
            for peer, beat, entry in taken:
                self._heartbeats[peer] = beat
                if entry is not None:
                    self._client_tx[beat.transaction.key] = entry
                    self._push_tx(beat.transaction.key, beat.transaction)
            return False
        pending = {peer: beat.sent_at for peer, beat, _ in taken}
        self._coast = _Coast(dict(paths), pending, [])
        return True

    def _coast_other(self) -> float | None:
        """The earliest deadline besides heartbeats and the moving deadlines of ``up``
        monitors (while their peers answer)."""
        best = self._deadline_besides_heartbeats()
        for monitor in self._monitors.values():
            if monitor.state is not PeerState.UP:
                at = monitor.next_deadline()
                if at is not None and (best is None or at < best):
                    best = at
        return best

    @property
    def coasting(self) -> bool:
        """Whether heartbeats are being skipped (:meth:`heartbeat_coast`)."""
        return self._coast is not None

    def _catch_up(self, now: float, inclusive: bool = True) -> None:
        """While coasting: apply the skipped heartbeat rounds up to ``now`` (answers that have
        arrived by then; to silent peers, nothing), keeping those still on their way.
        ``inclusive``: a round due exactly at ``now`` went out already."""
        coast = self._coast
        assert coast is not None
        interval = self.resiliency.heartbeat_interval
        on_the_way: list[tuple[str, float, float]] = []
        # An answer to an up or recovering monitor (all that coasting allows) changes nothing
        # but its last_answer_at: only the latest arrival per peer is told (speed: a pool with
        # no other input catches up hundreds of rounds at the next network change).
        latest: dict[str, float] = {}
        for peer, sent_at, arrival in coast.answers:
            if arrival <= now:
                latest[peer] = arrival
            else:
                on_the_way.append((peer, sent_at, arrival))
        # The rounds due by now, at the times the rounds themselves would have computed.
        at = self._next_heartbeat_at
        rounds: list[float] = []
        while at is not None and (at < now or (inclusive and at == now)):
            rounds.append(at)
            at = at + interval
        if rounds:
            # Answers arrive in the order their rounds went out (fixed delays), and one still
            # on its way keeps every later one on its way too (they are carried in order):
            # only the last few rounds need looking at, from the first with an answer out.
            answered: list[tuple[str, tuple[float, float]]] = [
                (peer, d) for peer, d in coast.paths.items() if d is not None
            ]
            first = len(rounds)
            if not on_the_way:
                while first > 0 and any(rounds[first - 1] + d[0] + d[1] > now for _, d in answered):
                    first -= 1
            else:
                first = 0
            if first > 0:
                for peer, delays in answered:
                    latest[peer] = rounds[first - 1] + delays[0] + delays[1]
            for round_at in rounds[first:]:
                for peer, delays in answered:
                    arrival = round_at + delays[0] + delays[1]
                    if arrival <= now and not on_the_way:
                        latest[peer] = arrival
                    else:
                        on_the_way.append((peer, round_at, arrival))
            for peer, path in coast.paths.items():
                if path is None:
                    coast.pending[peer] = rounds[-1]  # the latest, missed or not yet
            coast.rounds += len(rounds)
        for peer, arrival in latest.items():
            self._transition(self._monitors[peer].answered(arrival))
        self._next_heartbeat_at = at
        coast.answers = on_the_way

    def coast_heartbeats(
        self, now: float, *, inclusive: bool = True
    ) -> tuple[list[tuple[Send, float, float, float]], int]:
        """End coasting at ``now``: apply the rounds sent before ``now`` as if each answered
        peer had answered ``(sent + out) + back`` later and each silent one had never
        answered; a round still under way at ``now`` is sent for real as of when it went out
        (its heartbeats to silent peers vanish, with their retransmissions until ``now``).

        Returns ``(sends, rounds)``: the heartbeats of that round to answered peers as
        ``(send, sent_at, out, back)`` for the caller to carry (they arrive ``sent_at + out``
        at the peer, whose answer arrives ``out + back`` after ``sent_at``), and the number
        of rounds skipped.  ``inclusive``: a round due exactly at ``now`` went out already
        (False: the caller acts first, then the round goes out for real).
        """
        coast = self._coast
        if coast is None:
            return [], 0
        self._catch_up(now, inclusive)
        self._coast = None
        timeout = self.resiliency.heartbeat_timeout
        sends: list[tuple[Send, float, float, float]] = []
        for peer, sent_at in coast.pending.items():
            if sent_at + timeout >= now:  # not missed yet: pending, as it would be
                self._resend_silent(peer, sent_at, now)
        for peer, sent_at, _ in coast.answers:  # answers still on their way: sent for real
            delays = coast.paths[peer]
            assert delays is not None
            flow = self._send_heartbeat(peer, sent_at)
            for action in self._actions:
                if isinstance(action, Send) and action.flow == flow:
                    sends.append((action, sent_at, delays[0], delays[1]))
            self._actions = [a for a in self._actions if a.flow != flow]
        self._now = max(self._now, now)
        return sends, coast.rounds - bool(coast.answers)

    def _resend_silent(self, peer: str, sent_at: float, now: float) -> None:
        """A heartbeat sent at ``sent_at`` to a peer that never answers, and its
        retransmissions until ``now``: all vanished; the transaction is pending as it would be."""
        flow = self._send_heartbeat(peer, sent_at)
        self._actions = [a for a in self._actions if a.flow != flow]
        beat = self._heartbeats[peer]
        tx = beat.transaction
        while (deadline := tx.next_deadline()) is not None and deadline < now:
            tx.handle_timer(deadline)
            tx.take_outgoing()
        self._push_tx(tx.key, tx)

    def handle_timer(self, now: float) -> None:
        if self._coast is not None:
            self._catch_up(now)
        self._now = now
        self._server_tx.handle_timer(now)
        self.backend.handle_timer(now)
        self.backend_changed(now)
        for binding in self._bindings.expire(now):
            self._events.append(BindingExpired(now, self.fqdn, binding.aor, binding.contact))
        heap = self._tx_heap
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            entry = self._client_tx.get(key)
            if entry is None or entry[0].next_deadline() != deadline:
                continue  # stale: the transaction ended or moved on
            tx, flow, _ = entry
            tx.handle_timer(now)
            for data in tx.take_outgoing():
                self._actions.append(Send(flow, data))
            if tx.done:
                del self._client_tx[key]
            else:
                self._push_tx(key, tx)
        for peer, beat in list(self._heartbeats.items()):
            if now >= beat.missed_at:
                del self._heartbeats[peer]
                self._client_tx.pop(beat.transaction.key, None)
                self._transition(self._monitors[peer].missed(now))
        for monitor in self._monitors.values():
            self._transition(monitor.handle_timer(now))
        if (
            self._coast is None
            and self._next_heartbeat_at is not None
            and now >= self._next_heartbeat_at
        ):
            self._send_heartbeats(now)
            self._next_heartbeat_at = now + self.resiliency.heartbeat_interval

    def flow_failed(self, flow: Flow, now: float) -> None:
        """The driver could not deliver on ``flow`` (refused, reset, unreachable)."""
        if self._coast is not None:
            self._catch_up(now)
        self._now = now
        for key, (tx, tx_flow, _) in list(self._client_tx.items()):
            if tx_flow == flow:
                tx.transport_error(now)
                del self._client_tx[key]
        for peer, beat in list(self._heartbeats.items()):
            if beat.flow == flow:
                # A refused heartbeat is a missed one, at once (RFC 3261 §8.1.3.1: like 503).
                del self._heartbeats[peer]
                self._transition(self._monitors[peer].missed(now))

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        if self._coast is not None:
            self._catch_up(now)
        self._now = now
        try:
            message = parse_message(data, stream=flow.reliable)
        except SipError as exc:
            self._bad_message(exc, flow, now)
            return
        if isinstance(message, Response):
            self._receive_response(message, now)
            return
        if message.method == "ACK":
            return  # ACK to a non-2xx final response is absorbed by the transaction (§17.2.1)
        key = (message.headers.get("via") or "", message.method)
        cached = self._server_tx.lookup(key)
        if cached is not None:  # retransmission: same final response again (§17.2.2)
            self._actions.append(Send(flow, cached))
            return
        try:
            answer = self._dispatch(message, flow, now)
        except SipError as exc:
            answer = make_response(message, exc.status, exc.reason, to_tag=self._tag())
            answer.headers.add("ms-diagnostics", str(Diagnostics(1, str(exc))))
            if self.trace:
                self._events.append(BadMessage(now, self.fqdn, flow, exc.status, str(exc)))
        if isinstance(answer, bytes):
            wire = answer  # a 200 to REGISTER, serialized by _ok
        else:
            answer.headers.add("Server", SERVER)
            wire = answer.to_bytes()
        self._server_tx.completed(key, wire, now, flow.reliable)
        self._actions.append(Send(flow, wire))
        if self.trace:
            response = answer if isinstance(answer, Response) else _reparse(wire)
            self._events.append(
                Exchanged(
                    now,
                    self.fqdn,
                    flow,
                    _summary(message, response, self._aor_quiet(message)),
                    message.method == "OPTIONS" and flow.remote[0] in self._peer_addresses,
                )
            )

    # -- queries ----------------------------------------------------------------------------

    def bindings(self) -> list[Binding]:
        return [b for b in self._bindings if b.expires_at > self._now]

    def status(self) -> PoolStatus:
        return PoolStatus(
            self.fqdn,
            self.spec.role,
            len(self._bindings),
            {peer: m.state.value for peer, m in self._monitors.items()},
        )

    def peer_state(self, peer: str) -> PeerState:
        return self._monitors[peer].state

    # -- requests ---------------------------------------------------------------------------

    def _dispatch(self, request: Request, flow: Flow, now: float) -> Response | bytes:
        """The answer: a Response to finish (Server header) and serialize, or wire bytes."""
        method = request.method
        if method == "REGISTER":
            return self._register(request, flow, now)
        if method == "OPTIONS":
            response = make_response(request, 200, to_tag=self._tag())
            response.headers.add("Allow", ALLOW)
            return response
        if method == "SUBSCRIBE" and "roaming-contacts" in (request.headers.get("event") or ""):
            return self._contact_list(request, now)
        if method == "SERVICE" and b"<setContact" in request.body:
            return self._set_contact(request, now)
        status = 405 if method in _KNOWN_METHODS else 501
        response = make_response(request, status, to_tag=self._tag())
        if status == 405:
            response.headers.add("Allow", ALLOW)
        return response

    def _aor(self, request: Request) -> str:
        to = request.headers.get("to") or ""
        aor = self._aor_cache.get(to)
        if aor is None:
            aor = normalize_aor(NameAddr.parse(to).uri)
            if len(self._aor_cache) < _CACHE_LIMIT:
                self._aor_cache[to] = aor
        return aor

    def _aor_quiet(self, request: Request) -> str:
        try:
            return self._aor(request)
        except SipError:
            return "?"

    def _register(self, request: Request, flow: Flow, now: float) -> Response | bytes:
        settings = self.settings
        aor = self._aor(request)
        home = self.directory.get(aor)
        if home is None:
            return make_response(request, settings.unknown_user, to_tag=self._tag())
        if home == self.fqdn and not self.spec.is_director:
            return self._accept(request, flow, now, aor, resiliency_for=None)
        monitor = self._monitors.get(home)
        if monitor is None:
            return self._redirect(request, home)
        if monitor.serving_users:
            return self._accept(request, flow, now, aor, resiliency_for=home)
        for binding in self._bindings.of(aor):
            # Left by failback = "redirect-on-refresh": this refresh is the one sent home.
            if binding.home == home:
                self._bindings.remove(aor, binding.instance)
                self._events.append(
                    BindingRemoved(now, self.fqdn, aor, binding.contact, "failback")
                )
        if monitor.state is PeerState.HEARTBEAT_LOST:
            return self._before_failover(request, home)
        return self._redirect(request, home)

    def _accept(
        self, request: Request, flow: Flow, now: float, aor: str, *, resiliency_for: str | None
    ) -> Response | bytes:
        """RFC 3261 §10.3 steps 6-8 for a user this pool serves (home, or failed over here)."""
        settings = self.settings
        headers = request.headers
        contacts = self._contacts(headers)
        if settings.require_endpoint_id:
            epid = self._epid(headers.get("from") or "")
            if not epid and not any(c.instance for c in contacts):
                response = make_response(request, 400, to_tag=self._tag())
                response.headers.add(
                    "ms-diagnostics", str(Diagnostics(4010, "Missing epid and sip.instance"))
                )
                return response
        header_expires = headers.get("expires")
        if header_expires is not None and not header_expires.strip().isdigit():
            raise SipError(f"bad Expires {header_expires!r}")
        default = int(header_expires) if header_expires is not None else settings.default_expires
        call_id = request.call_id
        survivable = _survivable(headers)
        services = self._services == "full" if resiliency_for is None else False
        if resiliency_for is None and not services and not survivable:
            # MS-SIPREGE §2.2.1.13 (4165): user services are down and this endpoint cannot
            # register without them.  Answering 480 is an emulator choice (docs/backends.md).
            response = make_response(request, 480, to_tag=self._tag())
            response.headers.add(
                "ms-diagnostics-public",
                str(
                    Diagnostics(
                        4165,
                        "User services unavailable and the endpoint does not "
                        "support survivable mode",
                    )
                ),
            )
            return response
        # parse_message has checked the CSeq of every request (parse_cseq): the number is the
        # digits before the first space; reading it so is cheaper than parsing it again.
        cseq = int((headers.get("cseq") or "").strip().partition(" ")[0])
        to_tag = self._tag()

        if len(contacts) == 1 and contacts[0].uri == "*":
            if default != 0:
                raise SipError("Contact: * is allowed only with Expires: 0 (§10.2.2)")
            for binding in self._bindings.remove_all(aor):
                self._events.append(
                    BindingRemoved(now, self.fqdn, aor, binding.contact, "unregistered")
                )
            return self._ok(request, aor, to_tag, None, call_id)

        action: str | None = None
        epid = None
        for contact in contacts:
            expires = contact.expires
            if expires is None:
                expires = default
            if 0 < expires < settings.min_expires and expires < 3600:  # §10.3 step 7
                response = make_response(request, 423, to_tag=to_tag)
                response.headers.add("Min-Expires", str(settings.min_expires))
                return response
            expires = min(expires, settings.max_expires)
            if epid is None:
                epid = self._epid(headers.get("from") or "") or ""
            instance = contact.instance or epid or contact.uri
            existing = self._bindings.get(aor, instance)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                raise SipError(
                    "CSeq not higher than the binding's (§10.3 step 7)",
                    500,
                    "Server Internal Error",
                )
            if expires == 0:
                if existing is not None:
                    self._bindings.remove(aor, instance)
                    self._events.append(
                        BindingRemoved(now, self.fqdn, aor, existing.contact, "unregistered")
                    )
                continue
            expires_at = now + expires
            binding = Binding(
                aor,
                instance,
                contact.binding_contact,
                flow,
                call_id,
                cseq,
                expires_at,
                existing.registered_at if existing else now,
                resiliency_for is not None,
                resiliency_for,
                survivable,
            )
            self._bindings.put(binding)
            if existing is None:
                action = "added"
                self._events.append(
                    BindingAdded(
                        now, self.fqdn, aor, binding.contact, expires_at, resiliency_for is not None
                    )
                )
            else:
                action = action or "refreshed"
                self._events.append(
                    BindingRefreshed(now, self.fqdn, aor, binding.contact, expires_at)
                )
        if action is None:  # a query (§10.3 step 6 with no Contact) or only removals
            return self._ok(request, aor, to_tag, None, call_id)
        presence = self._presence(action, resiliency_for is None, services)
        return self._ok(request, aor, to_tag, presence, call_id)

    def _ok(
        self, request: Request, aor: str, to_tag: str, presence: str | None, call_id: str
    ) -> bytes:
        """The 200, serialized; ``presence`` is the ``presence-state`` (None: query, removals).

        Every accepted REGISTER ends here, so the 200 is written as wire bytes at once instead
        of through make_response, Headers and Response.to_bytes, which took over a quarter of
        the server's time under load (speed; docs/benchmarks.md).  The bytes are exactly what
        that path gives: make_response's copied headers (RFC 3261 §8.2.6.2), then the ones
        below, then Server, then Content-Length, as Response.to_bytes writes them.
        """
        headers = request.headers
        lines = ["SIP/2.0 200 OK"]
        for via in headers.get_all("via"):
            lines.append(f"Via: {via}")
        for name, key in _COPIED:
            value = headers.get(key)
            if value is None:
                continue
            if key == "to" and ";tag=" not in value.lower():
                value = f"{value};tag={to_tag}"
            lines.append(f"{name}: {value}")
        now = self._now
        current = self._bindings.of(aor)
        for binding in current:  # §10.3 step 8: all current bindings, with their expiry
            remaining = max(0, int(binding.expires_at - now + 0.5))
            lines.append(f"Contact: {binding.contact};expires={remaining}")
        if presence is not None:
            lines.append(self._keep_alive_line)
            for binding in current:
                if binding.call_id == call_id:
                    lines.append(f"Expires: {max(0, int(binding.expires_at - now + 0.5))}")
                    break
            lines.append(f"presence-state: {presence}")
        lines.append(_SERVER_LINE)
        lines.append("Content-Length: 0\r\n\r\n")
        return "\r\n".join(lines).encode("utf-8")

    def _presence(self, action: str, home: bool, services: bool) -> str:
        """MS-SIPREGE §2.2.1.4 presence-state of a 200: on the home pool or not (a backup in
        resiliency mode), and whether user services (the back end) are available."""
        key = (action, home, services)
        text = self._presence_cache.get(key)
        if text is None:  # a handful of possible values: formatted once each
            text = self._presence_cache[key] = str(
                PresenceState(
                    action,
                    "central",
                    is_connected_to_primary=home,
                    user_services_available=services,
                )
            )
        return text

    def _contacts(self, headers: Headers) -> tuple[_Contact, ...]:
        """The Contacts of a REGISTER (RFC 3261 §10.3 step 7), parsed once per distinct value."""
        values = headers.get_all("contact")
        # One Contact line is the rule: its text is the key (a tuple would cost memory).
        key = values[0] if len(values) == 1 else tuple(values)
        contacts = self._contact_cache.get(key)
        if contacts is None:
            contacts = tuple(
                _Contact(
                    address.uri,
                    address.expires,
                    address.param("+sip.instance"),
                    str(NameAddr(address.uri, address.display, _binding_params(address))),
                )
                for address in parse_contacts(headers)  # raises SipError: nothing cached
            )
            if len(self._contact_cache) < _CACHE_LIMIT:
                self._contact_cache[key] = contacts
        return contacts

    def _epid(self, from_value: str) -> str | None:
        """The ``epid`` parameter of a From value (MS-SIPREGE §3.1.1.1); raises SipError.

        Cached on the value without its trailing ``;tag=TOKEN``: a client sends a new tag with
        every REGISTER (SIPp does), and a plain token at the very end of the value can change
        neither how the rest parses nor the epid, so every value with the same rest parses the
        same.  Values of any other shape are cached whole.
        """
        key = from_value
        at = from_value.rfind(";tag=")
        if at >= 0:
            tag = from_value[at + 5 :]
            if tag and not tag.strip(_TOKEN_CHARACTERS):  # nothing but token characters
                key = from_value[:at]
        try:
            return self._epid_cache[key]
        except KeyError:
            pass
        epid = NameAddr.parse(from_value).param("epid")  # raises SipError: nothing cached
        if len(self._epid_cache) < _CACHE_LIMIT:
            self._epid_cache[key] = epid
        return epid

    def _redirect(self, request: Request, home: str) -> Response:
        """``301 Redirect request to Home Server``: home q=0.7, its backup q=0.3 [DD-BLOG]."""
        settings = self.settings
        response = make_response(request, 301, settings.redirect_reason, to_tag=self._tag())
        came_over = _transport_of(request)
        response.headers.add(
            "Contact", f"<{self._registrar_uri(home, came_over)}>;q={settings.primary_q}"
        )
        backup = self.topology.pool(home).backup
        if backup is not None:
            response.headers.add(
                "Contact", f"<{self._registrar_uri(backup, came_over)}>;q={settings.backup_q}"
            )
        if settings.redirect_expires:
            response.headers.add("Expires", str(settings.redirect_expires))
        return response

    def _before_failover(self, request: Request, home: str) -> Response:
        """A failed-looking primary's user before failover: an emulator choice (§6)."""
        behaviour = self.settings.before_failover
        if behaviour == "redirect":
            return self._redirect(request, home)
        if behaviour == "service-unavailable":
            response = make_response(request, 503, to_tag=self._tag())
            response.headers.add("Retry-After", str(self.settings.retry_after))
            return response
        return make_response(request, 480, to_tag=self._tag())

    def _registrar_uri(self, fqdn: str, came_over: TransportName) -> str:
        """A pool's SIP URI for a 301 Contact or P-Preferred-Registrar."""
        settings = self.settings
        endpoints = self.endpoints[fqdn]
        wanted = came_over if settings.redirect_transport == "same" else settings.redirect_transport
        transport: TransportName = wanted
        if endpoints.port(transport) is None:  # the pool does not serve it: offer what it does
            transport = next(iter(endpoints.ports)) if endpoints.ports else "tls"
        host = fqdn if settings.redirect_host == "fqdn" else endpoints.address
        port = endpoints.port(transport)
        where = f"{host}:{port}" if port else host
        # DD-BLOG's trace writes transport=TLS in upper case.
        return f"sip:{where};transport={transport.upper()}"

    # -- heartbeats and failback ------------------------------------------------------------

    def _send_heartbeats(self, now: float) -> None:
        for peer in self._monitors:
            if peer in self._heartbeats:
                continue  # the previous one is still pending
            self._send_heartbeat(peer, now)

    def _send_heartbeat(self, peer: str, now: float) -> Flow | None:
        target = self.endpoints[peer]
        flow = self._flow_to(target.address, target)
        if flow is None:
            return None
        request = self._new_request("OPTIONS", f"sip:{peer}", f"sip:{peer}", flow)
        tx = self._start_transaction(request, flow, "heartbeat", now)
        self._heartbeats[peer] = _Heartbeat(
            peer, tx, flow, now + self.resiliency.heartbeat_timeout, now
        )
        return flow

    def _flow_to(self, address: str, target: PoolEndpoints) -> Flow | None:
        for transport in TRANSPORTS:
            port = target.port(transport)
            mine = self._me.port(transport)
            if port is not None and mine is not None:
                local: Address = (self._me.address, mine)
                return Flow(transport, local, (address, port))
        return None

    def _receive_response(self, response: Response, now: float) -> None:
        branch = response.branch
        if branch is None:
            return
        entry = self._client_tx.get(branch)
        if entry is None:
            return  # stray or late: absorbed (§17.1.3)
        tx, _, purpose = entry
        news = tx.receive_response(response.status, now)
        if tx.done or (purpose == "heartbeat" and response.status >= 200):
            # A heartbeat's transaction ends with its answer: a retransmitted answer is then
            # absorbed as a stray (§17.1.3), which is all Timer K would do with it.
            del self._client_tx[branch]
        else:
            self._push_tx(branch, tx)  # Timer K now
        if not news or response.status < 200 or purpose != "heartbeat":
            return
        for peer, beat in list(self._heartbeats.items()):
            if beat.transaction is tx:
                del self._heartbeats[peer]
                self._transition(self._monitors[peer].answered(now))

    def _transition(self, transition: Transition | None) -> None:
        if transition is None:
            return
        now, peer = transition.now, transition.peer
        after = transition.after
        if after is PeerState.HEARTBEAT_LOST:
            monitor = self._monitors[peer]
            self._events.append(PeerHeartbeatLost(now, self.fqdn, peer, monitor.last_answer_at))
        elif after is PeerState.FAILED_OVER and transition.before is not PeerState.RECOVERING:
            self._events.append(FailedOver(now, self.fqdn, peer))
        elif after is PeerState.RECOVERING or (
            after is PeerState.UP and transition.cause == "answer"
        ):
            self._events.append(PeerHeartbeatRestored(now, self.fqdn, peer))
        elif after is PeerState.UP and transition.cause == "failback-due":
            self._events.append(FailbackStarted(now, self.fqdn, peer))
            self._send_home(peer, now)
            self._events.append(FailedBack(now, self.fqdn, peer))

    def _send_home(self, home: str, now: float) -> None:
        """Failback: every binding this pool holds for ``home``'s users goes home (§6 choice)."""
        how = self.settings.failback
        for binding in [b for b in self._bindings if b.home == home]:
            if how == "redirect-on-refresh":
                # Nothing on the wire now: the binding stays until the next REGISTER, which the
                # normal rules answer with a 301 home (the peer is up again).
                self._events.append(ClientSentHome(now, self.fqdn, binding.aor, home, how))
                continue
            self._bindings.remove(binding.aor, binding.instance)
            self._events.append(
                BindingRemoved(now, self.fqdn, binding.aor, binding.contact, "failback")
            )
            if how == "notify":
                self._notify_home(binding, home)
            self._events.append(ClientSentHome(now, self.fqdn, binding.aor, home, how))

    def _notify_home(self, binding: Binding, home: str) -> None:
        """MS-SIPREGE §2.2.1.13 / §4.1.3: deregister NOTIFY naming the preferred registrar."""
        preferred = f"<{self._registrar_uri(home, binding.flow.transport)}>"
        self._notify(
            binding,
            "deregistered;event=preferred-registrar-change",
            self.settings.failback_error_id,
            "Preferred registrar changed",
            preferred,
        )

    def _notify(
        self,
        binding: Binding,
        body: str,
        error_id: int | None,
        reason: str,
        preferred: str | None = None,
    ) -> None:
        """A registration-notify NOTIFY to a binding's endpoint (MS-SIPREGE §4.1.3)."""
        target = NameAddr.parse(binding.contact).uri
        request = self._new_request("NOTIFY", target, binding.aor, binding.flow)
        headers = request.headers
        headers.add("Event", "registration-notify")
        terminated = body.startswith("deregistered")
        headers.add("Subscription-State", "terminated;expires=0" if terminated else "active")
        headers.add("Content-Type", "text/registration-event")
        if preferred is not None:
            headers.add("P-Preferred-Registrar", preferred)
        if error_id is not None:
            headers.add("ms-diagnostics-public", str(Diagnostics(error_id, reason)))
        request.body = body.encode()
        self._start_transaction(request, binding.flow, "notify")

    # -- back end: user services, contact lists ---------------------------------------------

    def backend_changed(self, now: float) -> None:
        """Call after the back end changed (a server down or up, an administrative failover):
        when the users' mode changes, their endpoints are told (docs/backends.md)."""
        self._now = now
        for transition in self.backend.transitions():
            self._events.append(AdminEvent(transition.now, self.fqdn, transition.text))
        mode = self.backend.mode(now)
        if mode == self._services or self.spec.is_director:
            self._services = mode
            return
        before, self._services = self._services, mode
        available = mode == "full"
        detail = (
            "back end available again"
            if available
            else "back end unavailable: no contact list, no presence, no changes"
        )
        self._events.append(UserServicesChanged(now, self.fqdn, mode, detail))
        if not self.settings.user_services_notify:
            return
        for binding in [b for b in self._bindings if b.home is None]:
            if available:
                # CHOICE: the sources give no "available again" NOTIFY value; this one mirrors
                # the unavailable one, so that endpoints need not wait for their next refresh.
                self._notify(binding, "registered;event=userservices-available", None, "")
            elif binding.survivable:
                # MS-SIPREGE §3.5.1.4 (SHOULD notify when Presence-Service-Available goes false);
                # the body value of §2.2.1.12 is not confirmed by the sources: a CHOICE.
                self._notify(binding, "registered;event=userservices-unavailable", None, "")
            else:
                # MS-SIPREGE §2.2.1.13: endpoints without survivable mode are deregistered.
                self._bindings.remove(binding.aor, binding.instance)
                self._events.append(
                    BindingRemoved(
                        now, self.fqdn, binding.aor, binding.contact, "userservices-unavailable"
                    )
                )
                self._notify(
                    binding,
                    "deregistered;event=userservices-unavailable",
                    4165,
                    "User services unavailable",
                )
        del before

    def users_moved(self, aors: Iterable[str], now: float) -> None:
        """Call after ``force-move`` rehomed ``aors``: the endpoints this pool holds for them are
        deregistered with ``deregistered;event=deactivated`` (MS-SIPREGE §2.2.1.12, error 4142,
        "user being moved between servers"), so they sign in again and find the new home."""
        self._now = now
        moved = set(aors)
        for binding in [b for b in self._bindings if b.aor in moved]:
            self._bindings.remove(binding.aor, binding.instance)
            self._events.append(
                BindingRemoved(now, self.fqdn, binding.aor, binding.contact, "user moved")
            )
            self._notify(binding, "deregistered;event=deactivated", 4142, "User moved")

    def contacts_changed(self, aors: Iterable[str], now: float) -> None:
        """Call after the contact lists of ``aors`` changed (import, a contact added): their
        endpoints registered here, on their home pool, are sent the new list in a NOTIFY
        ``Event: vnd-microsoft-roaming-contacts`` (an emulator choice: a registered endpoint
        counts as subscribed; docs/backends.md)."""
        self._now = now
        changed = set(aors)
        for binding in [b for b in self._bindings if b.aor in changed and b.home is None]:
            if self.directory.get(binding.aor) != self.fqdn or not self.backend.available:
                continue
            target = NameAddr.parse(binding.contact).uri
            request = self._new_request("NOTIFY", target, binding.aor, binding.flow)
            request.headers.add("Event", CONTACTS_EVENT)
            request.headers.add("Subscription-State", "active")
            request.headers.add("Content-Type", CONTACTS_TYPE)
            request.body = _contact_list_body(self.contacts.of(self.fqdn, binding.aor) or [])
            self._start_transaction(request, binding.flow, "notify")

    def _contact_list(self, request: Request, now: float) -> Response:
        """SUBSCRIBE ``Event: vnd-microsoft-roaming-contacts``: the user's contact list in the
        200 (as Lync's piggy-backed first NOTIFY); refused while user services are down or
        when this pool is not the user's home (a backup in resiliency mode has none)."""
        aor = self._aor(request)
        home = self.directory.get(aor)
        response = make_response(request, 200, to_tag=self._tag())
        if home != self.fqdn or not self.backend.available:
            response = make_response(request, 503, to_tag=self._tag())
            response.headers.add(
                "ms-diagnostics",
                str(Diagnostics(4165, "User services unavailable: no contact list")),
            )
            return response
        contacts = self.contacts.of(self.fqdn, aor) or []
        asked = (request.headers.get("expires") or "").strip()
        response.headers.add("Expires", asked if asked.isdigit() else "0")
        response.headers.add("Content-Type", CONTACTS_TYPE)
        response.body = _contact_list_body(contacts)
        return response

    def _set_contact(self, request: Request, now: float) -> Response:
        """SERVICE with a ``<setContact uri="..."/>`` body: add a contact (a persistent
        change, refused in limited or resiliency mode: R3, SFB-UX)."""
        aor = self._aor(request)
        match = _SET_CONTACT.search(request.body)
        if match is None:
            raise SipError("setContact without a uri attribute")
        if self.directory.get(aor) != self.fqdn or not self.backend.available:
            response = make_response(request, 503, to_tag=self._tag())
            response.headers.add(
                "ms-diagnostics",
                str(Diagnostics(4165, "User services unavailable: no persistent changes")),
            )
            return response
        self.contacts.add(self.fqdn, aor, match.group(1).decode("utf-8", "replace"))
        self.contacts_changed([aor], now)  # every endpoint of the user gets the new list
        return make_response(request, 200, to_tag=self._tag())

    def _new_request(self, method: str, uri: str, to: str, flow: Flow) -> Request:
        branch = f"z9hG4bK{self.rng.getrandbits(64):016x}"
        local = flow.local
        headers = Headers()
        headers.add(
            "Via", f"SIP/2.0/{flow.transport.upper()} {local[0]}:{local[1]};branch={branch}"
        )
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<sip:{self.fqdn}>;tag={self._tag()}")
        headers.add("To", f"<{to}>")
        headers.add("Call-ID", f"{self.rng.getrandbits(64):016x}@{self.fqdn}")
        headers.add("CSeq", f"1 {method}")
        headers.add("User-Agent", SERVER)
        return Request(method, uri, headers)

    def _start_transaction(
        self, request: Request, flow: Flow, purpose: str, now: float | None = None
    ) -> ClientTransaction:
        """Send ``request`` in a new client transaction started at ``now`` (default: the
        pool's clock; a heartbeat re-sent as of when it went out passes its own time)."""
        branch = request.branch or ""
        tx = ClientTransaction(branch, b"", reliable=flow.reliable)
        tx.data = request.to_bytes()
        tx.start(self._now if now is None else now)
        for data in tx.take_outgoing():
            self._actions.append(Send(flow, data))
        self._client_tx[branch] = (tx, flow, purpose)
        self._push_tx(branch, tx)
        return tx

    def _push_tx(self, key: str, tx: ClientTransaction) -> None:
        deadline = tx.next_deadline()
        if deadline is not None:
            heapq.heappush(self._tx_heap, (deadline, key))

    def _tx_deadline(self) -> float | None:
        """The earliest client transaction deadline (stale heap entries dropped)."""
        heap = self._tx_heap
        while heap:
            deadline, key = heap[0]
            entry = self._client_tx.get(key)
            if entry is not None and entry[0].next_deadline() == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    # -- helpers ----------------------------------------------------------------------------

    def _tag(self) -> str:
        # "%" formatting: the same 12 hex digits as f"{n:012x}" in half the time (a tag per
        # request; speed).
        return "%012x" % self.rng.getrandbits(48)  # noqa: UP031

    def _bad_message(self, exc: SipError, flow: Flow, now: float) -> None:
        headers = exc.headers
        status = 0
        if headers is not None and headers.get("via") and headers.get("cseq"):
            # Answer what can be answered (RFC 3261 §8.2: 400 to a malformed request).
            fake = Request("X", "sip:x", headers)
            try:
                response = make_response(fake, exc.status, exc.reason, to_tag=self._tag())
                response.headers.add("ms-diagnostics", str(Diagnostics(1, str(exc)[:200])))
                response.headers.add("Server", SERVER)
                self._actions.append(Send(flow, response.to_bytes()))
                status = exc.status
            except SipError:
                status = 0
        self._events.append(BadMessage(now, self.fqdn, flow, status, str(exc)[:200]))
        if flow.reliable and status == 0:
            self._actions.append(CloseFlow(flow))


# make_response's copied headers after the Vias, as (spelling on the wire, look-up key).
_COPIED = (("From", "from"), ("To", "to"), ("Call-ID", "call-id"), ("CSeq", "cseq"))
_SERVER_LINE = f"Server: {SERVER}"


def _reparse(wire: bytes) -> Response:
    """A serialized 200 as a Response again, for the Exchanged summary (trace only)."""
    response = parse_message(wire)
    assert isinstance(response, Response)
    return response


# RFC 3261 §25.1 token: no quote, bracket, comma, semicolon, equals sign or white space.
_TOKEN_CHARACTERS = string.ascii_letters + string.digits + ".!%*_+`'~-"


def _survivable(headers: Headers) -> bool:
    """``Supported: ms-userservices-state-notification`` (MS-SIPREGE §2.2.1.5)."""
    return any(
        "ms-userservices-state-notification" in value.lower()
        for value in headers.get_all("supported")
    )


CONTACTS_EVENT = "vnd-microsoft-roaming-contacts"
CONTACTS_TYPE = "application/vnd-microsoft-roaming-contacts+xml"


def _contact_list_body(contacts: Iterable[str]) -> bytes:
    items = "".join(f'<contact uri="{c}"/>' for c in contacts)
    return f"<contactList>{items}</contactList>".encode()


_SET_CONTACT = re.compile(rb'<setContact[^>]*\buri="([^"]+)"')


def _binding_params(contact: NameAddr) -> tuple[tuple[str, str | None], ...]:
    # The registrar reports expiry itself; q and expires in the request are not echoed twice.
    return tuple(p for p in contact.params if p[0] not in ("expires", "q"))


def _transport_of(request: Request) -> TransportName:
    via = request.headers.get("via") or ""
    proto = via.split(" ", 1)[0].rsplit("/", 1)[-1].lower()
    return proto if proto in ("udp", "tcp", "tls") else "udp"  # type: ignore[return-value]


def _summary(request: Request, response: Response, aor: str) -> str:
    line = f"{request.method} {aor} -> {response.status} {response.reason}"
    if response.status == 301:
        targets = ", ".join(
            f"{SipUri.parse(c.uri).host} q={c.q:g}" for c in parse_contacts(response.headers)
        )
        line += f" ({targets})"
    elif response.status == 200 and request.method == "REGISTER":
        presence = response.headers.get("presence-state")
        if presence:
            state = PresenceState.parse(presence)
            mode = "limited" if state.limited else "full"
            line += f" [{state.register_action}, {mode}]"
    return line
